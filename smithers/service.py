"""RunService: what every surface calls (the REST server, the serve app, the CLI's `--db`
commands, the Gateway), and nothing below it.

It finds the store a run lives in, runs store work the way each database wants it (inline
on SQLite, in a worker thread on PostgreSQL: `Store.run`), turns "no such run" and the
like into `SmithersError`s with the spec's codes, checks what the caller may do (an
approval's `allowed_users` / `allowed_scopes` against the `Principal`, when one is known)
and feeds the app's metrics from the event log. The web layer parses and answers HTTP; the
core below it knows no surface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, TypeVar

from . import commands, decisions, inspection, queries, retries, signals, timetravel
from .definition import SmithersWorkflow
from .errors import SmithersError, run_not_found
from .events import Event
from .feed import feed
from .finders import HostRuns, Located, OneRun, Runs, StoreRuns
from .host import RunHost
from .metrics import Metrics
from .principal import Principal
from .registry import CONFIG_KEY
from .runtime import Runtime
from .store.base import Store
from .subscriptions import subscribe
from .window import EventWindow

__all__ = ["Located", "OneRun", "RunService", "Runs", "StoreRuns"]

T = TypeVar("T")


class RunService:
    """Use `RunService.for_host(host)` (many workflows) or `RunService.for_run(...)`."""

    def __init__(
        self, runs: Runs, host: RunHost | None = None, *, window: EventWindow | None = None
    ) -> None:
        self.runs = runs
        self.host = host
        # The recent events `feeding` saw, replayed by `events` before the database.
        self.window = window

    @classmethod
    def for_host(cls, host: RunHost, *, window_size: int | None = None) -> RunService:
        return cls(HostRuns(host), host, window=EventWindow(window_size) if window_size else None)

    @classmethod
    def for_store(cls, store: Store) -> RunService:
        return cls(StoreRuns(store))

    @classmethod
    def for_run(
        cls,
        store: Store,
        run_id: str,
        workflow: SmithersWorkflow,
        runtime: Runtime | None = None,
    ) -> RunService:
        return cls(OneRun(store, run_id, workflow, runtime))

    # -- finding runs ----------------------------------------------------------------------

    async def locate(self, run_id: str, not_found: str = "NOT_FOUND") -> Located:
        """The run's store and runtime; `not_found` is the code when there is no such run
        (the spec says NOT_FOUND on most routes, RUN_NOT_FOUND on resume)."""
        found = None if "\x00" in run_id else await self.runs.locate(run_id)
        if found is None:
            raise run_not_found(run_id, not_found)
        return found

    async def _at(self, run: str | Located) -> Located:
        return run if isinstance(run, Located) else await self.locate(run)

    def _host(self) -> RunHost:
        if self.host is None:
            raise SmithersError("INVALID_REQUEST", "this surface serves a single run")
        self.host.require_running()
        return self.host

    # -- starting and resuming -------------------------------------------------------------

    async def start(
        self,
        workflow_path: str,
        *,
        input: dict[str, Any],
        run_id: str | None = None,
        config: dict[str, Any] | None = None,
        principal: Principal | None = None,
    ) -> str:
        host = self._host()
        workflow = await host.load(workflow_path)
        auth = None if principal is None else principal.to_auth()
        return await host.start(workflow, input=input, run_id=run_id, config=config, auth=auth)

    async def launch(
        self,
        key: str,
        *,
        input: dict[str, Any] | None,
        run_id: str | None = None,
        config: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> str:
        """Start a run of the workflow registered as `key` (NOT_FOUND when none is);
        `idempotency` `(scope, key)`: the run that key started within 24 h, if any."""
        host = self._host()
        workflow = host.registered(key)
        return await host.start(
            workflow,
            input=input,
            run_id=run_id,
            config={**(config or {}), CONFIG_KEY: key},
            auth=auth,
            idempotency=idempotency,
        )

    async def resume(
        self, run_id: str, workflow_path: str | None = None, *, load_first: bool = False
    ) -> str:
        """`"resumed"`, or `"running"` when a live process drives it already. The workflow
        is the one the run recorded; `workflow_path` must name that file (else
        WORKFLOW_MISMATCH). `load_first`: a bad workflow file is reported before an unknown
        run (the order of `POST /v1/runs` with `resume`)."""
        host = self._host()
        workflow = await host.load(workflow_path) if workflow_path and load_first else None
        at = await self.locate(run_id, "RUN_NOT_FOUND")
        if workflow_path and workflow is None:
            workflow = await host.load(workflow_path)
        return await host.resume(at.store, run_id, workflow)

    # -- commands --------------------------------------------------------------------------

    async def cancel(self, run: str | Located) -> None:
        """Cancel a run; RUN_NOT_ACTIVE when it has ended already."""
        at = await self._at(run)
        if await commands.cancel(at.store, at.run_id) == "already-terminal":
            raise SmithersError(
                "RUN_NOT_ACTIVE", f"run {at.run_id!r} has already ended", {"runId": at.run_id}
            )

    async def pause(self, run: str | Located) -> str:
        at = await self._at(run)
        return await commands.pause(at.store, at.run_id)

    async def decide(
        self,
        run: str | Located,
        node_id: str,
        *,
        approved: bool,
        iteration: int = 0,
        note: str | None = None,
        decided_by: str | None = None,
        decision: dict[str, Any] | None = None,
        principal: Principal | None = None,
    ) -> decisions.Decision:
        """Approve or deny; the approval's `allowed_users` / `allowed_scopes` hold when the
        caller is known (`principal`)."""
        at = await self._at(run)
        decided = await at.store.run(
            decisions.decide,
            at.store,
            at.run_id,
            node_id,
            approved=approved,
            iteration=iteration,
            note=note,
            decided_by=decided_by,
            decision=decision,
            caller=principal,
        )
        await self.runs.released(at)
        return decided

    async def decide_all(
        self, wanted: list[decisions.Wanted], *, principal: Principal | None = None
    ) -> list[decisions.Decision]:
        """Several decisions in one transaction, all or none (on one shared database)."""
        found = [await self.locate(one.run_id) for one in wanted]
        stores = {at.store.url: at.store for at in found}
        if len(stores) > 1:
            raise SmithersError(
                "INVALID_REQUEST", "decisions on runs of different databases cannot be joined"
            )
        if not found:
            return []
        store = found[0].store
        return await store.run(decisions.decide_all, store, wanted, principal)

    async def signal(
        self,
        run: str | Located,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        received_by: str | None = None,
    ) -> dict[str, Any]:
        """Deliver a signal, its payload checked against the model of the node that will
        consume it (the run's workflow is found as a resume would find it)."""
        at = await self._at(run)
        workflow = await self.runs.workflow_of(at)
        sent = await signals.signal(
            at.store, at.run_id, name, data, correlation_id, received_by, workflow=workflow
        )
        await self.runs.released(at)
        return sent

    async def retry_task(
        self, run: str | Located, node_id: str, iteration: int = 0
    ) -> retries.Retry:
        """Run a failed task again (attempts numbered on from its last) and set its run
        going: a failed run is `running` again and driven on by this process's runtime."""
        at = await self._at(run)
        retried = await retries.retry_task(at.store, at.run_id, node_id, iteration)
        await self.runs.released(at)
        return retried

    async def rewind(
        self,
        run: str | Located,
        frame_no: int,
        *,
        caller: str | None = None,
        principal: Principal | None = None,
    ) -> timetravel.Rewound:
        """Forget what followed `frame_no`; the run goes on from there (adopted by this
        host's runtime). `principal`: only an admin or the run's starter may."""
        at = await self._at(run)
        return await at.store.run(
            timetravel.rewind_run, at.store, at.run_id, frame_no, caller, principal
        )

    async def fork(
        self,
        run: str | Located,
        frame_no: int,
        new_run_id: str | None = None,
        *,
        auth: dict[str, Any] | None = None,
    ) -> str:
        """A new run with the run's state up to `frame_no`, driven on by this host."""
        at = await self._at(run)
        return await at.store.run(
            timetravel.fork_run, at.store, at.run_id, frame_no, new_run_id, auth
        )

    # -- reads -----------------------------------------------------------------------------

    async def view(self, run_id: str, *, not_found: str = "NOT_FOUND") -> dict[str, Any]:
        """The run's status and node summary (`not_found`: the code for no such run)."""
        found = None if "\x00" in run_id else await self.runs.view(run_id)
        if found is None:
            raise run_not_found(run_id, not_found)
        return found

    async def view_json(self, run_id: str, *, not_found: str = "NOT_FOUND") -> bytes:
        """`view` encoded as JSON: an ended run's kept bytes, not built again."""
        found = None if "\x00" in run_id else await self.runs.view_json(run_id)
        if found is None:
            raise run_not_found(run_id, not_found)
        return found

    async def workflows(self) -> list[dict[str, Any]]:
        """`[{"path", "name", "inputSchema"}]` of the workflows under the root; one that
        cannot be loaded has `name: null` and an `error` (`smithers.catalog`)."""
        return await self._host().workflows()

    def require_run_list(self) -> Store:
        """The database runs and approvals are listed from: the server's own
        (DB_NOT_CONFIGURED without one), or the one database of a store service."""
        if self.host is not None:
            return self.host.require_server_store()
        stores = self.runs.stores()
        if len(stores) != 1:
            raise SmithersError("DB_NOT_CONFIGURED", "no database to list runs from")
        return stores[0]

    async def list_runs(
        self,
        *,
        limit: int = 50,
        status: str | None = None,
        workflow: str | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        store = self.require_run_list()
        root = self.host.root_dir if self.host is not None else None
        return await store.run(
            queries.list_runs,
            store,
            limit=limit,
            status=status,
            workflow=workflow,
            root=root,
            offset=offset,
        )

    async def approvals(self) -> list[dict[str, Any]]:
        store = self.require_run_list()
        return await store.run(queries.pending_approvals, store)

    async def approval_requests(
        self, *, run_id: str | None = None, workflow: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Pending approvals with their mode, options and who may decide them."""
        store = self.require_run_list()
        return await store.run(
            queries.approval_requests, store, run_id=run_id, workflow=workflow, limit=limit
        )

    async def _read(self, run: str | Located, fn: Callable[..., T], *args: Any) -> T:
        """`fn(store, run_id, *args)` on the run's store."""
        at = await self._at(run)
        return await at.store.run(fn, at.store, at.run_id, *args)

    async def node_states(self, run: str | Located) -> list[dict[str, Any]]:
        return await self._read(run, inspection.node_states)

    async def attempts(
        self, run: str | Located, node_id: str | None = None, iteration: int | None = None
    ) -> list[dict[str, Any]]:
        return await self._read(run, inspection.attempts, node_id, iteration)

    async def attempt(
        self, run: str | Located, node_id: str, iteration: int, number: int
    ) -> dict[str, Any]:
        return await self._read(run, inspection.attempt, node_id, iteration, number)

    async def frame(self, run: str | Located, frame_no: int) -> dict[str, Any]:
        return await self._read(run, inspection.frame, frame_no)

    async def node_output(
        self, run: str | Located, node_id: str, iteration: int = 0
    ) -> dict[str, Any]:
        return await self._read(run, inspection.node_output, node_id, iteration)

    async def frames(
        self, run: str | Located, *, limit: int = 50, after_frame_no: int | None = None
    ) -> list[dict[str, Any]]:
        return await self._read(
            run, partial(queries.list_frames, limit=limit, after_frame_no=after_frame_no)
        )

    async def output_list(
        self, run: str | Located, node_id: str | None = None
    ) -> list[dict[str, Any]]:
        """What the run's tasks produced, in the order they finished (`node_id`: one node's)."""
        return await self._read(run, queries.output_list, node_id)

    async def outputs(self, run: str | Located) -> dict[str, Any]:
        return await self._read(run, queries.run_outputs)

    async def last_seq(self, run: str | Located) -> int:
        """The seq of the run's last stored event."""
        return await self._read(run, queries.last_seq)

    async def events_page(self, at: Located, after_seq: int, limit: int) -> list[Event]:
        """At most `limit` stored events of the run after `after_seq` (no waiting)."""
        return await self._read(at, queries.events_page, after_seq, limit)

    def events(
        self, at: Located, after_seq: int = -1, *, idle: float | None = None
    ) -> AsyncIterator[Event | None]:
        """The run's events after `after_seq`, then live ones, until it ends (with `idle`,
        a None after that many quiet seconds). Pushed when this process drives the run;
        replayed from the event window first when there is one."""
        runtime, window = at.runtime, self.window
        return subscribe(
            at.store,
            at.run_id,
            after_seq,
            is_local=(lambda: runtime.is_live(at.run_id)) if runtime else None,
            idle=idle,
            recent=(lambda seq: window.after(at.store, at.run_id, seq)) if window else None,
        )

    # -- metrics ---------------------------------------------------------------------------

    def feeding(
        self, metrics: Metrics, then: Callable[[Event], None] | None = None
    ) -> AbstractAsyncContextManager[None]:
        """Feed `metrics` from the event log while the block runs: every store's events
        (stores that open later included); for one run, its log so far first, each event
        counted once. Serving many runs, each event also goes to the event window (when
        there is one) and then to `then`."""
        return feed(self.runs, self.host, metrics, window=self.window, then=then)
