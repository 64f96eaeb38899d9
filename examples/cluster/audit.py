"""What the database says happened to the runs, and whether every run finished exactly
once: each run's status and event log, each task's attempts, and the executions the tasks
recorded themselves (the ledger file)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

TaskKey = tuple[str, str]  # (run id, node id)


@dataclass
class Story:
    """One run as stored: its status, its events `(seq, type, payload)` in seq order."""

    status: str
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    adopted_at_ms: int | None = None  # when another process first resumed it

    def types(self) -> list[str]:
        return [type_ for _, type_, _ in self.events]

    def of_node(self, type_: str) -> Counter[str]:
        return Counter(p.get("nodeId", "") for _, t, p in self.events if t == type_)


def read_stories(engine: sa.Engine, run_ids: list[str]) -> dict[str, Story]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT run_id, status FROM _smithers_runs WHERE run_id = ANY(:ids)"),
            {"ids": run_ids},
        )
        stories = {run_id: Story(status) for run_id, status in rows}
        events = conn.execute(
            sa.text(
                "SELECT run_id, seq, type, payload_json, timestamp_ms FROM _smithers_events "
                "WHERE run_id = ANY(:ids) ORDER BY run_id, seq"
            ),
            {"ids": run_ids},
        )
        for run_id, seq, type_, payload, at in events:
            story = stories[run_id]
            story.events.append((int(seq), type_, json.loads(payload)))
            if type_ == "RunStarted" and story.events[-1][2].get("resumed"):
                story.adopted_at_ms = story.adopted_at_ms or int(at)
    return stories


def attempt_rows(engine: sa.Engine, run_ids: list[str]) -> Counter[TaskKey]:
    """How many attempts `_smithers_attempts` holds for each task."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT run_id, node_id, count(*) FROM _smithers_attempts "
                "WHERE run_id = ANY(:ids) GROUP BY run_id, node_id"
            ),
            {"ids": run_ids},
        )
        return Counter({(run_id, node): int(n) for run_id, node, n in rows})


def ledger(path: Path) -> Counter[TaskKey]:
    """How many times each task began executing, as the tasks wrote it down."""
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter((line.split()[0], line.split()[1]) for line in lines)


def run_again_after_finishing(story: Story) -> list[str]:
    """The nodes started again after they finished (what must never happen)."""
    finished: set[str] = set()
    again = []
    for _, type_, payload in story.events:
        node = payload.get("nodeId", "")
        if type_ == "NodeFinished":
            finished.add(node)
        elif type_ == "NodeStarted" and node in finished:
            again.append(node)
    return again


def finished_before_adoption(story: Story) -> int:
    """How many of the run's tasks had finished when another process resumed it."""
    count = 0
    for _, type_, payload in story.events:
        if type_ == "RunStarted" and payload.get("resumed"):
            return count
        count += type_ == "NodeFinished"
    return 0


def problems(run_id: str, story: Story | None, nodes: tuple[str, ...]) -> list[str]:
    """What is off with one run: not finished, a gap in its seqs, not one RunFinished, a
    task not finished once, a finished task started again."""
    if story is None:
        return [f"{run_id}: not in the database"]
    found = []
    if story.status != "finished":
        found.append(f"{run_id}: status {story.status}")
    seqs = [seq for seq, _, _ in story.events]
    if seqs != list(range(len(seqs))):
        found.append(f"{run_id}: event seqs are not 0..{len(seqs) - 1} without a gap")
    if (count := story.types().count("RunFinished")) != 1:
        found.append(f"{run_id}: {count} RunFinished events")
    finished = story.of_node("NodeFinished")
    found += [f"{run_id}: {n} finished {finished[n]} times" for n in nodes if finished[n] != 1]
    again = run_again_after_finishing(story)
    found += [f"{run_id}: {node} started again after it finished" for node in again]
    return found


@dataclass
class Tally:
    """The counts of the report, per node: `started` (NodeStarted events), `finished`
    (NodeFinished), `attempts` (attempt rows), `executions` (ledger lines)."""

    started: Counter[str] = field(default_factory=Counter)
    finished: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)
    twice: Counter[str] = field(default_factory=Counter)  # tasks started more than once
    adopted: int = 0  # runs resumed by another process than the one that started them
    problems: list[str] = field(default_factory=list)


def tally(
    stories: dict[str, Story],
    run_ids: list[str],
    rows: Counter[TaskKey],
    executed: Counter[TaskKey],
    nodes: tuple[str, ...],
) -> Tally:
    out = Tally()
    for run_id in run_ids:
        story = stories.get(run_id)
        out.problems += problems(run_id, story, nodes)
        if story is None:
            continue
        started = story.of_node("NodeStarted")
        out.started.update(started)
        out.finished.update(story.of_node("NodeFinished"))
        out.twice.update(node for node, n in started.items() if n > 1)
        out.adopted += any(t == "RunStarted" and p.get("resumed") for _, t, p in story.events)
        for node in nodes:
            out.attempts[node] += rows[(run_id, node)]
            out.executions[node] += executed[(run_id, node)]
    return out
