"""Ending a run: the one place a run becomes finished, failed or cancelled."""

from __future__ import annotations

from typing import Any, Literal

from ..store import nodes as nodes_q
from ..store import runs as runs_q
from ..store.base import Tx
from ..store.records import dumps

EndStatus = Literal["finished", "failed", "cancelled"]

# The states of nodes that a run's end cancels: those running (the engine ends a run only
# when nothing else is active), or every node not yet done (a cancel from outside).
RUNNING_NODES = ("in-progress",)
ACTIVE_NODES = ("pending", "in-progress", "waiting-approval", "waiting-event", "waiting-timer")

_EVENTS = {"finished": "RunFinished", "cancelled": "RunCancelled"}


def end_run(
    tx: Tx,
    run_id: str,
    status: EndStatus,
    error: Any = None,
    *,
    cancel_nodes: tuple[str, ...] = RUNNING_NODES,
) -> None:
    """Move the run (its row locked by `tx`) to `status` with its terminal event.

    Nodes in `cancel_nodes` states become cancelled (their open attempt with them), each
    with a `NodeCancelled` event (reason `run-<status>`); pass `()` to leave nodes as they
    are. The run's owner and heartbeat are cleared and `error` becomes the run's error
    (`RunFailed` carries it). A cancelled run also records when it was cancelled.
    """
    if cancel_nodes:
        for rec in nodes_q.nodes_in_states(tx.conn, run_id, cancel_nodes):
            nodes_q.upsert_node(
                tx.conn, run_id, rec.node_id, rec.iteration, now=tx.now, state="cancelled"
            )
            if rec.state == "in-progress":
                nodes_q.finish_attempt(
                    tx.conn,
                    run_id,
                    rec.node_id,
                    rec.iteration,
                    rec.last_attempt,
                    state="cancelled",
                    now=tx.now,
                )
            tx.emit(
                run_id,
                "NodeCancelled",
                nodeId=rec.node_id,
                iteration=rec.iteration,
                reason="run-" + status,
            )
    extra = {"cancel_requested_at_ms": tx.now} if status == "cancelled" else {}
    runs_q.update_run(
        tx.conn,
        run_id,
        status=status,
        finished_at_ms=tx.now,
        runtime_owner_id=None,
        heartbeat_at_ms=None,
        error_json=None if error is None else dumps(error),
        **extra,
    )
    if status == "failed":
        tx.emit(run_id, "RunFailed", error=error)
    else:
        tx.emit(run_id, _EVENTS[status])
