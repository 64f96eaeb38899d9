"""The life of a run, each rule once: run ids, liveness and staleness, claiming a run.

Ending a run is `smithers.engine.ending`; every surface that ends or claims a run goes
through these, so the rules cannot drift apart.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.exc import IntegrityError

from .clock import STALE_AFTER_MS, now_ms
from .errors import SmithersError, run_not_active, run_not_found
from .ownership import owner_is_dead
from .store import idempotency as idempotency_q
from .store import nodes as nodes_q
from .store import runs as runs_q
from .store.base import Store, Tx
from .store.records import WAITING_STATUSES, NodeRecord, RunRecord

# A task abandoned by dead processes this many times is failed rather than retried again.
MAX_ABANDONED_ATTEMPTS = 3

if TYPE_CHECKING:
    from .definition import SmithersWorkflow

Liveness = Literal["live", "stale", "orphaned"]


def generate_run_id() -> str:
    return "smi_" + secrets.token_hex(12)


def create_run(
    store: Store,
    workflow: SmithersWorkflow,
    run_id: str,
    *,
    owner_id: str,
    input: Any,
    config: dict[str, Any],
    auth: dict[str, Any] | None,
    idempotency: tuple[str, str] | None = None,
    then: Callable[[Tx], None] | None = None,
) -> str | None:
    """Insert a run owned by `owner_id`, with its `RunStarted`, then call `then` in the
    same transaction. With `idempotency` (`(scope, key)`), the key is bound to the run in
    the same transaction; when the key started a run within 24 h already, that run's id
    is returned and nothing is created."""
    try:
        with store.write() as tx:
            if idempotency is not None:
                first = idempotency_q.run_for_key(tx.conn, *idempotency, tx.now)
                if first is not None:
                    return first
                idempotency_q.record_key(tx.conn, *idempotency, run_id, tx.now)
            runs_q.insert_run(
                tx.conn,
                run_id=run_id,
                workflow_name=workflow.name,
                workflow_path=workflow.path,
                workflow_hash=workflow.content_hash,
                owner_id=owner_id,
                now=tx.now,
                input=input,
                config=config,
                auth=auth,
            )
            tx.emit(run_id, "RunStarted")
            if then is not None:
                then(tx)
    except IntegrityError:
        first = run_for_key(store, idempotency) if idempotency is not None else None
        if first is not None:
            return first  # a launch with the same key committed first
        raise SmithersError(
            "RUN_ALREADY_EXISTS", f"run {run_id!r} already exists", {"runId": run_id}
        ) from None
    return None


def run_for_key(store: Store, idempotency: tuple[str, str]) -> str | None:
    """The run an idempotency key `(scope, key)` started within 24 h, or None."""
    with store.read() as conn:
        return idempotency_q.run_for_key(conn, *idempotency, now_ms())


def liveness(run: RunRecord, now: int) -> Liveness | None:
    """For a `running` run with an owner: `live` (fresh heartbeat, owner not gone),
    `orphaned` (its owner's process is gone) or `stale` (no heartbeat for STALE_AFTER_MS);
    None for any other run (parked, ended, or unowned and free to adopt)."""
    if run.status != "running" or run.runtime_owner_id is None:
        return None
    if owner_is_dead(run.runtime_owner_id):
        return "orphaned"
    if run.heartbeat_at_ms is None or now - run.heartbeat_at_ms > STALE_AFTER_MS:
        return "stale"
    return "live"


def is_live(run: RunRecord, now: int, owner_id: str | None = None) -> bool:
    """A `running` run some live process drives (`owner_id`: that process is us)."""
    if owner_id is not None and run.status == "running" and run.runtime_owner_id == owner_id:
        return True
    return liveness(run, now) == "live"


def stale_before(now: int) -> int:
    """Heartbeats older than this are stale (for queries that select claimable runs)."""
    return now - STALE_AFTER_MS


def locked_run(tx: Tx, run_id: str) -> RunRecord:
    """The run's row, locked until the transaction ends; RUN_NOT_FOUND when there is none."""
    run = runs_q.get_run(tx.conn, run_id, lock=True)
    if run is None:
        raise run_not_found(run_id)
    return run


def release_owned(tx: Tx, owner_id: str, run_ids: list[str]) -> None:
    """A process stops driving runs: those asked to pause park as `paused` (a pause must
    not be lost to whoever adopts the run next; attempts it cut short are taken up again
    on resume), the others are handed back unowned, for another process to adopt at once."""
    for run_id in run_ids:
        run = runs_q.get_run(tx.conn, run_id, lock=True)
        if (
            run is not None
            and run.status == "running"
            and run.runtime_owner_id == owner_id
            and run.pause_requested_at_ms is not None
        ):
            runs_q.update_run(
                tx.conn, run_id, status="paused", runtime_owner_id=None, heartbeat_at_ms=None
            )
            tx.emit(run_id, "RunStatusChanged", status="paused")
    runs_q.release_runs(tx.conn, owner_id, run_ids)


def release_parked(tx: Tx, run: RunRecord) -> None:
    """A parked run that can move again becomes `running` and unowned: anyone may adopt it."""
    if run.status in WAITING_STATUSES:
        runs_q.update_run(
            tx.conn, run.run_id, status="running", runtime_owner_id=None, heartbeat_at_ms=None
        )
        tx.emit(run.run_id, "RunStatusChanged", status="running")


def reopen_run(tx: Tx, run_id: str) -> None:
    """An ended or parked run goes again: `running`, unowned (any process may adopt it),
    its end, error and any pause asked before it ended cleared."""
    runs_q.update_run(
        tx.conn,
        run_id,
        status="running",
        runtime_owner_id=None,
        heartbeat_at_ms=None,
        finished_at_ms=None,
        error_json=None,
        pause_requested_at_ms=None,
    )


def reopen_node(tx: Tx, run_id: str, rec: NodeRecord) -> None:
    """A failed or cancelled node goes again: `pending`, its error cleared (its attempts
    stay, so the next one is numbered after them)."""
    nodes_q.upsert_node(
        tx.conn, run_id, rec.node_id, rec.iteration, now=tx.now, state="pending", error=None
    )
    # A denial that failed the node is asked again, not replayed.
    nodes_q.delete_denied_approval(tx.conn, run_id, rec.node_id, rec.iteration)


def claim_for_resume(
    store: Store,
    run_id: str,
    owner_id: str,
    workflow_hash: str | None = None,
    *,
    adopt: bool = False,
) -> RunRecord:
    """Take ownership of a run to continue it; `RUN_IN_PROGRESS` when someone drives it.
    `adopt`: only a `running` run (released by a decision or signal, or stale), never one
    that has parked or ended since the caller looked (RUN_NOT_ACTIVE)."""
    with store.write() as tx:
        run = locked_run(tx, run_id)
        if run.status in ("finished", "cancelled") or (adopt and run.status != "running"):
            raise run_not_active(run_id, run.status)
        if is_live(run, tx.now, owner_id):
            raise SmithersError("RUN_IN_PROGRESS", f"run {run_id!r} is running", {"runId": run_id})
        if run.status == "failed":
            for rec in nodes_q.nodes_in_states(tx.conn, run_id, ("failed", "cancelled")):
                reopen_node(tx, run_id, rec)
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
                "message": "the attempt was cut short when its process stopped",
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
