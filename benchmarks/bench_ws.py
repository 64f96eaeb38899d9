"""The Gateway over WebSocket and HTTP RPC: launch -> completion, live event lag, getRun calls/s.

    .venv/bin/python benchmarks/bench_ws.py [--runs 200] [--warmup 5] [--events 1000]
        [--rate 500] [--duration 5] [--http-connections 16] [--in-flight 64]
        [--http-client raw|httpx]

A `smithers gateway` subprocess (benchmarks/workflows/gateway_app.py, open auth) on a
SQLite file in a temp dir; the WebSocket client is a bare one (benchmarks/gateways.py),
each load runs in a process of its own. Three measurements in one run:

1. `launchRun` -> `run.completed` of the one-task `hello` workflow, on one socket, runs one
   after another: `launchRun`, then at once `streamRunEvents {runId, afterSeq: -1}` on the
   same socket, until its `run.completed` frame. Median and p90 (target median <= 5 ms;
   the original: 57 ms median).
2. Live `run.event` lag over `--events` `task.output` frames: the `chatty` workflow logs
   lines `1/--rate` s apart, each carrying `time.time_ns()` taken in the task just before
   `tctx.log` commits the event; the client subscribes (afterSeq -1) right after the launch,
   300 ms before the first line, and takes `time.time_ns()` when the frame's read completes
   (same machine clock). Lag = receipt - that embedded time (it includes the commit); the
   event's own `timestampMs` (ms resolution) is shown as a cross-check. Target p50 <= 1 ms,
   p99 <= 3 ms (the original: 1 / 2 / 3 ms p50 / p90 / p99).
3. `getRun` of a finished run, `--duration` s each (after 0.5 s of warm-up): `POST
   /v1/rpc/getRun` over `--http-connections` keep-alive connections, and over one
   WebSocket with `--in-flight` requests outstanding; beside them, in the same run, the
   REST server's `GET /v1/runs/{id}` (a `smithers server` subprocess on the same db file,
   the same HTTP load). The HTTP client is raw asyncio streams by default; `--http-client
   httpx` uses an `httpx.AsyncClient` instead, which on a small machine spends more CPU
   than the server and measures itself. Target >= 2x the original's 1,269 (HTTP) and
   1,774 (WebSocket) calls/s. The server's and the client's CPU share (of one core)
   during each load are printed: the one near 100 % was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateways import WsConnection, gateway_process, open_socket
from servers import (
    HOST,
    HttpError,
    cpu_seconds,
    percentile,
    rss_bytes,
    smithers_server,
    summary_ms,
)

ORIGINAL_E2E_MS = 57.0
TARGET_E2E_MS = 5.0
ORIGINAL_LAG_MS = (1.0, 2.0, 3.0)  # p50, p90, p99
TARGET_LAG_P50_MS, TARGET_LAG_P99_MS = 1.0, 3.0
ORIGINAL_HTTP, ORIGINAL_WS = 1269.0, 1774.0
WARMUP_S = 0.5


class Streams:
    """`run.event` frames of one socket, by stream id, for one reader at a time."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[dict[str, Any], int]] = asyncio.Queue()

    def __call__(self, frame: dict[str, Any], received: int) -> None:
        if frame.get("type") == "event" and frame.get("event") in ("run.event", "run.error"):
            self.frames.put_nowait(({**frame["payload"], "frame": frame["event"]}, received))


async def follow(conn: WsConnection, streams: Streams, run_id: str) -> Any:
    """Subscribe from the first event; yield each run.event payload with its receipt."""
    opened = await conn.call("streamRunEvents", {"runId": run_id, "afterSeq": -1})
    expected = 0
    while True:
        payload, received = await streams.frames.get()
        if payload["streamId"] != opened["streamId"]:
            continue
        if payload["frame"] == "run.error":
            raise HttpError(f"run {run_id}: run.error {payload}")
        if payload["seq"] != expected:
            raise HttpError(f"run {run_id}: seq {payload['seq']} where {expected} was due")
        expected += 1
        yield payload, received
        if payload["event"] == "run.completed":
            return


async def launch_to_completed(
    port: int, runs: int, warmup: int
) -> tuple[list[float], list[float], str]:
    streams = Streams()
    conn = await open_socket(port, streams)
    total: list[float] = []
    launch: list[float] = []
    run_id = ""
    try:
        for i in range(warmup + runs):
            started = time.time_ns()
            launched = await conn.call("launchRun", {"workflow": "hello", "input": {"n": i}})
            answered = time.time_ns()
            run_id = launched["runId"]
            async for payload, received in follow(conn, streams, run_id):
                if payload["event"] == "run.completed":
                    if payload["payload"]["type"] != "RunFinished":
                        raise HttpError(f"run {run_id} ended with {payload['payload']}")
                    if i >= warmup:
                        total.append((received - started) / 1e6)
                        launch.append((answered - started) / 1e6)
    finally:
        conn.close()
    return total, launch, run_id


