"""Drives one run: render, commit bookkeeping, start ready tasks, persist results, park."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import anyio

from .. import queries, runlog
from ..context import Ctx, OutputCache
from ..definition import SmithersWorkflow
from ..errors import SmithersError, error_json
from ..store import log as log_q
from ..store import nodes as nodes_q
from ..store import outputs as outputs_q
from ..store import runs as runs_q
from ..store.base import Tx
from ..store.records import RunRecord, dumps
from .actions import Pending
from .apply import apply_action
from .attempts import Attempts, Finished, RunLost, lock_owned, start_attempt
from .ending import end_run
from .outputs import Applied, ensure_output_tables, remember
from .plan import Failure, Plan, ReadyTask
from .render import render

if TYPE_CHECKING:
    from ..runtime import Runtime

PARK_PRIORITY = ("approval", "event", "timer")
NO_PROGRESS = {"code": "NO_PROGRESS", "message": "no node can progress"}


@dataclass(frozen=True)
class Step:
    """What one render committed: the run's outcome, or tasks to start and what next."""

    outcome: str | None
    starts: list[ReadyTask] = field(default_factory=list)
    changed: bool = False
    next_fire_ms: int | None = None
    # For the driver once the step has committed: its new frame and the outputs written.
    frame: tuple[int, str] | None = None
    applied: list[Applied] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """Which ready tasks to start, and whether the run ends (and why it fails) or parks."""

    starts: list[ReadyTask]
    outcome: str | None = None
    failure: Failure | None = None


def decide(run: RunRecord, plan: Plan) -> Decision:
    """What the run does with a plan: start tasks (up to its concurrency), end, or park."""
    if plan.failed:
        return Decision([], "failed", plan.failed[0])
    if plan.done:
        return Decision([], "finished")
    paused = run.pause_requested_at_ms is not None
    starts: list[ReadyTask] = []
    if not paused:
        starts = plan.ready
        limit = run.config.get("maxConcurrency")
        if isinstance(limit, int) and limit > 0:
            starts = starts[: max(0, limit - plan.running)]
    if starts or plan.running or any(not isinstance(a, Pending) for a in plan.actions):
        return Decision(starts)
    if paused:
        return Decision([], "paused")
    if plan.waiting:
        kinds = {wait.kind for wait in plan.waiting}
        return Decision([], "waiting-" + next(k for k in PARK_PRIORITY if k in kinds))
    return Decision([], "failed", Failure("", 0, NO_PROGRESS))


