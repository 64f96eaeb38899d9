"""Runs/s of a 3-task workflow (examples/sequence.py) started and finished through the server.

    .venv/bin/python benchmarks/bench_runs.py [--runs 400] [--concurrency 16] [--warmup 16]
        [--only sqlite|postgres] [--processes 1,2,3]

A `smithers server` subprocess, first on SQLite (a file in a temp dir), then on PostgreSQL
(SMITHERS_TEST_POSTGRES_URL or the local server, a fresh schema dropped afterwards). Then
`--concurrency` starters, each on its own keep-alive connection, take runs until `--runs`
are done: `POST /v1/runs`, then the run's SSE stream until its terminal event (every run must
end `RunFinished`), after a warm-up (one run alone, then `--warmup` concurrent). Prints
runs/s for each database (targets >= 300 SQLite, >= 200 PostgreSQL), the server process's
CPU time per run, and the original's 14 runs/s (16 concurrent starters, comparable machine).

With `--processes 1,2,3`, PostgreSQL is measured again with N `smithers server` processes
on one schema (a fresh one for each N), the starters spread round-robin over them: runs/s
for each N, the servers' CPU per run, and the ratio to one process (target: two >= 1.6x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from bench_engine_runs import PG_URL, drop_schema, pg_store
from servers import (
    ROOT,
    Connection,
    HttpError,
    ServerProcess,
    cpu_seconds,
    prepare_root,
    smithers_server,
    start_run,
    wait_terminal,
)

ORIGINAL_RUNS_PER_S = 14.0
TARGETS = {"sqlite": 300.0, "postgres": 200.0}
TWO_PROCESSES_TARGET = 1.6


async def drive(ports: list[int], runs: int, concurrency: int) -> None:
    remaining = runs

    async def starter(index: int) -> None:
        nonlocal remaining
        conn = await Connection(ports[index % len(ports)]).open()
        try:
            while remaining > 0:
                remaining -= 1
                run_id = await start_run(conn, "sequence.py", {"start": index})
                kind, _ = await wait_terminal(conn, run_id)
                if kind != "RunFinished":
                    raise HttpError(f"run {run_id} ended with {kind}")
        finally:
            await conn.close()

    await asyncio.gather(*(starter(i) for i in range(concurrency)))


def measure(servers: list[ServerProcess], args: argparse.Namespace) -> tuple[float, float]:
    """Runs/s and the servers' CPU ms per run."""
    ports = [server.port for server in servers]
    # Warm up with one run alone on each server first: it loads the workflow.
    for port in ports:
        asyncio.run(drive([port], 1, 1))
    asyncio.run(drive(ports, args.warmup, args.concurrency))
    cpu_before = sum(cpu_seconds(server.pid()) for server in servers)
    started = time.perf_counter()
    asyncio.run(drive(ports, args.runs, args.concurrency))
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(server.pid()) for server in servers) - cpu_before
    return args.runs / elapsed, cpu / args.runs * 1000


def report(name: str, rate: float, cpu_ms: float, args: argparse.Namespace) -> None:
    target = TARGETS[name]
    verdict = "met" if rate >= target else "NOT met"
    print(
        f"{name:<8} {args.concurrency} starters: {rate:8.1f} runs/s   server CPU "
        f"{cpu_ms:5.2f} ms/run   target >= {target:.0f} -> {verdict}",
        flush=True,
    )


def pg_url() -> tuple[str, Callable[[], None]]:
    store, schema = pg_store()  # a fresh schema (its tables created by the store)
    store.close()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}", lambda: drop_schema(schema)


def scale_out(root: Path, counts: list[int], args: argparse.Namespace) -> None:
    """Runs/s with N servers on one PostgreSQL schema, for each N in `counts`."""
    rates: dict[int, float] = {}
    for n in counts:
        url, drop = pg_url()
        try:
            with contextlib.ExitStack() as stack:
                servers = [stack.enter_context(smithers_server(url, root)) for _ in range(n)]
                rate, cpu_ms = measure(servers, args)
        finally:
            drop()
        rates[n] = rate
        ratio = f"{rate / rates[counts[0]]:4.2f}x {counts[0]}" if n != counts[0] else ""
        print(
            f"postgres {n} process{'es' if n > 1 else '  '}, {args.concurrency} starters: "
            f"{rate:8.1f} runs/s   server CPU {cpu_ms:5.2f} ms/run   {ratio}",
            flush=True,
        )
    if 1 in rates and 2 in rates:
        ratio = rates[2] / rates[1]
        verdict = "met" if ratio >= TWO_PROCESSES_TARGET else "NOT met"
        print(f"2 processes / 1: {ratio:4.2f}x   target >= {TWO_PROCESSES_TARGET}x -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--processes", help="PostgreSQL with N servers, e.g. 1,2,3")
    args = parser.parse_args()
    print(
        f"sequence.py (3 tasks), {args.runs} runs through POST /v1/runs + SSE to the terminal "
        f"event, server subprocess, python {sys.version.split()[0]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare_root(root, ROOT / "examples" / "sequence.py")
        if args.only in (None, "sqlite"):
            with smithers_server(str(root / "bench.db"), root) as server:
                report("sqlite", *measure([server], args), args)
        if args.only in (None, "postgres"):
            url, drop = pg_url()
            try:
                with smithers_server(url, root) as server:
                    report("postgres", *measure([server], args), args)
            finally:
                drop()
        if args.processes and args.only != "sqlite":
            scale_out(root, [int(n) for n in args.processes.split(",")], args)
    print(
        f"original: {ORIGINAL_RUNS_PER_S:.0f} runs/s with 16 concurrent starters (comparable "
        "machine, not this run)"
    )


if __name__ == "__main__":
    main()
