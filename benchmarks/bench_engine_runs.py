"""Runs/s of examples/sequence.py (three tasks) driven by the core engine, no HTTP.

    .venv/bin/python benchmarks/bench_engine_runs.py [--runs 300] [--concurrency 16]

Prints runs/s on SQLite (a file in a temp dir) and on PostgreSQL
(SMITHERS_TEST_POSTGRES_URL or the local server, in a fresh schema), measured in one
run, plus runs/s of a single run at a time (the latency-bound baseline).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import anyio
import sqlalchemy as sa

from smithers import Runtime, Store, load_workflow, open_store

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get(
    "SMITHERS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


async def measure(store: Store, runs: int, concurrency: int) -> float:
    wf = load_workflow(ROOT / "examples" / "sequence.py")
    async with Runtime(store, adopt=False) as rt:
        await rt.run(wf)  # warm up: tables, caches
        limiter = anyio.Semaphore(concurrency)
        failures = 0

        async def one() -> None:
            nonlocal failures
            async with limiter:
                result = await rt.run(wf, input={"start": 1})
                failures += result.status != "finished"

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(runs):
                tg.start_soon(one)
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} runs did not finish")
    return runs / elapsed


def pg_store() -> tuple[Store, str]:
    schema = "bench_" + secrets.token_hex(4)
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return open_store(f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"), schema


def drop_schema(schema: str) -> None:
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"sequence.py (3 tasks), {args.runs} runs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = open_store(f"sqlite:///{tmp}/bench.db")
        serial = anyio.run(measure, sqlite, max(20, args.runs // 10), 1)
        concurrent = anyio.run(measure, sqlite, args.runs, args.concurrency)
        print(f"sqlite      1 at a time: {serial:8.1f} runs/s")
        print(f"sqlite   {args.concurrency:>3} at a time: {concurrent:8.1f} runs/s")
        sqlite.close()
    pg, schema = pg_store()
    try:
        serial = anyio.run(measure, pg, max(20, args.runs // 10), 1)
        concurrent = anyio.run(measure, pg, args.runs, args.concurrency)
        print(f"postgres    1 at a time: {serial:8.1f} runs/s")
        print(f"postgres {args.concurrency:>3} at a time: {concurrent:8.1f} runs/s")
    finally:
        pg.close()
        drop_schema(schema)


if __name__ == "__main__":
    main()