async def live_lag(port: int, events: int, rate: float) -> tuple[list[float], list[float]]:
    streams = Streams()
    conn = await open_socket(port, streams)
    precise: list[float] = []
    coarse: list[float] = []
    seen = -1
    try:
        run_input = {"count": events, "rate": rate, "delay_ms": 300}
        launched = await conn.call("launchRun", {"workflow": "chatty", "input": run_input})
        async for payload, received in follow(conn, streams, launched["runId"]):
            event = payload["payload"]
            if event["type"] == "NodeOutput":
                index, _, sent_ns = event["text"].partition(" ")
                if int(index) != seen + 1:
                    raise HttpError(f"line {index} after line {seen}")
                seen = int(index)
                precise.append((received - int(sent_ns)) / 1e6)
                coarse.append(received / 1e6 - event["timestampMs"])
    finally:
        conn.close()
    if seen != events - 1:
        raise HttpError(f"received {seen + 1} of {events} lines")
    return precise, coarse


# --- loads, each in its own process -----------------------------------------------------


async def http_load(
    method: str, url: str, body: Any, connections: int, duration: float
) -> dict[str, Any]:
    import httpx

    counts = {"ok": 0, "bad": 0}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        begin, end = started + WARMUP_S, started + WARMUP_S + duration

        async def worker() -> None:
            while time.perf_counter() < end:
                res = await client.request(method, url, json=body)
                if time.perf_counter() >= begin:
                    counts["ok" if res.status_code == 200 else "bad"] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return {**counts, "seconds": duration}


async def raw_http_load(
    method: str, url: str, body: Any, connections: int, duration: float
) -> dict[str, Any]:
    """The same load as `http_load` on raw asyncio streams (keep-alive, Content-Length
    answers), far cheaper per call than httpx."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    port = int(host_port.rpartition(":")[2])
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} /{path} HTTP/1.1\r\nHost: {host_port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    request = head.encode() + b"\r\n" + data
    counts = {"ok": 0, "bad": 0}
    started = time.perf_counter()
    begin, end = started + WARMUP_S, started + WARMUP_S + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.perf_counter() < end:
                writer.write(request)
                answer = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", answer)
                if length is None:
                    raise HttpError(f"no content-length in {answer!r}")
                await reader.readexactly(int(length.group(1)))
                if time.perf_counter() >= begin:
                    counts["ok" if answer.startswith(b"HTTP/1.1 200") else "bad"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return {**counts, "seconds": duration}


async def ws_load(port: int, run_id: str, in_flight: int, duration: float) -> dict[str, Any]:
    conn = await open_socket(port)
    counts = {"ok": 0, "bad": 0}
    done = asyncio.get_running_loop().create_future()
    started = time.perf_counter()
    begin, end = started + WARMUP_S, started + WARMUP_S + duration
    outstanding = 0

    def issue() -> None:
        nonlocal outstanding
        outstanding += 1
        conn.request("getRun", {"runId": run_id}).add_done_callback(answered)

    def answered(future: asyncio.Future[dict[str, Any]]) -> None:
        nonlocal outstanding
        outstanding -= 1
        now = time.perf_counter()
        if future.exception() is not None:
            counts["bad"] += 1
        elif now >= begin and now < end:
            counts["ok" if future.result().get("ok") else "bad"] += 1
        if now < end:
            issue()
        elif outstanding == 0 and not done.done():
            done.set_result(None)

    for _ in range(in_flight):
        issue()
    await done
    conn.close()
    return {**counts, "seconds": duration}


def run_load(spec: list[Any]) -> dict[str, Any]:
    kind, *rest = spec
    if kind == "ws":
        port, run_id, in_flight, duration = rest
        return asyncio.run(ws_load(port, run_id, in_flight, duration))
    client = http_load if kind == "httpx" else raw_http_load
    method, url, body, connections, duration = rest
    return asyncio.run(client(method, url, body, connections, duration))


@dataclass
class Load:
    rate: float  # calls/s
    bad: int
    server_cpu: float  # share of one core while the load ran
    client_cpu: float


def measured(pid: int, spec: list[Any]) -> Load:
    """Run one load (`--load SPEC`) in a child process, watching the server's CPU."""
    cmd = [sys.executable, __file__, "--load", json.dumps(spec)]
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = time.perf_counter() - wall
    result = json.loads(out.strip().splitlines()[-1])
    client = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return Load(
        result["ok"] / result["seconds"],
        result["bad"],
        (cpu_seconds(pid) - cpu) / elapsed,
        client / elapsed,
    )


