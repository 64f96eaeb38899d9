"""The Gateway's HTTP routes: `/health`, `/workflows`, `/` (a small index), `/metrics`
when it needs `observability:read`, and RPC for stateless callers: `POST /v1/rpc/{method}`
(the body is the params) and the legacy `POST /rpc` (`{"id"?, "method", "params"?}`).

Every RPC answer is a response frame, with status 200 or the error's status.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from smithers import scopes
from smithers.errors import SmithersError
from smithers.metrics import CONTENT_TYPE
from smithers.web.models import Body, Text
from smithers.web.params import parse_model
from smithers.web.responses import JSONResponse, error_response

from .context import PROTOCOL, GatewayContext
from .frames import error_frame, ok_frame, status_of
from .rpc import MethodTable, dispatch, missing_scope

logger = logging.getLogger("smithers.gateway")

FrameId = Annotated[Text, Field(min_length=1, max_length=128)]


class LegacyRequest(Body):
    id: FrameId | int | None = None
    method: Annotated[Text, Field(min_length=1, max_length=128)]
    params: dict[str, Any] | None = None


# What an RPC route reads from its request: (frame id, method name, params).
ReadCall = Callable[[Request], Awaitable[tuple[Any, str, dict[str, Any]]]]


def new_frame_id() -> str:
    return "http-" + secrets.token_hex(8)


def frame_response(frame: dict[str, Any], status: int = 200) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(frame, status, headers)


def routes(ctx: GatewayContext, table: MethodTable, *, metrics_auth: bool) -> list[BaseRoute]:
    async def answer(request: Request, read: ReadCall) -> Response:
        frame_id: Any = new_frame_id()
        try:
            principal = ctx.authenticate(request.headers)
            frame_id, name, params = await read(request)
            payload = await dispatch(table, ctx, principal, name, params, "http")
            return frame_response(ok_frame(frame_id, payload))
        except SmithersError as exc:
            return frame_response(error_frame(frame_id, exc), status_of(exc.code))
        except Exception:
            logger.exception("RPC over HTTP failed", extra={"path": request.url.path})
            refusal = SmithersError("SERVER_ERROR", "internal server error")
            return frame_response(error_frame(frame_id, refusal), 500)

    async def read_v1(request: Request) -> tuple[Any, str, dict[str, Any]]:
        params = await ctx.limits.body(request)
        return new_frame_id(), request.path_params["method"], params

    async def read_legacy(request: Request) -> tuple[Any, str, dict[str, Any]]:
        body = parse_model(LegacyRequest, await ctx.limits.body(request))
        return body.id if body.id is not None else new_frame_id(), body.method, body.params or {}

    async def rpc(request: Request) -> Response:
        return await answer(request, read_v1)

    async def legacy_rpc(request: Request) -> Response:
        return await answer(request, read_legacy)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "ok": True,
                "protocol": PROTOCOL,
                "features": list(ctx.features),
                "stateVersion": ctx.metrics.state_version,
                "identity": ctx.identity(),
                "workflowsLoaded": len(ctx.registry),
                "workflowsTotal": len(ctx.registry),
            }
        )

    async def workflows(request: Request) -> Response:
        return JSONResponse({"workflows": ctx.workflows()})

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "service": "smithers gateway",
                "health": "/health",
                "workflows": "/workflows",
                "rpc": "/v1/rpc/{method}",
                "apiVersion": "v1",
            }
        )

    async def metrics(request: Request) -> Response:
        try:
            principal = ctx.authenticate(request.headers)
            if not principal.allows(scopes.OBSERVABILITY_READ, "metrics"):
                raise missing_scope(scopes.OBSERVABILITY_READ, "metrics")
        except SmithersError as exc:
            return error_response(exc)
        return Response(ctx.metrics.exposition(), headers={"content-type": CONTENT_TYPE})

    found: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/workflows", workflows, methods=["GET"]),
        Route("/v1/rpc/{method}", rpc, methods=["POST"]),
        Route("/rpc", legacy_rpc, methods=["POST"]),
    ]
    if metrics_auth:
        found.append(Route("/metrics", metrics, methods=["GET"]))
    return found
