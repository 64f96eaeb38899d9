"""create_app: the multi-workflow REST server as a Starlette app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.routing import Route

from smithers import Store
from smithers.auth import configured_token
from smithers.environment import DB_ENV, ROOT_ENV, from_env
from smithers.host import RunHost
from smithers.metrics import Metrics
from smithers.service import RunService
from smithers.web.app import build_app, health
from smithers.web.body import DEFAULT_MAX_BODY_BYTES
from smithers.web.openapi import openapi_endpoint
from smithers.web.run_endpoints import Limits
from smithers.web.sse import StreamSlots

from . import decisions, runs, workflows
from .context import ServerContext


def create_app(
    db: str | Engine | Store | None = None,
    auth_token: str | None = None,
    root_dir: str | os.PathLike[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allow_network: bool = False,
    *,
    request_timeout: int = 60_000,
    sse_keepalive_ms: int = 10_000,
    metrics: bool = True,
    insecure: bool = False,
    token_env: str = "SMITHERS_API_KEY",
    poll_interval: float = 1.0,
    load_timeout: int = 30_000,
    allowed_origins: Iterable[str] = (),
    max_streams: int = 1000,
    max_streams_per_run: int = 100,
    cors_origins: Iterable[str] = (),
) -> Starlette:
    """The server app. Its lifespan starts the runtimes (heartbeats, adoption of stale runs).

    `db` and `root_dir` left out come from `SMITHERS_DB` and `SMITHERS_ROOT` (else no server
    database, and the current directory), the token from `token_env` (`SMITHERS_API_KEY`):
    `uvicorn --factory smithers_server:create_app` is configured by the environment.

    Without a token (argument or `token_env`), requests must carry a loopback Host (a
    DNS-rebinding guard) unless `insecure=True`, and an Origin, when present, must be the
    server's own or one of `allowed_origins` (`scheme://host[:port]`); with a token, a
    non-empty `allowed_origins` still refuses any other Origin. `cors_origins` are
    allowed too, and get CORS answers (preflights, `Access-Control-Allow-Origin`), so a
    page there may call the API with the token header. At most `max_streams` SSE
    streams are open at once, `max_streams_per_run` on one run; past either, 429
    `TOO_MANY_STREAMS`. A workflow import taking longer than `load_timeout` ms is refused.
    """
    token = configured_token(auth_token, token_env)
    host = RunHost(
        db=db if db is not None else from_env(DB_ENV),
        root_dir=root_dir if root_dir is not None else from_env(ROOT_ENV) or ".",
        allow_network=allow_network,
        poll_interval=poll_interval,
        load_timeout_s=load_timeout / 1000,
    )
    app_metrics = Metrics() if metrics else None
    service = RunService.for_host(host)
    ctx = ServerContext(
        service=service,
        limits=Limits(
            max_body_bytes=max_body_bytes,
            request_timeout_s=request_timeout / 1000,
            keepalive_s=sse_keepalive_ms / 1000,
            metrics=app_metrics,
            streams=StreamSlots(max_streams, max_streams_per_run),
        ),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with host:
            if app_metrics is None:
                yield
                return
            async with service.feeding(app_metrics):
                yield

    routes = [
        Route("/health", health, methods=["GET"]),
        *runs.routes(ctx),
        *decisions.routes(ctx),
        *workflows.routes(ctx),
        Route(
            "/openapi.json",
            openapi_endpoint("smithers-asgi server", "0.1.0"),
            methods=["GET"],
        ),
    ]
    app = build_app(
        routes,
        token=token,
        insecure=insecure,
        metrics=app_metrics,
        lifespan=lifespan,
        allowed_origins=allowed_origins,
        streams=ctx.limits.streams,
        cors_origins=cors_origins,
    )
    app.state.smithers = ctx
    return app
