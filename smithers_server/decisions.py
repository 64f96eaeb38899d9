"""Routes of human input: approve, deny, signals, and the pending approvals list."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers import queries
from smithers.web.models import ApprovalList
from smithers.web.openapi import operation
from smithers.web.responses import JSONResponse
from smithers.web.run_endpoints import decide_endpoint, signal_endpoint

from .context import ServerContext


def routes(ctx: ServerContext) -> list[Route]:
    @operation("Pending approvals, oldest first", ApprovalList)
    async def approvals(request: Request) -> Response:
        store = ctx.host.require_server_store()
        return JSONResponse({"approvals": await store.run(queries.pending_approvals, store)})

    send_signal = signal_endpoint(ctx.locate, ctx.limits, ctx.workflow_of)
    return [
        Route(
            "/v1/runs/{runId}/nodes/{nodeId}/approve",
            decide_endpoint(ctx.locate, ctx.limits, approved=True),
            methods=["POST"],
        ),
        Route(
            "/v1/runs/{runId}/nodes/{nodeId}/deny",
            decide_endpoint(ctx.locate, ctx.limits, approved=False),
            methods=["POST"],
        ),
        Route("/v1/runs/{runId}/signals/{signalName}", send_signal, methods=["POST"]),
        Route("/signal/{runId}/{signalName}", send_signal, methods=["POST"]),
        *[
            Route(path, approvals, methods=["GET"])
            for path in ("/v1/approvals", "/v1/approval/list", "/approval/list", "/approvals")
        ],
    ]
