"""RPC methods on cron schedules: list, create (or replace), delete, and run one now."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from smithers import cron, scopes
from smithers.clock import now_ms
from smithers.errors import SmithersError
from smithers.web.models import Body, RunId, Text

from .params import NoParams
from .rpc import Call, Method, typed
from .run_methods import run_auth
from .scheduling import announce

WorkflowKey = Annotated[Text, Field(min_length=1, max_length=128)]


class CronId(Body):
    cronId: RunId


class CronCreate(Body):
    workflow: WorkflowKey
    pattern: Annotated[Text, Field(min_length=1, max_length=cron.MAX_PATTERN_CHARS)]
    timezone: Annotated[Text, Field(min_length=1, max_length=cron.MAX_ZONE_CHARS)] = "UTC"
    cronId: RunId | None = None
    enabled: bool = True


class CronRun(Body):
    cronId: RunId | None = None
    workflow: WorkflowKey | None = None
    input: dict[str, Any] | None = None


def _not_found(cron_id: str) -> SmithersError:
    return SmithersError("NOT_FOUND", f"no cron {cron_id!r}", {"cronId": cron_id})


async def cron_list(call: Call, _: NoParams) -> list[dict[str, Any]]:
    store = call.service.require_run_list()
    return await store.run(cron.listing, store)


async def cron_create(call: Call, p: CronCreate) -> dict[str, Any]:
    call.gateway.registry.require(p.workflow)
    store = call.service.require_run_list()
    return await store.run(
        cron.save,
        store,
        workflow=p.workflow,
        pattern=p.pattern,
        timezone=p.timezone,
        cron_id=p.cronId,
        enabled=p.enabled,
    )


async def cron_delete(call: Call, p: CronId) -> dict[str, Any]:
    store = call.service.require_run_list()
    if not await store.run(cron.remove, store, p.cronId):
        raise _not_found(p.cronId)
    return {"cronId": p.cronId, "removed": True}


async def cron_run(call: Call, p: CronRun) -> dict[str, Any]:
    """Start a run now: of the row's workflow (`cronId`), or of `workflow`. The run
    carries the caller's `ctx.auth`, as `launchRun` does."""
    store = call.service.require_run_list()
    workflow = p.workflow
    if p.cronId is not None:
        row = await store.run(cron.find, store, p.cronId)
        if row is None:
            raise _not_found(p.cronId)
        if workflow is not None and workflow != row["workflow"]:
            raise SmithersError("INVALID_REQUEST", f"cron {p.cronId!r} runs {row['workflow']!r}")
        workflow = row["workflow"]
    if workflow is None:
        raise SmithersError("INVALID_REQUEST", "give cronId or workflow")
    started = now_ms()
    run_id = await call.service.launch(workflow, input=p.input, auth=run_auth(call.principal))
    if p.cronId is not None:
        await store.run(cron.ran, store, p.cronId, started)
        announce(call.gateway, p.cronId, workflow, run_id)
    return {"runId": run_id, "workflow": workflow}


METHODS: list[Method] = [
    typed("cronList", scopes.CRON_READ, NoParams, cron_list, "cron.list"),
    typed("cronCreate", scopes.CRON_WRITE, CronCreate, cron_create, "cron.add"),
    typed("cronDelete", scopes.CRON_WRITE, CronId, cron_delete, "cron.remove"),
    typed("cronRun", scopes.CRON_WRITE, CronRun, cron_run, "cron.trigger"),
]
