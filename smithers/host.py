"""RunHost: the core service behind the multi-workflow server and the Gateway.

It loads workflows by path inside a root directory, or serves the workflows of a
`WorkflowRegistry` by key; keeps one Store and Runtime per database (the server's, and each
workflow's own), finds the store a run lives in, and mirrors runs of workflows with their
own database into the server's.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
from sqlalchemy.engine import Engine

from . import lifecycle, queries
from .catalog import Catalog
from .definition import SmithersWorkflow
from .engine import in_thread
from .errors import SmithersError, run_not_active, run_not_found
from .loader import DEFAULT_LOAD_TIMEOUT_S, load_workflow_async, loaded_version
from .mirror import mirror_run
from .registry import WorkflowRegistry, recorded_key
from .runtime import Runtime
from .store.base import Store, open_store
from .store.engines import database_url
from .store.records import RunRecord
from .tracing import span
from .views import ViewCache

logger = logging.getLogger("smithers.host")

LOCATED_MAX = 100_000

T = TypeVar("T")


def default_db_path(root_dir: Path) -> Path:
    """Where runs go when neither the server nor the workflow names a database: a file in
    the user's state folder, one per root. Never inside the root, where a request could
    name it (a workflow path is any file under the root)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    digest = hashlib.sha256(str(root_dir).encode()).hexdigest()[:12]
    return Path(state) / "smithers" / f"{root_dir.name or 'root'}-{digest}.db"


