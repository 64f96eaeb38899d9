"""Drives one run: render, commit bookkeeping, start ready tasks, persist results, park."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import queries
from .context import Ctx, OutputCache
from .definition import SmithersWorkflow
from .errors import SmithersError, error_json
from .render import Action, Plan, ReadyTask, render, validate_output
from .store import log as log_q
from .store import nodes as nodes_q
from .store import outputs as outputs_q
from .store import runs as runs_q
from .store.base import Store, Tx
from .store.records import RunRecord, dumps
from .tasks import TaskContext, current_task

if TYPE_CHECKING:
    from .runtime import Runtime

logger = logging.getLogger("smithers.engine")

T = TypeVar("T")

PARK_PRIORITY = ("approval", "event", "timer")


class RunLost(Exception):
    """The run is no longer ours to drive (cancelled, finished elsewhere, or claimed)."""


@dataclass(frozen=True)
class Step:
    """What one render committed: the run's outcome, or tasks to start and what next."""

    outcome: str | None
    starts: list[ReadyTask] = field(default_factory=list)
    changed: bool = False
    next_fire_ms: int | None = None


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


def ensure_output_tables(store: Store, workflow: SmithersWorkflow) -> None:
    store.ensure_output_tables({ref.key: ref.model for ref in workflow.outputs})


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
        self._task_contexts: set[TaskContext] = set()
        self.cancelled = False
        # Which optional node tables the workflow has used so far (sticky: a branch that
        # disappears and comes back still finds its state). The first render loads all.
        self.uses: frozenset[str] = nodes_q.ALL_PARTS
        self._rendered_once = False

    # -- signals from outside --------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def cancel(self) -> None:
        """Stop at once: the run was cancelled or lost."""
        self.cancelled = True
        for tctx in self._task_contexts:
            tctx.cancelled.set()
        if self._scope is not None:
            self._scope.cancel()
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------

    async def drive(self) -> str:
        """Drive until the run finishes, fails, parks or is lost; return its status."""
        if self.fresh:
            ensure_output_tables(self.store, self.workflow)
        else:
            await self.store.run(self._load)
        outcome = "lost"
        with anyio.CancelScope() as scope:
            self._scope = scope
            async with anyio.create_task_group() as tg:
                try:
                    outcome = await self._loop(tg)
                except RunLost:
                    outcome = "lost"
                tg.cancel_scope.cancel()
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
        while True:
            self._wake.clear()
            step = await self.store.run(self._step)
            if step.outcome is not None:
                return step.outcome
            for ready in step.starts:
                tg.start_soon(self._run_task, ready)
            if step.changed:
                continue
            if step.next_fire_ms is None:
                await self._wake.wait()
            else:
                with anyio.move_on_after(max(0.0, (step.next_fire_ms - self.runtime.now()) / 1000)):
                    await self._wake.wait()

    # -- one transaction per render --------------------------------------------------------

    def _lock(self, tx: Tx) -> None:
        """Lock the run's row, or raise RunLost when the run is not ours to drive."""
        found = runs_q.lock_ownership(tx.conn, self.run_id)
        if found is None or found[0] != "running" or found[1] != self.owner_id:
            raise RunLost(self.run_id)

    def _step(self) -> Step:
        """Read the run's state, render, and commit what follows, holding the run's row.

        Holding the row from read to write is what keeps outside commands (which lock it
        too) from slipping between the state a render saw and what it commits.
        """
        applied: list[tuple[str, str, int, Any]] = []
        new_frame: tuple[int, str] | None = None
        with self.store.write() as tx:
            run = runs_q.get_run(tx.conn, self.run_id, lock=True)
            if run is None or run.status != "running" or run.runtime_owner_id != self.owner_id:
                return Step("lost" if run is None else run.status)
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
                logger.warning("render of run %s failed: %s", self.run_id, exc)
                error = error_json(exc)
                if not isinstance(exc, SmithersError):
                    error["code"] = "RENDER_FAILED"
                self._end_run(tx, "failed", error)
                return Step("failed")
            if not self._rendered_once and rendered.name and rendered.name != run.workflow_name:
                # The name users give `Workflow("...")` is the run's name, as in the original.
                runs_q.update_run(tx.conn, self.run_id, workflow_name=rendered.name)
            self.uses = rendered.uses | (self.uses if self._rendered_once else frozenset())
            self._rendered_once = True
            plan = rendered.plan
            starts, outcome = self._decide(run, plan)
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
            starting = {(r.task.id, r.iteration) for r in starts}
            for action in plan.actions:
                if action.kind == "pending" and (action.node_id, action.iteration) in starting:
                    tx.emit(
                        self.run_id,
                        "NodePending",
                        nodeId=action.node_id,
                        iteration=action.iteration,
                    )
                    continue  # its row is written once, as started
                self._apply(tx, action, frame_no, applied)
            for ready in starts:
                self._start_attempt(tx, ready, ready.attempt, frame_no)
            if outcome == "failed":
                node_id, iteration, error = plan.failed[0]
                if node_id and error is None:
                    error = {"code": "NODE_FAILED", "message": f"node {node_id!r} failed"}
                if node_id and isinstance(error, dict):
                    error = {**error, "nodeId": node_id, "iteration": iteration}
                self._end_run(tx, "failed", error)
            elif outcome == "finished":
                self._end_run(tx, "finished", None)
            elif outcome is not None:
                runs_q.update_run(
                    tx.conn,
                    self.run_id,
                    status=outcome,
                    runtime_owner_id=None,
                    heartbeat_at_ms=None,
                )
                tx.emit(self.run_id, "RunStatusChanged", status=outcome)
        if new_frame is not None:
            self.frame = new_frame
            self.frame_no = new_frame[0]
        self._remember(applied)
        changed = any(a.kind != "pending" for a in plan.actions)
        return Step(outcome, starts, changed, plan.next_fire_ms)

    @staticmethod
    def _decide(run: RunRecord, plan: Plan) -> tuple[list[ReadyTask], str | None]:
        """Which ready tasks to start, and whether the run ends or parks now."""
        paused = run.pause_requested_at_ms is not None
        starts: list[ReadyTask] = []
        if not paused and not plan.failed:
            starts = plan.ready
            limit = run.config.get("maxConcurrency")
            if isinstance(limit, int) and limit > 0:
                starts = starts[: max(0, limit - plan.running)]
        if plan.failed:
            return [], "failed"
        if plan.done:
            return [], "finished"
        if starts or plan.running or any(a.kind != "pending" for a in plan.actions):
            return starts, None
        if paused:
            return [], "paused"
        if plan.waiting:
            kinds = {kind for kind, _, _ in plan.waiting}
            return [], "waiting-" + next(k for k in PARK_PRIORITY if k in kinds)
        plan.failed.append(("", 0, {"code": "NO_PROGRESS", "message": "no node can progress"}))
        return [], "failed"

    def _end_run(self, tx: Tx, status: str, error: Any) -> None:
        for rec in nodes_q.nodes_in_states(tx.conn, self.run_id, ("in-progress",)):
            nodes_q.upsert_node(
                tx.conn, self.run_id, rec.node_id, rec.iteration, now=tx.now, state="cancelled"
            )
            nodes_q.finish_attempt(
                tx.conn,
                self.run_id,
                rec.node_id,
                rec.iteration,
                rec.last_attempt,
                state="cancelled",
                now=tx.now,
            )
            tx.emit(
                self.run_id,
                "NodeCancelled",
                nodeId=rec.node_id,
                iteration=rec.iteration,
                reason="run-" + status,
            )
        runs_q.update_run(
            tx.conn,
            self.run_id,
            status=status,
            finished_at_ms=tx.now,
            runtime_owner_id=None,
            heartbeat_at_ms=None,
            error_json=None if error is None else dumps(error),
        )
        if status == "finished":
            tx.emit(self.run_id, "RunFinished")
        else:
            tx.emit(self.run_id, "RunFailed", error=error)

    def _start_attempt(self, tx: Tx, ready: ReadyTask, attempt: int, frame_no: int) -> None:
        nodes_q.upsert_node(
            tx.conn,
            self.run_id,
            ready.task.id,
            ready.iteration,
            now=tx.now,
            state="in-progress",
            frame_no=frame_no,
            last_attempt=attempt,
            label=ready.task.label,
            output_table=ready.output.key if ready.output else None,
        )
        nodes_q.insert_attempt(
            tx.conn, self.run_id, ready.task.id, ready.iteration, attempt, tx.now
        )
        tx.emit(
            self.run_id,
            "NodeStarted",
            nodeId=ready.task.id,
            iteration=ready.iteration,
            attempt=attempt,
        )

    def _apply(self, tx: Tx, action: Action, frame_no: int, applied: list[Any]) -> None:
        run_id, node_id, it, data = self.run_id, action.node_id, action.iteration, action.data
        conn, now = tx.conn, tx.now

        def node(state: str, **values: Any) -> None:
            nodes_q.upsert_node(
                conn, run_id, node_id, it, now=now, state=state, frame_no=frame_no, **values
            )

        kind = action.kind
        if kind == "pending":
            node("pending", label=data.get("label"), output_table=data.get("output_table"))
            tx.emit(run_id, "NodePending", nodeId=node_id, iteration=it)
        elif kind == "skip":
            node("skipped")
            tx.emit(run_id, "NodeSkipped", nodeId=node_id, iteration=it)
        elif kind == "request-approval":
            request = data["request"]
            nodes_q.insert_approval(conn, run_id, node_id, it, now=now, request=request)
            node(
                "waiting-approval",
                label=data.get("label"),
                wait={"kind": "approval", "gate": data["gate"], "onDeny": data["on_deny"]},
            )
            tx.emit(run_id, "NodeWaitingApproval", nodeId=node_id, iteration=it)
            tx.emit(run_id, "ApprovalRequested", nodeId=node_id, iteration=it, request=request)
            if data.get("auto"):
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
                node("pending" if data["gate"] else "finished")
                tx.emit(run_id, "ApprovalAutoApproved", nodeId=node_id, iteration=it)
                if not data["gate"]:
                    tx.emit(run_id, "NodeFinished", nodeId=node_id, iteration=it, attempt=0)
        elif kind == "approval-output":
            ref = data["output"]
            approval = nodes_q.get_approval(conn, run_id, node_id, it)
            assert approval is not None
            decision = {
                "approved": approval.status == "approved",
                "note": approval.note,
                "decidedBy": approval.decided_by,
                "decision": approval.decision,
            }
            if self._write_output(
                tx,
                ref,
                node_id,
                it,
                decision,
                applied,
                on_invalid=lambda err: node("failed", error=err),
            ):
                node("finished", output_table=ref.key)
        elif kind == "wait-event":
            node(
                "waiting-event",
                label=data.get("label"),
                fires_at_ms=data["fires_at"],
                wait={"signal": data["signal"], "correlationId": data["correlation_id"]},
            )
            tx.emit(
                run_id,
                "NodeWaitingEvent",
                nodeId=node_id,
                iteration=it,
                signalName=data["signal"],
                correlationId=data["correlation_id"],
            )
        elif kind == "consume-signal":
            signal = data["signal"]
            if not nodes_q.consume_signal(conn, run_id, signal.seq, node_id, it):
                return
            wait = {"signal": signal.signal_name, "seq": signal.seq, "data": signal.data}

            def invalid(err: Any) -> None:
                node("failed", error=err, wait=wait)
                tx.emit(run_id, "NodeFailed", nodeId=node_id, iteration=it, attempt=0, error=err)

            if data["output"] is None or self._write_output(
                tx, data["output"], node_id, it, signal.data, applied, on_invalid=invalid
            ):
                ref = data["output"]
                node("finished", wait=wait, fires_at_ms=None, output_table=ref and ref.key)
                tx.emit(run_id, "NodeFinished", nodeId=node_id, iteration=it, attempt=0)
        elif kind == "signal-timeout":
            on_timeout = data["on_timeout"]
            if on_timeout == "skip":
                node("skipped")
                tx.emit(run_id, "NodeSkipped", nodeId=node_id, iteration=it)
            elif on_timeout == "continue":
                node("finished", wait={"timedOut": True})
                tx.emit(run_id, "NodeFinished", nodeId=node_id, iteration=it, attempt=0)
            else:
                err = {"code": "SIGNAL_TIMEOUT", "message": f"no signal for {node_id!r} in time"}
                node("failed", error=err)
                tx.emit(run_id, "NodeFailed", nodeId=node_id, iteration=it, attempt=0, error=err)
        elif kind == "start-timer":
            node("waiting-timer", label=data.get("label"), fires_at_ms=data["fires_at"])
            tx.emit(
                run_id, "NodeWaitingTimer", nodeId=node_id, iteration=it, firesAtMs=data["fires_at"]
            )
        elif kind == "fire-timer":
            node("finished")
            tx.emit(run_id, "TimerFired", nodeId=node_id, firesAtMs=data["fires_at"], firedAtMs=now)
            tx.emit(run_id, "NodeFinished", nodeId=node_id, iteration=it, attempt=0)
        elif kind == "advance-loop":
            nodes_q.start_loop_iteration(conn, run_id, node_id, it, now=now, frame_no=frame_no)
        else:  # pragma: no cover - the walk only plans the kinds above
            raise AssertionError(kind)

    def _write_output(
        self,
        tx: Tx,
        ref: Any,
        node_id: str,
        iteration: int,
        value: Any,
        applied: list[Any],
        on_invalid: Callable[[Any], None],
    ) -> bool:
        try:
            model = validate_output(ref, value)
        except Exception as exc:
            on_invalid(error_json(exc))
            return False
        assert model is not None
        outputs_q.write_output(
            tx.conn,
            self.store.output_tables[ref.key],
            ref.model,
            run_id=self.run_id,
            node_id=node_id,
            iteration=iteration,
            value=model,
        )
        applied.append((ref.key, node_id, iteration, model))
        return True

    # -- tasks -----------------------------------------------------------------------------

    async def _run_task(self, ready: ReadyTask) -> None:
        attempt = ready.attempt
        abandoned = 0
        if attempt > 1:
            abandoned = await self.store.run(self._count_abandoned, ready)
        try:
            while True:
                try:
                    value = await self._execute(ready, attempt)
                    model = validate_output(ready.output, value)
                except Exception as exc:
                    err = error_json(exc)
                    failures = attempt - abandoned
                    if failures <= ready.task.retries:
                        await self.store.run(self._retry, ready, attempt, err)
                        delay = ready.task.retry_backoff_ms * (2 ** (failures - 1)) / 1000
                        await anyio.sleep(min(delay, 60.0))
                        attempt += 1
                        await self.store.run(self._restart, ready, attempt)
                        continue
                    await self.store.run(self._finish_task, ready, attempt, None, err)
                    break
                else:
                    await self.store.run(self._finish_task, ready, attempt, model, None)
                    break
        except RunLost:
            pass
        self._wake.set()

    def _count_abandoned(self, ready: ReadyTask) -> int:
        with self.store.read() as conn:
            return nodes_q.count_abandoned(conn, self.run_id, ready.task.id, ready.iteration)

    async def _execute(self, ready: ReadyTask, attempt: int) -> Any:
        fn = ready.task.run
        if not callable(fn):
            return fn
        tctx = TaskContext(
            run_id=self.run_id,
            node_id=ready.task.id,
            iteration=ready.iteration,
            attempt=attempt,
            root_dir=self.runtime.root_dir,
            allow_network=self.runtime.allow_network,
            emit=self._emit_from_task,
        )
        takes_ctx = _takes_argument(fn)
        args = (tctx,) if takes_ctx else ()
        current_task.set(tctx)
        self._task_contexts.add(tctx)
        try:
            if ready.task.timeout_ms is None:
                return await _call(fn, args)
            with anyio.move_on_after(ready.task.timeout_ms / 1000):
                return await _call(fn, args)
            raise SmithersError("TASK_TIMEOUT", f"task timed out after {ready.task.timeout_ms} ms")
        finally:
            # A task that timed out leaves its thread behind: tell its tools to stop.
            tctx.cancelled.set()
            self._task_contexts.discard(tctx)

    def _emit_from_task(self, type_: str, **fields: Any) -> None:
        """Append an event a task produced (output lines, tool calls) while the run is ours."""
        with self.store.write() as tx:
            run = runs_q.get_run(tx.conn, self.run_id, lock=True)
            if run is None or run.status != "running":
                return
            tx.emit(self.run_id, type_, **fields)

    def _retry(self, ready: ReadyTask, attempt: int, err: Any) -> None:
        with self.store.write() as tx:
            self._lock(tx)
            nodes_q.finish_attempt(
                tx.conn,
                self.run_id,
                ready.task.id,
                ready.iteration,
                attempt,
                state="failed",
                now=tx.now,
                error=err,
            )
            tx.emit(
                self.run_id,
                "NodeFailed",
                nodeId=ready.task.id,
                iteration=ready.iteration,
                attempt=attempt,
                error=err,
            )
            tx.emit(
                self.run_id,
                "NodeRetrying",
                nodeId=ready.task.id,
                iteration=ready.iteration,
                attempt=attempt + 1,
            )

    def _restart(self, ready: ReadyTask, attempt: int) -> None:
        with self.store.write() as tx:
            self._lock(tx)
            self._start_attempt(tx, ready, attempt, self.frame_no)

    def _finish_task(self, ready: ReadyTask, attempt: int, model: Any, err: Any) -> None:
        node_id, it = ready.task.id, ready.iteration
        applied: list[Any] = []
        with self.store.write() as tx:
            self._lock(tx)
            state = "failed" if err is not None else "finished"
            if model is not None and ready.output is not None:
                outputs_q.write_output(
                    tx.conn,
                    self.store.output_tables[ready.output.key],
                    ready.output.model,
                    run_id=self.run_id,
                    node_id=node_id,
                    iteration=it,
                    value=model,
                )
                applied.append((ready.output.key, node_id, it, model))
            nodes_q.finish_attempt(
                tx.conn, self.run_id, node_id, it, attempt, state=state, now=tx.now, error=err
            )
            nodes_q.upsert_node(
                tx.conn, self.run_id, node_id, it, now=tx.now, state=state, error=err
            )
            if err is None:
                tx.emit(self.run_id, "NodeFinished", nodeId=node_id, iteration=it, attempt=attempt)
            else:
                tx.emit(
                    self.run_id,
                    "NodeFailed",
                    nodeId=node_id,
                    iteration=it,
                    attempt=attempt,
                    error=err,
                )
        self._remember(applied)

    def _remember(self, applied: list[tuple[str, str, int, Any]]) -> None:
        """Add outputs committed by this driver to its cache (after the commit)."""
        for key, node_id, iteration, value in applied:
            self.outputs.setdefault(key, {})[(node_id, iteration)] = value


async def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """A task's function: coroutine functions on the loop, others in a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await anyio.to_thread.run_sync(partial(fn, *args), abandon_on_cancel=True)
    if inspect.isawaitable(result):
        result = await result
    return result


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 1


__all__ = [
    "RunDriver",
    "RunLost",
    "SmithersError",
    "ensure_output_tables",
]
