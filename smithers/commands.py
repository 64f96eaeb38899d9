"""Commands on runs: approve, deny, signal, cancel, pause, resume, rewind, fork.

Each checks and changes state in one transaction that also appends its events, so any
process may run them; the owner of the run (or whoever adopts a parked one) observes the
change through the bus in-process and through the run's `command_seq` elsewhere.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .engine import MAX_ABANDONED_ATTEMPTS, validate_output
from .errors import SmithersError, validation_errors
from .loader import loaded_version
from .ownership import owner_is_dead
from .principal import Principal
from .store import nodes as nodes_q
from .store import runs as runs_q
from .store import schema
from .store.base import Store, Tx
from .store.records import WAITING_STATUSES, RunRecord

if TYPE_CHECKING:
    from .definition import SmithersWorkflow
    from .runtime import RunResult, Runtime


MAX_SIGNAL_NAME = 256


def generate_run_id() -> str:
    return "smi_" + secrets.token_hex(12)


def _locked_run(tx: Tx, run_id: str) -> RunRecord:
    run = runs_q.get_run(tx.conn, run_id, lock=True)
    if run is None:
        raise SmithersError("RUN_NOT_FOUND", f"run {run_id!r} not found", {"runId": run_id})
    return run


def _release_parked(tx: Tx, run: RunRecord) -> None:
    """A parked run that can move again becomes `running` and unowned: anyone may adopt it."""
    if run.status in WAITING_STATUSES:
        runs_q.update_run(
            tx.conn, run.run_id, status="running", runtime_owner_id=None, heartbeat_at_ms=None
        )
        tx.emit(run.run_id, "RunStatusChanged", status="running")


# -- approvals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    run_id: str
    node_id: str
    iteration: int
    approved: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "nodeId": self.node_id,
            "iteration": self.iteration,
            "approved": self.approved,
        }


def _check_caller(request: dict[str, Any], caller: Principal | None, key: dict[str, Any]) -> None:
    """`allowed_users` / `allowed_scopes` bind whoever the surface knows the caller to be."""
    if caller is None:
        return
    users = request.get("allowedUsers") or []
    scopes = request.get("allowedScopes") or []
    if users and caller.user_id not in users:
        raise SmithersError("FORBIDDEN", "this approval is restricted to other users", key)
    if scopes and not caller.has_any_scope(scopes):
        raise SmithersError("FORBIDDEN", "this approval needs a scope the caller lacks", key)


def _is_option(value: Any, keys: list[Any]) -> bool:
    # By type too: JSON `true` must not pass for an option keyed 1.
    return any(type(value) is type(k) and value == k for k in keys)


def _check_choice(request: dict[str, Any], decision: Any, approved: bool) -> None:
    """A `select` decision names one option, a `rank` decision orders a non-empty subset of
    them, each once. An approval of such a node needs one; a denial may carry one, checked
    the same way."""
    mode = request.get("mode", "approve")
    keys = [o.get("key") for o in request.get("options") or [] if isinstance(o, dict)]
    if mode not in ("select", "rank") or not keys or (decision is None and not approved):
        return
    choice = decision if isinstance(decision, dict) else {}
    if mode == "select" and not _is_option(choice.get("selected"), keys):
        raise SmithersError(
            "INVALID_REQUEST",
            "decision.selected must be one of the approval's options",
            {"field": "decision.selected", "options": keys},
        )
    ranked = choice.get("ranked")
    if mode == "rank" and not (
        isinstance(ranked, list)
        and ranked
        and len(ranked) <= len(keys)
        and all(_is_option(item, keys) for item in ranked)
        and all(ranked.index(item) == i for i, item in enumerate(ranked))
    ):
        raise SmithersError(
            "INVALID_REQUEST",
            "decision.ranked must order option keys of the approval, each at most once",
            {"field": "decision.ranked", "options": keys},
        )


def decide(
    store: Store,
    run_id: str,
    node_id: str,
    *,
    approved: bool,
    iteration: int = 0,
    note: str | None = None,
    decided_by: str | None = None,
    decision: Any = None,
    caller: Principal | None = None,
) -> Decision:
    """Record a decision on a waiting approval. Nothing is recorded when it is refused:
    `NODE_NOT_WAITING`, `ALREADY_DECIDED`, `FORBIDDEN` (`caller`, when given, is not among
    the approval's allowed users or scopes), `INVALID_REQUEST` (a bad select/rank choice)."""
    with store.write() as tx:
        run = _locked_run(tx, run_id)
        approval = nodes_q.get_approval(tx.conn, run_id, node_id, iteration)
        if approval is not None and approval.status != "requested":
            raise SmithersError(
                "ALREADY_DECIDED",
                f"approval {node_id!r} was already {approval.status}",
                {"nodeId": node_id, "iteration": iteration, "status": approval.status},
            )
        node = nodes_q.get_node(tx.conn, run_id, node_id, iteration)
        if approval is None or node is None or node.state != "waiting-approval" or run.is_terminal:
            raise SmithersError(
                "NODE_NOT_WAITING",
                f"node {node_id!r} is not waiting for approval",
                {"nodeId": node_id, "iteration": iteration},
            )
        _check_caller(approval.request, caller, {"nodeId": node_id, "iteration": iteration})
        _check_choice(approval.request, decision, approved)
        nodes_q.decide_approval(
            tx.conn,
            run_id,
            node_id,
            iteration,
            approved=approved,
            now=tx.now,
            note=note,
            decided_by=decided_by,
            decision=decision,
        )
        wait = node.wait or {}
        fields = {
            "nodeId": node_id,
            "iteration": iteration,
            "note": note,
            "decidedBy": decided_by,
            "decision": decision,
        }
        tx.emit(run_id, "ApprovalGranted" if approved else "ApprovalDenied", **fields)
        on_deny = "fail" if wait.get("gate") else wait.get("onDeny", "fail")
        error = None
        if approved:
            state = "pending" if wait.get("gate") else "finished"
        elif on_deny == "continue":
            state = "finished"
        elif on_deny == "skip":
            state = "skipped"
        else:
            state = "failed"
            error = {"code": "APPROVAL_DENIED", "message": f"approval {node_id!r} was denied"}
        nodes_q.upsert_node(
            tx.conn, run_id, node_id, iteration, now=tx.now, state=state, error=error
        )
        if state == "finished":
            tx.emit(run_id, "NodeFinished", nodeId=node_id, iteration=iteration, attempt=0)
        elif state == "skipped":
            tx.emit(run_id, "NodeSkipped", nodeId=node_id, iteration=iteration)
        elif state == "failed":
            tx.emit(
                run_id, "NodeFailed", nodeId=node_id, iteration=iteration, attempt=0, error=error
            )
        tx.touch(run_id)
        _release_parked(tx, run)
    return Decision(run_id, node_id, iteration, approved)


async def approve(
    store: Store,
    run_id: str,
    node_id: str,
    iteration: int = 0,
    note: str | None = None,
    decided_by: str | None = None,
    decision: Any = None,
    *,
    caller: Principal | None = None,
) -> Decision:
    """Approve a node that waits for approval (`NODE_NOT_WAITING`, `ALREADY_DECIDED`)."""
    return await store.run(
        decide,
        store,
        run_id,
        node_id,
        approved=True,
        iteration=iteration,
        note=note,
        decided_by=decided_by,
        decision=decision,
        caller=caller,
    )


async def deny(
    store: Store,
    run_id: str,
    node_id: str,
    iteration: int = 0,
    note: str | None = None,
    decided_by: str | None = None,
    decision: Any = None,
    *,
    caller: Principal | None = None,
) -> Decision:
    """Deny a node that waits for approval; its `on_deny` decides what happens next."""
    return await store.run(
        decide,
        store,
        run_id,
        node_id,
        approved=False,
        iteration=iteration,
        note=note,
        decided_by=decided_by,
        decision=decision,
        caller=caller,
    )


# -- signals --------------------------------------------------------------------------------


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
        run = _locked_run(tx, run_id)
        if run.is_terminal:
            raise SmithersError(
                "RUN_NOT_ACTIVE",
                f"run {run_id!r} is {run.status}",
                {"runId": run_id, "status": run.status},
            )
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
        if any(_awaits(n.wait or {}, name, correlation_id) for n in waiting):
            _release_parked(tx, run)
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
        if _awaits(n.wait or {}, name, correlation_id)
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
    frames = schema.frames
    text = tx.conn.execute(
        sa.select(frames.c.xml_json)
        .where(frames.c.run_id == run_id)
        .order_by(frames.c.frame_no.desc())
        .limit(1)
    ).scalar_one_or_none()
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


def _awaits(wait: dict[str, Any], name: str, correlation_id: str | None) -> bool:
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


# -- cancel and pause -----------------------------------------------------------------------


def cancel_run(store: Store, run_id: str) -> str:
    with store.write() as tx:
        run = _locked_run(tx, run_id)
        if run.is_terminal:
            return "already-terminal"
        active = ("pending", "in-progress", "waiting-approval", "waiting-event", "waiting-timer")
        for rec in nodes_q.nodes_in_states(tx.conn, run_id, active):
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
                reason="run-cancelled",
            )
        runs_q.update_run(
            tx.conn,
            run_id,
            status="cancelled",
            finished_at_ms=tx.now,
            cancel_requested_at_ms=tx.now,
            runtime_owner_id=None,
            heartbeat_at_ms=None,
        )
        tx.emit(run_id, "RunCancelled")
        tx.touch(run_id)
    return "cancelled"


