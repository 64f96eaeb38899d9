"""Queries on the per-node tables: nodes, attempts, approvals, signals and loop iterations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import statements
from .records import ApprovalRecord, NodeRecord, SignalRecord, dumps
from .schema import approvals, attempts, loops, nodes, runs, signals

NodeKey = tuple[str, int]


@dataclass
class NodeTables:
    """What the engine needs of a run's node tables to render and schedule it."""

    nodes: dict[NodeKey, NodeRecord] = field(default_factory=dict)
    approvals: dict[NodeKey, ApprovalRecord] = field(default_factory=dict)
    loop_iterations: dict[str, int] = field(default_factory=dict)
    open_signals: list[SignalRecord] = field(default_factory=list)


ALL_PARTS = frozenset({"approvals", "loops", "signals"})

_SELECT_APPROVALS = "SELECT * FROM _smithers_approvals WHERE run_id = :rid"
_SELECT_LOOPS = (
    "SELECT loop_id, max(iteration) AS iteration FROM _smithers_loops "
    "WHERE run_id = :rid GROUP BY loop_id"
)
_SELECT_OPEN_SIGNALS = (
    "SELECT * FROM _smithers_signals "
    "WHERE run_id = :rid AND consumed_by_node_id IS NULL ORDER BY seq"
)


def load_node_tables(
    conn: Connection, run_id: str, parts: frozenset[str] = ALL_PARTS
) -> NodeTables:
    """Node rows, plus the `parts` (approvals, loops, signals) the workflow uses."""
    found = NodeTables()
    params = {"rid": run_id}
    for row in statements.fetch_all(
        conn, "SELECT * FROM _smithers_nodes WHERE run_id = :rid", params
    ):
        rec = NodeRecord.from_row(row)
        found.nodes[(rec.node_id, rec.iteration)] = rec
    if "approvals" in parts:
        for approval_row in statements.fetch_all(conn, _SELECT_APPROVALS, params):
            appr = ApprovalRecord.from_row(approval_row)
            found.approvals[(appr.node_id, appr.iteration)] = appr
    if "loops" in parts:
        for loop_row in statements.fetch_all(conn, _SELECT_LOOPS, params):
            found.loop_iterations[loop_row["loop_id"]] = int(loop_row["iteration"])
    if "signals" in parts:
        found.open_signals = [
            SignalRecord.from_row(r)
            for r in statements.fetch_all(conn, _SELECT_OPEN_SIGNALS, params)
        ]
    return found


def get_node(conn: Connection, run_id: str, node_id: str, iteration: int) -> NodeRecord | None:
    row = conn.execute(
        sa.select(nodes).where(
            nodes.c.run_id == run_id, nodes.c.node_id == node_id, nodes.c.iteration == iteration
        )
    ).first()
    return None if row is None else NodeRecord.from_row(row)


def upsert_node(
    conn: Connection,
    run_id: str,
    node_id: str,
    iteration: int,
    *,
    now: int,
    state: str,
    frame_no: int = 0,
    **values: Any,
) -> None:
    """Set a node's state, creating its row (stamped with `frame_no`) on first sight."""
    if "wait" in values:
        wait = values.pop("wait")
        values["wait_json"] = None if wait is None else dumps(wait)
    if "error" in values:
        error = values.pop("error")
        values["error_json"] = None if error is None else dumps(error)
    key = {"run_id": run_id, "node_id": node_id, "iteration": iteration}
    changes = {"state": state, "updated_at_ms": now, **values}
    statements.upsert(conn, "_smithers_nodes", key, changes, {"first_frame_no": frame_no})


def nodes_in_states(conn: Connection, run_id: str, states: tuple[str, ...]) -> list[NodeRecord]:
    marks = ", ".join(f":s{i}" for i in range(len(states)))
    params: dict[str, Any] = {f"s{i}": state for i, state in enumerate(states)}
    params["rid"] = run_id
    rows = statements.fetch_all(
        conn, f"SELECT * FROM _smithers_nodes WHERE run_id = :rid AND state IN ({marks})", params
    )
    return [NodeRecord.from_row(r) for r in rows]


def node_summary(conn: Connection, run_id: str) -> dict[str, int]:
    rows = statements.fetch_all(
        conn,
        "SELECT state, COUNT(*) AS n FROM _smithers_nodes WHERE run_id = :rid GROUP BY state",
        {"rid": run_id},
    )
    return {row["state"]: int(row["n"]) for row in rows}


def insert_attempt(
    conn: Connection, run_id: str, node_id: str, iteration: int, attempt: int, now: int
) -> None:
    statements.insert(
        conn,
        "_smithers_attempts",
        {
            "run_id": run_id,
            "node_id": node_id,
            "iteration": iteration,
            "attempt": attempt,
            "state": "in-progress",
            "started_at_ms": now,
        },
    )


def finish_attempt(
    conn: Connection,
    run_id: str,
    node_id: str,
    iteration: int,
    attempt: int,
    *,
    state: str,
    now: int,
    error: Any = None,
) -> None:
    statements.update(
        conn,
        "_smithers_attempts",
        {"run_id": run_id, "node_id": node_id, "iteration": iteration, "attempt": attempt},
        {
            "state": state,
            "finished_at_ms": now,
            "error_json": None if error is None else dumps(error),
        },
    )


