"""What the fan-out benchmarks share (bench_fanout.py over SSE, bench_ws_fanout.py over
WebSocket): their options, the client processes holding the streams and the gathering of
their results, the lag histogram and the report lines."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from servers import HttpError, cpu_seconds, rss_bytes

TARGET_P99_MS = 100.0
BUCKET_MS = 0.1  # lag histogram resolution

# client(port, run_id, count, pipe, timeout): opens `count` streams, sends ("ready", n)
# once they are open, returns its figures when they have ended.
Client = Callable[[int, str, int, Any, float], Coroutine[Any, Any, dict[str, Any]]]


class Stream(Protocol):
    """What a subscriber keeps of its stream: the seqs seen and its end."""

    seen: bytearray
    frames: int
    out_of_order: int
    duplicated: int
    done: asyncio.Future[Any]


def parser(description: str, seconds: float, timeout: float) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s")
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument(
        "--timeout", type=float, default=timeout, help="s a client waits for its streams to end"
    )
    return parser


def wait_for_approval(status: Callable[[], str], run_id: str) -> None:
    deadline = time.monotonic() + 30
    while status() != "waiting-approval":
        if time.monotonic() > deadline:
            raise HttpError(f"run {run_id} did not wait for its approval")
        time.sleep(0.05)


# --- a client process -------------------------------------------------------------------


async def await_streams(streams: Sequence[Stream], timeout: float) -> tuple[int, Counter[str]]:
    """How many streams had not ended by the timeout, and the errors they ended with."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    unfinished = 0
    errors: Counter[str] = Counter()
    for s in streams:
        try:
            error = await asyncio.wait_for(
                asyncio.shield(s.done), max(0.01, deadline - loop.time())
            )
            if error is not None:
                errors[str(error)[:120]] += 1
        except TimeoutError:
            unfinished += 1
    return unfinished, errors


def stream_figures(streams: Sequence[Stream]) -> dict[str, Any]:
    return {
        "subscribers": len(streams),
        "frames": sum(s.frames for s in streams),
        "distinct": [sum(s.seen) for s in streams],  # seqs received, each once
        "out_of_order": sum(s.out_of_order for s in streams),
        "duplicated": sum(s.duplicated for s in streams),
    }


def client_process(client: Client, port: int, run_id: str, count: int, pipe: Any, t: float) -> None:
    try:
        result = asyncio.run(client(port, run_id, count, pipe, t))
    except BaseException as exc:  # the parent reports it, with the others' figures
        pipe.send(("ready", 0))  # the parent skips it if the streams were open already
        result = {"crashed": f"{type(exc).__name__}: {exc}"}
    pipe.send(("result", result))


# --- the parent -------------------------------------------------------------------------


@dataclass
class Clients:
    pipes: list[Connection]
    procs: list[BaseProcess]


def start_clients(client: Client, port: int, run_id: str, args: argparse.Namespace) -> Clients:
    """`--processes` processes sharing `--subscribers` streams between them."""
    clients = Clients([], [])
    ctx = multiprocessing.get_context("spawn")
    for i in range(args.processes):
        share = args.subscribers // args.processes + (i < args.subscribers % args.processes)
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=client_process,
            args=(client, port, run_id, share, theirs, args.timeout),
            daemon=True,  # a failure here does not leave them waiting for the parent
        )
        proc.start()
        clients.pipes.append(ours)
        clients.procs.append(proc)
    return clients


def streams_opened(clients: Clients) -> int:
    ready = 0
    for pipe in clients.pipes:
        kind, value = pipe.recv()
        ready += value if kind == "ready" else 0
    return ready


def gather_results(clients: Clients, pid: int, rss_peak: int) -> tuple[list[dict[str, Any]], int]:
    """Each client's result, and the server's peak RSS while waiting for them."""
    # Nothing asks the server anything while it fans out (a loaded loop answers late):
    # the clients say when every stream has ended; RSS is read from /proc meanwhile.
    results = []
    for pipe in clients.pipes:
        while True:
            rss_peak = max(rss_peak, rss_bytes(pid))
            if pipe.poll(0.25):
                kind, value = pipe.recv()
                if kind == "result":
                    results.append(value)
                    break
    return results, rss_peak


def children_cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


