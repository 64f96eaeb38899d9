"""Latency of an event committed by one process to SSE and WebSocket clients of another.

    .venv/bin/python benchmarks/bench_cross_process.py [--events 500] [--interval-ms 5]
        [--db postgresql+psycopg://postgres@127.0.0.1:5432/test]

Three subprocesses on one PostgreSQL database (a fresh schema, dropped afterwards): server
A (`smithers server`) drives benchmarks/workflows/chatty.py, which logs `--events` lines
`--interval-ms` apart, each carrying `time.time_ns()` taken just before `tctx.log` commits
its `NodeOutput` event; server B serves the run's SSE stream and a gateway (`smithers
gateway` on benchmarks/workflows/gateway_app.py) its `streamRunEvents` WebSocket stream.
Neither B nor the gateway drives the run: they learn of its events through the database.
For each line: receipt on the client minus the embedded ns (same machine clock). Every
line must arrive once and in order on both streams. The run starts `--settle-s` after the
processes, past the first second in which a process announces every run's events.
Target p50 <= 10 ms, p99 <= 50 ms; a process that polls every 250 ms measured 131 / 241 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from gateways import WsConnection, gateway_process, open_socket
from servers import (
    BENCH_DIR,
    Connection,
    HttpError,
    percentile,
    prepare_root,
    smithers_server,
    start_run,
)

DEFAULT_DB = os.environ.get(
    "SMITHERS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TARGET_P50_MS, TARGET_P99_MS = 10.0, 50.0
POLLING_P50_MS, POLLING_P99_MS = 131.0, 241.0


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """`url` with its search_path on a new schema, dropped afterwards."""
    schema = "bench_" + secrets.token_hex(6)
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


class Lines:
    """Latencies of one stream's `NodeOutput` lines, checked to arrive once and in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lags: list[float] = []
        self.next_line = 0
        self.done = asyncio.Event()

    def line(self, text: str, received: int) -> None:
        index, _, sent_ns = text.partition(" ")
        if int(index) != self.next_line:
            raise HttpError(f"{self.name}: line {index} where {self.next_line} was due")
        self.next_line += 1
        self.lags.append((received - int(sent_ns)) / 1e6)


async def read_sse(port: int, run_id: str, lines: Lines) -> None:
    conn = await Connection(port).open()
    try:
        async for event, received in conn.events(f"/v1/runs/{run_id}/events"):
            if event["type"] == "NodeOutput":
                lines.line(event["text"], received)
        lines.done.set()
    finally:
        await conn.close()


async def read_ws(port: int, run_id: str, lines: Lines) -> WsConnection:
    expected = 0

    def on_frame(frame: dict[str, Any], received: int) -> None:
        nonlocal expected
        if frame.get("type") != "event" or frame.get("event") != "run.event":
            return
        payload = frame["payload"]
        if payload["seq"] != expected:
            raise HttpError(f"ws: seq {payload['seq']} where {expected} was due")
        expected += 1
        event = payload["payload"]
        if event["type"] == "NodeOutput":
            lines.line(event["text"], received)
        if event["type"] in ("RunFinished", "RunFailed", "RunCancelled"):
            lines.done.set()

    conn = await open_socket(port, on_frame)
    await conn.call("streamRunEvents", {"runId": run_id, "afterSeq": -1})
    return conn


async def measure(a: int, b: int, gateway: int, events: int, interval_ms: float) -> list[Lines]:
    starter = await Connection(a).open()
    try:
        run_id = await start_run(
            starter, "chatty.py", {"count": events, "interval_ms": interval_ms, "delay_ms": 1500}
        )
    finally:
        await starter.close()
    sse, ws = Lines("sse"), Lines("ws")
    reader = asyncio.create_task(read_sse(b, run_id, sse))
    socket = await read_ws(gateway, run_id, ws)
    try:
        await asyncio.wait_for(
            asyncio.gather(sse.done.wait(), ws.done.wait()), timeout=60 + events * interval_ms
        )
        await reader
    finally:
        socket.close()
        reader.cancel()
    for lines in (sse, ws):
        if lines.next_line != events:
            raise HttpError(f"{lines.name}: received {lines.next_line} of {events} lines")
    return [sse, ws]


def summary(lines: Lines) -> str:
    p50, p99 = percentile(lines.lags, 50), percentile(lines.lags, 99)
    return (
        f"{lines.name} on B: p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   "
        f"max {max(lines.lags):7.2f} ms   ({len(lines.lags)} lines, once each, in order)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--db", default=DEFAULT_DB)
    # A new process announces every run's events for its first second, then only those of
    # runs another process follows: measure the steady state.
    parser.add_argument("--settle-s", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_schema(args.db) as db:
        root = Path(tmp)
        prepare_root(root, BENCH_DIR / "workflows" / "chatty.py")
        a, b, gateway = smithers_server(db, root), smithers_server(db, root), gateway_process(db)
        with a, b, gateway:
            time.sleep(args.settle_s)
            started = time.perf_counter()
            found = asyncio.run(
                measure(a.port, b.port, gateway.port, args.events, args.interval_ms)
            )
            elapsed = time.perf_counter() - started
    print(
        f"chatty.py on server A: {args.events} NodeOutput events {args.interval_ms:g} ms apart; "
        f"an SSE client of server B and a WebSocket client of a gateway, all on PostgreSQL; "
        f"{elapsed:.1f} s, python {sys.version.split()[0]}"
    )
    for lines in found:
        print(summary(lines))
    met = all(
        percentile(x.lags, 50) <= TARGET_P50_MS and percentile(x.lags, 99) <= TARGET_P99_MS
        for x in found
    )
    print(
        f"target: p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms -> "
        f"{'met' if met else 'NOT met'} (polling every 250 ms: {POLLING_P50_MS:.0f} / "
        f"{POLLING_P99_MS:.0f} ms)"
    )


if __name__ == "__main__":
    main()