class RunHost:
    """Use as `async with RunHost(db=..., root_dir=...) as host:`."""

    def __init__(
        self,
        *,
        db: str | Engine | Store | None,
        root_dir: str | os.PathLike[str] = ".",
        allow_network: bool = False,
        default_db: str | None = None,
        poll_interval: float = 1.0,
        load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
        registry: WorkflowRegistry | None = None,
        timers: bool = True,
    ) -> None:
        self.registry = registry
        self.timers = timers  # its runtimes resume runs whose timer came due
        self.root_dir = Path(root_dir).resolve()
        self.allow_network = allow_network
        self.poll_interval = poll_interval
        self.load_timeout_s = load_timeout_s
        self._db = db
        self.server_store: Store | None = None
        self._default_in_state_dir = default_db is None
        self._default_db = default_db or f"sqlite:///{default_db_path(self.root_dir)}"
        self._stores: dict[str, Store] = {}
        self._inline = True  # every store open is SQLite: store work runs on the loop
        self._runtimes: dict[str, Runtime] = {}
        self._located: OrderedDict[str, Store] = OrderedDict()
        self.views = ViewCache()
        self._unloadable: set[str] = set()
        self._catalog = Catalog(self.root_dir, load_timeout_s)
        self._tg: anyio.abc.TaskGroup | None = None
        self._stop = anyio.Event()
        self._lock = anyio.Lock()
        # Called with each store as it opens (the app hangs its metrics listener there).
        self.on_open_store: Callable[[Store], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Between `__aenter__` and `__aexit__` (an app's lifespan)."""
        return self._tg is not None

    def require_running(self) -> None:
        if self._tg is None:
            raise SmithersError(
                "SERVER_NOT_STARTED",
                "the app's lifespan has not run: serve it with uvicorn, test it inside "
                "`with TestClient(app)` (or asgi-lifespan's LifespanManager), and forward "
                "the lifespan of an app that mounts it (docs/testing.md)",
            )

    async def __aenter__(self) -> RunHost:
        # A host may live through several lifespans (a test client per test): each starts
        # afresh, on the event loop it runs on.
        self._stop = anyio.Event()
        self._lock = anyio.Lock()
        self._stores, self._runtimes, self._inline = {}, {}, True
        self._located.clear()
        self._catalog = Catalog(self.root_dir, self.load_timeout_s)
        self.server_store = None
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        if self._db is not None:
            self.server_store = await self._open(self._db)
        else:
            if self._default_in_state_dir:
                default_db_path(self.root_dir).parent.mkdir(parents=True, exist_ok=True)
            await self._open(self._default_db)  # so its runs are found after a restart
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._stop.set()
        self._catalog.close()
        assert self._tg is not None
        await self._tg.__aexit__(None, None, None)
        self._tg = None
        for store in self._stores.values():
            store.close()

    def _key(self, db: str | Engine | Store) -> str:
        if isinstance(db, Store):
            return db.url
        if isinstance(db, Engine):
            return db.url.render_as_string(hide_password=False)
        return database_url(db).render_as_string(hide_password=False)

    async def _open(self, db: str | Engine | Store) -> Store:
        """The store for `db`, with a runtime driving (and adopting) its runs."""
        key = self._key(db)
        async with self._lock:
            found = self._stores.get(key)
            if found is not None:
                return found
            store = await in_thread(open_store, db)
            ready = anyio.Event()
            assert self._tg is not None
            self._tg.start_soon(self._serve_runtime, store, ready)
            await ready.wait()
            self._stores[key] = store
            self._inline = all(opened.inline for opened in self._stores.values())
            if self.on_open_store is not None:
                self.on_open_store(store)
            return store

    async def _serve_runtime(self, store: Store, ready: anyio.Event) -> None:
        runtime = Runtime(
            store,
            resolve=self.workflow_of,
            root_dir=str(self.root_dir),
            allow_network=self.allow_network,
            poll_interval=self.poll_interval,
            timers=self.timers,
        )
        async with runtime:
            self._runtimes[store.url] = runtime
            ready.set()
            await self._stop.wait()

    def stores(self) -> list[Store]:
        return list(self._stores.values())

    def runtime(self, store: Store) -> Runtime:
        return self._runtimes[store.url]

    # -- workflows -------------------------------------------------------------------------

    async def load(self, path: str) -> SmithersWorkflow:
        """Load a workflow by path inside the root (symlinks resolved), cached by content,
        in a worker thread and within `load_timeout_s`."""
        with span("smithers.workflow.load", path=path):
            return await load_workflow_async(path, self.root_dir, timeout_s=self.load_timeout_s)

    def registered(self, key: str, not_found: str = "NOT_FOUND") -> SmithersWorkflow:
        """The workflow registered under `key` (`WorkflowRegistry.require`)."""
        registry = self.registry if self.registry is not None else WorkflowRegistry()
        return registry.require(key, not_found).workflow

    async def workflows(self) -> list[dict[str, Any]]:
        """The workflows under the root, each loaded within `load_timeout_s` (`catalog`)."""
        self.require_running()
        assert self._tg is not None
        return await self._catalog.listing(self._tg)

    async def workflow_of(self, run: RunRecord) -> SmithersWorkflow | None:
        """The workflow a resume of `run` loads: a registered run's by its key (None when
        this host has no such key), else the version of the file it recorded while this
        process has it, else the file as it is now; None (logged once) when it cannot be
        loaded."""
        key = recorded_key(run)
        if key is not None:
            entry = self.registry.get(key) if self.registry is not None else None
            return None if entry is None else entry.workflow
        if not run.workflow_path:
            return None
        if run.workflow_hash:
            recorded = loaded_version(run.workflow_path, run.workflow_hash, self.root_dir)
            if recorded is not None:
                return recorded  # resume with the version the run recorded
        try:
            return await self.load(run.workflow_path)
        except SmithersError as exc:
            if run.run_id not in self._unloadable:  # once, not at every adoption scan
                self._unloadable.add(run.run_id)
                logger.warning("cannot resume run %s: %s", run.run_id, exc.message)
            return None

    async def store_for(self, workflow: SmithersWorkflow) -> Store:
        if workflow.db is not None:
            return await self._open(workflow.db)
        if self.server_store is not None:
            return self.server_store
        return await self._open(self._default_db)

    # -- finding runs ----------------------------------------------------------------------

    def _remember(self, run_id: str, store: Store) -> None:
        self._located[run_id] = store
        self._located.move_to_end(run_id)
        while len(self._located) > LOCATED_MAX:
            self._located.popitem(last=False)

    def locate(self, run_id: str) -> Store | None:
        """The store a run lives in (its own db first, then the server's), or None."""
        store = self._located.get(run_id)
        if store is not None:
            return store
        for candidate in [*self._stores.values()]:
            if queries.get_run(candidate, run_id) is not None:
                if candidate is not self.server_store:
                    self._remember(run_id, candidate)
                return candidate
        return None

    def view(self, run_id: str) -> dict[str, Any] | None:
        """`queries.run_view` from whichever store holds the run (one pass, no double read)."""
        return self._first(queries.run_view, run_id)

    def view_json(self, run_id: str) -> bytes | None:
        """`view`, encoded (`queries.run_view_json`)."""
        return self._first(queries.run_view_json, run_id)

    def _first(self, read: Callable[[Store, str, ViewCache], T | None], run_id: str) -> T | None:
        located = self._located.get(run_id)
        for store in [located] if located is not None else [*self._stores.values()]:
            found = read(store, run_id, self.views)
            if found is not None:
                return found
        return None

    @property
    def inline(self) -> bool:
        """Every store open runs its work on the loop (SQLite): `call` needs no thread."""
        return self._inline

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run store work across this host's stores the way they all allow (see Store.run)."""
        if self._inline:
            return fn(*args)
        return await in_thread(fn, *args)

    def require_server_store(self) -> Store:
        if self.server_store is None:
            raise SmithersError("DB_NOT_CONFIGURED", "this server has no database of its own")
        return self.server_store

    # -- commands --------------------------------------------------------------------------

    async def start(
        self,
        workflow: SmithersWorkflow,
        *,
        input: Any,
        run_id: str | None,
        config: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> str:
        """Start a run (`idempotency`: see `Runtime.start`)."""
        store = await self.store_for(workflow)
        runtime = self.runtime(store)
        if idempotency is not None:
            first = await store.run(lifecycle.run_for_key, store, idempotency)
            if first is not None:
                return first
        if run_id is not None and await self.call(self.locate, run_id) is not None:
            raise SmithersError(
                "RUN_ALREADY_EXISTS", f"run {run_id!r} already exists", {"runId": run_id}
            )
        started = await runtime.start(
            workflow, input=input, run_id=run_id, config=config, auth=auth, idempotency=idempotency
        )
        self._after_start(started, store)
        return started

    def _after_start(self, run_id: str, store: Store) -> None:
        # Its stream and reads come next: where it lives is known without a query.
        self._remember(run_id, store)
        server_store = self.server_store
        if server_store is not None and store is not server_store and self._tg is not None:
            self._tg.start_soon(mirror_run, store, server_store, run_id)

    async def resume(
        self, store: Store, run_id: str, workflow: SmithersWorkflow | None = None
    ) -> str:
        """Continue a run of `store`: `"resumed"`, or `"running"` when it is live already."""
        run = await store.run(queries.get_run, store, run_id)
        if run is None:
            raise run_not_found(run_id)
        if run.status in ("finished", "cancelled"):
            raise run_not_active(run_id, run.status)
        if workflow is not None:
            # Only the workflow the run recorded (its file may have changed: WorkflowReloaded).
            recorded = queries.path_in_root(run.workflow_path, self.root_dir)
            offered = queries.path_in_root(workflow.path, self.root_dir)
            if recorded is None or recorded != offered:
                raise SmithersError(
                    "WORKFLOW_MISMATCH",
                    f"run {run_id!r} records another workflow; resume it with its own",
                    {"runId": run_id, "workflowPath": recorded, "requested": offered},
                )
        runtime = self.runtime(store)
        if runtime.is_live(run_id) or lifecycle.is_live(run, runtime.now()):
            return "running"
        key = recorded_key(run)
        if workflow is None and key is not None:
            workflow = self.registered(key, "WORKFLOW_LOAD_FAILED")
        if workflow is None:
            if not run.workflow_path:
                raise SmithersError(
                    "WORKFLOW_LOAD_FAILED",
                    "the run records no workflow path",
                    {"reason": "no workflow path"},
                )
            workflow = await self.load(run.workflow_path)
        await runtime.resume(run_id, workflow)
        self._after_start(run_id, store)
        return "resumed"
