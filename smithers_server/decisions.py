"""Routes of human input: approve, deny, signals, and the pending approvals list."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers import commands, queries
from smithers.engine import in_thread
from smithers.web.params import body_field, invalid
from smithers.web.responses import JSONResponse

from .context import ServerContext


def decision_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of an approve/deny body, type-checked."""
    iteration = body_field(body, "iteration", int, 0)
    if iteration is not None and iteration < 0:
        raise invalid("iteration", "iteration must be >= 0")
    return {
        "iteration": iteration,
        "note": body_field(body, "note", str),
        "decided_by": body_field(body, "decidedBy", str),
        "decision": body_field(body, "decision", dict),
    }


def signal_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": body.get("data", {}),
        "correlation_id": body_field(body, "correlationId", str),
        "received_by": body_field(body, "receivedBy", str),
    }


def routes(ctx: ServerContext) -> list[Route]:
    def decide(approved: bool) -> Any:
        async def endpoint(request: Request) -> Response:
            run_id, store = await ctx.run_store(request)
            fields = decision_fields(await ctx.body(request))
            node_id = request.path_params["nodeId"]
            decision = await in_thread(
                commands.decide, store, run_id, node_id, approved=approved, **fields
            )
            return JSONResponse(decision.to_json())

        return endpoint

    async def send_signal(request: Request) -> Response:
        run_id, store = await ctx.run_store(request)
        name = request.path_params["signalName"]
        if not name.strip():
            raise invalid("signalName", "signal name must not be blank")
        fields = signal_fields(await ctx.body(request))
        sent = await in_thread(
            commands.send_signal,
            store,
            run_id,
            name,
            fields["data"],
            correlation_id=fields["correlation_id"],
            received_by=fields["received_by"],
        )
        return JSONResponse(sent)

    async def approvals(request: Request) -> Response:
        store = ctx.host.require_server_store()
        return JSONResponse({"approvals": await in_thread(queries.pending_approvals, store)})

    return [
        Route("/v1/runs/{runId}/nodes/{nodeId}/approve", decide(True), methods=["POST"]),
        Route("/v1/runs/{runId}/nodes/{nodeId}/deny", decide(False), methods=["POST"]),
        Route("/v1/runs/{runId}/signals/{signalName}", send_signal, methods=["POST"]),
        Route("/signal/{runId}/{signalName}", send_signal, methods=["POST"]),
        *[
            Route(path, approvals, methods=["GET"])
            for path in ("/v1/approvals", "/v1/approval/list", "/approval/list", "/approvals")
        ],
    ]