@dataclass
class Measured:
    """The clients' results and the server's figures, from opening the streams to their
    end. RSS in bytes, CPU in cores over `wall` (the approval -> the last stream done)."""

    results: list[dict[str, Any]]
    ready: int
    connect_s: float
    approved_ms: float
    wall: float
    server_cpu: float
    client_cpu: float
    rss_idle: int
    rss_connected: int
    rss_peak: int
    rss_end: int


def measure(
    client: Client,
    port: int,
    pid: int,
    run_id: str,
    args: argparse.Namespace,
    approve: Callable[[], Any],
) -> Measured:
    """Opens the streams in client processes, then `approve`s the run and waits for them."""
    rss_idle = rss_bytes(pid)
    connect_started = time.perf_counter()
    clients = start_clients(client, port, run_id, args)
    ready = streams_opened(clients)
    connect_s = time.perf_counter() - connect_started
    rss_connected = rss_bytes(pid)
    children_before = children_cpu()
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    approve()
    approved_ms = time.time() * 1000
    results, rss_peak = gather_results(clients, pid, rss_connected)
    wall = time.perf_counter() - started
    server_cpu = (cpu_seconds(pid) - cpu_before) / wall
    rss_end = rss_bytes(pid)
    for proc in clients.procs:
        proc.join()
    client_cpu = (children_cpu() - children_before) / wall
    return Measured(
        results,
        ready,
        connect_s,
        approved_ms,
        wall,
        server_cpu,
        client_cpu,
        rss_idle,
        rss_connected,
        rss_peak,
        rss_end,
    )


# --- the report -------------------------------------------------------------------------


@dataclass
class Merged:
    """The figures of the client processes that did not crash, added up."""

    results: list[dict[str, Any]]
    crashed: list[str]
    lags: Counter[int]
    refused: Counter[str]
    errors: Counter[str]

    def total(self, key: str) -> int:
        return sum(r[key] for r in self.results)

    def lost(self, last_seq: int) -> int:
        return sum(last_seq + 1 - n for r in self.results for n in r["distinct"])


def merge(results: list[dict[str, Any]]) -> Merged:
    merged = Merged(
        [r for r in results if "crashed" not in r],
        [r["crashed"] for r in results if "crashed" in r],
        Counter(),
        Counter(),
        Counter(),
    )
    for r in merged.results:
        merged.lags.update({int(k): v for k, v in r["lags"].items()})
        merged.refused.update(r["refused"])
        merged.errors.update(r["errors"])
    return merged


def print_streams(
    merged: Merged,
    args: argparse.Namespace,
    last_seq: int,
    measured: Measured,
    emitted_s: float,
    received: str,
    lagged: str,
) -> None:
    """The lines after the heading: the streams opened, the delivery, what `received`
    says was received, the seq checks and the lag of the `lagged` frames."""
    ready, connect_s, wall = measured.ready, measured.connect_s, measured.wall
    print(f"streams open: {ready} in {connect_s:.1f} s; refused: {dict(merged.refused) or 0}")
    if merged.crashed:
        print(f"client processes crashed: {merged.crashed}")
    print(
        f"the run's task took {emitted_s:.1f} s (approval -> finished, {args.seconds:g} s "
        f"planned); all delivered after {wall:.1f} s; {received}; "
        f"errors: {dict(merged.errors) or 0}"
    )
    lost, out_of_order = merged.lost(last_seq), merged.total("out_of_order")
    duplicated = merged.total("duplicated")
    zero = lost == out_of_order == duplicated == 0
    print(
        f"lost {lost}, out of order {out_of_order}, duplicated "
        f"{duplicated} (target 0 / 0 / 0 -> {'met' if zero else 'NOT met'})"
    )
    lags = merged.lags
    if lags:
        p50, p99 = percentile_of(lags, 50), percentile_of(lags, 99)
        print(
            f"delivery lag over {sum(lags.values()):,} {lagged}: p50 {p50:.1f} ms, "
            f"p90 {percentile_of(lags, 90):.1f} ms, p99 {p99:.1f} ms, max "
            f"{(max(lags) + 1) * BUCKET_MS:.1f} ms (target p99 <= {TARGET_P99_MS:.0f} ms -> "
            f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'})"
        )


def percentile_of(histogram: Counter[int], q: float) -> float:
    total = sum(histogram.values())
    rank, running = q / 100 * total, 0
    for bucket in sorted(histogram):
        running += histogram[bucket]
        if running >= rank:
            return (bucket + 1) * BUCKET_MS
    return 0.0
