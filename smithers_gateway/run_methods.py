"""RPC methods on runs as a whole: health, launch, read, list, resume, cancel, pause, a
failed task's retry, and the registered workflows."""

from __future__ import annotations

from typing import Any

from smithers import scopes
from smithers.clock import now_ms
from smithers.errors import SmithersError
from smithers.principal import Principal

from .context import PROTOCOL
from .params import LaunchOptions, LaunchRun, ListRuns, NodeParams, NoParams, RunParams
from .rpc import Call, Method, typed


def run_auth(principal: Principal) -> dict[str, Any]:
    """`ctx.auth` of a run the caller launches."""
    return {**principal.to_auth(), "triggeredBy": principal.user_id or "gateway"}


def idempotency_scope(principal: Principal) -> str:
    """Whose idempotency keys these are: one caller's key never answers another's launch."""
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.token_id is not None:
        return f"token:{principal.token_id}"
    return "gateway"


async def health(call: Call, _: NoParams) -> dict[str, Any]:
    gateway = call.gateway
    return {
        "ok": True,
        "identity": gateway.identity(),
        "protocol": PROTOCOL,
        "features": list(gateway.features),
        "uptimeMs": max(0, now_ms() - gateway.started_at_ms),
    }


async def launch_run(call: Call, p: LaunchRun) -> dict[str, Any]:
    options = p.options or LaunchOptions()
    config = {} if options.maxConcurrency is None else {"maxConcurrency": options.maxConcurrency}
    key = options.idempotencyKey
    run_id = await call.service.launch(
        p.workflow,
        input=p.input,
        run_id=p.runId,
        config=config,
        auth=run_auth(call.principal),
        idempotency=None if key is None else (idempotency_scope(call.principal), key),
    )
    return {"runId": run_id, "workflow": p.workflow}


async def get_run(call: Call, p: RunParams) -> dict[str, Any]:
    view = await call.service.view(p.runId)
    return {**view, "workflowKey": view["workflowName"]}


async def list_runs(call: Call, p: ListRuns) -> list[dict[str, Any]]:
    f = p.filter or p
    return await call.service.list_runs(
        limit=f.limit, status=f.status, workflow=f.workflow, offset=f.offset
    )


async def resume_run(call: Call, p: RunParams) -> dict[str, Any]:
    try:
        await call.service.resume(p.runId)
    except SmithersError as exc:
        if exc.code != "RUN_NOT_ACTIVE":
            raise
        return {"runId": p.runId, "status": "already_terminal"}
    return {"runId": p.runId, "status": "resume_requested"}


async def cancel_run(call: Call, p: RunParams) -> dict[str, Any]:
    await call.service.cancel(p.runId)
    return {"runId": p.runId, "status": "cancelled"}


async def pause_run(call: Call, p: RunParams) -> dict[str, Any]:
    await call.service.pause(p.runId)
    return {"runId": p.runId, "status": "pausing"}


async def retry_task(call: Call, p: NodeParams) -> dict[str, Any]:
    await call.service.retry_task(p.runId, p.nodeId, p.iteration)
    return {"runId": p.runId, "nodeId": p.nodeId, "status": "retry_requested"}


async def list_workflows(call: Call, _: NoParams) -> list[dict[str, Any]]:
    return call.gateway.workflows()


METHODS: list[Method] = [
    typed("health", scopes.RUN_READ, NoParams, health),
    typed("launchRun", scopes.RUN_WRITE, LaunchRun, launch_run, "runs.create"),
    typed("getRun", scopes.RUN_READ, RunParams, get_run, "runs.get"),
    typed("listRuns", scopes.RUN_READ, ListRuns, list_runs, "runs.list"),
    typed("resumeRun", scopes.RUN_WRITE, RunParams, resume_run),
    typed("cancelRun", scopes.RUN_WRITE, RunParams, cancel_run, "runs.cancel"),
    typed("pauseRun", scopes.RUN_WRITE, RunParams, pause_run),
    typed("retryTask", scopes.RUN_WRITE, NodeParams, retry_task),
    typed("listWorkflows", scopes.RUN_READ, NoParams, list_workflows, "workflows.list"),
]