async def cancel(store: Store, run_id: str) -> str:
    """Cancel a run: `"cancelled"`, or `"already-terminal"` when it had ended."""
    return await store.run(cancel_run, store, run_id)


def pause_run(store: Store, run_id: str) -> str:
    with store.write() as tx:
        run = _locked_run(tx, run_id)
        if run.is_terminal:
            raise SmithersError(
                "RUN_NOT_ACTIVE",
                f"run {run_id!r} is {run.status}",
                {"runId": run_id, "status": run.status},
            )
        if run.status == "paused":
            return "paused"
        if run.status in WAITING_STATUSES:
            runs_q.update_run(tx.conn, run_id, status="paused", pause_requested_at_ms=tx.now)
            tx.emit(run_id, "RunStatusChanged", status="paused")
            tx.touch(run_id)
            return "paused"
        runs_q.update_run(tx.conn, run_id, pause_requested_at_ms=tx.now)
        tx.touch(run_id)
    return "pause-requested"


async def pause(store: Store, run_id: str) -> str:
    """Ask a run to finish its in-flight tasks, start no new ones and park as `paused`."""
    return await store.run(pause_run, store, run_id)


# -- resume ---------------------------------------------------------------------------------


def is_live(run: RunRecord, now: int, owner_id: str | None = None) -> bool:
    """A `running` run some live process drives (fresh heartbeat, owner not gone)."""
    if run.status != "running" or run.runtime_owner_id is None:
        return False
    if owner_id is not None and run.runtime_owner_id == owner_id:
        return True
    if run.heartbeat_at_ms is None or now - run.heartbeat_at_ms > runs_q.STALE_AFTER_MS:
        return False
    return not owner_is_dead(run.runtime_owner_id)


