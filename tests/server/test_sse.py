"""Server-sent events of a run, from a real server (started with `--sse-keepalive 200`)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from smithers_server.server import start_server

from .conftest import (
    TERMINAL,
    ServerProcess,
    SSEStream,
    assert_error,
    make_root,
    read_sse,
    start_run,
    wait_status,
)

KEEPALIVE_S = 0.2

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess]) -> ServerProcess:
    return spawn(args=("--sse-keepalive", str(int(KEEPALIVE_S * 1000))))


@pytest.fixture
def client(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as made:
        yield made


def assert_sse_headers(res: httpx.Response) -> None:
    assert res.status_code == 200
    assert res.headers["content-type"].split(";")[0] == "text/event-stream"
    assert res.headers["cache-control"] == "no-cache"
    assert res.headers["x-accel-buffering"] == "no"


def assert_well_formed(stream: SSEStream) -> None:
    """`retry: 1000` first; every other block a keep-alive comment or id/event/data."""
    assert stream.blocks[0] == "retry: 1000", stream.blocks[:2]
    for block in stream.blocks[1:]:
        if block.startswith(":"):
            assert block == ": keep-alive", block
            continue
        lines = block.split("\n")
        assert len(lines) == 3, block
        assert re.fullmatch(r"id: \d+", lines[0]), block
        assert lines[1] == "event: smithers", block
        assert lines[2].startswith("data: {"), block
        data = json.loads(lines[2][len("data: ") :])
        assert isinstance(data["type"], str) and isinstance(data["timestampMs"], int)


def connect(
    client: httpx.Client,
    run_id: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    stop: Callable[[SSEStream], bool] | None = None,
) -> SSEStream:
    stream = SSEStream()
    with client.stream("GET", f"/v1/runs/{run_id}/events", params=params, headers=headers) as res:
        assert_sse_headers(res)
        read_sse(res, stream, stop=stop)
    assert_well_formed(stream)
    return stream


def test_three_clients_see_the_same_complete_sequence(srv: ServerProcess) -> None:
    """One never drops; one reconnects with afterSeq, one with Last-Event-ID (twice each)."""
    with srv.client() as c:
        run_id = start_run(c, "srv_chatty.py", input={"lines": 100, "delay": 0.015})

    def steady() -> list[SSEStream]:
        with srv.client() as c:
            return [connect(c, run_id)]

    def dropping(resume_with: str) -> list[SSEStream]:
        streams: list[SSEStream] = []
        last = -1
        with srv.client() as c:
            for cut in (10, 35, None):
                params: dict[str, Any] = {}
                headers: dict[str, str] = {}
                if streams:
                    if resume_with == "afterSeq":
                        params["afterSeq"] = last
                    else:
                        headers["last-event-id"] = str(last)
                stop = None if cut is None else (lambda s, n=cut: len(s.events) >= n)
                stream = connect(c, run_id, params=params, headers=headers, stop=stop)
                streams.append(stream)
                if stream.ids:
                    last = stream.ids[-1]
                if cut is not None:
                    # Dropped while the run is still going: the reconnect sees live events.
                    assert c.get(f"/v1/runs/{run_id}").json()["status"] == "running"
                    time.sleep(0.05)
        return streams

    with ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(steady),
            pool.submit(dropping, "afterSeq"),
            pool.submit(dropping, "Last-Event-ID"),
        ]
        results = [f.result(timeout=30) for f in futures]

    with srv.client() as c:
        stored = connect(c, run_id)  # the whole log, read after the end
    expected = list(range(len(stored.ids)))
    assert stored.ids == expected
    assert stored.types[0] == "RunStarted" and stored.types[-1] == "RunFinished"
    assert stored.types.count("NodeOutput") == 100
    by_id = {int(e["id"]): e["data"] for e in stored.events}

    for name, streams in zip(("steady", "afterSeq", "Last-Event-ID"), results, strict=True):
        ids = [i for s in streams for i in s.ids]
        assert ids == expected, name
        assert all(by_id[int(e["id"])] == e["data"] for s in streams for e in s.events), name
        assert streams[-1].closed, name
        if name != "steady":
            assert len(streams) == 3 and not streams[0].closed and not streams[1].closed
            assert len(streams[0].ids) == 10 and streams[1].ids[0] == 10


def test_keepalive_while_parked_then_the_stream_follows_the_run(srv: ServerProcess) -> None:
    with srv.client() as c:
        run_id = start_run(c, "approval.py")
        wait_status(c, run_id, "waiting-approval")
        approved: list[float] = []

        def stop(stream: SSEStream) -> bool:
            comments = [b for b in stream.blocks if b == ": keep-alive"]
            if len(comments) >= 3 and not approved:
                res = c.post(f"/v1/runs/{run_id}/nodes/review/approve")
                assert res.status_code == 200
                approved.append(time.monotonic())
            return False

        opened = time.monotonic()
        stream = connect(c, run_id, stop=stop)
    assert stream.closed and approved
    types = stream.types
    assert "ApprovalRequested" in types and types[-1] == "RunFinished"
    assert "ApprovalGranted" in types
    assert stream.ids == list(range(len(stream.ids)))
    # Keep-alives come after the idle interval, repeatedly, and not before it.
    timed = list(zip(stream.blocks, stream.times, strict=True))
    before = [t for b, t in timed if b.startswith("id:") and t < approved[0]]
    keepalives = [t for b, t in timed if b == ": keep-alive" and t < approved[0]]
    assert len(keepalives) >= 3
    assert keepalives[0] - before[-1] >= KEEPALIVE_S * 0.75
    assert keepalives[0] - opened < 3.0
    gaps = [b - a for a, b in pairwise(keepalives)]
    assert all(KEEPALIVE_S * 0.75 <= g < KEEPALIVE_S * 5 for g in gaps), gaps
    # The waiting state did not close the stream: events after the approval arrived on it.
    assert max(t for b, t in timed if b.startswith("id:")) >= approved[0]


def test_stream_ends_after_the_terminal_event(client: httpx.Client) -> None:
    run_id = start_run(client, "srv_chatty.py", input={"lines": 20, "delay": 0.01})
    stream = connect(client, run_id)
    assert stream.closed and stream.types[-1] == "RunFinished"
    assert stream.closed_at is not None and stream.closed_at - stream.times[-1] < 1.0
    assert stream.types.count("RunFinished") == 1

    failed = start_run(client, "failing.py")
    stream = connect(client, failed)
    assert stream.closed and stream.types[-1] == "RunFailed"
    assert wait_status(client, failed, TERMINAL)["status"] == "failed"

    slow = start_run(client, "slow.py", input={"seconds": 30})

    def cancel_once(s: SSEStream) -> bool:
        if len(s.events) == 1:
            assert client.post(f"/v1/runs/{slow}/cancel").status_code == 200
        return False

    stream = connect(client, slow, stop=cancel_once)
    assert stream.closed and stream.types[-1] == "RunCancelled"
    assert "NodeCancelled" in stream.types
    assert stream.ids == list(range(len(stream.ids)))


def test_after_seq_and_last_event_id(client: httpx.Client) -> None:
    run_id = start_run(client, "sequence.py")
    wait_status(client, run_id, "finished")
    full = connect(client, run_id)
    n = len(full.ids)
    assert n > 6
    assert connect(client, run_id, params={"afterSeq": 3}).ids == list(range(4, n))
    assert connect(client, run_id, params={"afterSeq": -1}).ids == list(range(n))
    assert connect(client, run_id, params={"afterSeq": n - 1}).ids == []
    # Last-Event-ID overrides afterSeq when larger, and not when smaller.
    got = connect(client, run_id, params={"afterSeq": 1}, headers={"last-event-id": "4"})
    assert got.ids == list(range(5, n))
    got = connect(client, run_id, params={"afterSeq": 4}, headers={"last-event-id": "1"})
    assert got.ids == list(range(5, n))
    assert connect(client, run_id, headers={"last-event-id": "2"}).ids == list(range(3, n))
    for bad in ("abc", "1.5", "0x10", "1e3"):
        err = assert_error(
            client.get(f"/v1/runs/{run_id}/events", params={"afterSeq": bad}),
            400,
            "INVALID_REQUEST",
        )
        assert err["details"]["field"] == "afterSeq"
    assert_error(client.get("/v1/runs/no-such-run/events"), 404, "NOT_FOUND")
    assert_error(client.get("/v1/runs/no-such-run/events?afterSeq=abc"), 404, "NOT_FOUND")


@pytest.mark.parametrize("how", ["afterSeq", "Last-Event-ID"])
def test_stream_past_the_end_of_a_finished_run_closes(client: httpx.Client, how: str) -> None:
    """Nothing left to send on a terminal run: the stream closes (it used to stay open)."""
    run_id = start_run(client, "hello.py")
    wait_status(client, run_id, "finished")
    last = connect(client, run_id).ids[-1]
    opened = time.monotonic()
    params = {"afterSeq": last + 5} if how == "afterSeq" else {}
    headers = {"last-event-id": str(last + 5)} if how != "afterSeq" else {}
    # Keep-alives every 0.2 s give `stop` a chance to give up after 1.5 s.
    stream = connect(
        client,
        run_id,
        params=params,
        headers=headers,
        stop=lambda s: time.monotonic() - opened > 1.5,
    )
    assert stream.ids == []
    assert stream.closed, "the stream was still open after 1.5 s"


def _subscribers(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    match = re.search(r"^smithers_sse_subscribers(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def _wait_subscribers(client: httpx.Client, wanted: float) -> float:
    deadline = time.monotonic() + 5
    while (seen := _subscribers(client)) != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_disconnected_clients_cost_nothing(srv: ServerProcess, client: httpx.Client) -> None:
    run_id = start_run(client, "approval.py")
    wait_status(client, run_id, "waiting-approval")
    baseline = _subscribers(client)
    streams = [srv.client() for _ in range(5)]
    responses = [
        s.send(s.build_request("GET", f"/v1/runs/{run_id}/events"), stream=True) for s in streams
    ]
    readers = []  # keep each iterator: dropping one closes its connection
    for res in responses:
        assert_sse_headers(res)
        readers.append(res.iter_bytes())
        assert next(readers[-1]).startswith(b"retry: 1000")
    assert _wait_subscribers(client, baseline + 5) == baseline + 5
    for res, s in zip(responses, streams, strict=True):
        res.close()
        s.close()
    assert _wait_subscribers(client, baseline) == baseline
    assert client.get("/health").status_code == 200
    client.post(f"/v1/runs/{run_id}/cancel")


def _open_stream(client: httpx.Client, run_id: str) -> httpx.Response:
    """A GET of the run's events whose body is left unread (an idle stream stays open)."""
    return client.send(client.build_request("GET", f"/v1/runs/{run_id}/events"), stream=True)


