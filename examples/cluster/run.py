"""A cluster on one PostgreSQL database, a crash in the middle of its work, and the proof.

    .venv/bin/python examples/cluster/run.py [--db URL] [--runs 100] [--seconds 1] [--over 4]

Starts three `smithers server` processes and a `smithers gateway` on a schema of their own
(made in the database of `--db`, else `SMITHERS_DB`, else the local server
postgresql+psycopg://postgres@127.0.0.1:5432/test; dropped at the end), launches `--runs`
runs of `steps.py` (three tasks in a row of `--seconds` each, each recording its
executions) round-robin through all four (the servers over REST, the gateway over its RPC)
over `--over` seconds, SIGKILLs the second server once half are launched (its runs are in
their first or second task), waits until every run has ended, and prints what the
database says: every run finished, once, with every task finished once and none run again
after it finished. Exits 1 if anything is off.

Every process gets SMITHERS_STALE_AFTER_MS=3000 (`--stale-after-ms`; 30 s by default): a
run whose owner's heartbeat is that old is adopted by a survivor. Here all processes share
one host, so the survivors also see that the killed owner's process is gone and adopt its
runs at their next scan (every second) without waiting that long.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import cycle
from pathlib import Path
from typing import Any
from urllib.parse import quote

import audit
import httpx
import processes
import sqlalchemy as sa
from steps import NODES

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TERMINAL = ("finished", "failed", "cancelled")


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("SMITHERS_DB") or DEFAULT_DB)
    parser.add_argument("--runs", type=int, default=100, help="how many runs to launch")
    parser.add_argument("--seconds", type=float, default=1.0, help="how long each task works")
    parser.add_argument("--over", type=float, default=4.0, help="launches spread over (s)")
    parser.add_argument("--stale-after-ms", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=120, help="for the runs to end (s)")
    return parser.parse_args(argv)


@contextmanager
def own_schema(db: str) -> Iterator[tuple[str, str]]:
    """A new schema in `db`, dropped afterwards: `(its name, a URL that uses it)`."""
    schema = "cluster_" + secrets.token_hex(4)
    admin = sa.create_engine(db)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in db else "?"
    try:
        yield schema, f"{db}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def launch(client: httpx.Client, target: processes.Process, run_input: dict[str, Any]) -> str:
    """Start a run: `POST /v1/runs` on a server, `launchRun` on the gateway's RPC."""
    if target.name == "gateway":
        body = {"workflow": "steps", "input": run_input}
        frame = client.post(f"{target.url}/v1/rpc/launchRun", json=body).json()
        if not frame.get("ok"):
            raise RuntimeError(f"launchRun: {frame}")
        return str(frame["payload"]["runId"])
    body = {"workflowPath": "steps.py", "input": run_input}
    res = client.post(f"{target.url}/v1/runs", json=body)
    if res.status_code != 200:
        raise RuntimeError(f"POST /v1/runs on {target.name}: {res.status_code} {res.text}")
    return str(res.json()["runId"])