def claim_for_resume(
    store: Store, run_id: str, owner_id: str, workflow_hash: str | None = None
) -> RunRecord:
    """Take ownership of a run to continue it; `RUN_IN_PROGRESS` when someone drives it."""
    with store.write() as tx:
        run = _locked_run(tx, run_id)
        if run.status in ("finished", "cancelled"):
            raise SmithersError(
                "RUN_NOT_ACTIVE",
                f"run {run_id!r} is {run.status}",
                {"runId": run_id, "status": run.status},
            )
        if is_live(run, tx.now, owner_id):
            raise SmithersError("RUN_IN_PROGRESS", f"run {run_id!r} is running", {"runId": run_id})
        if run.status == "failed":
            for rec in nodes_q.nodes_in_states(tx.conn, run_id, ("failed", "cancelled")):
                nodes_q.upsert_node(
                    tx.conn,
                    run_id,
                    rec.node_id,
                    rec.iteration,
                    now=tx.now,
                    state="pending",
                    error=None,
                )
                # A denial that failed the run is asked again, not replayed.
                nodes_q.delete_denied_approval(tx.conn, run_id, rec.node_id, rec.iteration)
        runs_q.update_run(
            tx.conn,
            run_id,
            status="running",
            runtime_owner_id=owner_id,
            heartbeat_at_ms=tx.now,
            pause_requested_at_ms=None,
            finished_at_ms=None,
            error_json=None,
        )
        for node_id, iteration, attempt in nodes_q.abandon_attempts(tx.conn, run_id, tx.now):
            gone = nodes_q.count_abandoned(tx.conn, run_id, node_id, iteration)
            error = {
                "code": "ABANDONED",
                "reason": "abandoned",
                "message": "the process running this attempt died",
            }
            state = "failed" if gone >= MAX_ABANDONED_ATTEMPTS else "pending"
            nodes_q.upsert_node(
                tx.conn,
                run_id,
                node_id,
                iteration,
                now=tx.now,
                state=state,
                error=error if state == "failed" else None,
            )
            tx.emit(
                run_id,
                "NodeFailed",
                nodeId=node_id,
                iteration=iteration,
                attempt=attempt,
                error=error,
            )
        tx.emit(run_id, "RunStarted", resumed=True)
        if workflow_hash and run.workflow_hash and workflow_hash != run.workflow_hash:
            # The recorded version is gone (edited, and not loaded in this process).
            runs_q.update_run(tx.conn, run_id, workflow_hash=workflow_hash)
            tx.emit(run_id, "WorkflowReloaded", fromHash=run.workflow_hash, toHash=workflow_hash)
        if run.status == "running" and run.runtime_owner_id is not None:
            last = run.heartbeat_at_ms or run.started_at_ms or tx.now
            tx.emit(
                run_id,
                "RunAutoResumed",
                lastHeartbeatAtMs=last,
                staleDurationMs=max(0, tx.now - last),
            )
        if run.status != "running":
            tx.emit(run_id, "RunStatusChanged", status="running")
    return run


