"""Commands on a run's course: cancel, pause, resume.

Each checks and changes state in one transaction that also appends its events, so any
process may run them; the owner of the run (or whoever adopts a parked one) observes the
change through the bus in-process and through the run's `command_seq` elsewhere.
Approvals are in `decisions`, signals in `signals`, rewind and fork in `timetravel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine import ACTIVE_NODES, end_run
from .errors import run_not_active
from .lifecycle import locked_run
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
        end_run(tx, run_id, "cancelled", cancel_nodes=ACTIVE_NODES)
        tx.touch(run_id)
    return "cancelled"


async def cancel(store: Store, run_id: str) -> str:
    """Cancel a run: `"cancelled"`, or `"already-terminal"` when it had ended."""
    return await store.run(cancel_run, store, run_id)


def pause_run(store: Store, run_id: str) -> str:
    with store.write() as tx:
        run = locked_run(tx, run_id)
        if run.is_terminal:
            raise run_not_active(run_id, run.status)
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
