"""One per process (or per app): owns runs, heartbeats them, adopts stale or parked ones.

async with Runtime(store, resolve=...) as runtime:
    run_id = await runtime.start(workflow, input={...})
    result = await runtime.wait(run_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc

from . import lifecycle, queries, runlog
from .adoption import adoptable
from .clock import now_ms
from .definition import SmithersWorkflow
from .engine import RunDriver, end_run, ensure_output_tables, in_thread
from .errors import SmithersError, run_not_found, validation_errors
from .events import Event
from .heartbeat import Heartbeat
from .intervals import every
from .ownership import new_owner_id, release_owner_id
from .results import RunResult as RunResult
from .store import runs as runs_q
from .store.base import Store
from .store.postgres import Notice
from .store.records import TERMINAL_STATUSES, WAITING_STATUSES, RunRecord

logger = logging.getLogger("smithers.runtime")

# Which workflow drives a run found in the store (None: not one this process can load).
# A plain function runs in a worker thread; a coroutine function is awaited.
Resolver = Callable[[RunRecord], SmithersWorkflow | Awaitable[SmithersWorkflow | None] | None]

HEARTBEAT_INTERVAL_S = 1.0


@dataclass
class _Live:
    driver: RunDriver
    done: anyio.Event = field(default_factory=anyio.Event)
    command_seq: int = -1


class Runtime:
    """Drives runs in this process; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        resolve: Resolver | None = None,
        root_dir: str = ".",
        allow_network: bool = False,
        adopt: bool = True,
        poll_interval: float = HEARTBEAT_INTERVAL_S,
        timers: bool = True,
    ) -> None:
        self.store = store
        self.timers = timers  # resume parked runs whose timer came due
        self.resolve = resolve
        self.root_dir = root_dir
        self.allow_network = allow_network
        self.adopt = adopt
        self.poll_interval = poll_interval
        self.owner_id = new_owner_id()
        self._live: dict[str, _Live] = {}
        self._adopting: set[str] = set()
        self._claims: dict[str, anyio.Event] = {}
        self._heartbeat = Heartbeat(store, self.owner_id, poll_interval)
        self._tg: anyio.abc.TaskGroup | None = None
        self._tokens: list[object] = []
        self._listening: object | None = None
        self._watch_now: asyncio.Event | None = None

    now = staticmethod(now_ms)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tokens.append(self.store.bus.add_listener(self._on_event))
        self._tokens.append(self.store.bus.add_touch_listener(self._on_touch))
        self._heartbeat.start()
        self._watch_now = asyncio.Event()
        self._listening = self.store.listen(partial(self._on_notice, asyncio.get_running_loop()))
        watch = partial(every, self.poll_interval, self._watch_once, "watching runs")
        self._tg.start_soon(watch, self._watch_now)
        if self.adopt and self.resolve is not None:
            self._tg.start_soon(every, self.poll_interval, self._scan_for_adoption, "adoption")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for token in self._tokens:
            self.store.bus.remove_listener(token)
        self._tokens.clear()
        self.store.unlisten(self._listening)
        self._listening = None
        assert self._tg is not None
        # Drivers remove themselves as they stop: note what we own before stopping them.
        owned = list(self._live)
        for live in list(self._live.values()):
            live.driver.cancel()
        self._tg.cancel_scope.cancel()
        try:
            await self._tg.__aexit__(None, None, None)
        finally:
            self._tg = None
            self._live.clear()
            # Cancelled (Ctrl-C) too: our runs are let go, not left to go stale.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._heartbeat.stop)
                if owned:
                    await self.store.run(self._release, owned)
            release_owner_id(self.owner_id)

    def _release(self, run_ids: list[str]) -> None:
        with self.store.write() as tx:
            lifecycle.release_owned(tx, self.owner_id, run_ids)

    # -- starting and resuming -------------------------------------------------------------

    def live_run_ids(self) -> list[str]:
        return list(self._live)

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    async def start(
        self,
        workflow: SmithersWorkflow,
        *,
        input: Any = None,
        run_id: str | None = None,
        config: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> str:
        """Create the run (row and `RunStarted` committed) and start driving it.

        `idempotency` is `(scope, key)`: when that key started a run within 24 h, that
        run's id is returned and nothing is started (also when two launches race)."""
        try:
            value = workflow.validate_input(input)
        except Exception as exc:
            errors = getattr(exc, "errors", None)
            details = {"errors": validation_errors(errors())} if callable(errors) else {}
            raise SmithersError(
                "INVALID_REQUEST", "input does not match the workflow's input model", details
            ) from exc
        run_id = run_id or lifecycle.generate_run_id()
        created = await self.store.run(
            self._create, workflow, run_id, value, config or {}, auth, idempotency
        )
        if isinstance(created, str):
            return created
        self._spawn(created)
        return run_id

    def _create(
        self,
        workflow: SmithersWorkflow,
        run_id: str,
        input: Any,
        config: dict[str, Any],
        auth: dict[str, Any] | None,
        idempotency: tuple[str, str] | None,
    ) -> str | RunDriver:
        """The run its idempotency key started, or the new run's driver (rendered once)."""
        ensure_output_tables(self.store, workflow)
        driver = RunDriver(self, workflow, run_id, fresh=True)
        first = lifecycle.create_run(
            self.store,
            workflow,
            run_id,
            owner_id=self.owner_id,
            input=input,
            config=config,
            auth=auth,
            idempotency=idempotency,
            then=driver.first_render,
        )
        return driver if first is None else first

    async def resume(self, run_id: str, workflow: SmithersWorkflow, *, adopt: bool = False) -> None:
        """Claim a run (parked, paused, failed, stale or unowned) and drive it; with
        `adopt`, only a `running` one nobody drives (`lifecycle.claim_for_resume`)."""
        # An adoption pass and an explicit resume may claim the same run at once: the
        # second waits for the first rather than find the run owned (by us) and refuse.
        while (claiming := self._claims.get(run_id)) is not None:
            await claiming.wait()
        if run_id in self._live:
            return
        self._claims[run_id] = claimed = anyio.Event()
        try:
            claim = lifecycle.claim_for_resume
            await self.store.run(
                claim, self.store, run_id, self.owner_id, workflow.content_hash, adopt=adopt
            )
            self._spawn(RunDriver(self, workflow, run_id))
        finally:
            del self._claims[run_id]
            claimed.set()

    async def run(self, workflow: SmithersWorkflow, **kwargs: Any) -> RunResult:
        run_id = await self.start(workflow, **kwargs)
        return await self.wait(run_id)

    async def wait(self, run_id: str) -> RunResult:
        """Wait until this process stops driving the run (finished, failed, parked, lost)."""
        live = self._live.get(run_id)
        if live is not None:
            await live.done.wait()
        return await self.store.run(self.result, run_id)

    def result(self, run_id: str) -> RunResult:
        with self.store.read() as conn:
            run = runs_q.get_run(conn, run_id)
        if run is None:
            raise run_not_found(run_id)
        return RunResult(run_id, run.status, run.error, queries.run_outputs(self.store, run_id))

    def _spawn(self, driver: RunDriver) -> None:
        if self._tg is None:
            raise RuntimeError("the Runtime is not running: use `async with Runtime(...)`")
        self._live[driver.run_id] = live = _Live(driver)
        self._heartbeat.beat_for(frozenset(self._live))
        self._tg.start_soon(self._drive, live)

    async def _drive(self, live: _Live) -> None:
        run_id = live.driver.run_id
        status = "lost"
        try:
            status = await live.driver.drive()
            logger.debug("run %s stopped: %s", run_id, status)
        except Exception:
            logger.exception("run %s: engine error", run_id)
            status = "failed"
            with anyio.CancelScope(shield=True):
                await self.store.run(self._fail_on_crash, run_id)
        finally:
            if status not in ("lost", "running"):
                with anyio.CancelScope(shield=True):
                    await self.store.run(runlog.run_stopped, self.store, run_id, status)
            if self._live.get(run_id) is live:
                del self._live[run_id]
                self._heartbeat.beat_for(frozenset(self._live))
            live.done.set()

    def _fail_on_crash(self, run_id: str) -> None:
        with self.store.write() as tx:
            run = runs_q.get_run(tx.conn, run_id, lock=True)
            if run is None or run.status != "running" or run.runtime_owner_id != self.owner_id:
                return
            error = {"code": "SERVER_ERROR", "message": "the engine failed; see the server log"}
            end_run(tx, run_id, "failed", error, cancel_nodes=())

    # -- what happens elsewhere ------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        live = self._live.get(event.run_id)
        if live is not None and event.type in TERMINAL_EVENT_STOP:
            live.driver.cancel()

    def _on_touch(self, run_id: str) -> None:
        live = self._live.get(run_id)
        if live is not None:
            live.driver.wake()
            if self._watch_now is not None:
                self._watch_now.set()  # a cancel or a new owner: see `_watch_once`
        elif self.adopt and self.resolve is not None and self._tg is not None:
            self._adopt_soon(run_id)

    def _on_notice(self, loop: asyncio.AbstractEventLoop, notice: Notice) -> None:
        """In the listening thread (PostgreSQL): another process committed a command on a
        run, or the listener reconnected (what was sent meanwhile is lost: look now)."""
        if notice.kind == "command":
            call: Callable[[], object] = partial(self._on_touch, notice.run_id)
        elif notice.kind == "reconnected" and self._watch_now is not None:
            call = self._watch_now.set
        else:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(call)

    def _adopt_soon(
        self, run_id: str, run: RunRecord | None = None, *, timer_due: bool = False
    ) -> None:
        """Adopt in a task of its own: one slow workflow import holds up no other run."""
        if self._tg is not None:
            self._tg.start_soon(self._adopt_once, run_id, run, timer_due)

    async def _adopt_once(self, run_id: str, run: RunRecord | None, timer_due: bool) -> None:
        if run_id in self._adopting:
            return  # an adoption of it is under way (its workflow may be loading)
        self._adopting.add(run_id)
        try:
            await self._try_adopt(run_id, run, timer_due=timer_due)
        finally:
            self._adopting.discard(run_id)

    async def _resolve(self, run: RunRecord) -> SmithersWorkflow | None:
        assert self.resolve is not None
        if inspect.iscoroutinefunction(self.resolve):
            found = await self.resolve(run)
        else:
            found = await in_thread(self.resolve, run)
        return found if isinstance(found, SmithersWorkflow) else None

    async def _try_adopt(
        self, run_id: str, run: RunRecord | None = None, *, timer_due: bool = False
    ) -> None:
        """Resume a run nobody drives: unowned, stale, orphaned, or parked on a due timer."""
        if run_id in self._live or self.resolve is None:
            return
        if run is None:
            run = await self.store.run(queries.get_run, self.store, run_id)
        if run is None:
            return
        if run.status != "running" and not (timer_due and run.status in WAITING_STATUSES):
            return
        if run.config.get("mirroredFrom"):
            return
        if run.runtime_owner_id is not None and lifecycle.is_live(run, self.now()):
            return
        try:
            workflow = await self._resolve(run)
        except Exception as exc:
            logger.warning("cannot load the workflow of run %s: %s", run_id, exc)
            return
        if workflow is None:
            return
        try:
            await self.resume(run_id, workflow)
        except SmithersError as exc:
            logger.debug("adoption of %s skipped: %s", run_id, exc.code)

    async def _watch_once(self) -> None:
        """Notice what other processes did to the runs we drive: a command to act on
        (`command_seq` moved), an end, or the run claimed by someone else."""
        live_ids = list(self._live)
        if not live_ids:
            return
        markers = await self.store.run(self._markers, live_ids)
        for run_id, (command_seq, status, owner) in markers.items():
            live = self._live.get(run_id)
            if live is None:
                continue
            if status in TERMINAL_STATUSES or owner != self.owner_id:
                live.driver.cancel()
            elif command_seq != live.command_seq:
                live.command_seq = command_seq
                live.driver.wake()

    def _markers(self, live_ids: list[str]) -> dict[str, tuple[int, str, str | None]]:
        with self.store.read() as conn:
            return runs_q.run_markers(conn, live_ids)

    async def recover_stale_runs(self) -> list[str]:
        """Adopt the runs that need an owner and that `resolve` can load: stale, orphaned,
        unowned (decided or signalled while parked), or parked on a due timer, each in a
        task of its own; returns the ids now driven here."""
        candidates = await self.store.run(self._adoptable)
        async with anyio.create_task_group() as tg:
            for run, timer_due in candidates:
                tg.start_soon(self._adopt_once, run.run_id, run, timer_due)
        return [run.run_id for run, _ in candidates if run.run_id in self._live]

    async def _scan_for_adoption(self) -> None:
        """The background pass of `recover_stale_runs`: it starts adoptions and does not
        wait for them, so the next pass is never late behind a slow import."""
        for run, timer_due in await self.store.run(self._adoptable):
            self._adopt_soon(run.run_id, run, timer_due=timer_due)

    def _adoptable(self) -> list[tuple[RunRecord, bool]]:
        found = adoptable(self.store, self.owner_id, self.now(), timers=self.timers)
        return [(run, due) for run, due in found if run.run_id not in self._live]


TERMINAL_EVENT_STOP = frozenset({"RunCancelled"})