async def resume(
    store: Store,
    run_id: str,
    workflow: SmithersWorkflow,
    *,
    runtime: Runtime | None = None,
) -> RunResult:
    """Continue a parked, paused, failed or stale run until it finishes or parks again."""
    from .runtime import Runtime

    if runtime is not None:
        await runtime.resume(run_id, workflow)
        return await runtime.wait(run_id)
    async with Runtime(store, adopt=False) as rt:
        await rt.resume(run_id, workflow)
        return await rt.wait(run_id)


# -- time travel ----------------------------------------------------------------------------


def rewind_run(store: Store, run_id: str, frame_no: int, caller: str | None = None) -> int:
    """Forget what happened after `frame_no`; the run is left unowned to be resumed."""
    with store.write() as tx:
        run = _locked_run(tx, run_id)
        if is_live(run, tx.now):
            raise SmithersError(
                "RUN_IN_PROGRESS", f"run {run_id!r} is running; pause it first", {"runId": run_id}
            )
        conn = tx.conn
        t = schema
        exists = conn.execute(
            sa.select(t.frames.c.frame_no).where(
                t.frames.c.run_id == run_id, t.frames.c.frame_no == frame_no
            )
        ).first()
        if exists is None:
            raise SmithersError(
                "INVALID_REQUEST", f"run {run_id!r} has no frame {frame_no}", {"field": "frameNo"}
            )
        last = conn.execute(
            sa.select(sa.func.max(t.frames.c.frame_no)).where(t.frames.c.run_id == run_id)
        ).scalar_one()
        later = conn.execute(
            sa.select(t.nodes.c.node_id, t.nodes.c.iteration, t.nodes.c.output_table).where(
                t.nodes.c.run_id == run_id, t.nodes.c.first_frame_no > frame_no
            )
        ).all()
        for node_id, iteration, output_table in later:
            key = (
                (t.nodes.c.run_id == run_id)
                & (t.nodes.c.node_id == node_id)
                & (t.nodes.c.iteration == iteration)
            )
            conn.execute(sa.delete(t.nodes).where(key))
            for table in (t.attempts, t.approvals):
                conn.execute(
                    sa.delete(table).where(
                        table.c.run_id == run_id,
                        table.c.node_id == node_id,
                        table.c.iteration == iteration,
                    )
                )
            out = store.output_tables.get(output_table or "")
            if out is not None:
                conn.execute(
                    sa.delete(out).where(
                        out.c.run_id == run_id,
                        out.c.node_id == node_id,
                        out.c.iteration == iteration,
                    )
                )
            conn.execute(
                sa.update(t.signals)
                .where(
                    t.signals.c.run_id == run_id,
                    t.signals.c.consumed_by_node_id == node_id,
                    t.signals.c.consumed_iteration == iteration,
                )
                .values(consumed_by_node_id=None, consumed_iteration=None)
            )
        conn.execute(
            sa.delete(t.loops).where(
                t.loops.c.run_id == run_id, t.loops.c.first_frame_no > frame_no
            )
        )
        conn.execute(
            sa.delete(t.frames).where(t.frames.c.run_id == run_id, t.frames.c.frame_no > frame_no)
        )
        runs_q.update_run(
            conn,
            run_id,
            status="running",
            runtime_owner_id=None,
            heartbeat_at_ms=None,
            finished_at_ms=None,
            error_json=None,
            pause_requested_at_ms=None,
        )
        tx.emit(run_id, "TimeTravelJumped", fromFrameNo=last, toFrameNo=frame_no, caller=caller)
        tx.touch(run_id)
    return frame_no