def test_streams_past_the_caps_are_refused_until_one_closes(tmp_path: Path) -> None:
    """At most 2 streams per run and 3 in all: the next is 429 `TOO_MANY_STREAMS` before
    any stream starts; a client that goes away gives its slot back."""
    server = start_server(
        port=0,
        db=f"sqlite:///{tmp_path / 'caps.db'}",
        root_dir=make_root(tmp_path / "root"),
        max_streams=3,
        max_streams_per_run=2,
    )
    opened: list[httpx.Response] = []
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            one, two = start_run(client, "approval.py"), start_run(client, "approval.py")
            for run_id in (one, two):
                wait_status(client, run_id, "waiting-approval")

            def refused(run_id: str) -> dict[str, Any]:
                res = _open_stream(client, run_id)
                if res.status_code != 429:
                    res.close()
                    pytest.fail(f"stream accepted past the cap: {res.status_code}")
                res.read()
                return assert_error(res, 429, "TOO_MANY_STREAMS")

            opened += [_open_stream(client, one), _open_stream(client, one)]
            assert refused(one)["details"] == {"scope": "run", "limit": 2}
            opened.append(_open_stream(client, two))
            assert refused(two)["details"] == {"scope": "server", "limit": 3}
            assert all(res.status_code == 200 for res in opened)

            opened.pop(0).close()
            deadline = time.monotonic() + 10
            while (again := _open_stream(client, one)).status_code == 429:
                again.read()
                again.close()
                assert time.monotonic() < deadline, "the closed stream's slot never came back"
                time.sleep(0.05)
            opened.append(again)
            assert_sse_headers(again)
            reader = again.iter_bytes()  # kept: dropping it would close the connection
            assert next(reader).startswith(b"retry: 1000")
            assert refused(two)["details"]["scope"] == "server"
    finally:
        for res in opened:
            res.close()
        server.close()
