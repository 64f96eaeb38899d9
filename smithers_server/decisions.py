"""Routes of human input: approve, deny, signals, and the pending approvals list."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers.web.models import ApprovalList
from smithers.web.openapi import operation
from smithers.web.responses import JSONResponse
from smithers.web.run_endpoints import decide_endpoint, signal_endpoint

from .context import ServerContext, run_id_param


def routes(ctx: ServerContext) -> list[Route]:
    service = ctx.service

    @operation("Pending approvals, oldest first", ApprovalList)
    async def approvals(request: Request) -> Response:
        return JSONResponse({"approvals": await service.approvals()})

    send_signal = signal_endpoint(service, run_id_param, ctx.limits)
    return [
        Route(
            "/v1/runs/{runId}/nodes/{nodeId}/approve",
            decide_endpoint(service, run_id_param, ctx.limits, approved=True),
            methods=["POST"],
        ),
        Route(
            "/v1/runs/{runId}/nodes/{nodeId}/deny",
            decide_endpoint(service, run_id_param, ctx.limits, approved=False),
            methods=["POST"],
        ),
        Route("/v1/runs/{runId}/signals/{signalName}", send_signal, methods=["POST"]),
        Route("/signal/{runId}/{signalName}", send_signal, methods=["POST"]),
        *[
            Route(path, approvals, methods=["GET"])
            for path in ("/v1/approvals", "/v1/approval/list", "/approval/list", "/approvals")
        ],
    ]