def abandon_attempts(conn: Connection, run_id: str, now: int) -> list[tuple[str, int, int]]:
    """Mark attempts left in progress by a dead owner as failed; return their keys."""
    rows = conn.execute(
        sa.select(attempts.c.node_id, attempts.c.iteration, attempts.c.attempt)
        .where(attempts.c.run_id == run_id)
        .where(attempts.c.state == "in-progress")
    ).all()
    if rows:
        conn.execute(
            sa.update(attempts)
            .where(attempts.c.run_id == run_id)
            .where(attempts.c.state == "in-progress")
            .values(
                state="failed",
                finished_at_ms=now,
                error_json=dumps({"code": "ABANDONED", "reason": "abandoned"}),
            )
        )
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def count_abandoned(conn: Connection, run_id: str, node_id: str, iteration: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(attempts)
            .where(
                attempts.c.run_id == run_id,
                attempts.c.node_id == node_id,
                attempts.c.iteration == iteration,
                attempts.c.error_json.like('%"abandoned"%'),
            )
        ).scalar_one()
    )


def insert_approval(
    conn: Connection,
    run_id: str,
    node_id: str,
    iteration: int,
    *,
    now: int,
    request: dict[str, Any],
) -> None:
    conn.execute(
        sa.insert(approvals).values(
            run_id=run_id,
            node_id=node_id,
            iteration=iteration,
            status="requested",
            requested_at_ms=now,
            request_json=dumps(request),
        )
    )


def get_approval(
    conn: Connection, run_id: str, node_id: str, iteration: int
) -> ApprovalRecord | None:
    row = conn.execute(
        sa.select(approvals).where(
            approvals.c.run_id == run_id,
            approvals.c.node_id == node_id,
            approvals.c.iteration == iteration,
        )
    ).first()
    return None if row is None else ApprovalRecord.from_row(row)


def delete_denied_approval(conn: Connection, run_id: str, node_id: str, iteration: int) -> None:
    statements.execute(
        conn,
        "DELETE FROM _smithers_approvals WHERE run_id = :rid AND node_id = :nid "
        "AND iteration = :it AND status = 'denied'",
        {"rid": run_id, "nid": node_id, "it": iteration},
    ).close()


def decide_approval(
    conn: Connection,
    run_id: str,
    node_id: str,
    iteration: int,
    *,
    approved: bool,
    now: int,
    note: str | None,
    decided_by: str | None,
    decision: Any,
    auto: bool = False,
) -> bool:
    """Record a decision on a `requested` approval; False when it was already decided."""
    result = conn.execute(
        sa.update(approvals)
        .where(
            approvals.c.run_id == run_id,
            approvals.c.node_id == node_id,
            approvals.c.iteration == iteration,
            approvals.c.status == "requested",
        )
        .values(
            status="approved" if approved else "denied",
            decided_at_ms=now,
            note=note,
            decided_by=decided_by,
            decision_json=dumps(decision),
            auto_approved=auto,
        )
    )
    return result.rowcount == 1


def pending_approvals(
    conn: Connection, limit: int = 1000, *, run_id: str | None = None, workflow: str | None = None
) -> list[tuple[ApprovalRecord, Any]]:
    """Requested approvals with their run row, oldest request first (of one run, or of
    the runs of one workflow name, when given)."""
    query = (
        sa.select(approvals, runs.c.workflow_name, runs.c.status.label("run_status"), nodes.c.label)
        .join(runs, runs.c.run_id == approvals.c.run_id)
        .outerjoin(
            nodes,
            sa.and_(
                nodes.c.run_id == approvals.c.run_id,
                nodes.c.node_id == approvals.c.node_id,
                nodes.c.iteration == approvals.c.iteration,
            ),
        )
        .where(approvals.c.status == "requested")
        .where(runs.c.status.not_in(["finished", "failed", "cancelled"]))
        .order_by(approvals.c.requested_at_ms, approvals.c.run_id, approvals.c.node_id)
        .limit(limit)
    )
    if run_id is not None:
        query = query.where(approvals.c.run_id == run_id)
    if workflow is not None:
        query = query.where(runs.c.workflow_name == workflow)
    return [(ApprovalRecord.from_row(r), r._mapping) for r in conn.execute(query)]


def insert_signal(
    conn: Connection,
    run_id: str,
    *,
    name: str,
    data: Any,
    correlation_id: str | None,
    received_by: str | None,
    now: int,
) -> int:
    seq = conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(signals.c.seq), -1) + 1).where(
            signals.c.run_id == run_id
        )
    ).scalar_one()
    conn.execute(
        sa.insert(signals).values(
            run_id=run_id,
            seq=seq,
            signal_name=name,
            correlation_id=correlation_id,
            payload_json=dumps(data),
            received_at_ms=now,
            received_by=received_by,
        )
    )
    return int(seq)


def consume_signal(conn: Connection, run_id: str, seq: int, node_id: str, iteration: int) -> bool:
    result = conn.execute(
        sa.update(signals)
        .where(signals.c.run_id == run_id, signals.c.seq == seq)
        .where(signals.c.consumed_by_node_id.is_(None))
        .values(consumed_by_node_id=node_id, consumed_iteration=iteration)
    )
    return result.rowcount == 1


def start_loop_iteration(
    conn: Connection, run_id: str, loop_id: str, iteration: int, *, now: int, frame_no: int
) -> None:
    conn.execute(
        sa.insert(loops).values(
            run_id=run_id,
            loop_id=loop_id,
            iteration=iteration,
            started_at_ms=now,
            first_frame_no=frame_no,
        )
    )


def waiting_timer_due(conn: Connection, now: int, limit: int = 100) -> list[str]:
    """Runs parked on a timer whose earliest timer is due."""
    rows = conn.execute(
        sa.select(runs.c.run_id)
        .join(nodes, nodes.c.run_id == runs.c.run_id)
        .where(runs.c.status.in_(["waiting-timer", "waiting-event"]))
        .where(nodes.c.state.in_(["waiting-timer", "waiting-event"]))
        .where(nodes.c.fires_at_ms <= now)
        .distinct()
        .limit(limit)
    )
    return [r[0] for r in rows]