# --- the benchmark ----------------------------------------------------------------------


def line(label: str, values: list[float]) -> str:
    return (
        f"{label}: p50 {percentile(values, 50):7.2f} ms   p90 {percentile(values, 90):7.2f} ms   "
        f"p99 {percentile(values, 99):7.2f} ms   max {max(values):7.2f} ms"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0, help="lines/s of the lag run")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per getRun load")
    parser.add_argument("--http-connections", type=int, default=16)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--http-client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(run_load(json.loads(args.load))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = str(root / "bench.db")
        with gateway_process(db) as gateway:
            total, launched, run_id = asyncio.run(
                launch_to_completed(gateway.port, args.runs, args.warmup)
            )
            precise, coarse = asyncio.run(live_lag(gateway.port, args.events, args.rate))
            rpc_url = f"{gateway.url}/v1/rpc/getRun"
            n, seconds = args.http_connections, args.duration
            http = measured(
                gateway.pid(), [args.http_client, "POST", rpc_url, {"runId": run_id}, n, seconds]
            )
            ws = measured(gateway.pid(), ["ws", gateway.port, run_id, args.in_flight, seconds])
            with smithers_server(db, root) as server:
                rest_url = f"{server.url}/v1/runs/{run_id}"
                rest = measured(server.pid(), [args.http_client, "GET", rest_url, None, n, seconds])
            gateway_rss = rss_bytes(gateway.pid()) / 2**20

    median = statistics.median(total)
    print(
        f"smithers gateway subprocess on SQLite, loopback {HOST}, python "
        f"{sys.version.split()[0]}; gateway RSS at the end {gateway_rss:.0f} MB"
    )
    print(f"\n1. launchRun -> run.completed, hello (1 task), {args.runs} runs, one socket")
    print(f"   launch -> run.completed: {summary_ms(total)}")
    print(f"   launchRun answer alone:  {summary_ms(launched)}")
    print(
        f"   target: median <= {TARGET_E2E_MS:.0f} ms -> {verdict(median <= TARGET_E2E_MS)}; "
        f"original {ORIGINAL_E2E_MS:.0f} ms median (not this run): {ORIGINAL_E2E_MS / median:.1f}x"
    )
    p50, p99 = percentile(precise, 50), percentile(precise, 99)
    print(
        f"\n2. live run.event lag, {len(precise)} task.output events {1000 / args.rate:g} ms apart"
    )
    print("   " + line("commit -> receipt (time_ns in text)", precise))
    print("   " + line("timestampMs -> receipt (ms clock)  ", coarse))
    met = p50 <= TARGET_LAG_P50_MS and p99 <= TARGET_LAG_P99_MS
    print(
        f"   target: p50 <= {TARGET_LAG_P50_MS:g} ms, p99 <= {TARGET_LAG_P99_MS:g} ms -> "
        f"{verdict(met)}; original p50 / p90 / p99 "
        f"{' / '.join(f'{v:g}' for v in ORIGINAL_LAG_MS)} ms (not this run)"
    )
    print(f"\n3. getRun of a finished run, {args.duration:g} s each")
    conns = f"{args.http_client} client, {args.http_connections} conns"
    rows = [
        (f"gateway POST /v1/rpc/getRun, {conns}", http, ORIGINAL_HTTP),
        (f"gateway getRun, 1 WebSocket, {args.in_flight} in flight", ws, ORIGINAL_WS),
        (f"REST GET /v1/runs/{{id}}, {conns}", rest, None),
    ]
    for label, result, original in rows:
        errors = f", {result.bad} failed" if result.bad else ""
        print(
            f"   {label:<50} {result.rate:7.0f} calls/s   (CPU: server "
            f"{result.server_cpu:4.0%}, client {result.client_cpu:4.0%}{errors})"
        )
        if original is not None:
            print(
                f"   {'':<50} target >= {2 * original:,.0f} -> "
                f"{verdict(result.rate >= 2 * original)}; original {original:,.0f} "
                f"(not this run): {result.rate / original:.1f}x"
            )


if __name__ == "__main__":
    main()
