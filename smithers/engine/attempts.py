"""The attempts of a run's tasks: execution, timeouts, retries and their results."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio

from .. import runlog
from ..errors import SmithersError, error_json
from ..store import nodes as nodes_q
from ..store import runs as runs_q
from ..store.base import Store, Tx
from ..tasks import TaskContext, current_task
from .outputs import Applied, validate_output, write_output
from .plan import ReadyTask

# A task abandoned by dead processes this many times is failed rather than retried again.


class RunLost(Exception):
    """The run is no longer ours to drive (cancelled, finished elsewhere, or claimed)."""


def lock_owned(tx: Tx, run_id: str, owner_id: str) -> None:
    """Lock the run's row, or raise RunLost when the run is not ours to drive."""
    found = runs_q.lock_ownership(tx.conn, run_id)
    if found is None or found[0] != "running" or found[1] != owner_id:
        raise RunLost(run_id)


def start_attempt(tx: Tx, run_id: str, ready: ReadyTask, attempt: int, frame_no: int) -> None:
    nodes_q.upsert_node(
        tx.conn,
        run_id,
        ready.task.id,
        ready.iteration,
        now=tx.now,
        state="in-progress",
        frame_no=frame_no,
        last_attempt=attempt,
        label=ready.task.label,
        output_table=ready.output.key if ready.output else None,
    )
    nodes_q.insert_attempt(tx.conn, run_id, ready.task.id, ready.iteration, attempt, tx.now)
    tx.emit(run_id, "NodeStarted", nodeId=ready.task.id, iteration=ready.iteration, attempt=attempt)


@dataclass(frozen=True)
class Finished:
    """How a task's last attempt ended: its output (`model`) or its error (`err`)."""

    ready: ReadyTask
    attempt: int
    model: Any
    err: Any


@dataclass
class Attempts:
    """Runs the tasks of one run owned by `owner_id`, each through its attempts.

    A task's end is handed to `finished`: the driver records it (`record`) in the
    transaction of its next render, so the task's result and what follows from it (the
    next task started, the run finished) commit together.
    """

    store: Store
    run_id: str
    owner_id: str
    frame_no: Callable[[], int]  # the frame new attempts start in
    root_dir: str
    allow_network: bool
    workflow_name: Callable[[], str]  # the run's name, for log lines
    finished: Callable[[Finished], None]
    contexts: set[TaskContext] = field(default_factory=set)

    def cancel(self) -> None:
        """Tell the tools of running tasks to stop."""
        for tctx in self.contexts:
            tctx.cancelled.set()

    async def run(self, ready: ReadyTask) -> None:
        """Run a started task until it finishes, fails for good, or the run is lost."""
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
                    err = error_json(exc, self.root_dir)
                    failures = attempt - abandoned
                    if failures <= ready.task.retries:
                        await self.store.run(self._retry, ready, attempt, err)
                        delay = ready.task.retry_backoff_ms * (2 ** (failures - 1)) / 1000
                        await anyio.sleep(min(delay, 60.0))
                        attempt += 1
                        await self.store.run(self._restart, ready, attempt)
                        continue
                    self.finished(Finished(ready, attempt, None, err))
                    break
                else:
                    self.finished(Finished(ready, attempt, model, None))
                    break
        except RunLost:
            pass

    def _log_failure(self, ready: ReadyTask, attempt: int, err: Any, *, retrying: bool) -> None:
        """Called in the transaction that records the failure, once the run is known to be
        ours: a run lost meanwhile logs nothing, and a cancelled driver cannot skip it."""
        runlog.task_failed(
            self.run_id,
            self.workflow_name(),
            ready.task.id,
            ready.iteration,
            attempt,
            err,
            retrying=retrying,
        )

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
            root_dir=self.root_dir,
            allow_network=self.allow_network,
            emit=self._emit_from_task,
        )
        args = (tctx,) if _takes_argument(fn) else ()
        current_task.set(tctx)
        self.contexts.add(tctx)
        try:
            if ready.task.timeout_ms is None:
                return await _call(fn, args)
            with anyio.move_on_after(ready.task.timeout_ms / 1000):
                return await _call(fn, args)
            raise SmithersError("TASK_TIMEOUT", f"task timed out after {ready.task.timeout_ms} ms")
        finally:
            # A task that timed out leaves its thread behind: tell its tools to stop.
            tctx.cancelled.set()
            self.contexts.discard(tctx)

    def _emit_from_task(self, type_: str, **fields: Any) -> None:
        """Append an event a task produced (output lines, tool calls) while the run is ours."""
        self.store.call(self._append, type_, fields)

    def _append(self, type_: str, fields: dict[str, Any]) -> None:
        """Dropped unless the run is still ours, checked in the appending transaction: an
        owner that stalled past the staleness window wakes up to find the run adopted."""
        with self.store.write() as tx:
            try:
                lock_owned(tx, self.run_id, self.owner_id)
            except RunLost:
                return  # the driver stops this task when its watch sees the run lost
            tx.emit(self.run_id, type_, **fields)

    def _retry(self, ready: ReadyTask, attempt: int, err: Any) -> None:
        node_id, it = ready.task.id, ready.iteration
        with self.store.write() as tx:
            lock_owned(tx, self.run_id, self.owner_id)
            self._log_failure(ready, attempt, err, retrying=True)
            nodes_q.finish_attempt(
                tx.conn, self.run_id, node_id, it, attempt, state="failed", now=tx.now, error=err
            )
            tx.emit(
                self.run_id, "NodeFailed", nodeId=node_id, iteration=it, attempt=attempt, error=err
            )
            tx.emit(self.run_id, "NodeRetrying", nodeId=node_id, iteration=it, attempt=attempt + 1)

    def _restart(self, ready: ReadyTask, attempt: int) -> None:
        with self.store.write() as tx:
            lock_owned(tx, self.run_id, self.owner_id)
            start_attempt(tx, self.run_id, ready, attempt, self.frame_no())

    def record(self, tx: Tx, done: Finished, applied: list[Applied]) -> None:
        """Record a task's end in `tx`, which holds the run (its owner checked)."""
        node_id, it, attempt, err = done.ready.task.id, done.ready.iteration, done.attempt, done.err
        if err is not None:
            self._log_failure(done.ready, attempt, err, retrying=False)
        state = "failed" if err is not None else "finished"
        output = done.ready.output
        if done.model is not None and output is not None:
            table = self.store.output_tables[output.key]
            applied.append(write_output(tx, table, output, self.run_id, node_id, it, done.model))
        nodes_q.finish_attempt(
            tx.conn, self.run_id, node_id, it, attempt, state=state, now=tx.now, error=err
        )
        nodes_q.upsert_node(tx.conn, self.run_id, node_id, it, now=tx.now, state=state, error=err)
        if err is None:
            tx.emit(self.run_id, "NodeFinished", nodeId=node_id, iteration=it, attempt=attempt)
        else:
            tx.emit(
                self.run_id, "NodeFailed", nodeId=node_id, iteration=it, attempt=attempt, error=err
            )


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