class RunDriver:
    """The engine of one run in the process that owns it."""

    def __init__(
        self, runtime: Runtime, workflow: SmithersWorkflow, run_id: str, *, fresh: bool = False
    ) -> None:
        # A fresh run (just created) has no outputs or frames to load.
        self.fresh = fresh
        self.runtime = runtime
        self.store = runtime.store
        self.owner_id = runtime.owner_id
        self.workflow = workflow
        self.run_id = run_id
        self.outputs: OutputCache = {}
        self.frame: tuple[int, str] | None = None
        self.frame_no = 0
        self._wake = asyncio.Event()
        self._scope: anyio.CancelScope | None = None
        self.attempts = Attempts(
            store=self.store,
            run_id=run_id,
            owner_id=self.owner_id,
            frame_no=lambda: self.frame_no,
            root_dir=runtime.root_dir,
            allow_network=runtime.allow_network,
            workflow_name=lambda: self.workflow_name,
            finished=self._finished_task,
        )
        # Tasks ended, to record in the next render's transaction. Appended on the loop,
        # read by `_step` (in a worker thread on PostgreSQL), forgotten once committed.
        self._finished: list[Finished] = []
        self._finished_lock = threading.Lock()
        self._first: Step | None = None  # the render done as the run was created
        self.workflow_name = workflow.name  # the run's, once a render names it
        self.cancelled = False
        # Which optional node tables the workflow has used so far (sticky: a branch that
        # disappears and comes back still finds its state). The first render loads all.
        self.uses: frozenset[str] = nodes_q.ALL_PARTS
        self._rendered_once = False
        self._announced = False

    # -- signals from outside --------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def cancel(self) -> None:
        """Stop at once: the run was cancelled or lost."""
        self.cancelled = True
        self.attempts.cancel()
        if self._scope is not None:
            self._scope.cancel()
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def drive(self) -> str:
        """Drive until the run finishes, fails, parks or is lost; return its status."""
        if self._first is not None:
            self._committed(self._first)
        if self.fresh:
            ensure_output_tables(self.store, self.workflow)
        else:
            await self.store.run(self._load)
        outcome = "lost"
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self.cancelled:  # before the driver began (its first render came with it)
                    scope.cancel()
                async with anyio.create_task_group() as tg:
                    try:
                        outcome = await self._loop(tg)
                    except RunLost:
                        outcome = "lost"
                    tg.cancel_scope.cancel()
        finally:  # the runtime stopping too: tasks that ended meanwhile keep their results
            if self._finished:
                with anyio.CancelScope(shield=True):
                    await self.store.run(self._record_ended)
        if scope.cancelled_caught or self.cancelled:
            run = await self.store.run(queries.get_run, self.store, self.run_id)
            outcome = run.status if run is not None else "lost"
        return outcome

    def _load(self) -> None:
        ensure_output_tables(self.store, self.workflow)
        with self.store.read() as conn:
            for ref in self.workflow.outputs:
                table = self.store.output_tables[ref.key]
                rows = outputs_q.read_outputs(conn, table, ref.model, self.run_id)
                self.outputs[ref.key] = {
                    (node_id, it): ref.model.model_validate(data) for node_id, it, data in rows
                }
            self.frame = log_q.last_frame(conn, self.run_id)
            self.frame_no = self.frame[0] if self.frame else 0

    async def _loop(self, tg: anyio.abc.TaskGroup) -> str:
        step, self._first = self._first, None
        while True:
            self._wake.clear()
            if step is None:
                step = await self.store.run(self._step)
            if step.outcome is not None:
                return step.outcome
            for ready in step.starts:
                tg.start_soon(self._run_task, ready)
            changed, fire_ms, step = step.changed, step.next_fire_ms, None
            if changed:
                continue
            if fire_ms is None:
                await self._wake.wait()
            else:
                with anyio.move_on_after(max(0.0, (fire_ms - self.runtime.now()) / 1000)):
                    await self._wake.wait()

    async def _run_task(self, ready: ReadyTask) -> None:
        await self.attempts.run(ready)
        self._wake.set()

    def _finished_task(self, done: Finished) -> None:
        with self._finished_lock:
            self._finished.append(done)

    # -- one transaction per render --------------------------------------------------------

    def _step(self) -> Step:
        """Record the tasks that ended, then render and commit what follows.

        Called again when its transaction is retried (PostgreSQL): ended tasks are
        forgotten only once committed (or once the run is no longer ours).
        """
        with self._finished_lock:
            finished = self._finished[:]
        step = self._render_step(finished)
        with self._finished_lock:
            del self._finished[: len(finished)]
        return step

    def _record_ended(self) -> None:
        with self._finished_lock:
            finished = self._finished[:]
        with contextlib.suppress(RunLost), self.store.write() as tx:
            lock_owned(tx, self.run_id, self.owner_id)
            applied: list[Applied] = []
            for done in finished:
                self.attempts.record(tx, done, applied)
        with self._finished_lock:
            del self._finished[: len(finished)]

    def first_render(self, tx: Tx) -> None:
        """Render a new run in the transaction that creates it (`Runtime.start`), so its
        first tasks start with `RunStarted`; the driver, started once that transaction
        has committed, begins with this step. Its node tables are empty: nothing else can
        have written to a run this transaction is creating."""
        self._first = self._render(tx, [], nodes_q.NodeTables())

    def _render_step(self, finished: list[Finished]) -> Step:
        with self.store.write() as tx:
            step = self._render(tx, finished)
        self._committed(step)
        return step

    def _committed(self, step: Step) -> None:
        if step.frame is not None:
            self.frame = step.frame
            self.frame_no = step.frame[0]
        remember(self.outputs, step.applied)

    def _render(
        self, tx: Tx, finished: list[Finished], tables: nodes_q.NodeTables | None = None
    ) -> Step:
        """Read the run's state, render, and write what follows, holding the run's row.

        Holding the row from read to write is what keeps outside commands (which lock it
        too) from slipping between the state a render saw and what it commits.
        """
        applied: list[Applied] = []
        new_frame: tuple[int, str] | None = None
        run = runs_q.get_run(tx.conn, self.run_id, lock=True)
        if run is None or run.status != "running" or run.runtime_owner_id != self.owner_id:
            return Step("lost" if run is None else run.status)
        if finished:
            ended: list[Applied] = []
            for done in finished:
                self.attempts.record(tx, done, ended)
            # The render must see them; a transaction that fails after this ends the
            # driver (or, on PostgreSQL, runs again and writes the same outputs).
            remember(self.outputs, ended)
        if tables is None:
            tables = nodes_q.load_node_tables(tx.conn, self.run_id, self.uses)
        ctx = Ctx(
            workflow=self.workflow,
            run_id=self.run_id,
            input=run.input,
            auth=run.auth,
            outputs=self.outputs,
            tables=tables,
        )
        try:
            rendered = render(
                self.workflow, partial(self.workflow.render, ctx), tables, self.outputs, tx.now
            )
        except Exception as exc:
            error = error_json(exc, self.runtime.root_dir)
            if not isinstance(exc, SmithersError):
                error["code"] = "RENDER_FAILED"
            self._announce()
            end_run(tx, self.run_id, "failed", error)
            return Step("failed")
        self.workflow_name = rendered.name or run.workflow_name
        self._announce()
        if not self._rendered_once and rendered.name and rendered.name != run.workflow_name:
            # The name users give `Workflow("...")` is the run's name, as in the original.
            runs_q.update_run(tx.conn, self.run_id, workflow_name=rendered.name)
        self.uses = rendered.uses | (self.uses if self._rendered_once else frozenset())
        self._rendered_once = True
        plan = rendered.plan
        decision = decide(run, plan)
        if self.frame is None or self.frame[1] != rendered.frame_hash:
            new_frame = (0 if self.frame is None else self.frame[0] + 1, rendered.frame_hash)
            log_q.insert_frame(
                tx.conn,
                self.run_id,
                new_frame[0],
                now=tx.now,
                xml_json=rendered.frame_text,
                xml_hash=rendered.frame_hash,
                mounted_task_ids_json=dumps(rendered.mounted_task_ids),
                task_index_json=dumps(rendered.task_index),
            )
            tx.emit(self.run_id, "FrameCommitted", frameNo=new_frame[0], xmlHash=new_frame[1])
        frame_no = new_frame[0] if new_frame else self.frame_no
        starting = {(r.task.id, r.iteration) for r in decision.starts}
        for action in plan.actions:
            if isinstance(action, Pending) and (action.node_id, action.iteration) in starting:
                tx.emit(
                    self.run_id,
                    "NodePending",
                    nodeId=action.node_id,
                    iteration=action.iteration,
                )
                continue  # its row is written once, as started
            apply_action(
                tx,
                self.run_id,
                action,
                frame_no=frame_no,
                output_tables=self.store.output_tables,
                applied=applied,
            )
        for ready in decision.starts:
            start_attempt(tx, self.run_id, ready, ready.attempt, frame_no)
        self._conclude(tx, decision)
        changed = any(not isinstance(a, Pending) for a in plan.actions)
        return Step(
            decision.outcome, decision.starts, changed, plan.next_fire_ms, new_frame, applied
        )

    def _announce(self) -> None:
        """Log the run starting (or resuming) here, once, when its first render is done."""
        if not self._announced:
            self._announced = True
            runlog.run_started(self.run_id, self.workflow_name, resumed=not self.fresh)

    def _conclude(self, tx: Tx, decision: Decision) -> None:
        """End or park the run as decided."""
        outcome, failure = decision.outcome, decision.failure
        if failure is not None:
            node_id, error = failure.node_id, failure.error
            if node_id and error is None:
                error = {"code": "NODE_FAILED", "message": f"node {node_id!r} failed"}
            if node_id and isinstance(error, dict):
                error = {**error, "nodeId": node_id, "iteration": failure.iteration}
            end_run(tx, self.run_id, "failed", error)
        elif outcome == "finished":
            end_run(tx, self.run_id, "finished")
        elif outcome is not None:
            runs_q.update_run(
                tx.conn,
                self.run_id,
                status=outcome,
                runtime_owner_id=None,
                heartbeat_at_ms=None,
            )
            tx.emit(self.run_id, "RunStatusChanged", status=outcome)
