"""Building an app the way all three are built: error envelope everywhere, guard, lifespan."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..auth import normalise_origins
from ..errors import SmithersError
from ..metrics import CONTENT_TYPE, Metrics
from .cors import CORS
from .guard import GuardMiddleware
from .models import Ok
from .openapi import operation
from .responses import JSONResponse, error, error_response
from .sse import StreamSlots

logger = logging.getLogger("smithers.web")


async def _smithers_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmithersError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        refusal = SmithersError("METHOD_NOT_ALLOWED", "Method not allowed")
        return error_response(refusal, {"allow": allow})
    if exc.status_code == 404:
        return error("NOT_FOUND", "Route not found")
    return error("INVALID_REQUEST", str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error(
        "unhandled error",
        extra={"path": request.url.path, "method": request.method},
        exc_info=exc,
    )
    return error("SERVER_ERROR", "internal server error")


@operation("Liveness", Ok, public=True)
def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Response]:
    @operation("Prometheus metrics", media_type="text/plain")
    def endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), headers={"content-type": CONTENT_TYPE})

    return endpoint


def build_app(
    routes: Sequence[BaseRoute],
    *,
    token: str | None,
    insecure: bool,
    metrics: Metrics | None,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]] | None = None,
    allowed_origins: Iterable[str] = (),
    streams: StreamSlots | None = None,
    own_auth: bool = False,
    cors_origins: Iterable[str] = (),
) -> Starlette:
    """An app with the shared guard, error envelope everywhere, and `/metrics` when
    `metrics` is given. `streams` (the app's open event streams) are ended by our servers
    as they shut down (`smithers.web.serving.SmithersServer`).

    The guard refuses a non-loopback Host when open (no token) and not `insecure`, and a
    request whose Origin is neither the server's own nor in `allowed_origins` or
    `cors_origins` when open, or when either is given (with a token, a browser sends it
    cross-site only after a CORS preflight, which only `cors_origins` are granted). With
    `own_auth` the app authenticates each request itself (the Gateway's modes): the guard
    then checks only the request head."""
    routes = list(routes)
    if metrics is not None:
        routes.append(Route("/metrics", metrics_endpoint(metrics), methods=["GET"]))
    cors = normalise_origins(cors_origins, "CORS origin")
    origins = normalise_origins(allowed_origins) | cors
    guard = Middleware(
        GuardMiddleware,
        token=token,
        host_guard=token is None and not insecure and not own_auth,
        origin_guard=(token is None or bool(origins)) and not own_auth,
        allowed_origins=origins,
        metrics=metrics,
        cors=partial(CORS, origins=cors) if cors else None,
    )
    app = Starlette(
        routes=routes,
        middleware=[guard, *([Middleware(CORS, origins=cors)] if cors else [])],
        exception_handlers={
            SmithersError: _smithers_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.event_streams = streams
    return app


__all__ = ["build_app", "health", "metrics_endpoint"]
