"""RSS growth per run parked on an approval, then the time to approve them all and finish.

    .venv/bin/python benchmarks/bench_parked.py [--runs 1000] [--db sqlite|postgres]

Runs examples/approval.py until each run parks on `review`, in one process, and prints
the resident-memory growth per parked run (baseline: the same process after one warm-up
run), then approves every run and times until all have finished.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine_runs import drop_schema, pg_store

from smithers import Runtime, Store, approve, load_workflow, open_store
from smithers.queries import get_run

ROOT = Path(__file__).resolve().parent.parent


def rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def bench(store: Store, runs: int) -> None:
    wf = load_workflow(ROOT / "examples" / "approval.py")
    async with Runtime(store, resolve=lambda run: wf) as rt:
        await rt.run(wf, input={"msg": "warm"})
        gc.collect()
        before = rss_kb()
        ids: list[str] = []
        limiter = anyio.Semaphore(16)

        async def park() -> None:
            async with limiter:
                result = await rt.run(wf, input={"msg": "x"})
                assert result.status == "waiting-approval", result
                ids.append(result.run_id)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(runs):
                tg.start_soon(park)
        parked_s = time.perf_counter() - started
        gc.collect()
        after = rss_kb()
        assert rt.live_run_ids() == [], "parked runs must hold no driver"
        print(f"parked {runs} runs in {parked_s:.1f} s; live drivers: {len(rt.live_run_ids())}")
        print(
            f"RSS before {before} KB, after {after} KB: "
            f"{(after - before) / runs:.2f} KB per parked run"
        )

        started = time.perf_counter()
        for run_id in ids:
            await approve(store, run_id, "review", decided_by="bench")

        def all_finished() -> bool:
            return all(
                (run := get_run(store, run_id)) is not None and run.status == "finished"
                for run_id in ids
            )

        while not await anyio.to_thread.run_sync(all_finished):
            await anyio.sleep(0.2)
        print(f"approved and finished all {runs} in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(bench, open_store(f"sqlite:///{tmp}/parked.db"), args.runs)
    else:
        store, schema = pg_store()
        try:
            anyio.run(bench, store, args.runs)
        finally:
            store.close()
            drop_schema(schema)


if __name__ == "__main__":
    main()
