"""Many SSE streams on one run share its frames (smithers/web/fanout.py): each stream still
gets every event once and in order, a stalled one holds up no other and loses nothing, and
a stream resuming from behind what the run keeps in memory reads the rest from the table.

A server in this process (uvicorn in a thread, real sockets) so that the frames a run keeps
can be made few (`KEPT`): a stream then falls behind them quickly.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from smithers.web import fanout
from smithers.web.serving import ServerHandle
from smithers_server.server import start_server

from .conftest import SSEStream, make_root, read_sse, start_run, wait_status

pytestmark = pytest.mark.timeout(90)

STREAMS = 12


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerHandle]:
    monkeypatch.setattr(fanout, "KEPT", 8)
    handle = start_server(
        port=0,
        db=f"sqlite:///{tmp_path / 'fanout.db'}",
        root_dir=make_root(tmp_path / "root"),
        max_streams_per_run=STREAMS + 4,
    )
    try:
        yield handle
    finally:
        handle.close()


def read_all(url: str, run_id: str, headers: dict[str, str] | None = None) -> SSEStream:
    stream = SSEStream()
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as res,
    ):
        assert res.status_code == 200
        read_sse(res, stream)
    return stream


def open_then_read(url: str, run_id: str, opened: threading.Barrier) -> SSEStream:
    """A stream opened (its `retry:` read) before the barrier, read to its end after it."""
    stream = SSEStream()
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("GET", f"/v1/runs/{run_id}/events") as res,
    ):
        assert res.status_code == 200

        def first_block_waits(read: SSEStream) -> bool:
            if len(read.blocks) == 1:  # `retry:`: the stream is open
                opened.wait(timeout=30)
            return False

        read_sse(res, stream, stop=first_block_waits)
    return stream


def parked_burst(client: httpx.Client, lines: int, size: int = 40) -> str:
    run_id = start_run(client, "srv_fanout.py", input={"lines": lines, "size": size})
    wait_status(client, run_id, "waiting-approval")
    return run_id


def assert_whole_log(streams: list[SSEStream], stored: SSEStream) -> None:
    """Each stream has every event of the run once, in order, as stored, and was closed."""
    assert stored.ids == list(range(len(stored.ids)))
    assert stored.types[-1] == "RunFinished"
    for stream in streams:
        assert stream.closed
        assert stream.ids == stored.ids
        assert [e["data"] for e in stream.events] == [e["data"] for e in stored.events]


def test_many_streams_each_get_every_event_once_in_order(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = parked_burst(client, lines=400)
        opened = threading.Barrier(STREAMS + 1)
        with ThreadPoolExecutor(STREAMS) as pool:
            futures = [
                pool.submit(open_then_read, server.url, run_id, opened) for _ in range(STREAMS)
            ]
            opened.wait(timeout=30)
            assert client.post(f"/v1/runs/{run_id}/nodes/go/approve").status_code == 200
            streams = [f.result(timeout=60) for f in futures]
    stored = read_all(server.url, run_id)
    assert stored.types.count("NodeOutput") == 400
    assert_whole_log(streams, stored)


def test_a_stalled_stream_holds_up_no_other_and_loses_nothing(server: ServerHandle) -> None:
    """One client reads nothing until the others are done: its socket fills up, the run
    moves on past what it keeps for it; afterwards it still gets the whole log."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = parked_burst(client, lines=600, size=4000)  # ~2.4 MB: more than a socket holds
        stalled = socket.create_connection(("127.0.0.1", server.port))
        try:
            request = f"GET /v1/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            stalled.sendall(request.encode())
            opened = threading.Barrier(STREAMS)
            with ThreadPoolExecutor(STREAMS - 1) as pool:
                futures = [
                    pool.submit(open_then_read, server.url, run_id, opened)
                    for _ in range(STREAMS - 1)
                ]
                opened.wait(timeout=30)
                assert client.post(f"/v1/runs/{run_id}/nodes/go/approve").status_code == 200
                others = [f.result(timeout=60) for f in futures]
            late = read_stalled(stalled)
        finally:
            stalled.close()
    stored = read_all(server.url, run_id)
    assert stored.types.count("NodeOutput") == 600
    assert_whole_log([*others, late], stored)


def read_stalled(sock: socket.socket) -> SSEStream:
    """The whole response on a raw socket: its chunked body's SSE blocks."""
    sock.settimeout(30)
    raw = b""
    while not raw.endswith(b"\r\n0\r\n\r\n"):
        data = sock.recv(1 << 16)
        assert data, f"the server closed the stream before its last chunk: {raw[:200]!r}"
        raw += data
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    stream = SSEStream(closed=True)
    for block in body.decode().split("\n\n")[:-1]:
        stream.blocks.append(block)
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in fields:
            json.loads(fields["data"])
            stream.events.append(fields)
    return stream


def read_some(client: httpx.Client, run_id: str, count: int) -> SSEStream:
    """The first `count` events of a stream, then it is dropped."""
    stream = SSEStream()
    with client.stream("GET", f"/v1/runs/{run_id}/events") as res:
        read_sse(res, stream, stop=lambda s: len(s.events) >= count)
    return stream


def test_resume_with_last_event_id_from_behind_the_shared_frames(server: ServerHandle) -> None:
    """A stream dropped early comes back with `Last-Event-ID` while the run goes on, far past
    it (other streams keep the run's frames going): it gets the rest, once, in order."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = start_run(client, "srv_chatty.py", input={"lines": 200, "delay": 0.02})
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(read_all, server.url, run_id) for _ in range(2)]
            first = read_some(client, run_id, 10)
            read_some(client, run_id, 60)  # the run is that far on
            assert client.get(f"/v1/runs/{run_id}").json()["status"] == "running"
            resumed = read_all(server.url, run_id, {"last-event-id": str(first.ids[-1])})
            steady = [f.result(timeout=60) for f in futures]
    stored = read_all(server.url, run_id)
    assert_whole_log(steady, stored)
    assert first.ids + resumed.ids == stored.ids
    assert resumed.closed and resumed.types[-1] == "RunFinished"
