"""The Gateway's Starlette app: its routes on the shared app factory (error envelope, guard,
`/metrics`), the `X-Smithers-API-Version` header on every answer, and a lifespan that runs
the host (runtimes, adoption) and the event feed (metrics, the event window, broadcast
events), and parks or cancels the runs it drives when it ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smithers.errors import SmithersError
from smithers.events import Event
from smithers.host import RunHost
from smithers.scheduler import Scheduler
from smithers.web.app import build_app

from .console_routes import console_routes, redirect_to
from .context import GatewayContext
from .frames import API_VERSION
from .http import routes
from .pages import PageRoutes
from .rpc import MethodTable
from .scheduling import save_registered
from .sockets import Sockets
from .webhooks import webhook_routes
from .ws import websocket_routes

logger = logging.getLogger("smithers.gateway")

API_VERSION_HEADER = (b"x-smithers-api-version", API_VERSION.encode())


class ApiVersionHeader:
    """Adds `X-Smithers-API-Version: v1` to every HTTP answer, refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), API_VERSION_HEADER]}
            await send(message)

        await self.app(scope, receive, send_with_header)


async def drain(host: RunHost, ctx: GatewayContext, *, kill_runs: bool, timeout_s: float) -> None:
    """Ask every run this process drives to park as `paused` (its in-flight tasks finish
    first, within `timeout_s`), or cancel them all when `kill_runs`. A run still busy at
    the deadline parks as `paused` all the same: its cut-short task runs again on resume."""
    live = [
        (store, run_id) for store in host.stores() for run_id in host.runtime(store).live_run_ids()
    ]
    for _, run_id in live:
        try:
            await (ctx.service.cancel(run_id) if kill_runs else ctx.service.pause(run_id))
        except SmithersError as exc:  # it ended meanwhile
            logger.debug("run %s not parked: %s", run_id, exc.code)
    with anyio.move_on_after(timeout_s):
        for store, run_id in live:
            await host.runtime(store).wait(run_id)


def build(
    ctx: GatewayContext,
    table: MethodTable,
    host: RunHost,
    sockets: Sockets,
    *,
    metrics_auth: bool,
    drain_timeout_s: float,
    kill_runs: Callable[[], bool],
    scheduler: Scheduler | None = None,
    console: str | None = None,
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        def broadcast(event: Event) -> None:
            sockets.broadcast.publish(event, ctx.metrics.state_version)

        def publish(name: str, payload: dict[str, Any]) -> None:
            state_version = ctx.metrics.state_version
            sockets.broadcast.publish_named(name, payload["runId"], payload, state_version)

        ctx.publish = publish
        async with host, ctx.service.feeding(ctx.metrics, broadcast):
            try:
                await save_registered(ctx)
                async with anyio.create_task_group() as tg:
                    if scheduler is not None:  # stopped before the runs are drained
                        tg.start_soon(scheduler.run, ctx.service.require_run_list())
                    try:
                        yield
                    finally:
                        tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await drain(host, ctx, kill_runs=kill_runs(), timeout_s=drain_timeout_s)

    served = [redirect_to(console), *console_routes(console)] if console is not None else []
    app = build_app(
        [
            *served,
            *routes(ctx, table, metrics_auth=metrics_auth),
            *webhook_routes(ctx),
            *websocket_routes(ctx, table, sockets),
        ],
        token=None,
        insecure=False,
        metrics=ctx.metrics,  # its /metrics comes after ours, when we have one
        lifespan=lifespan,
        own_auth=not ctx.is_open,
    )
    app.router.routes.append(PageRoutes(ctx.pages))  # workflow pages, found per request
    app.add_middleware(ApiVersionHeader)
    app.state.smithers_gateway = ctx
    return app
