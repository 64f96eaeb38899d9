"""Requests/s of `GET /v1/runs/{id}` of a finished run, against a bare Starlette baseline.

    .venv/bin/python benchmarks/bench_http.py [--duration 10] [--rounds 3] [--connections 64]
        [--client auto|wrk|python]

Two server subprocesses on loopback, each uvicorn with 1 worker and the same settings
(`smithers.web.serving.uvicorn_config`): `smithers server` on a SQLite file holding one
finished run of examples/hello.py, and the baseline, a bare Starlette app (in this file, run
with `--serve-baseline`) whose one route does the same single indexed read,
`SELECT ... FROM _smithers_runs WHERE run_id = ?` on the same db file, inline on the event
loop (as the server reads SQLite), and returns JSON. The load is `wrk` (1 thread,
`--connections` keep-alive connections) when installed, else a separate Python process with
raw asyncio sockets and the same number of keep-alive connections. Rounds alternate the two
servers; prints each round, the median req/s of each, their ratio (target >= 0.8), and the
original's 6,700 req/s (wrk, 64 connections, comparable machine). Each round also reads the
server's CPU time (/proc): CPU per request, and its ratio, hold better than req/s on a
machine shared with other work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from servers import (
    HOST,
    ROOT,
    Connection,
    HttpError,
    ServerProcess,
    cpu_seconds,
    free_port,
    prepare_root,
    smithers_server,
    start_run,
    wait_terminal,
)

ORIGINAL_RPS = 6700.0
TARGET_RATIO = 0.8


# --- the baseline app -------------------------------------------------------------------


def baseline_app(db_path: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    conn = sqlite3.connect(db_path, check_same_thread=False)

    async def get_run(request: Request) -> Response:  # async: the read runs on the loop
        run_id = request.path_params["runId"]
        row = conn.execute(
            "SELECT run_id, workflow_name, status, started_at_ms, finished_at_ms "
            "FROM _smithers_runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return JSONResponse({"error": {"code": "NOT_FOUND"}}, status_code=404)
        keys = ("runId", "workflowName", "status", "startedAtMs", "finishedAtMs")
        return JSONResponse(dict(zip(keys, row, strict=True)))

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/runs/{runId}", get_run, methods=["GET"]),
        ]
    )


def serve_baseline(db_path: str, port: int) -> None:
    import uvicorn

    from smithers.web.serving import uvicorn_config

    config = uvicorn_config(baseline_app(db_path), host=HOST, port=port, headers_timeout_ms=30_000)
    uvicorn.Server(config).run()


# --- load generators --------------------------------------------------------------------


def run_wrk(url: str, connections: int, duration: float, threads: int) -> tuple[float, str]:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if found is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    notes = []
    for pattern in (r"Non-2xx or 3xx responses: \d+", r"Socket errors: [^\n]+"):
        extra = re.search(pattern, out)
        if extra:
            notes.append(extra.group(0))
    return float(found.group(1)), "; ".join(notes)


async def _load(port: int, path: str, connections: int, duration: float) -> dict[str, Any]:
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    counts = {"ok": 0, "bad": 0, "errors": 0}
    start = asyncio.Event()
    deadline = 0.0

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        await start.wait()
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if length is None:
                    raise HttpError(f"no content-length in {head!r}")
                await reader.readexactly(int(length.group(1)))
                counts["ok" if head.startswith(b"HTTP/1.1 200") else "bad"] += 1
        except (OSError, asyncio.IncompleteReadError, HttpError):
            counts["errors"] += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # every connection open before the clock starts
    started = time.perf_counter()
    deadline = started + duration
    start.set()
    await asyncio.gather(*tasks)
    return {**counts, "seconds": time.perf_counter() - started}


def run_python_load(url: str, connections: int, duration: float) -> tuple[float, str]:
    """The fallback generator, in its own process so it does not share the caller's GIL."""
    argv = [sys.executable, __file__, "--load", url, "--connections", str(connections)]
    argv += ["--duration", str(duration)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    notes = []
    if result["bad"]:
        notes.append(f"non-200 responses: {result['bad']}")
    if result["errors"]:
        notes.append(f"connection errors: {result['errors']}")
    return result["ok"] / result["seconds"], "; ".join(notes)


# --- the benchmark ----------------------------------------------------------------------


async def finished_run(port: int) -> str:
    conn = await Connection(port).open()
    try:
        run_id = await start_run(conn, "hello.py", {"name": "bench"})
        kind, _ = await wait_terminal(conn, run_id)
        if kind != "RunFinished":
            raise HttpError(f"run {run_id} ended with {kind}")
        for _ in range(200):  # warm up: imports, caches, the threadpool
            status, body = await conn.request("GET", f"/v1/runs/{run_id}")
            if status != 200:
                raise HttpError(f"GET /v1/runs/{run_id}: {status} {body}")
    finally:
        await conn.close()
    return run_id


async def finished_run_check(port: int, run_id: str) -> None:
    """The baseline finds the same run (and is warmed up like the server)."""
    conn = await Connection(port).open()
    try:
        for _ in range(200):
            status, body = await conn.request("GET", f"/v1/runs/{run_id}")
            if status != 200 or body.get("status") != "finished":
                raise HttpError(f"baseline GET /v1/runs/{run_id}: {status} {body}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--serve-baseline", nargs=2, metavar=("DB", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline[0], int(args.serve_baseline[1]))
        return
    if args.load:
        match = re.match(r"http://[^:/]+:(\d+)(/.*)", args.load)
        assert match is not None
        port, path = int(match.group(1)), match.group(2)
        print(json.dumps(asyncio.run(_load(port, path, args.connections, args.duration))))
        return

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"

    def load(url: str) -> tuple[float, str]:
        if client == "wrk":
            return run_wrk(url, args.connections, args.duration, args.wrk_threads)
        return run_python_load(url, args.connections, args.duration)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare_root(root, ROOT / "examples" / "hello.py")
        db = root / "bench.db"
        port = free_port()
        baseline_argv = [sys.executable, __file__, "--serve-baseline", str(db), str(port)]
        with smithers_server(str(db), root) as server, ServerProcess(baseline_argv, port) as bare:
            run_id = asyncio.run(finished_run(server.port))
            asyncio.run(finished_run_check(bare.port, run_id))
            path = f"/v1/runs/{run_id}"
            print(
                f"GET {path}, uvicorn 1 worker each, loopback, {args.connections} keep-alive "
                f"connections, {client} load, {args.rounds} x {args.duration:g} s per server, "
                f"python {sys.version.split()[0]}"
            )
            figures: dict[str, list[float]] = {"smithers": [], "baseline": []}
            cpu_us: dict[str, list[float]] = {"smithers": [], "baseline": []}
            for i in range(args.rounds):
                for name, target in (("smithers", server), ("baseline", bare)):
                    cpu = cpu_seconds(target.pid())
                    rps, notes = load(f"{target.url}{path}")
                    per_request = (cpu_seconds(target.pid()) - cpu) / (rps * args.duration) * 1e6
                    figures[name].append(rps)
                    cpu_us[name].append(per_request)
                    suffix = f"   ({notes})" if notes else ""
                    print(
                        f"round {i + 1}  {name:<8} {rps:9.0f} req/s {per_request:6.1f} us CPU/req"
                        f"{suffix}",
                        flush=True,
                    )
    ours = statistics.median(figures["smithers"])
    base = statistics.median(figures["baseline"])
    ratio = ours / base
    print(f"smithers server:         {ours:9.0f} req/s (median of rounds)")
    print(f"baseline bare Starlette: {base:9.0f} req/s (median of rounds)")
    print(
        f"ratio: {ratio:.2f} of baseline (target >= {TARGET_RATIO}) -> "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    ours_cpu = statistics.median(cpu_us["smithers"])
    base_cpu = statistics.median(cpu_us["baseline"])
    print(
        f"server CPU per request: smithers {ours_cpu:.1f} us, baseline {base_cpu:.1f} us "
        f"(median of rounds): the baseline's {base_cpu / ours_cpu:.2f}x ours"
    )
    print(
        f"original: {ORIGINAL_RPS:,.0f} req/s (wrk, 64 connections, comparable machine, "
        f"not this run); this run's smithers figure is {ours / ORIGINAL_RPS:.2f}x that"
    )


if __name__ == "__main__":
    main()
