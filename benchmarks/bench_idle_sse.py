"""CPU of a server holding idle SSE streams on a parked PostgreSQL run, before and after.

    .venv/bin/python benchmarks/bench_idle_sse.py [--streams 500] [--seconds 10]
        [--baseline-ref 92d21fa] [--no-baseline]

For this tree and for `--baseline-ref` (checked out into a temporary `git worktree`; the
default is the commit before streams shared one follower per run): starts a server
process from that tree (same venv, its tree first on `sys.path`) on a fresh PostgreSQL
schema (SMITHERS_TEST_POSTGRES_URL or the local server), starts examples/approval.py and
waits until it parks, opens `--streams` SSE streams on the run and leaves them idle, then
reads the server's CPU time (/proc/<pid>/stat) over `--seconds` and times `GET /health`.
Prints both side by side with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import HOST, Connection, ServerProcess, cpu_seconds, free_port, percentile

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get(
    "SMITHERS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BASELINE_REF = "92d21fa"

# Runs `smithers server` as the CLI does (server_config, uvicorn.Server), from the tree in
# argv[1]; a tree whose create_app caps streams gets caps that let all of them in.
LAUNCH = """
import inspect, sys
sys.path.insert(0, sys.argv[1])
import uvicorn, smithers
from smithers_server.app import create_app
from smithers_server.server import server_config
assert smithers.__file__.startswith(sys.argv[1]), smithers.__file__
db, root, port, streams = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
caps = {}
if "max_streams_per_run" in inspect.signature(create_app).parameters:
    caps = {"max_streams": streams + 100, "max_streams_per_run": streams}
uvicorn.Server(server_config(port=port, host="127.0.0.1", db=db, root_dir=root, **caps)).run()
"""


@dataclass
class Figures:
    label: str
    cpu_percent: float
    health_p50_ms: float
    health_p99_ms: float
    streams_open: int


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A database URL whose search_path is a new schema, dropped afterwards."""
    schema = "bench_sse_" + secrets.token_hex(4)
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """`ref` checked out (detached) in a temporary git worktree."""
    where = Path(tempfile.mkdtemp(prefix="bench-sse-baseline-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), ref],
        check=True,
        capture_output=True,
    )
    try:
        yield where
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(where, ignore_errors=True)


def describe(tree: Path) -> str:
    found = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


async def park_run(port: int) -> str:
    conn = await Connection(port).open()
    try:
        status, body = await conn.request(
            "POST", "/v1/runs", {"workflowPath": "approval.py", "input": {"msg": "idle"}}
        )
        if status != 200:
            raise SystemExit(f"POST /v1/runs: {status} {body}")
        run_id = str(body["runId"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, view = await conn.request("GET", f"/v1/runs/{run_id}")
            if view.get("status") == "waiting-approval":
                return run_id
            await asyncio.sleep(0.05)
        raise SystemExit(f"run {run_id} did not park: {view}")
    finally:
        await conn.close()


async def hold_stream(
    port: int, run_id: str, opened: asyncio.Event, gate: asyncio.Semaphore, count: list[int]
) -> None:
    """Open the run's SSE stream, then read (keep-alives) until cancelled."""
    async with gate:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            f"GET /v1/runs/{run_id}/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        raise SystemExit(f"stream refused: {head.splitlines()[0]!r}")
    count[0] += 1
    opened.set()
    try:
        while await reader.read(65536):
            pass
    finally:
        count[0] -= 1
        writer.close()


async def measure_server(
    port: int, pid: int, streams: int, seconds: float, health: int, label: str
) -> Figures:
    run_id = await park_run(port)
    count = [0]
    gate = asyncio.Semaphore(50)
    opened = asyncio.Event()
    tasks = [
        asyncio.create_task(hold_stream(port, run_id, opened, gate, count)) for _ in range(streams)
    ]
    try:
        deadline = time.monotonic() + 60
        while count[0] < streams:
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                failed = [t.exception() for t in tasks if t.done() and t.exception()]
                if failed:
                    raise failed[0]  # type: ignore[misc]
                raise SystemExit(f"only {count[0]} of {streams} streams opened")
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)  # let each stream's first read of the table pass
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, wall1 = cpu_seconds(pid), time.monotonic()
        conn = await Connection(port).open()
        latencies = []
        try:
            for _ in range(health):
                started = time.perf_counter()
                status, _ = await conn.request("GET", "/health")
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise SystemExit(f"/health answered {status}")
                await asyncio.sleep(0.01)
        finally:
            await conn.close()
        still_open = count[0]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Figures(
        label,
        100 * (cpu1 - cpu0) / (wall1 - wall0),
        percentile(latencies, 50),
        percentile(latencies, 99),
        still_open,
    )


def run_tree(tree: Path, label: str, args: argparse.Namespace) -> Figures:
    with pg_schema() as db, tempfile.TemporaryDirectory() as root:
        shutil.copy(ROOT / "examples" / "approval.py", Path(root) / "approval.py")
        port = free_port()
        argv = [sys.executable, "-c", LAUNCH, str(tree), db, root, str(port), str(args.streams)]
        with ServerProcess(argv, port, cwd=tree) as server:
            print(f"  {label}: server pid {server.pid()} on port {port} ...", flush=True)
            return asyncio.run(
                measure_server(port, server.pid(), args.streams, args.seconds, args.health, label)
            )


def ratio(before: float, after: float) -> str:
    return f"{before / after:8.1f}x" if after > 0 else "       -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0, help="CPU measuring window")
    parser.add_argument("--health", type=int, default=200, help="GET /health requests timed")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print(
        f"{args.streams} idle SSE streams on one run parked on an approval, PostgreSQL, "
        f"CPU over {args.seconds:g} s, {args.health} x GET /health; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    after = run_tree(ROOT, f"this tree ({describe(ROOT)})", args)
    results = [after]
    if not args.no_baseline:
        with checkout(args.baseline_ref) as tree:
            results.insert(0, run_tree(tree, f"baseline ({describe(tree)})", args))
    print()
    print(
        f"{'':24}"
        + "".join(f"{f.label:>26}" for f in results)
        + ("   before/after" if len(results) == 2 else "")
    )
    rows = [
        ("server CPU (%)", "cpu_percent", "{:26.1f}"),
        ("/health p50 (ms)", "health_p50_ms", "{:26.2f}"),
        ("/health p99 (ms)", "health_p99_ms", "{:26.2f}"),
    ]
    for name, attr, fmt in rows:
        values = [getattr(f, attr) for f in results]
        line = f"{name:24}" + "".join(fmt.format(v) for v in values)
        if len(values) == 2:
            line += "   " + ratio(values[0], values[1])
        print(line)
    print(f"{'streams still open':24}" + "".join(f"{f.streams_open:26d}" for f in results))


if __name__ == "__main__":
    main()