async def rewind(
    store: Store,
    run_id: str,
    frame_no: int,
    workflow: SmithersWorkflow | None = None,
    *,
    runtime: Runtime | None = None,
    caller: str | None = None,
) -> RunResult | None:
    """Time travel: rewind to a frame and (given the workflow) resume from there."""
    await store.run(rewind_run, store, run_id, frame_no, caller)
    if workflow is None:
        return None
    return await resume(store, run_id, workflow, runtime=runtime)


def fork_run(store: Store, run_id: str, frame_no: int, new_run_id: str | None = None) -> str:
    """Copy a run's state up to `frame_no` into a new unowned run."""
    new_id = new_run_id or generate_run_id()
    t = schema
    with store.write() as tx:
        run = _locked_run(tx, run_id)
        conn = tx.conn
        if runs_q.run_exists(conn, new_id):
            raise SmithersError(
                "RUN_ALREADY_EXISTS", f"run {new_id!r} already exists", {"runId": new_id}
            )
        runs_q.insert_run(
            conn,
            run_id=new_id,
            workflow_name=run.workflow_name,
            workflow_path=run.workflow_path,
            workflow_hash=run.workflow_hash,
            owner_id=None,
            now=tx.now,
            input=run.input,
            config=run.config,
            auth=run.auth,
            parent_run_id=run_id,
        )

        def copy(table: sa.Table, *where: Any) -> list[Any]:
            rows = list(conn.execute(sa.select(table).where(table.c.run_id == run_id, *where)))
            for row in rows:
                conn.execute(sa.insert(table).values({**row._mapping, "run_id": new_id}))
            return rows

        copy(t.frames, t.frames.c.frame_no <= frame_no)
        kept = copy(
            t.nodes,
            t.nodes.c.first_frame_no <= frame_no,
            t.nodes.c.state.in_(["finished", "skipped", "failed"]),
        )
        copy(t.loops, t.loops.c.first_frame_no <= frame_no)
        for row in kept:
            m = row._mapping
            key = (m["node_id"], m["iteration"])
            for table in (t.attempts, t.approvals):
                copy(table, table.c.node_id == key[0], table.c.iteration == key[1])
            out = store.output_tables.get(m["output_table"] or "")
            if out is not None:
                copy(out, out.c.node_id == key[0], out.c.iteration == key[1])
        tx.emit(new_id, "RunStarted", forked=True)
        tx.emit(new_id, "RunForked", parentRunId=run_id, parentFrameNo=frame_no)
    return new_id


async def fork(
    store: Store,
    run_id: str,
    frame_no: int,
    new_run_id: str | None = None,
    workflow: SmithersWorkflow | None = None,
    *,
    runtime: Runtime | None = None,
) -> str:
    """Fork a run at a frame into a new run, started when the workflow is given."""
    new_id = await store.run(fork_run, store, run_id, frame_no, new_run_id)
    if workflow is not None:
        if runtime is not None:
            await runtime.resume(new_id, workflow)
        else:
            await resume(store, new_id, workflow)
    return new_id
