"""Signals: deliver a named signal to a run, checked against the model of the node that
will consume it; one that arrives before its node is kept for it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .engine import validate_output
from .errors import SmithersError, run_not_active, validation_errors
from .lifecycle import locked_run, release_parked
from .loader import loaded_version
from .store import log as log_q
from .store import nodes as nodes_q
from .store.base import Store, Tx

if TYPE_CHECKING:
    from .definition import SmithersWorkflow


MAX_SIGNAL_NAME = 256


def send_signal(
    store: Store,
    run_id: str,
    name: str,
    data: Any = None,
    *,
    correlation_id: str | None = None,
    received_by: str | None = None,
    workflow: SmithersWorkflow | None = None,
) -> dict[str, Any]:
    """Record a signal. Its payload is checked against the model the run's workflow declares
    for it (`workflow`, else the version of the run's workflow this process has loaded), see
    `_check_payload`; a refused signal records nothing and uses no seq."""
    if not isinstance(name, str) or not name.strip():
        raise SmithersError(
            "INVALID_REQUEST", "signal name must not be blank", {"field": "signalName"}
        )
    if len(name) > MAX_SIGNAL_NAME:
        raise SmithersError(
            "INVALID_REQUEST",
            f"signal name longer than {MAX_SIGNAL_NAME} characters",
            {"field": "signalName"},
        )
    data = {} if data is None else data
    with store.write() as tx:
        run = locked_run(tx, run_id)
        if run.is_terminal:
            raise run_not_active(run_id, run.status)
        if workflow is None and run.workflow_path and run.workflow_hash:
            workflow = loaded_version(run.workflow_path, run.workflow_hash)
        if workflow is not None:
            _check_payload(tx, workflow, run_id, name, correlation_id, data)
        seq = nodes_q.insert_signal(
            tx.conn,
            run_id,
            name=name,
            data=data,
            correlation_id=correlation_id,
            received_by=received_by,
            now=tx.now,
        )
        tx.emit(run_id, "SignalReceived", signalName=name, seq=seq, correlationId=correlation_id)
        tx.touch(run_id)
        waiting = nodes_q.nodes_in_states(tx.conn, run_id, ("waiting-event",))
        if any(awaits(n.wait or {}, name, correlation_id) for n in waiting):
            release_parked(tx, run)
        received_at = tx.now
    return {
        "runId": run_id,
        "seq": seq,
        "signalName": name,
        "correlationId": correlation_id,
        "receivedAtMs": received_at,
    }


def _check_payload(
    tx: Tx,
    workflow: SmithersWorkflow,
    run_id: str,
    name: str,
    correlation_id: str | None,
    data: Any,
) -> None:
    """Refuse a payload no node that may consume it accepts.

    The nodes that may consume it: those waiting for this signal (name and correlation id)
    when any wait, else the `Signal` nodes of that name in the run's last frame (reached or
    not). The payload must validate against one of their models; a node without a model
    takes anything. With no such node rendered yet (say, behind an undecided branch) the
    payload is taken and checked when a node consumes it, which fails that node if invalid.
    """
    elements = _signal_elements(tx, run_id)
    waiting = {
        n.node_id
        for n in nodes_q.nodes_in_states(tx.conn, run_id, ("waiting-event",))
        if awaits(n.wait or {}, name, correlation_id)
    }
    if waiting:
        candidates = [p for p in elements if p.get("id") in waiting]
    else:
        candidates = [
            p
            for p in elements
            if p.get("signal") == name and p.get("correlationId") in (None, correlation_id)
        ]
    refs = {ref.key: ref for ref in workflow.outputs}
    first_error: Any = None
    for props in candidates:
        ref = refs.get(props.get("output") or "")
        if ref is None:
            return  # takes anything (or a model this version does not know: checked later)
        try:
            validate_output(ref, data)
            return
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            first_error = first_error or exc
    if first_error is not None:
        errors = getattr(first_error, "errors", None)
        raise SmithersError(
            "INVALID_REQUEST",
            f"signal {name!r}: data does not match the model its node declares",
            {"field": "data", "errors": validation_errors(errors() if callable(errors) else [])},
        )


def _signal_elements(tx: Tx, run_id: str) -> list[dict[str, Any]]:
    """The props of every `Signal` / `WaitForEvent` element in the run's last frame."""
    text = log_q.last_frame_json(tx.conn, run_id)
    found: list[dict[str, Any]] = []
    stack = [json.loads(text)] if text else []
    while stack:
        element = stack.pop()
        if not isinstance(element, dict):
            continue
        if element.get("tag") in ("signal", "wait-for-event"):
            found.append(element.get("props") or {})
        stack.extend(reversed(element.get("children") or []))
    return found


def awaits(wait: dict[str, Any], name: str, correlation_id: str | None) -> bool:
    """Whether a node waiting with `wait` is resolved by this signal."""
    wanted = wait.get("correlationId")
    return wait.get("signal") == name and (wanted is None or wanted == correlation_id)


async def signal(
    store: Store,
    run_id: str,
    name: str,
    data: Any = None,
    correlation_id: str | None = None,
    received_by: str | None = None,
    *,
    workflow: SmithersWorkflow | None = None,
) -> dict[str, Any]:
    """Deliver a named signal; one sent before its node is reached waits for it.

    A payload the consuming node's model refuses is a 400 `INVALID_REQUEST` (nothing
    recorded) when the run's workflow is known: `workflow`, or the version loaded here."""
    return await store.run(
        send_signal,
        store,
        run_id,
        name,
        data,
        correlation_id=correlation_id,
        received_by=received_by,
        workflow=workflow,
    )
