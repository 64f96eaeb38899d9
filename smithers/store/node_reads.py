"""Reads of a run's node rows and task attempts, for inspection and commands (not the
engine's path)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .records import NodeRecord, loads
from .schema import attempts, frames, nodes


def list_nodes(conn: Connection, run_id: str) -> list[NodeRecord]:
    """Every node row of the run, in the order they were first rendered."""
    rows = conn.execute(
        sa.select(nodes)
        .where(nodes.c.run_id == run_id)
        .order_by(nodes.c.first_frame_no, nodes.c.node_id, nodes.c.iteration)
    )
    return [NodeRecord.from_row(r) for r in rows]


def list_attempts(
    conn: Connection, run_id: str, node_id: str | None = None, iteration: int | None = None
) -> list[dict[str, Any]]:
    """The run's task attempts (of one node, one iteration, when given), oldest first."""
    query = sa.select(attempts).where(attempts.c.run_id == run_id)
    if node_id is not None:
        query = query.where(attempts.c.node_id == node_id)
    if iteration is not None:
        query = query.where(attempts.c.iteration == iteration)
    query = query.order_by(attempts.c.started_at_ms, attempts.c.node_id, attempts.c.attempt)
    return [_attempt_json(row._mapping) for row in conn.execute(query)]


def _attempt_json(m: Any) -> dict[str, Any]:
    return {
        "runId": m["run_id"],
        "nodeId": m["node_id"],
        "iteration": int(m["iteration"]),
        "attempt": int(m["attempt"]),
        "state": m["state"],
        "startedAtMs": m["started_at_ms"],
        "finishedAtMs": m["finished_at_ms"],
        "error": loads(m["error_json"]),
    }


def has_attempt(conn: Connection, run_id: str, node_id: str) -> bool:
    """Whether the node has run as a task (in any iteration)."""
    found = conn.execute(
        sa.select(attempts.c.attempt)
        .where(attempts.c.run_id == run_id, attempts.c.node_id == node_id)
        .limit(1)
    ).first()
    return found is not None


def frame_tasks(conn: Connection, run_id: str) -> set[tuple[str, int]]:
    """The tasks `(node id, iteration)` the run's latest frame mounts."""
    index = conn.execute(
        sa.select(frames.c.task_index_json)
        .where(frames.c.run_id == run_id)
        .order_by(frames.c.frame_no.desc())
        .limit(1)
    ).scalar_one_or_none()
    return {(str(t["nodeId"]), int(t["iteration"])) for t in loads(index) or []}