def driven_by(engine: sa.Engine, pid: int) -> list[str]:
    """The running runs whose owner is process `pid` (owner ids: host:pidns:pid:start:n)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT run_id, runtime_owner_id FROM _smithers_runs WHERE status = 'running'")
        )
        return [run_id for run_id, owner in rows if (owner or "").split(":")[2:3] == [str(pid)]]


def wait_ended(engine: sa.Engine, run_ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    query = sa.text(
        "SELECT count(*) FROM _smithers_runs WHERE run_id = ANY(:ids) AND status <> ALL(:ends)"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query, {"ids": run_ids, "ends": list(TERMINAL)}).scalar_one() == 0:
                return True
        time.sleep(0.2)
    return False


def drive(
    args: argparse.Namespace, url: str, workdir: Path, env: dict[str, str]
) -> tuple[list[str], list[str], float]:
    """Start the cluster, launch the runs round-robin, SIGKILL server-2 half way, wait.
    Returns the run ids, those server-2 drove when it was killed, and when (time.time())."""
    root = workdir / "root"
    root.mkdir()
    shutil.copy(processes.HERE / "steps.py", root / "steps.py")
    run_input = {"ledger": str(workdir / "ledger"), "seconds": args.seconds}
    engine = sa.create_engine(url)
    started = [processes.server(f"server-{n}", url, root, workdir, env) for n in (1, 2, 3)]
    started.append(processes.gateway("gateway", url, workdir, env))
    try:
        for process in started:
            processes.ready(process)
        print("started:", ", ".join(f"{p.name} {p.url} (pid {p.pid})" for p in started))
        victim = started[1]
        run_ids: list[str] = []
        lost: list[str] = []
        killed_at = 0.0
        targets = cycle(started)
        begun = time.monotonic()
        with httpx.Client(timeout=30) as client:
            while len(run_ids) < args.runs:
                time.sleep(
                    max(0.0, begun + args.over * len(run_ids) / args.runs - time.monotonic())
                )
                if len(run_ids) == args.runs // 2 and victim.alive():
                    lost = driven_by(engine, victim.pid)
                    victim.kill()
                    killed_at = time.time()
                    print(
                        f"SIGKILL {victim.name} (pid {victim.pid}) after {len(run_ids)} "
                        f"launches, while it drove {len(lost)} runs"
                    )
                target = next(targets)
                if target.alive():
                    run_ids.append(launch(client, target, run_input))
        print(f"launched {len(run_ids)} runs; waiting for them to end ...")
        if not wait_ended(engine, run_ids, args.timeout):
            print(f"not every run ended within {args.timeout:.0f} s")
        print(f"all ended {time.time() - killed_at:.1f} s after the kill")
        return run_ids, lost, killed_at
    finally:
        for process in started:
            process.stop()
        engine.dispose()


def report(url: str, workdir: Path, run_ids: list[str], lost: list[str], killed_at: float) -> int:
    engine = sa.create_engine(url)
    try:
        stories = audit.read_stories(engine, run_ids)
        rows = audit.attempt_rows(engine, run_ids)
    finally:
        engine.dispose()
    found = audit.tally(stories, run_ids, rows, audit.ledger(workdir / "ledger"), NODES)
    if not lost:
        found.problems.append("the kill caught no run in flight: try more --runs")
    adopted = [stories[r].adopted_at_ms for r in lost if r in stories]
    delays = [(at - killed_at * 1000) / 1000 for at in adopted if at is not None]
    total = len(run_ids)
    finished = sum(1 for r in run_ids if r in stories and stories[r].status == "finished")
    once = sum(1 for r in run_ids if r in stories and stories[r].types().count("RunFinished") == 1)
    print()
    print(f"runs finished                  {finished}/{total}")
    print(f"RunFinished exactly once       {once}/{total}")
    print(
        f"runs of the killed server      {len(lost)}, adopted by a survivor: {len(delays)}"
        + (f" (at most {max(delays):.1f} s after the kill)" if delays else "")
    )
    before = sum(audit.finished_before_adoption(stories[r]) for r in lost if r in stories)
    print(f"their tasks finished before    {before} (each must not run again)")
    print(f"runs resumed in all            {found.adopted}")
    print()
    print("task    NodeStarted  NodeFinished  attempt rows  executions  started twice")
    for node in NODES:
        print(
            f"{node:<7} {found.started[node]:>11}  {found.finished[node]:>12}  "
            f"{found.attempts[node]:>12}  {found.executions[node]:>10}  {found.twice[node]:>13}"
        )
    print()
    print("A task in flight on the killed server may run again on its adopter (at least once")
    print("for tasks in flight); a task that finished must never run again.")
    again = sum(1 for p in found.problems if "started again after it finished" in p)
    print(f"finished tasks run again       {again}")
    for problem in found.problems:
        print("PROBLEM:", problem)
    if found.problems:
        print(f"FAILED: {len(found.problems)} problems")
        return 1
    print(
        f"OK: all {total} runs finished exactly once, every task finished once, "
        "no finished task ran again"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    env = {"SMITHERS_STALE_AFTER_MS": str(args.stale_after_ms), "SMITHERS_LOG_LEVEL": "WARNING"}
    with own_schema(args.db) as (schema, url), tempfile.TemporaryDirectory() as tmp:
        print(f"database {args.db}, schema {schema} (dropped at the end)")
        print(
            f"SMITHERS_STALE_AFTER_MS={args.stale_after_ms}: a run whose owner's heartbeat is "
            "older is adopted by a survivor"
        )
        run_ids, lost, killed_at = drive(args, url, Path(tmp), env)
        return report(url, Path(tmp), run_ids, lost, killed_at)


if __name__ == "__main__":
    sys.exit(main())
