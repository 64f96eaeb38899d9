"""Renders/s of the pure render (tree + persisted state -> frame and plan), no database.

    .venv/bin/python benchmarks/bench_render.py [--tasks 60] [--repeat 7] [--number 200]

A workflow of `--tasks` tasks in a sequence, a parallel and a loop, a third of them
finished, plus an approval, a signal and a timer. Prints the best of `--repeat` timings of
`--number` renders (the best is the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import sys
import timeit

from pydantic import BaseModel

from smithers import (
    Approval,
    Loop,
    Parallel,
    Sequence,
    Signal,
    Task,
    Timer,
    Workflow,
    create_smithers,
)
from smithers.engine.render import render
from smithers.store.nodes import NodeTables
from smithers.store.records import NodeRecord

NOW = 1_000_000


class Text(BaseModel):
    text: str


def finished(node_id: str, iteration: int = 0) -> NodeRecord:
    return NodeRecord(node_id, iteration, "finished", 1, NOW, None, None, 0, None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=200)
    args = parser.parse_args()
    smithers, outputs = create_smithers(text=Text)
    third = max(1, args.tasks // 3)
    ids = [f"t{i}" for i in range(args.tasks)]

    def tree() -> Workflow:
        return Workflow(
            "bench",
            [
                Sequence([Task(i, output=outputs.text) for i in ids[:third]]),
                Parallel([Task(i, retries=1) for i in ids[third : 2 * third]], max_concurrency=4),
                Loop("loop", [Task(i) for i in ids[2 * third :]], max_iterations=3),
                Approval("ok", request={"title": "Ship?"}),
                Signal("sig", timeout_ms=1000),
                Timer("timer", duration_ms=500),
            ],
        )

    workflow = smithers(lambda ctx: tree())
    tables = NodeTables(nodes={(i, 0): finished(i) for i in ids[:third]})
    seconds = min(
        timeit.repeat(
            lambda: render(workflow, tree, tables, {}, NOW), repeat=args.repeat, number=args.number
        )
    )
    print(f"render of {args.tasks} tasks, python {sys.version.split()[0]}")
    print(f"{args.number / seconds:10.1f} renders/s  ({seconds / args.number * 1e6:.0f} us each)")


if __name__ == "__main__":
    main()
