"""The HTTP request metrics, counted as plain numbers and exported when scraped.

Every request is counted: prometheus_client's labelled children take a lock per counter
and walk the buckets with a call each, more than the rest of a cached read's middleware.
Here a request is one dict lookup, a bisect and three additions on lists only the event
loop's thread writes; a scrape builds the same families (`_total`, `_created`, buckets,
`_count`, `_sum`) prometheus_client would.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["HttpTally"]

REQUESTS = "smithers_http_requests_total"
DURATION = "smithers_http_request_duration_ms"


class HttpTally(Collector):
    """Requests by method, route and status; their durations (ms) by method and route."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = [float(b) for b in buckets]
        # The `le` labels as prometheus_client writes them ("5.0", "3.6e+06", "+Inf").
        self.les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        # (method, route, status) -> ([count, created], that route's histogram)
        self._cells: dict[tuple[str, str, int], tuple[list[float], list[float]]] = {}
        # (method, route) -> [count per bucket..., count past the last, sum, created]
        self._histograms: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, duration_ms: float) -> None:
        cells = self._cells.get((method, route, status))
        if cells is None:
            cells = self._cells_of(method, route, status)
        cells[0][0] += 1
        histogram = cells[1]
        histogram[bisect_left(self.bounds, duration_ms)] += 1
        histogram[-2] += duration_ms

    def _cells_of(self, method: str, route: str, status: int) -> tuple[list[float], list[float]]:
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[(method, route)] = [0.0] * (len(self.les) + 1)
            histogram.append(time.time())
        cells = ([0.0, time.time()], histogram)
        self._cells[(method, route, status)] = cells
        return cells

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            REQUESTS, "HTTP requests", labels=["method", "route", "status_code", "status_class"]
        )
        for (method, route, status), (count, _) in list(self._cells.items()):
            values = [method, route, str(status), f"{status // 100}xx"]
            requests.add_metric(values, count[0], created=count[1])
        yield requests
        durations = HistogramMetricFamily(
            DURATION, "HTTP request duration (ms)", labels=["method", "route"]
        )
        for (method, route), histogram in list(self._histograms.items()):
            cumulative, buckets = 0.0, []
            for le, in_bucket in zip(self.les, histogram, strict=False):
                cumulative += in_bucket
                buckets.append((le, cumulative))
            durations.add_metric([method, route], buckets, histogram[-2])
            created = Sample(
                f"{DURATION}_created", {"method": method, "route": route}, histogram[-1]
            )
            durations.samples.append(created)
        yield durations
