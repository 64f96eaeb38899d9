"""Routes of the run resource: start, list, read, resume, cancel, events, frames."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smithers.errors import SmithersError
from smithers.web.models import (
    ListRunsQuery,
    OutputItem,
    OutputsQuery,
    ResumeAnswer,
    ResumeRun,
    RunConfig,
    RunIdAnswer,
    RunListItem,
    RunView,
    StartRun,
)
from smithers.web.openapi import by_method, operation
from smithers.web.params import parse_query
from smithers.web.responses import JSONResponse
from smithers.web.run_endpoints import cancel_endpoint, events_endpoint, frames_endpoint

from .context import ServerContext, run_id_param

BODY_RUN_ERRORS = (404, 409)


def _config(config: RunConfig | None) -> dict[str, Any] | None:
    if config is None:
        return None
    limit = config.maxConcurrency
    return {"maxConcurrency": limit} if limit is not None else {}


def routes(ctx: ServerContext) -> list[Route]:
    service = ctx.service

    @operation(
        "Start a run, or resume one with resume: true",
        RunIdAnswer,
        body=StartRun,
        errors=BODY_RUN_ERRORS,
    )
    async def start_run(request: Request) -> Response:
        body = await ctx.limits.parse(request, StartRun)
        path = body.workflowPath
        run_input = body.input or {}
        run_id = body.runId
        resume = bool(body.resume)
        config = _config(body.config)
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

    @operation("List runs, newest first", list[RunListItem], query=ListRunsQuery)
    async def list_runs(request: Request) -> Response:
        service.require_run_list()
        query = parse_query(ListRunsQuery, request.query_params)
        found = await service.list_runs(
            limit=query.limit, status=query.status, workflow=query.workflow
        )
        return JSONResponse(found)

    runs_collection = by_method({"GET": list_runs, "POST": start_run})

    @operation("Run status and node summary", RunView, errors=(404,))
    async def get_run(request: Request) -> Response:
        return JSONResponse.encoded(await service.view_json(run_id_param(request)))

    @operation(
        "Resume a parked, paused, failed or stale run",
        ResumeAnswer,
        body=ResumeRun,
        errors=BODY_RUN_ERRORS,
        description="409 WORKFLOW_MISMATCH when workflowPath names another workflow than "
        "the run recorded",
    )
    async def resume_run(request: Request) -> Response:
        path = (await ctx.limits.parse(request, ResumeRun)).workflowPath
        run_id = run_id_param(request, "RUN_NOT_FOUND")
        if await service.resume(run_id, path) == "running":
            return JSONResponse({"runId": run_id, "status": "running"})
        return JSONResponse({"runId": run_id})

    @operation("What the run's tasks produced", list[OutputItem], query=OutputsQuery, errors=(404,))
    async def outputs(request: Request) -> Response:
        at = await service.locate(run_id_param(request))
        query = parse_query(OutputsQuery, request.query_params)
        return JSONResponse(await service.output_list(at, query.nodeId))

    return [
        # The hottest read first: the router tries routes in order.
        Route("/v1/runs/{runId}", get_run, methods=["GET"]),
        Route("/v1/runs", runs_collection, methods=["GET", "POST"]),
        Route("/v1/runs/{runId}/resume", resume_run, methods=["POST"]),
        Route("/v1/runs/{runId}/cancel", cancel_endpoint(service, run_id_param), methods=["POST"]),
        Route(
            "/v1/runs/{runId}/events",
            events_endpoint(service, run_id_param, ctx.limits),
            methods=["GET"],
        ),
        Route("/v1/runs/{runId}/frames", frames_endpoint(service, run_id_param), methods=["GET"]),
        Route("/v1/runs/{runId}/outputs", outputs, methods=["GET"]),
    ]
