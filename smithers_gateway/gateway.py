"""Gateway: the control plane. Register workflows by key, extend the RPC table, then mount
`.app` or `await listen()`; `await close()` parks (or cancels) the runs it drives."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import uvicorn
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from smithers import Store
from smithers.definition import SmithersWorkflow
from smithers.errors import SmithersError
from smithers.host import RunHost
from smithers.registry import WorkflowRegistry
from smithers.scheduler import Scheduler, poll_interval_s
from smithers.service import RunService
from smithers.web.body import DEFAULT_MAX_BODY_BYTES
from smithers.web.coalesced import CoalescedWebSocketProtocol
from smithers.web.identity import authenticator
from smithers.web.run_endpoints import Limits
from smithers.web.serving import check_bind, uvicorn_config

from . import (
    cron_methods,
    human_methods,
    read_methods,
    run_methods,
    scheduling,
    timetravel_methods,
)
from .app import build, drain
from .console_routes import console_path
from .context import GatewayContext
from .metrics import GatewayMetrics
from .pages import Pages
from .rpc import MethodTable
from .server import GatewayServer, serve
from .sockets import Sockets, SocketSettings
from .webhook_config import parse_config

Db = str | Engine | Store
CLOSE_SOCKETS_S = 5.0  # for sockets to take their queued frames and the close frame


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SmithersError("INVALID_REQUEST", f"{name} must be a positive integer")
    return value


class Gateway:
    """See docs/gateway.md. Settings in milliseconds and bytes, as in the spec."""

    def __init__(
        self,
        *,
        auth: Mapping[str, Any] | None = None,
        db: Db | None = None,
        heartbeat_ms: int = 15_000,
        max_connections: int = 1000,
        max_payload: int = 1_048_576,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        event_window_size: int = 10_000,
        workspace_root: str | os.PathLike[str] = ".",
        ui: Any = None,
        operator_ui: Any = None,
        headers_timeout: int = 30_000,
        request_timeout: int = 60_000,
        metrics_auth: bool = False,
        drain_timeout_ms: int = 10_000,
        allow_network: bool = False,
        poll_interval: float = 1.0,
        auth_deadline_ms: int = 10_000,
        scheduler: bool = True,
        scheduler_poll_ms: int | None = None,
    ) -> None:
        self.authenticator = authenticator(auth)  # a bad setting fails here, not per request
        self.heartbeat_ms = _positive("heartbeat_ms", heartbeat_ms)
        self.max_connections = _positive("max_connections", max_connections)
        self.max_payload = _positive("max_payload", max_payload)
        self.max_body_bytes = _positive("max_body_bytes", max_body_bytes)
        self.event_window_size = _positive("event_window_size", event_window_size)
        self.headers_timeout = _positive("headers_timeout", headers_timeout)
        self.request_timeout = _positive("request_timeout", request_timeout)
        self.drain_timeout_ms = _positive("drain_timeout_ms", drain_timeout_ms)
        self.auth_deadline_ms = _positive("auth_deadline_ms", auth_deadline_ms)
        self.workspace_root = Path(workspace_root).resolve()
        self.ui, self.operator_ui = ui, operator_ui
        self.console_path = console_path(ui, operator_ui)
        self.metrics_auth = metrics_auth
        self.allow_network = allow_network
        self.poll_interval = poll_interval
        self._scheduling = scheduler
        self.scheduler_poll_ms = (
            None if scheduler_poll_ms is None else _positive("scheduler_poll_ms", scheduler_poll_ms)
        )
        self.registry = WorkflowRegistry()
        self.pages = Pages(self.workspace_root, [self.console_path] if self.console_path else [])
        self.methods = MethodTable()
        self.methods.add_all([*run_methods.METHODS, *human_methods.METHODS, *read_methods.METHODS])
        self.methods.add_all(timetravel_methods.METHODS)
        self.methods.add_all(cron_methods.METHODS)
        self._db: Db = db if db is not None else f"sqlite:///{self.workspace_root / 'smithers.db'}"
        self._app: Starlette | None = None
        self._context: GatewayContext | None = None
        self._host: RunHost | None = None
        self._server: GatewayServer | None = None
        self._scheduler: Scheduler | None = None
        self._sockets = Sockets(
            SocketSettings(
                heartbeat_ms=self.heartbeat_ms,
                max_connections=self.max_connections,
                max_payload=self.max_payload,
                auth_deadline_ms=self.auth_deadline_ms,
            )
        )
        self._kill_runs = False

    # -- configuration (chainable) ---------------------------------------------------------

    @property
    def scheduler(self) -> bool:
        """Fire cron rows and resume runs whose timer came due (False: only serve)."""
        return self._scheduling

    @scheduler.setter
    def scheduler(self, value: bool) -> None:
        """Settable until `.app` is built (the CLI's `--no-scheduler`)."""
        if self._app is not None:
            raise SmithersError("INVALID_REQUEST", "the gateway's app is built: set it before")
        self._scheduling = value

    @property
    def db(self) -> Db:
        return self._db

    @db.setter
    def db(self, value: Db) -> None:
        """The database may change until `.app` is built (the CLI's `--db`)."""
        if self._app is not None:
            raise SmithersError("INVALID_REQUEST", "the gateway's app is built: set db before")
        self._db = value

    def register(
        self,
        key: str,
        workflow: SmithersWorkflow,
        *,
        readable_name: str | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Self:
        """Serve `workflow` as `key` (`launchRun {"workflow": key}`). `options` (schedule,
        timezone, webhook, ui) are kept for the plugins that read them; a `webhook` is
        checked here (see docs/gateway.md, Webhooks), and `ui` mounts the workflow's page
        (`pages`), its path checked here too; `schedule` (a cron pattern, in `timezone`, UTC
        by default) becomes the cron row `gateway:<key>`."""
        scheduling.check_schedule(options)
        if options.get("webhook") is not None:
            options["webhook"] = parse_config(key, options["webhook"])
        page = self.pages.check(key, options.get("ui"))
        self.registry.add(
            key, workflow, readable_name=readable_name, description=description, **options
        )
        if page is not None:
            self.pages.add(page)
        return self

    def extend(self, namespace: str, methods: Mapping[str, Any]) -> Self:
        """Add `namespace.name` RPC methods: `{name: {"scope": "run:read", "handler": fn}}`,
        `fn(call)` (sync or async) gets a `Call` (`.params`, `.principal`, `.service`)."""
        self.methods.extend(namespace, methods)
        return self

    # -- the app ---------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        """The Starlette app (built once): mount it and forward its lifespan."""
        if self._app is None:
            self._host = RunHost(
                db=self._db,
                root_dir=self.workspace_root,
                allow_network=self.allow_network,
                poll_interval=self.poll_interval,
                registry=self.registry,
                timers=self.scheduler,
            )
            self._context = GatewayContext(
                service=RunService.for_host(self._host, window_size=self.event_window_size),
                registry=self.registry,
                pages=self.pages,
                authenticator=self.authenticator,
                metrics=GatewayMetrics(),
                limits=Limits(
                    max_body_bytes=self.max_body_bytes,
                    request_timeout_s=self.request_timeout / 1000,
                    keepalive_s=self.heartbeat_ms / 1000,
                    metrics=None,
                ),
            )
            self._app = build(
                self._context,
                self.methods,
                self._host,
                self._sockets,
                metrics_auth=self.metrics_auth,
                drain_timeout_s=self.drain_timeout_ms / 1000,
                kill_runs=lambda: self._kill_runs,
                scheduler=self._new_scheduler(self._context),
                console=self.console_path,
            )
        return self._app

    def _new_scheduler(self, context: GatewayContext) -> Scheduler | None:
        if not self.scheduler:
            return None
        poll_ms = self.scheduler_poll_ms
        poll_s = poll_interval_s(self.heartbeat_ms) if poll_ms is None else poll_ms / 1000
        self._scheduler = scheduling.scheduler(context, poll_s)
        return self._scheduler

    def config(
        self,
        port: int = 7331,
        host: str = "127.0.0.1",
        *,
        insecure: bool = False,
        log_level: str = "warning",
    ) -> uvicorn.Config:
        """The uvicorn config serving `.app`; an open gateway refuses a non-loopback `host`
        unless `insecure`. WebSockets are served by the `websockets` library through
        uvicorn's sans-I/O protocol (its legacy one is deprecated), each socket's frames of one
        loop turn sent in one system call."""
        check_bind(host, None if self.authenticator.mode == "open" else "auth", insecure)
        config = uvicorn_config(
            self.app,
            host=host,
            port=port,
            headers_timeout_ms=self.headers_timeout,
            log_level=log_level,
            ws=CoalescedWebSocketProtocol,
            ws_max_size=self.max_payload,
        )
        # Pings every heartbeat; a socket that does not answer within two is dropped.
        config.ws_ping_interval = self.heartbeat_ms / 1000
        config.ws_ping_timeout = 2 * self.heartbeat_ms / 1000
        return config

    async def listen(
        self,
        port: int = 7331,
        host: str = "127.0.0.1",
        *,
        path: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        log_level: str = "warning",
    ) -> GatewayServer:
        """Serve in this event loop; returns once bound and started (port 0: a free one).
        `path`: on that unix socket instead (mode 0600), removed again by `close()`."""
        if self._server is not None:
            raise SmithersError("INVALID_REQUEST", "the gateway is listening already")
        self._kill_runs = False
        self._sockets.closing = False
        config = self.config(port, host, insecure=insecure, log_level=log_level)
        self._server = await serve(config, None if path is None else os.fspath(path))
        return self._server

    async def close(self, kill_runs: bool = False) -> None:
        """Stop: WebSockets are closed with 1001 (and new ones refused); the runs this
        gateway drives park as `paused` once their in-flight tasks finish (within
        `drain_timeout_ms`), or are cancelled with `kill_runs`; a served gateway then stops
        listening. A mounted one keeps answering HTTP until its host app ends its lifespan."""
        self._kill_runs = kill_runs
        if self._scheduler is not None:
            self._scheduler.stop()
        await self._sockets.close_all(CLOSE_SOCKETS_S)
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        elif self._host is not None and self._host.running and self._context is not None:
            timeout_s = self.drain_timeout_ms / 1000
            await drain(self._host, self._context, kill_runs=kill_runs, timeout_s=timeout_s)
