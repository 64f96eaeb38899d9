"""How a `RunService` finds runs: every run of a host (`HostRuns`), of one database
(`StoreRuns`), or the one run of a serve app (`OneRun`); and who drives a run that a
decision or signal released."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import lifecycle, queries
from .definition import SmithersWorkflow
from .errors import SmithersError
from .host import RunHost
from .runtime import Runtime
from .store.base import Store
from .views import ViewCache

__all__ = ["HostRuns", "Located", "OneRun", "Runs", "StoreRuns"]

T = TypeVar("T")


@dataclass(frozen=True)
class Located:
    """Where a run lives: its store, and the runtime of this process on that store."""

    run_id: str
    store: Store
    runtime: Runtime | None


class Runs(Protocol):
    """How a service finds runs: every run of a host, or the one run of a serve app."""

    async def locate(self, run_id: str) -> Located | None: ...

    async def workflow_of(self, located: Located) -> SmithersWorkflow | None: ...

    async def view(self, run_id: str) -> dict[str, Any] | None:
        """The run's view, read in one pass (the hot path of `GET /v1/runs/{id}`)."""
        ...

    async def view_json(self, run_id: str) -> bytes | None:
        """`view`, encoded as JSON."""
        ...

    def stores(self) -> list[Store]: ...

    async def released(self, located: Located) -> None:
        """A decision or signal may have set the run going again: drive it, when this
        surface is the one to (a host's runtimes adopt such runs by themselves)."""
        ...


class HostRuns:
    """The runs of a `RunHost`: any of its databases."""

    def __init__(self, host: RunHost) -> None:
        self.host = host

    async def locate(self, run_id: str) -> Located | None:
        self.host.require_running()
        store = await self.host.call(self.host.locate, run_id)
        return None if store is None else Located(run_id, store, self.host.runtime(store))

    async def workflow_of(self, located: Located) -> SmithersWorkflow | None:
        run = await located.store.run(queries.get_run, located.store, located.run_id)
        return None if run is None else await self.host.workflow_of(run)

    async def view(self, run_id: str) -> dict[str, Any] | None:
        self.host.require_running()
        return await self.host.call(self.host.view, run_id)

    async def view_json(self, run_id: str) -> bytes | None:
        self.host.require_running()
        if self.host.inline:  # the hot read of a SQLite server: no hop through `call`
            return self.host.view_json(run_id)
        return await self.host.call(self.host.view_json, run_id)

    def stores(self) -> list[Store]:
        return self.host.stores()

    async def released(self, located: Located) -> None:
        return None


class StoreRuns:
    """Every run of one database, driven by no runtime here (the CLI's `--db` commands).
    Signal payloads are checked when consumed: no workflow is loaded here."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.views = ViewCache()

    async def locate(self, run_id: str) -> Located | None:
        run = await self.store.run(queries.get_run, self.store, run_id)
        return None if run is None else Located(run_id, self.store, None)

    async def workflow_of(self, located: Located) -> SmithersWorkflow | None:
        return None

    async def view(self, run_id: str) -> dict[str, Any] | None:
        return await self.store.run(queries.run_view, self.store, run_id, self.views)

    async def view_json(self, run_id: str) -> bytes | None:
        return await self.store.run(queries.run_view_json, self.store, run_id, self.views)

    def stores(self) -> list[Store]:
        return [self.store]

    async def released(self, located: Located) -> None:
        return None  # no runtime here: whichever process can load the workflow adopts it


class OneRun:
    """The one run of a serve app, driven by `runtime` (when given) in this process."""

    def __init__(
        self, store: Store, run_id: str, workflow: SmithersWorkflow, runtime: Runtime | None
    ) -> None:
        self.located = Located(run_id, store, runtime)
        self.workflow = workflow
        self.views = ViewCache(size=1)

    async def locate(self, run_id: str) -> Located | None:
        return self.located if run_id == self.located.run_id else None

    async def workflow_of(self, located: Located) -> SmithersWorkflow | None:
        return self.workflow

    async def view(self, run_id: str) -> dict[str, Any] | None:
        return await self._read(queries.run_view, run_id)

    async def view_json(self, run_id: str) -> bytes | None:
        return await self._read(queries.run_view_json, run_id)

    async def _read(
        self, read: Callable[[Store, str, ViewCache], T | None], run_id: str
    ) -> T | None:
        if run_id != self.located.run_id:
            return None
        store = self.located.store
        return await store.run(read, store, run_id, self.views)

    def stores(self) -> list[Store]:
        return [self.located.store]

    async def released(self, located: Located) -> None:
        """The app knows its workflow: its runtime drives the run on, whether or not that
        runtime was given a `resolve=` to adopt runs by itself. Another process that
        claims it first, or a run that parked or ended meanwhile, is left as it is."""
        runtime, run_id, store = located.runtime, located.run_id, located.store
        if runtime is None or runtime.is_live(run_id):
            return
        run = await store.run(queries.get_run, store, run_id)
        if run is None or run.status != "running" or lifecycle.is_live(run, runtime.now()):
            return
        try:
            await runtime.resume(run_id, self.workflow, adopt=True)
        except SmithersError as exc:
            if exc.code not in ("RUN_IN_PROGRESS", "RUN_NOT_ACTIVE"):
                raise
