"""create_serve_app: one already-loaded workflow and one run, behind HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers import Store
from smithers.auth import configured_token
from smithers.definition import SmithersWorkflow
from smithers.metrics import Metrics
from smithers.runtime import Runtime
from smithers.service import RunService
from smithers.web.app import build_app, health
from smithers.web.body import DEFAULT_MAX_BODY_BYTES
from smithers.web.models import RunView
from smithers.web.openapi import operation
from smithers.web.responses import JSONResponse
from smithers.web.run_endpoints import (
    Endpoint,
    Limits,
    cancel_endpoint,
    decide_endpoint,
    events_endpoint,
    frames_endpoint,
    signal_endpoint,
)
from smithers.web.sse import StreamSlots

CancelHook = Callable[[], object] | anyio.Event


def create_serve_app(
    *,
    workflow: SmithersWorkflow,
    store: Store,
    run_id: str,
    cancel: CancelHook | None = None,
    auth_token: str | None = None,
    metrics: bool = True,
    runtime: Runtime | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    request_timeout: int = 60_000,
    sse_keepalive_ms: int = 10_000,
    insecure: bool = False,
    token_env: str = "SMITHERS_API_KEY",
    allowed_origins: Iterable[str] = (),
    max_streams: int = 100,
    cors_origins: Iterable[str] = (),
) -> Starlette:
    """The single-run app. `cancel` is set (an Event) or called after `POST /cancel`;
    `runtime` is the one driving the run, so SSE is pushed without polling, and a
    decision or signal made here that sets the run going again is driven on by it.
    `allowed_origins` and `cors_origins` as for `smithers_server.create_app`. At most
    `max_streams` SSE streams are open at once; past that, 429 `TOO_MANY_STREAMS`."""
    token = configured_token(auth_token, token_env)
    app_metrics = Metrics() if metrics else None
    limits = Limits(
        max_body_bytes,
        request_timeout / 1000,
        sse_keepalive_ms / 1000,
        app_metrics,
        StreamSlots(max_streams, max_streams),
    )
    service = RunService.for_run(store, run_id, workflow, runtime)

    def the_run(request: Request) -> str:
        return run_id

    @operation("The run's status and node summary", RunView, errors=(404,))
    async def root(request: Request) -> Response:
        return JSONResponse.encoded(await service.view_json(run_id, not_found="RUN_NOT_FOUND"))

    cancel_run = cancel_endpoint(service, the_run)

    async def cancel_and_notify(request: Request) -> Response:
        response: Response = await cancel_run(request)
        if isinstance(cancel, anyio.Event):
            cancel.set()
        elif cancel is not None:
            cancel()
        return response

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if app_metrics is None:
            yield
            return
        async with service.feeding(app_metrics):
            yield

    def decide(*, approved: bool) -> Endpoint:
        return decide_endpoint(service, the_run, limits, approved=approved)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/", root, methods=["GET"]),
        Route("/events", events_endpoint(service, the_run, limits), methods=["GET"]),
        Route("/frames", frames_endpoint(service, the_run), methods=["GET"]),
        Route("/approve/{nodeId}", decide(approved=True), methods=["POST"]),
        Route("/deny/{nodeId}", decide(approved=False), methods=["POST"]),
        Route("/signals/{signalName}", signal_endpoint(service, the_run, limits), methods=["POST"]),
        Route("/cancel", cancel_and_notify, methods=["POST"]),
    ]
    app = build_app(
        routes,
        token=token,
        insecure=insecure,
        metrics=app_metrics,
        lifespan=lifespan,
        allowed_origins=allowed_origins,
        streams=limits.streams,
        cors_origins=cors_origins,
    )
    app.state.workflow = workflow
    return app
