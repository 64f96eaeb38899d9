"""Fan-out: many WebSocket subscribers on one run emitting events at a steady rate.

    .venv/bin/python benchmarks/bench_ws_fanout.py [--subscribers 1000] [--rate 200]
        [--seconds 30] [--processes 2] [--spec-limits] [--timeout 900]

A `smithers gateway` subprocess (benchmarks/workflows/gateway_app.py, open auth) on a
SQLite file in a temp dir runs the `chatty` workflow gated by an approval: one task that
logs `--rate` lines/s for `--seconds` s, each line carrying `time.time_ns()` taken just
before `tctx.log` commits its `NodeOutput` event. `--processes` client processes hold
`--subscribers` sockets between them (bare WebSocket client, benchmarks/gateways.py);
each socket sends `connect`, then `streamRunEvents {runId, afterSeq: -1}`. Once every
stream is open the approval is granted and the lines start; a stream told
`BackpressureDisconnect` resumes from its `lastSeq` on the same socket, as a client
should. Each subscriber checks the run's seqs 0..terminal: lost (never received),
out of order (below one already received), duplicated (received twice). Lag = receipt
(`time.time_ns()` when the frame's read completed, same machine clock) - the time in the
line, over every `task.output` frame of every subscriber. Server CPU = the gateway
process's CPU seconds over the wall time from the approval until the last subscriber has
`run.completed` (1.00 = one core); RSS from /proc of the gateway, its peak over that
time. Targets: 0 lost / 0 out of order / 0 duplicated, p99 <= 100 ms, RSS <= 150 MB.
The original holds ~300 MB and sends `run.completed` two or three times per run.

The spec caps run streams at 64 per run and 256 per gateway (`RateLimited`): with more
subscribers than that, the benchmark's gateway lifts those two limits (gateway_app.py,
`BENCH_LIFT_STREAM_LIMITS`) and says so; `--spec-limits` keeps them, and the refused
streams are counted. On a 2-core machine the clients share the cores with the gateway:
their CPU is printed too, and lag measured there includes the clients' own queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import fanout_clients as fanout
from gateways import WsConnection, gateway_process, open_socket
from servers import HttpError

TARGET_RSS_MB = 150.0
ORIGINAL_RSS_MB = 300.0
SPEC_STREAMS_PER_RUN = 64
CONNECTING = 16  # sockets opening at once per process (the gateway allows 64 pending)


class Subscriber:
    """One socket's stream: what arrived, checked against the run's seqs."""

    def __init__(self, lags: Counter[int]) -> None:
        self.lags = lags
        self.conn: WsConnection | None = None
        self.run_id = ""
        self.seen = bytearray()
        self.highest = -1
        self.frames = 0
        self.out_of_order = 0
        self.duplicated = 0
        self.resumed = 0
        self.terminal: int | None = None
        self.done = asyncio.get_running_loop().create_future()

    def __call__(self, frame: dict[str, Any], received: int) -> None:
        name = frame.get("event")
        if name == "run.event":
            self._event(frame["payload"], received)
        elif name == "run.error":
            payload = frame["payload"]
            if payload.get("code") != "BackpressureDisconnect" or self.conn is None:
                self._finish(HttpError(f"run.error {payload}"))
                return
            self.resumed += 1
            self.conn.request(
                "streamRunEvents", {"runId": self.run_id, "afterSeq": payload["lastSeq"]}
            )

    def _event(self, payload: dict[str, Any], received: int) -> None:
        seq = payload["seq"]
        self.frames += 1
        if seq >= len(self.seen):
            self.seen.extend(bytes(seq + 1 - len(self.seen) + 1024))
        if self.seen[seq]:
            self.duplicated += 1
        elif seq < self.highest:
            self.out_of_order += 1
        self.seen[seq] = 1
        self.highest = max(self.highest, seq)
        event = payload["payload"]
        if event.get("type") == "NodeOutput":
            sent_ns = int(event["text"].partition(" ")[2])
            self.lags[int((received - sent_ns) / 1e6 / fanout.BUCKET_MS)] += 1
        if payload["event"] == "run.completed":
            self.terminal = seq
            self._finish(None)

    def _finish(self, error: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


# --- a client process -------------------------------------------------------------------


async def subscribe(port: int, run_id: str, lags: Counter[int], gate: asyncio.Semaphore) -> Any:
    subscriber = Subscriber(lags)
    subscriber.run_id = run_id
    async with gate:
        conn = await open_socket(port, subscriber)
        subscriber.conn = conn
        answer = await conn.request("streamRunEvents", {"runId": run_id, "afterSeq": -1})
    if not answer.get("ok"):
        conn.close()
        return answer["error"].get("code", "error")
    return subscriber


async def client(port: int, run_id: str, count: int, pipe: Any, timeout: float) -> dict[str, Any]:
    lags: Counter[int] = Counter()
    gate = asyncio.Semaphore(CONNECTING)
    opened = await asyncio.gather(
        *(subscribe(port, run_id, lags, gate) for _ in range(count)), return_exceptions=True
    )
    subscribers = [s for s in opened if isinstance(s, Subscriber)]
    refused = Counter(
        s if isinstance(s, str) else type(s).__name__
        for s in opened
        if not isinstance(s, Subscriber)
    )
    pipe.send(("ready", len(subscribers)))
    unfinished, errors = await fanout.await_streams(subscribers, timeout)
    for s in subscribers:
        if s.conn is not None and s.conn.close_code is not None:
            errors[f"socket closed {s.conn.close_code}"] += 1
    result = {
        **fanout.stream_figures(subscribers),
        "refused": dict(refused),
        "unfinished": unfinished,
        "errors": dict(errors),
        "resumed": sum(s.resumed for s in subscribers),
        "lags": dict(lags),
    }
    for s in subscribers:
        if s.conn is not None:
            s.conn.close()
    return result


# --- the parent -------------------------------------------------------------------------


def rpc(url: str, method: str, params: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{url}/v1/rpc/{method}",
        data=json.dumps(params).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as res:
        frame = json.loads(res.read())
    if not frame.get("ok"):
        raise HttpError(f"{method}: {frame}")
    return frame["payload"]


async def launch(port: int, count: int, rate: float) -> str:
    conn = await open_socket(port)
    try:
        run_input = {"count": count, "rate": rate, "gated": True}
        launched = await conn.call("launchRun", {"workflow": "chatty", "input": run_input})
    finally:
        conn.close()
    return str(launched["runId"])


def main() -> None:
    parser = fanout.parser(__doc__.split("\n")[0], seconds=30.0, timeout=900.0)
    parser.add_argument("--spec-limits", action="store_true", help="keep 64 streams per run")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    lift = args.subscribers > SPEC_STREAMS_PER_RUN and not args.spec_limits
    env = {"BENCH_MAX_CONNECTIONS": str(args.subscribers + 16)}
    if lift:
        env["BENCH_LIFT_STREAM_LIMITS"] = "1"
    with (
        tempfile.TemporaryDirectory() as tmp,
        gateway_process(str(Path(tmp) / "b.db"), env=env) as gw,
    ):
        pid = gw.pid()
        run_id = asyncio.run(launch(gw.port, count, args.rate))
        fanout.wait_for_approval(
            lambda: str(rpc(gw.url, "getRun", {"runId": run_id})["status"]), run_id
        )
        measured = fanout.measure(
            client,
            gw.port,
            pid,
            run_id,
            args,
            lambda: rpc(
                gw.url, "submitApproval", {"runId": run_id, "nodeId": "go", "approved": True}
            ),
        )
        row = rpc(gw.url, "getRun", {"runId": run_id})
        last_seq = asyncio.run(terminal_seq(gw.port, run_id))
    m = measured
    emitted_s = ((row.get("finishedAtMs") or m.approved_ms) - m.approved_ms) / 1000
    report(args, lift, run_id, str(row["status"]), last_seq, emitted_s, m)
    mb = 2**20
    print(
        f"server CPU {m.server_cpu:.2f} cores over {m.wall:.1f} s (approval -> last "
        f"subscriber done); clients {m.client_cpu:.2f} cores"
    )
    print(
        f"server RSS: {m.rss_idle / mb:.0f} MB idle, {m.rss_connected / mb:.0f} MB with the "
        f"sockets open, peak {m.rss_peak / mb:.0f} MB, {m.rss_end / mb:.0f} MB at the end "
        f"(target <= {TARGET_RSS_MB:.0f} MB -> "
        f"{'met' if m.rss_peak / mb <= TARGET_RSS_MB else 'NOT met'}; original ~"
        f"{ORIGINAL_RSS_MB:.0f} MB)"
    )


async def terminal_seq(port: int, run_id: str) -> int:
    """The run's last seq: a stream opened after the end reports it as `currentSeq`."""
    conn = await open_socket(port)
    try:
        return int((await conn.call("streamRunEvents", {"runId": run_id}))["currentSeq"])
    finally:
        conn.close()


def report(
    args: argparse.Namespace,
    lift: bool,
    run_id: str,
    status: str,
    last_seq: int,
    emitted_s: float,
    measured: fanout.Measured,
) -> None:
    merged = fanout.merge(measured.results)
    limits = (
        "stream limits lifted (64/run, 256/gateway in the spec)" if lift else "spec stream limits"
    )
    print(
        f"{args.subscribers} subscribers in {args.processes} client processes, "
        f"{args.rate:g} events/s for {args.seconds:g} s, one run ({run_id}, {status}, seqs "
        f"0..{last_seq}), gateway subprocess on SQLite, {limits}, python {sys.version.split()[0]}"
    )
    received = (
        f"{merged.total('frames'):,} run.event frames received, {merged.total('resumed')} "
        f"backpressure resumes, {merged.total('unfinished')} streams without run.completed"
    )
    lagged = "task.output frames"
    fanout.print_streams(merged, args, last_seq, measured, emitted_s, received, lagged)


if __name__ == "__main__":
    main()
