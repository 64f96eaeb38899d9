"""The HTTP request metrics (`smithers.http_metrics`) scrape as prometheus_client's own
Counter and Histogram would: same families, labels, buckets, counts and sums."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from smithers.http_metrics import HttpTally
from smithers.metrics import DURATION_BUCKETS_MS

OBSERVED = [
    ("GET", "/v1/runs/{runId}", 200, 0.3),
    ("GET", "/v1/runs/{runId}", 200, 5.0),  # on a bound: counted in that bucket
    ("GET", "/v1/runs/{runId}", 404, 7.5),
    ("POST", "/v1/runs", 500, 4_000_000.0),  # past the last bound: only in +Inf
    ("GET", "unmatched", 404, 12.0),
]


def scrape(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_the_tally_scrapes_as_prometheus_clients_counter_and_histogram() -> None:
    ours = CollectorRegistry()
    tally = HttpTally(DURATION_BUCKETS_MS)
    ours.register(tally)
    theirs = CollectorRegistry()
    requests = Counter(
        "smithers_http_requests_total",
        "HTTP requests",
        ["method", "route", "status_code", "status_class"],
        registry=theirs,
    )
    durations = Histogram(
        "smithers_http_request_duration_ms",
        "HTTP request duration (ms)",
        ["method", "route"],
        buckets=DURATION_BUCKETS_MS,
        registry=theirs,
    )
    for method, route, status, ms in OBSERVED:
        tally.observe(method, route, status, ms)
        requests.labels(method, route, str(status), f"{status // 100}xx").inc()
        durations.labels(method, route).observe(ms)
    assert scrape(ours) == scrape(theirs)
    created = re.findall(
        r"^smithers_http_\w+_created\{.*\} \S+$", generate_latest(ours).decode(), re.M
    )
    assert len(created) == 4 + 3  # one per request series, one per duration series
