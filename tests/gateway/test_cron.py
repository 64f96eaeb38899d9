"""Cron on the Gateway: the RPC methods (and their legacy names), `register(schedule=)`,
fires that start runs with the system's `ctx.auth` and push `cron.triggered`, a failed fire
kept on its row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from smithers_gateway import Gateway

from . import workflows
from .conftest import Rpc, serve_gateway
from .sockets import connected

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
SYSTEM = {"triggeredBy": "cron:gateway", "role": "system", "scopes": ["*"]}


async def cron_runs(rpc: Rpc, count: int) -> list[dict[str, Any]]:
    """Wait for `count` finished runs of `hello` and return them."""
    with anyio.fail_after(30):
        while True:
            runs = await rpc("listRuns", workflow="hello", status="finished")
            if len(runs) >= count:
                return list(runs)
            await anyio.sleep(0.05)


async def test_cron_rows_are_created_listed_run_and_deleted(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, scheduler=False) as gw, gw.client() as client:
        rpc = Rpc(client)
        row = await rpc(
            "cronCreate", workflow="hello", pattern="0 8 * * 1-5", timezone="Europe/Paris"
        )
        assert row["cronId"].startswith("cron_") and row["enabled"] is True
        assert row["workflow"] == "hello" and row["timezone"] == "Europe/Paris"
        assert row["nextRunAtMs"] > row["createdAtMs"] and row["lastRunAtMs"] is None
        assert row["errorJson"] is None
        named = await rpc("cron.add", workflow="gate", pattern="*/5 * * * * *", cronId="fast")
        assert named["timezone"] == "UTC"
        listed = await rpc("cronList")
        assert [r["cronId"] for r in listed] == sorted([row["cronId"], "fast"])
        assert listed == await rpc("cron.list")
        assert set(listed[0]) == {
            "cronId", "pattern", "timezone", "workflow", "enabled", "createdAtMs",
            "lastRunAtMs", "nextRunAtMs", "errorJson",
        }  # fmt: skip

        started = await rpc("cronRun", cronId=row["cronId"], input={"name": "cron"})
        assert started["workflow"] == "hello"
        await rpc.wait_status(started["runId"], "finished")
        who = (await rpc("getNodeOutput", runId=started["runId"], nodeId="who"))["output"]
        assert who["triggeredBy"] == "ops"  # a run started by hand is the caller's
        ran = next(r for r in await rpc("cronList") if r["cronId"] == row["cronId"])
        assert ran["lastRunAtMs"] is not None
        by_workflow = await rpc("cron.trigger", workflow="hello")
        assert by_workflow["workflow"] == "hello"

        assert await rpc("cronDelete", cronId="fast") == {"cronId": "fast", "removed": True}
        await rpc.refused("cron.remove", 404, "NOT_FOUND", cronId="fast")
        await rpc.refused("cronRun", 404, "NOT_FOUND", cronId="fast")
        await rpc.refused("cronRun", 400, "INVALID_REQUEST")
        await rpc.refused("cronCreate", 404, "NOT_FOUND", workflow="nope", pattern="* * * * *")


@pytest.mark.parametrize(
    "params",
    [
        {"pattern": "61 * * * *"},
        {"pattern": "every day"},
        {"pattern": "0 0 31 2 *"},
        {"pattern": "0 8 * * *", "timezone": "Mars/Olympus"},
        {"pattern": "0 8 * * *", "timezone": "../../etc/passwd"},
        {"pattern": "0 8 * * *", "timezone": 3},
        {"pattern": "0 8 * * *", "cronId": "bad id"},
        {"pattern": "0 8 * * *", "enabled": "yes"},
        {"pattern": None},
    ],
)
async def test_an_invalid_pattern_or_zone_is_invalid_request(
    tmp_path: Path, params: dict[str, Any]
) -> None:
    async with serve_gateway(tmp_path, scheduler=False) as gw, gw.client() as client:
        rpc = Rpc(client)
        await rpc.refused("cronCreate", 400, "INVALID_REQUEST", workflow="hello", **params)
        assert await rpc("cronList") == []


async def test_cron_methods_need_cron_scopes(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, scheduler=False) as gw, gw.client("reader-token") as c:
        error = await Rpc(c).refused("cronList", 403, "FORBIDDEN")
        assert error["requiredScope"] == "cron:read"


def test_register_refuses_a_bad_schedule() -> None:
    with pytest.raises(Exception, match="invalid cron pattern"):
        Gateway().register("hello", workflows.hello, schedule="0 25 * * *")
    with pytest.raises(Exception, match="unknown time zone"):
        Gateway().register("hello", workflows.hello, schedule="0 8 * * *", timezone="Nowhere/X")


async def test_a_schedule_fires_runs_with_the_systems_auth(tmp_path: Path) -> None:
    async with (
        serve_gateway(tmp_path, scheduler_poll_ms=100) as gw,
        gw.client() as client,
        connected(gw.url) as socket,
    ):
        rpc = Rpc(client)
        row = await rpc("cronCreate", workflow="hello", pattern="* * * * * *", cronId="tick")
        triggered = await socket.event("cron.triggered")
        payload = triggered["payload"]
        assert payload["cronId"] == "tick" and payload["workflow"] == "hello"
        await rpc("cronDelete", cronId="tick")
        await rpc.wait_status(payload["runId"], "finished")
        who = (await rpc("getNodeOutput", runId=payload["runId"], nodeId="who"))["output"]
        assert {k: who[k] for k in SYSTEM} == SYSTEM
        with gw.db() as db:  # the run names the due time it was started for
            [(config,)] = db.execute(
                "SELECT config_json FROM _smithers_runs WHERE run_id = ?", (payload["runId"],)
            )
        assert json.loads(config)["cron"] == {"cronId": "tick", "dueAtMs": row["nextRunAtMs"]}
        metrics = (await client.get("/metrics")).text
        assert 'smithers_gateway_cron_fires_total{outcome="started"}' in metrics


async def test_register_with_a_schedule_upserts_its_row(tmp_path: Path) -> None:
    gateway = Gateway(db=f"sqlite:///{tmp_path / 'g.db'}", workspace_root=tmp_path)
    gateway.register("hello", workflows.hello, schedule="0 8 * * 1-5", timezone="America/New_York")
    server = await gateway.listen(port=0)
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            [row] = await Rpc(client)("cronList")
        assert row["cronId"] == "gateway:hello" and row["pattern"] == "0 8 * * 1-5"
        assert row["timezone"] == "America/New_York" and row["workflow"] == "hello"
    finally:
        await gateway.close()


async def test_a_fire_that_cannot_start_keeps_its_error(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, scheduler_poll_ms=100) as gw, gw.client() as client:
        rpc = Rpc(client)
        with gw.db() as db:  # a row another gateway made, for a workflow this one lacks
            db.execute(
                "INSERT INTO _smithers_cron (cron_id, pattern, timezone, workflow_path, enabled,"
                " created_at_ms, next_run_at_ms) VALUES ('other', '0 0 1 1 *', 'UTC', 'gone',"
                " 1, 0, 1000)"
            )
        with anyio.fail_after(15):
            while not (row := (await rpc("cronList"))[0])["errorJson"]:
                await anyio.sleep(0.05)
        assert row["errorJson"]["code"] == "NOT_FOUND"
        assert row["nextRunAtMs"] >= row["lastRunAtMs"] + 60_000
        assert (
            'smithers_gateway_cron_fires_total{outcome="failed"} 1.0'
            in (await client.get("/metrics")).text
        )
