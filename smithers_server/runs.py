"""Routes of the run resource: start, list, read, resume, cancel, events, frames."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers import queries
from smithers.errors import SmithersError
from smithers.web.params import body_field, invalid, query_int, query_text
from smithers.web.responses import JSONResponse
from smithers.web.run_endpoints import cancel_endpoint, events_endpoint, frames_endpoint

from .context import RUN_ID, ServerContext, run_id_param


def _config(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body_field(body, "config", dict)
    if config is None:
        return None
    limit = config.get("maxConcurrency")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise invalid("config.maxConcurrency", "config.maxConcurrency must be an integer > 0")
    return {"maxConcurrency": limit} if limit is not None else {}


def routes(ctx: ServerContext) -> list[Route]:
    service = ctx.service

    async def start_run(request: Request) -> Response:
        body = await ctx.limits.body(request)
        path = body_field(body, "workflowPath", str)
        if not path:
            raise invalid("workflowPath", "workflowPath is required")
        run_input = body.get("input", {})
        if run_input is None:
            run_input = {}
        if not isinstance(run_input, dict):
            raise invalid("input", "input must be an object")
        run_id = body_field(body, "runId", str)
        resume = body_field(body, "resume", bool, False)
        config = _config(body)
        if run_id is not None and not RUN_ID.match(run_id):
            raise invalid("runId", "runId must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
        if resume and run_id is None:
            raise SmithersError("RUN_ID_REQUIRED", "resume needs a runId")
        if resume:
            assert run_id is not None
            if await service.resume(run_id, path, load_first=True) == "running":
                raise SmithersError(
                    "RUN_IN_PROGRESS", f"run {run_id!r} is running", {"runId": run_id}
                )
            return JSONResponse({"runId": run_id})
        started = await service.start(path, input=run_input, run_id=run_id, config=config)
        return JSONResponse({"runId": started})

    async def list_runs(request: Request) -> Response:
        service.require_run_list()
        limit = query_int(request.query_params, "limit", 50, minimum=1, maximum=1000)
        assert limit is not None
        status = query_text(request.query_params, "status")
        if status is not None and status not in queries.RUN_STATUSES:
            raise invalid(
                "status", f"status must be one of {', '.join(sorted(queries.RUN_STATUSES))}"
            )
        workflow = query_text(request.query_params, "workflow")
        found = await service.list_runs(limit=limit, status=status, workflow=workflow)
        return JSONResponse({"runs": found})

    async def runs_collection(request: Request) -> Response:
        return await (start_run if request.method == "POST" else list_runs)(request)

    async def get_run(request: Request) -> Response:
        return JSONResponse(await service.view(run_id_param(request)))

    async def resume_run(request: Request) -> Response:
        body = await ctx.limits.body(request)
        path = body_field(body, "workflowPath", str)
        run_id = run_id_param(request, "RUN_NOT_FOUND")
        if await service.resume(run_id, path) == "running":
            return JSONResponse({"runId": run_id, "status": "running"})
        return JSONResponse({"runId": run_id})

    return [
        Route("/v1/runs", runs_collection, methods=["GET", "POST"]),
        Route("/v1/runs/{runId}", get_run, methods=["GET"]),
        Route("/v1/runs/{runId}/resume", resume_run, methods=["POST"]),
        Route("/v1/runs/{runId}/cancel", cancel_endpoint(service, run_id_param), methods=["POST"]),
        Route(
            "/v1/runs/{runId}/events",
            events_endpoint(service, run_id_param, ctx.limits),
            methods=["GET"],
        ),
        Route("/v1/runs/{runId}/frames", frames_endpoint(service, run_id_param), methods=["GET"]),
    ]
