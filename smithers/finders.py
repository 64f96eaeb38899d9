"""How a RunService finds runs: every run of a host, every run of one database (the CLI's
`--db` commands), or the one run of a serve app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from . import queries
from .definition import SmithersWorkflow
from .host import RunHost
from .runtime import Runtime
from .store.base import Store

__all__ = ["HostRuns", "Located", "OneRun", "Runs", "StoreRuns"]


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

    def stores(self) -> list[Store]: ...


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

    def stores(self) -> list[Store]:
        return self.host.stores()


class StoreRuns:
    """Every run of one database, driven by no runtime here (the CLI's `--db` commands).
    Signal payloads are checked when consumed: no workflow is loaded here."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def locate(self, run_id: str) -> Located | None:
        run = await self.store.run(queries.get_run, self.store, run_id)
        return None if run is None else Located(run_id, self.store, None)

    async def workflow_of(self, located: Located) -> SmithersWorkflow | None:
        return None

    async def view(self, run_id: str) -> dict[str, Any] | None:
        return await self.store.run(queries.run_view, self.store, run_id)

    def stores(self) -> list[Store]:
        return [self.store]


class OneRun:
    """The one run of a serve app, driven by `runtime` (when given) in this process."""

    def __init__(
        self, store: Store, run_id: str, workflow: SmithersWorkflow, runtime: Runtime | None
    ) -> None:
        self.located = Located(run_id, store, runtime)
        self.workflow = workflow

    async def locate(self, run_id: str) -> Located | None:
        return self.located if run_id == self.located.run_id else None

    async def workflow_of(self, located: Located) -> SmithersWorkflow | None:
        return self.workflow

    async def view(self, run_id: str) -> dict[str, Any] | None:
        if run_id != self.located.run_id:
            return None
        store = self.located.store
        return await store.run(queries.run_view, store, run_id)

    def stores(self) -> list[Store]:
        return [self.located.store]
