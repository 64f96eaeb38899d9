"""Commands on a run's course: cancel, pause, resume.

Each checks and changes state in one transaction that also appends its events, so any
process may run them; the owner of the run (or whoever adopts a parked one) observes the
change through the bus in-process and through the run's `command_seq` elsewhere.
Approvals are in `decisions`, signals in `signals`, rewind and fork in `timetravel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import SmithersError
from .lifecycle import locked_run
from .store import nodes as nodes_q
from .store import runs as runs_q
from .store.base import Store
from .store.records import WAITING_STATUSES

if TYPE_CHECKING:
    from .definition import SmithersWorkflow
    from .runtime import RunResult, Runtime


def cancel_run(store: Store, run_id: str) -> str:
    with store.write() as tx:
        run = locked_run(tx, run_id)
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
        run = locked_run(tx, run_id)
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
