"""What each planned action writes and which events it appends, in the render's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..definition import OutputRef
from ..errors import error_json
from ..store import nodes as nodes_q
from ..store.base import Tx
from .actions import (
    Action,
    AdvanceLoop,
    ApprovalOutput,
    ConsumeSignal,
    FireTimer,
    Pending,
    RequestApproval,
    SignalTimeout,
    Skip,
    StartTimer,
    WaitEvent,
)
from .outputs import Applied, validate_output, write_output


def apply_action(
    tx: Tx,
    run_id: str,
    action: Action,
    *,
    frame_no: int,
    output_tables: Mapping[str, sa.Table],
    applied: list[Applied],
) -> None:
    """Commit one action; outputs it writes are added to `applied`."""
    node_id, it = action.node_id, action.iteration
    conn, now = tx.conn, tx.now

    def node(state: str, **values: Any) -> None:
        nodes_q.upsert_node(
            conn, run_id, node_id, it, now=now, state=state, frame_no=frame_no, **values
        )

    def emit(type_: str, **fields: Any) -> None:
        tx.emit(run_id, type_, nodeId=node_id, iteration=it, **fields)

    def store_output(ref: OutputRef, value: Any) -> Any:
        """Write a node's output; its error (and nothing written) when it does not validate."""
        try:
            model = validate_output(ref, value)
        except Exception as exc:
            return error_json(exc)
        assert model is not None
        applied.append(write_output(tx, output_tables[ref.key], ref, run_id, node_id, it, model))
        return None

    match action:
        case Pending(label=label, output_table=output_table):
            node("pending", label=label, output_table=output_table)
            emit("NodePending")
        case Skip():
            node("skipped")
            emit("NodeSkipped")
        case RequestApproval(request=request, gate=gate, on_deny=on_deny, auto=auto):
            nodes_q.insert_approval(conn, run_id, node_id, it, now=now, request=request)
            node(
                "waiting-approval",
                label=action.label,
                wait={"kind": "approval", "gate": gate, "onDeny": on_deny},
            )
            emit("NodeWaitingApproval")
            emit("ApprovalRequested", request=request)
            if auto:
                nodes_q.decide_approval(
                    conn,
                    run_id,
                    node_id,
                    it,
                    approved=True,
                    now=now,
                    note=None,
                    decided_by="auto",
                    decision=None,
                    auto=True,
                )
                node("pending" if gate else "finished")
                emit("ApprovalAutoApproved")
                if not gate:
                    emit("NodeFinished", attempt=0)
        case ApprovalOutput(output=ref):
            approval = nodes_q.get_approval(conn, run_id, node_id, it)
            assert approval is not None
            decision = {
                "approved": approval.status == "approved",
                "note": approval.note,
                "decidedBy": approval.decided_by,
                "decision": approval.decision,
            }
            err = store_output(ref, decision)
            if err is None:
                node("finished", output_table=ref.key)
            else:
                node("failed", error=err)
        case WaitEvent(signal=signal_name, correlation_id=correlation_id):
            node(
                "waiting-event",
                label=action.label,
                fires_at_ms=action.fires_at,
                wait={"signal": signal_name, "correlationId": correlation_id},
            )
            emit("NodeWaitingEvent", signalName=signal_name, correlationId=correlation_id)
        case ConsumeSignal(signal=signal, output=ref):
            if not nodes_q.consume_signal(conn, run_id, signal.seq, node_id, it):
                return
            wait = {"signal": signal.signal_name, "seq": signal.seq, "data": signal.data}
            err = None if ref is None else store_output(ref, signal.data)
            if err is None:
                node("finished", wait=wait, fires_at_ms=None, output_table=ref and ref.key)
                emit("NodeFinished", attempt=0)
            else:
                node("failed", error=err, wait=wait)
                emit("NodeFailed", attempt=0, error=err)
        case SignalTimeout(on_timeout="skip"):
            node("skipped")
            emit("NodeSkipped")
        case SignalTimeout(on_timeout="continue"):
            node("finished", wait={"timedOut": True})
            emit("NodeFinished", attempt=0)
        case SignalTimeout():
            err = {"code": "SIGNAL_TIMEOUT", "message": f"no signal for {node_id!r} in time"}
            node("failed", error=err)
            emit("NodeFailed", attempt=0, error=err)
        case StartTimer(fires_at=fires_at):
            node("waiting-timer", label=action.label, fires_at_ms=fires_at)
            emit("NodeWaitingTimer", firesAtMs=fires_at)
        case FireTimer(fires_at=fires_at):
            node("finished")
            tx.emit(run_id, "TimerFired", nodeId=node_id, firesAtMs=fires_at, firedAtMs=now)
            emit("NodeFinished", attempt=0)
        case AdvanceLoop():
            nodes_q.start_loop_iteration(conn, run_id, node_id, it, now=now, frame_no=frame_no)
