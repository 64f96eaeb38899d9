"""Runs/s of a 3-task workflow (examples/sequence.py) started and finished through the server.

    .venv/bin/python benchmarks/bench_runs.py [--runs 400] [--concurrency 16] [--warmup 16]
        [--only sqlite|postgres]

A `smithers server` subprocess, first on SQLite (a file in a temp dir), then on PostgreSQL
(SMITHERS_TEST_POSTGRES_URL or the local server, a fresh schema dropped afterwards). Then
`--concurrency` starters, each on its own keep-alive connection, take runs until `--runs`
are done: `POST /v1/runs`, then the run's SSE stream until its terminal event (every run must
end `RunFinished`), after a warm-up (one run alone, then `--warmup` concurrent). Prints
runs/s for each database (targets >= 200 SQLite, >= 300 PostgreSQL), the server process's
CPU time per run, and the original's 14 runs/s (16 concurrent starters, comparable machine).
"""

from __future__ import annotations

import argparse
import asyncio
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
TARGETS = {"sqlite": 200.0, "postgres": 300.0}


async def drive(port: int, runs: int, concurrency: int) -> None:
    remaining = runs

    async def starter(index: int) -> None:
        nonlocal remaining
        conn = await Connection(port).open()
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


def measure(server: ServerProcess, args: argparse.Namespace) -> tuple[float, float]:
    """Runs/s and server CPU ms per run."""
    # Warm up with one run alone first: it creates the workflow's output table. (Concurrent
    # first starts on a fresh PostgreSQL schema race on CREATE TABLE and answer 500.)
    asyncio.run(drive(server.port, 1, 1))
    asyncio.run(drive(server.port, args.warmup, args.concurrency))
    cpu_before = cpu_seconds(server.pid())
    started = time.perf_counter()
    asyncio.run(drive(server.port, args.runs, args.concurrency))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(server.pid()) - cpu_before
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
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
                report("sqlite", *measure(server, args), args)
        if args.only in (None, "postgres"):
            url, drop = pg_url()
            try:
                with smithers_server(url, root) as server:
                    report("postgres", *measure(server, args), args)
            finally:
                drop()
    print(
        f"original: {ORIGINAL_RUNS_PER_S:.0f} runs/s with 16 concurrent starters (comparable "
        "machine, not this run)"
    )


if __name__ == "__main__":
    main()
