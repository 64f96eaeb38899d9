"""Cron and timers with several `smithers gateway` processes on one PostgreSQL database:
a schedule every second fires exactly once per due time; a gateway stopped for three due
times fires once when it comes back (a `--no-scheduler` one serving meanwhile fires
nothing); a 2 s Timer of a run whose gateway was SIGKILLed while it waited (the run parked
on it, or still owned while a task ran beside it) fires on the survivor."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from smithers.clock import now_ms
from tests.conftest import pg_schema

from .processes import started_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

CRON_APP = textwrap.dedent(
    """
    from smithers_gateway import Gateway
    from tests.gateway.workflows import tick

    gateway = Gateway(heartbeat_ms=1000).register("tick", tick, schedule="* * * * * *")
    """
)
TIMER_APP = textwrap.dedent(
    """
    from smithers_gateway import Gateway
    from tests.gateway.workflows import timed, timed_busy

    gateway = Gateway(heartbeat_ms=1000).register("timed", timed).register("busy", timed_busy)
    """
)


def due_times(db: str) -> list[int]:
    """The due time of each run the schedule started, from the database."""
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT config_json FROM _smithers_runs WHERE workflow_name = 'tick'")
            )
            return [json.loads(config)["cron"]["dueAtMs"] for (config,) in rows]
    finally:
        engine.dispose()


def next_fire(db: str) -> int:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT next_run_at_ms FROM _smithers_cron")).scalar()
            return int(found)
    finally:
        engine.dispose()


async def until_due_times(db: str, count: int) -> list[int]:
    with anyio.fail_after(60):
        while len(found := due_times(db)) < count:
            await anyio.sleep(0.2)
    return found


async def test_two_gateways_fire_each_due_time_exactly_once(tmp_path: Path) -> None:
    with pg_schema() as db:
        async with (
            started_gateway(tmp_path, db, app=CRON_APP),
            started_gateway(tmp_path, db, app=CRON_APP),
        ):
            await until_due_times(db, 12)
        per_due_time = Counter(due_times(db))
        assert len(per_due_time) >= 12
        assert set(per_due_time.values()) == {1}, per_due_time
        assert all(due % 1000 == 0 for due in per_due_time)  # whole seconds, as scheduled


async def test_a_gateway_stopped_for_three_due_times_fires_once_when_back(
    tmp_path: Path,
) -> None:
    with pg_schema() as db:
        async with started_gateway(tmp_path, db, app=CRON_APP):
            await until_due_times(db, 2)
        before = set(due_times(db))
        missed = next_fire(db)  # the due time nobody was left to fire
        async with started_gateway(tmp_path, db, app=CRON_APP, args=["--no-scheduler"]) as only:
            async with httpx.AsyncClient(base_url=only.url) as client:
                [row] = (await client.post("/v1/rpc/cronList", json={})).json()["payload"]
            assert row["cronId"] == "gateway:tick" and row["nextRunAtMs"] == missed
            await anyio.sleep(3.5)  # three due times pass: a serving-only gateway fires none
            assert set(due_times(db)) == before
        back_at = now_ms()
        async with started_gateway(tmp_path, db, app=CRON_APP):
            await until_due_times(db, len(before) + 3)
        after = Counter(due_times(db))
        assert set(after.values()) == {1}
        caught_up = sorted(due for due in after if due not in before and due < back_at)
        assert caught_up == [missed]  # the missed due times collapse into one fire


@pytest.mark.parametrize(
    ("workflow", "killed_while"),
    [
        ("timed", {"wait": "waiting-timer"}),  # parked on the timer
        ("busy", {"wait": "waiting-timer", "busy": "in-progress"}),  # still owned: a task runs
    ],
)
async def test_a_timer_fires_on_the_survivor_of_a_sigkilled_gateway(
    tmp_path: Path, workflow: str, killed_while: dict[str, str]
) -> None:
    env = {"SMITHERS_STALE_AFTER_MS": "2000"}
    with pg_schema() as db:
        async with (
            started_gateway(tmp_path, db, app=TIMER_APP, env=env) as doomed,
            started_gateway(tmp_path, db, app=TIMER_APP, env=env) as survivor,
            httpx.AsyncClient(base_url=doomed.url, timeout=15) as first,
            httpx.AsyncClient(base_url=survivor.url, timeout=15) as second,
        ):
            started = await first.post("/v1/rpc/launchRun", json={"workflow": workflow})
            run_id = started.json()["payload"]["runId"]
            await node_states(second, run_id, killed_while)
            doomed.proc.kill()
            await anyio.to_thread.run_sync(doomed.proc.wait)
            await status(second, run_id, "finished")
            woke = await second.post(
                "/v1/rpc/getNodeOutput", json={"runId": run_id, "nodeId": "after"}
            )
            assert woke.json()["payload"]["output"]["message"] == "woke"


async def node_states(client: httpx.AsyncClient, run_id: str, wanted: dict[str, str]) -> None:
    with anyio.fail_after(30):
        while True:
            rows = (await client.post("/v1/rpc/listNodeStates", json={"runId": run_id})).json()[
                "payload"
            ]
            states = {row["nodeId"]: row["state"] for row in rows}
            if all(states.get(node) == state for node, state in wanted.items()):
                return
            await anyio.sleep(0.02)


async def status(client: httpx.AsyncClient, run_id: str, wanted: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        while True:
            view: dict[str, Any] = (
                await client.post("/v1/rpc/getRun", json={"runId": run_id})
            ).json()["payload"]
            if view["status"] == wanted:
                return view
            await anyio.sleep(0.05)
