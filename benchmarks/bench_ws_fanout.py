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
import multiprocessing
import multiprocessing.connection
import resource
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from gateways import WsConnection, gateway_process, open_socket
from servers import HttpError, cpu_seconds, rss_bytes

TARGET_P99_MS = 100.0
TARGET_RSS_MB = 150.0
ORIGINAL_RSS_MB = 300.0
SPEC_STREAMS_PER_RUN = 64
BUCKET_MS = 0.1  # lag histogram resolution
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
            self.lags[int((received - sent_ns) / 1e6 / BUCKET_MS)] += 1
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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    unfinished = 0
    errors: Counter[str] = Counter()
    for s in subscribers:
        try:
            error = await asyncio.wait_for(
                asyncio.shield(s.done), max(0.01, deadline - loop.time())
            )
            if error is not None:
                errors[str(error)[:120]] += 1
        except TimeoutError:
            unfinished += 1
        if s.conn is not None and s.conn.close_code is not None:
            errors[f"socket closed {s.conn.close_code}"] += 1
    result = {
        "subscribers": len(subscribers),
        "refused": dict(refused),
        "unfinished": unfinished,
        "errors": dict(errors),
        "frames": sum(s.frames for s in subscribers),
        "distinct": [sum(s.seen) for s in subscribers],  # seqs received, each once
        "out_of_order": sum(s.out_of_order for s in subscribers),
        "duplicated": sum(s.duplicated for s in subscribers),
        "resumed": sum(s.resumed for s in subscribers),
        "lags": dict(lags),
    }
    for s in subscribers:
        if s.conn is not None:
            s.conn.close()
    return result


def client_process(port: int, run_id: str, count: int, pipe: Any, timeout: float) -> None:
    try:
        result = asyncio.run(client(port, run_id, count, pipe, timeout))
    except BaseException as exc:  # the parent reports it, with the others' figures
        result = {"crashed": f"{type(exc).__name__}: {exc}"}
    pipe.send(("result", result))


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


def wait_status(url: str, run_id: str, wanted: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = str(rpc(url, "getRun", {"runId": run_id})["status"])
        if status in wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def percentile_of(histogram: Counter[int], q: float) -> float:
    total = sum(histogram.values())
    rank, running = q / 100 * total, 0
    for bucket in sorted(histogram):
        running += histogram[bucket]
        if running >= rank:
            return (bucket + 1) * BUCKET_MS
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--spec-limits", action="store_true", help="keep 64 streams per run")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="s a client waits for its streams to end"
    )
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
        if wait_status(gw.url, run_id, {"waiting-approval"}, 30) != "waiting-approval":
            raise HttpError(f"run {run_id} did not wait for its approval")
        rss_idle = rss_bytes(pid)
        pipes, procs = [], []
        ctx = multiprocessing.get_context("spawn")
        connect_started = time.perf_counter()
        for i in range(args.processes):
            share = args.subscribers // args.processes + (i < args.subscribers % args.processes)
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=client_process,
                args=(gw.port, run_id, share, theirs, args.timeout),
                daemon=True,  # a failure here does not leave them waiting for the parent
            )
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        ready = 0
        for pipe in pipes:
            kind, value = pipe.recv()
            ready += value if kind == "ready" else 0
        connect_s = time.perf_counter() - connect_started
        rss_connected = rss_bytes(pid)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        rpc(gw.url, "submitApproval", {"runId": run_id, "nodeId": "go", "approved": True})
        approved_ms = time.time() * 1000
        # Nothing asks the gateway anything while it fans out (a loaded loop answers late):
        # the clients say when every stream has ended; RSS is read from /proc meanwhile.
        rss_peak = rss_connected
        results = []
        for pipe in pipes:
            while True:
                rss_peak = max(rss_peak, rss_bytes(pid))
                if pipe.poll(0.25):
                    kind, value = pipe.recv()
                    if kind == "result":
                        results.append(value)
                        break
        wall = time.perf_counter() - started
        server_cpu = (cpu_seconds(pid) - cpu_before) / wall
        rss_end = rss_bytes(pid)
        for proc in procs:
            proc.join()
        row = rpc(gw.url, "getRun", {"runId": run_id})
        status = str(row["status"])
        emitted_s = ((row.get("finishedAtMs") or approved_ms) - approved_ms) / 1000
        last_seq = asyncio.run(terminal_seq(gw.port, run_id))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (
            children.ru_utime
            + children.ru_stime
            - children_before.ru_utime
            - children_before.ru_stime
        ) / wall
    report(args, lift, run_id, status, last_seq, ready, connect_s, emitted_s, wall, results)
    mb = 2**20
    print(
        f"server CPU {server_cpu:.2f} cores over {wall:.1f} s (approval -> last subscriber "
        f"done); clients {client_cpu:.2f} cores"
    )
    print(
        f"server RSS: {rss_idle / mb:.0f} MB idle, {rss_connected / mb:.0f} MB with the "
        f"sockets open, peak {rss_peak / mb:.0f} MB, {rss_end / mb:.0f} MB at the end "
        f"(target <= {TARGET_RSS_MB:.0f} MB -> "
        f"{'met' if rss_peak / mb <= TARGET_RSS_MB else 'NOT met'}; original ~"
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
    ready: int,
    connect_s: float,
    emitted_s: float,
    wall: float,
    results: list[dict[str, Any]],
) -> None:
    crashed = [r["crashed"] for r in results if "crashed" in r]
    results = [r for r in results if "crashed" not in r]
    lags: Counter[int] = Counter()
    refused: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in results:
        lags.update({int(k): v for k, v in r["lags"].items()})
        refused.update(r["refused"])
        errors.update(r["errors"])
    for r in results:
        r["lost"] = sum(last_seq + 1 - n for n in r["distinct"])
    total = {
        k: sum(r[k] for r in results)
        for k in ("frames", "lost", "out_of_order", "duplicated", "resumed", "unfinished")
    }
    limits = (
        "stream limits lifted (64/run, 256/gateway in the spec)" if lift else "spec stream limits"
    )
    print(
        f"{args.subscribers} subscribers in {args.processes} client processes, "
        f"{args.rate:g} events/s for {args.seconds:g} s, one run ({run_id}, {status}, seqs "
        f"0..{last_seq}), gateway subprocess on SQLite, {limits}, python {sys.version.split()[0]}"
    )
    print(f"streams open: {ready} in {connect_s:.1f} s; refused: {dict(refused) or 0}")
    if crashed:
        print(f"client processes crashed: {crashed}")
    print(
        f"the run's task took {emitted_s:.1f} s (approval -> finished, {args.seconds:g} s "
        f"planned); all delivered after {wall:.1f} s; "
        f"{total['frames']:,} run.event frames received, {total['resumed']} backpressure "
        f"resumes, {total['unfinished']} streams without run.completed; errors: {dict(errors) or 0}"
    )
    zero = total["lost"] == total["out_of_order"] == total["duplicated"] == 0
    print(
        f"lost {total['lost']}, out of order {total['out_of_order']}, duplicated "
        f"{total['duplicated']} (target 0 / 0 / 0 -> {'met' if zero else 'NOT met'})"
    )
    if lags:
        p50, p99 = percentile_of(lags, 50), percentile_of(lags, 99)
        print(
            f"delivery lag over {sum(lags.values()):,} task.output frames: p50 {p50:.1f} ms, "
            f"p90 {percentile_of(lags, 90):.1f} ms, p99 {p99:.1f} ms, max "
            f"{(max(lags) + 1) * BUCKET_MS:.1f} ms (target p99 <= {TARGET_P99_MS:.0f} ms -> "
            f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
