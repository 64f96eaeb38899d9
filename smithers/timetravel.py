"""Time travel: rewind a run to a frame, or fork a new run from one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SmithersError
from .lifecycle import generate_run_id, is_live, locked_run, reopen_run
from .principal import Principal
from .store import runs as runs_q
from .store import timetravel as tt_q
from .store.base import Store, Tx
from .store.records import RunRecord

if TYPE_CHECKING:
    from .definition import SmithersWorkflow
    from .runtime import RunResult, Runtime

from .commands import resume


@dataclass(frozen=True)
class Rewound:
    frame_no: int  # the frame the run goes on from
    deleted_frames: int
    deleted_attempts: int


def may_rewind(principal: Principal, run: RunRecord) -> bool:
    """Role `admin`, or the user who started the run (its `ctx.auth.triggeredBy`)."""
    if principal.role == "admin":
        return True
    started_by = (run.auth or {}).get("triggeredBy")
    return principal.user_id is not None and started_by == principal.user_id


def rewind_run(
    store: Store,
    run_id: str,
    frame_no: int,
    caller: str | None = None,
    principal: Principal | None = None,
) -> Rewound:
    """Forget what happened after `frame_no`; the run is left `running` and unowned, for
    whichever runtime can load its workflow to adopt (a finished or parked run goes on
    too). A run a live process drives is refused (RUN_IN_PROGRESS: pause it first), and
    so is a `principal` that `may_rewind` refuses (FORBIDDEN)."""
    with store.write() as tx:
        run = locked_run(tx, run_id)
        if principal is not None and not may_rewind(principal, run):
            raise SmithersError(
                "FORBIDDEN",
                f"only an admin or the user who started run {run_id!r} may rewind it",
                {"runId": run_id},
            )
        if is_live(run, tx.now):
            raise SmithersError(
                "RUN_IN_PROGRESS", f"run {run_id!r} is running; pause it first", {"runId": run_id}
            )
        _require_frame(tx, run_id, frame_no)
        conn = tx.conn
        last = tt_q.last_frame_no(conn, run_id)
        frames, attempts = tt_q.forget_after(conn, run_id, frame_no, store.output_tables)
        reopen_run(tx, run_id)
        tx.emit(
            run_id,
            "TimeTravelJumped",
            fromFrameNo=last,
            toFrameNo=frame_no,
            caller=caller,
            deletedFrames=frames,
            deletedAttempts=attempts,
        )
        tx.touch(run_id)
    return Rewound(frame_no, frames, attempts)


def _require_frame(tx: Tx, run_id: str, frame_no: int) -> None:
    if not tt_q.has_frame(tx.conn, run_id, frame_no):
        raise SmithersError(
            "INVALID_REQUEST", f"run {run_id!r} has no frame {frame_no}", {"field": "frameNo"}
        )


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


def fork_run(
    store: Store,
    run_id: str,
    frame_no: int,
    new_run_id: str | None = None,
    auth: dict[str, Any] | None = None,
) -> str:
    """Copy a run's state up to `frame_no` into a new run, `running` and unowned (a
    runtime that adopts runs takes it up at once); the parent is only read. The child
    carries `auth` as its `ctx.auth` when given, else the parent's."""
    new_id = new_run_id or generate_run_id()
    with store.write() as tx:
        run = locked_run(tx, run_id)
        _require_frame(tx, run_id, frame_no)
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
            auth=run.auth if auth is None else auth,
            parent_run_id=run_id,
        )

        tt_q.copy_until(conn, run_id, new_id, frame_no, store.output_tables)
        tx.emit(new_id, "RunStarted", forked=True)
        tx.emit(new_id, "RunForked", parentRunId=run_id, parentFrameNo=frame_no)
        tx.touch(new_id)
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
