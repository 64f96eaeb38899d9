"""Fan-out: many SSE subscribers on one run emitting events at a steady rate.

    .venv/bin/python benchmarks/bench_fanout.py [--subscribers 1000] [--rate 200]
        [--seconds 20] [--processes 2] [--timeout 600]

A `smithers server` subprocess on a SQLite file in a temp dir (stream caps raised to let
every subscriber in) runs benchmarks/workflows/fanout.py, the `chatty` workflow gated by
an approval: one task that logs `--rate` lines/s for `--seconds` s, each line carrying
`time.time_ns()` taken just before `tctx.log` commits its `NodeOutput` event.
`--processes` client processes hold `--subscribers` streams between them
(`GET /v1/runs/{id}/events`, a bare asyncio protocol per socket: chunked decoding and the
`id:` line, no JSON, so the client costs little next to the server). Once every stream
is open the approval is granted and the lines start. Each subscriber checks the run's
seqs 0..terminal: lost (never received), out of order (below one already received),
duplicated (received twice). Lag = receipt (`time.time_ns()` when the bytes arrived, same
machine clock) - the time in the line, over every `NodeOutput` of every subscriber.
Server CPU = the server process's CPU seconds over the wall time from the approval until
the last subscriber's stream closed after `RunFinished` (1.00 = one core); RSS from /proc,
its peak over that time. Target: 0 lost / 0 out of order / 0 duplicated, p99 <= 100 ms.
Issue 13 measured 1.2 s p50 / 3.0 s p99 with 1,000 subscribers (39 / 110 ms with 200).
On a 2-core machine the clients share the cores with the server: their CPU is printed
too, and lag measured there includes the clients' own queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import fanout_clients as fanout
from servers import (
    BENCH_DIR,
    HOST,
    HttpError,
    prepare_root,
    smithers_server,
)

CONNECTING = 32  # sockets opening at once per client process
LAG_NS = int(fanout.BUCKET_MS * 1e6)
IDS = re.compile(rb"id: (\d+)\n")  # a data line holds no newline
TIMES = re.compile(rb'"text":"\d+ (\d+)"')
TERMINAL = re.compile(rb'"type":"Run(?:Finished|Failed|Cancelled)"')


class Subscriber(asyncio.Protocol):
    """One SSE stream: chunked body decoded, each frame's `id:` checked against the seqs
    seen, the lag of each `NodeOutput` line counted in the shared histogram. The terminal
    event is the run's last: its seq is the highest seen when it arrives."""

    def __init__(self, request: bytes, lags: Counter[int]) -> None:
        self.request = request
        self.lags = lags
        self.raw = b""  # bytes not yet de-chunked
        self.body = b""  # de-chunked bytes not yet split into frames
        self.head_done = False
        self.opened = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.seen = bytearray()
        self.highest = -1
        self.frames = 0
        self.out_of_order = 0
        self.duplicated = 0
        self.terminal: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        received = time.time_ns()
        raw = self.raw + data
        if not self.head_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            if not raw.startswith(b"HTTP/1.1 200"):
                self._finish(HttpError(raw[: raw.find(b"\r\n")].decode("latin-1")))
                return
            self.head_done = True
            raw = raw[end + 4 :]
        body = [self.body]
        while True:
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(raw[:line_end], 16)
            if size == 0:
                self.transport.close()
                break
            start = line_end + 2
            if len(raw) < start + size + 2:
                break
            body.append(raw[start : start + size])
            raw = raw[start + size + 2 :]
        self.raw = raw
        text = b"".join(body)
        cut = text.rfind(b"\n\n") + 2 if b"\n\n" in text else 0  # whole frames only
        self.body, text = text[cut:], text[:cut]
        if not self.opened.done() and text.startswith(b"retry:"):
            self.opened.set_result(None)
        # C-level scans of the whole chunk, not a Python pass per frame: the client's
        # cost stays well below the server's.
        ids = list(map(int, IDS.findall(text)))
        self.frames += len(ids)
        if ids and ids == list(range(self.highest + 1, self.highest + 1 + len(ids))):
            self._mark(ids[0], ids[-1])  # the usual case: the next seqs, in order
        else:
            for seq in ids:
                self._check(seq)
        self.lags.update([(received - int(ns)) // LAG_NS for ns in TIMES.findall(text)])
        if TERMINAL.search(text):
            self.terminal = self.highest

    def _mark(self, low: int, high: int) -> None:
        if high >= len(self.seen):
            self.seen.extend(bytes(high + 1 - len(self.seen) + 4096))
        self.seen[low : high + 1] = b"\x01" * (high + 1 - low)
        self.highest = high

    def _check(self, seq: int) -> None:
        highest = self.highest
        if seq < len(self.seen) and self.seen[seq]:
            self.duplicated += 1
        elif seq < highest:
            self.out_of_order += 1
        self._mark(seq, seq)
        self.highest = max(highest, seq)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(None)
        self._finish(exc)

    def _finish(self, error: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(error)
        self.transport.close()


# --- a client process -------------------------------------------------------------------


async def subscribe(
    port: int, run_id: str, lags: Counter[int], gate: asyncio.Semaphore
) -> Subscriber:
    request = (
        f"GET /v1/runs/{run_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    async with gate:
        _, subscriber = await loop.create_connection(lambda: Subscriber(request, lags), HOST, port)
        await subscriber.opened
    return subscriber


async def client(port: int, run_id: str, count: int, pipe: Any, timeout: float) -> dict[str, Any]:
    lags: Counter[int] = Counter()
    gate = asyncio.Semaphore(CONNECTING)
    subscribers = await asyncio.gather(*(subscribe(port, run_id, lags, gate) for _ in range(count)))
    refused = Counter(str(s.done.result()) for s in subscribers if s.done.done())
    pipe.send(("ready", count - sum(refused.values())))
    unfinished, errors = await fanout.await_streams(subscribers, timeout)
    for s in subscribers:
        if s.terminal is None:
            errors["stream ended without a terminal event"] += 1
    for s in subscribers:
        s.transport.close()
    return {
        **fanout.stream_figures(subscribers),
        "refused": dict(refused),
        "unfinished": unfinished,
        "errors": dict(errors),
        "terminal": max((s.terminal for s in subscribers if s.terminal is not None), default=-1),
        "lags": dict(lags),
    }


# --- the parent -------------------------------------------------------------------------


def call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as res:
        return json.loads(res.read())


def main() -> None:
    parser = fanout.parser(__doc__.split("\n")[0], seconds=20.0, timeout=600.0)
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare_root(root, BENCH_DIR / "workflows" / "fanout.py")
        prepare_root(root, BENCH_DIR / "workflows" / "gateway_app.py")
        server = smithers_server(f"sqlite:///{root / 'b.db'}", root)
        server.argv += ["--max-streams", str(args.subscribers + 100)]
        server.argv += ["--max-streams-per-run", str(args.subscribers)]
        with server:
            pid = server.pid()
            run_input = {"count": count, "rate": args.rate, "gated": True}
            started_run = call(
                server.url, "POST", "/v1/runs", {"workflowPath": "fanout.py", "input": run_input}
            )
            run_id = str(started_run["runId"])
            fanout.wait_for_approval(
                lambda: str(call(server.url, "GET", f"/v1/runs/{run_id}")["status"]), run_id
            )
            measured = fanout.measure(
                client,
                server.port,
                pid,
                run_id,
                args,
                lambda: call(server.url, "POST", f"/v1/runs/{run_id}/nodes/go/approve", {}),
            )
            row = call(server.url, "GET", f"/v1/runs/{run_id}")
    m = measured
    emitted_s = ((row.get("finishedAtMs") or m.approved_ms) - m.approved_ms) / 1000
    report(args, run_id, str(row["status"]), emitted_s, m)
    mb = 2**20
    print(
        f"server CPU {m.server_cpu:.2f} cores over {m.wall:.1f} s (approval -> last stream "
        f"closed); clients {m.client_cpu:.2f} cores"
    )
    print(
        f"server RSS: {m.rss_idle / mb:.0f} MB idle, {m.rss_connected / mb:.0f} MB with the "
        f"streams open, peak {m.rss_peak / mb:.0f} MB"
    )


def report(
    args: argparse.Namespace,
    run_id: str,
    status: str,
    emitted_s: float,
    measured: fanout.Measured,
) -> None:
    merged = fanout.merge(measured.results)
    last_seq = max((r["terminal"] for r in merged.results), default=-1)
    print(
        f"{args.subscribers} SSE subscribers in {args.processes} client processes, "
        f"{args.rate:g} events/s for {args.seconds:g} s, one run ({run_id}, {status}, seqs "
        f"0..{last_seq}), smithers server subprocess on SQLite, python {sys.version.split()[0]}"
    )
    received = (
        f"{merged.total('frames'):,} events received, {merged.total('unfinished')} streams "
        "still open at the timeout"
    )
    lagged = "NodeOutput events"
    fanout.print_streams(merged, args, last_seq, measured, emitted_s, received, lagged)


if __name__ == "__main__":
    main()
