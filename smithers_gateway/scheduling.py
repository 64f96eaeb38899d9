"""The Gateway's side of cron: the rows of `register(..., schedule=)`, the runs its
scheduler starts (with the system's `ctx.auth`), and the `cron.triggered` event."""

from __future__ import annotations

from typing import Any

from smithers import cron
from smithers.scheduler import Scheduler

from .context import GatewayContext


def gateway_cron_id(key: str) -> str:
    return f"gateway:{key}"


def check_schedule(options: dict[str, Any]) -> None:
    """`register`'s `schedule` and `timezone`, refused at once when bad (INVALID_REQUEST)."""
    if options.get("schedule") is not None:
        cron.check_schedule(options["schedule"], options.get("timezone") or "UTC")


async def save_registered(ctx: GatewayContext) -> None:
    """Upsert `gateway:<key>` for each workflow registered with a `schedule`."""
    store = ctx.service.require_run_list()
    for entry in ctx.registry.entries():
        schedule = entry.options.get("schedule")
        if schedule is not None:
            await store.run(
                cron.save,
                store,
                workflow=entry.key,
                pattern=schedule,
                timezone=entry.options.get("timezone") or "UTC",
                cron_id=gateway_cron_id(entry.key),
            )


def announce(ctx: GatewayContext, cron_id: str, workflow: str, run_id: str) -> None:
    ctx.publish("cron.triggered", {"cronId": cron_id, "workflow": workflow, "runId": run_id})


def scheduler(ctx: GatewayContext, poll_s: float) -> Scheduler:
    """The scheduler of the Gateway's database: each fire launches its workflow."""

    async def launch(fire: cron.Fire) -> str:
        try:
            run_id = await ctx.service.launch(
                fire.workflow,
                input=None,
                config={"cron": {"cronId": fire.cron_id, "dueAtMs": fire.due_at_ms}},
                auth=dict(cron.SYSTEM_AUTH),
            )
        except Exception:
            ctx.metrics.cron_fires.labels("failed").inc()
            raise
        ctx.metrics.cron_fires.labels("started").inc()
        announce(ctx, fire.cron_id, fire.workflow, run_id)
        return run_id

    return Scheduler(launch, poll_s=poll_s)
