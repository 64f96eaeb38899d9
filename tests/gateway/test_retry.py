"""`retryTask`: a failed task runs again as a new attempt and its run goes on; what it
refuses (a finished, running or unknown node, a node that is not a task, an unknown or
ended run)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from . import workflows
from .conftest import TERMINAL, Rpc, serve_gateway
from .sockets import connected

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


def stored_events(db: sqlite3.Connection, run_id: str) -> list[tuple[int, str]]:
    rows = db.execute(
        "SELECT seq, type FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,)
    )
    return [(int(seq), kind) for seq, kind in rows]


async def test_a_failed_task_retried_finishes_its_run(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        gw.gateway.register("flaky", workflows.flaky)
        rpc = Rpc(client)
        flag = tmp_path / "flag"
        run_id = (await rpc("launchRun", workflow="flaky", input={"flag": str(flag)}))["runId"]
        failed = await rpc.wait_status(run_id, TERMINAL)
        assert failed["status"] == "failed" and flag.exists()

        async with connected(gw.url, subscribe=[run_id]) as socket:
            answer = await socket.call("retryTask", runId=run_id, nodeId="shaky")
            assert answer == {"runId": run_id, "nodeId": "shaky", "status": "retry_requested"}
            retrying = await socket.event("node.retrying", run_id)
            assert retrying["payload"]["nodeId"] == "shaky"
            assert retrying["payload"]["attempt"] == 2 and retrying["payload"]["requested"]
            completed = await socket.event("run.completed", run_id)
            assert completed["payload"]["status"] == "finished"

        view = await rpc.wait_status(run_id, TERMINAL)
        assert view["status"] == "finished" and view["summary"] == {"finished": 2}
        attempts = await rpc("listAttempts", runId=run_id)
        assert [(a["nodeId"], a["attempt"], a["state"]) for a in attempts] == [
            ("prep", 1, "finished"),
            ("shaky", 1, "failed"),
            ("shaky", 2, "finished"),
        ]
        output = await rpc("getNodeOutput", runId=run_id, nodeId="shaky")
        assert output["output"] == {"message": "second time lucky"}

        with gw.db() as db:
            events = stored_events(db, run_id)
        assert [seq for seq, _ in events] == list(range(len(events)))
        kinds = [kind for _, kind in events]
        failed_at, retried_at = kinds.index("RunFailed"), kinds.index("NodeRetrying")
        assert failed_at < retried_at < kinds.index("RunFinished") == len(kinds) - 1
        assert kinds.count("NodeStarted") == 3  # prep once, shaky twice


async def test_retry_refusals(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        gw.gateway.register("flaky", workflows.flaky)
        rpc = Rpc(client)
        flag = tmp_path / "flag"
        run_id = (await rpc("launchRun", workflow="flaky", input={"flag": str(flag)}))["runId"]
        await rpc.wait_status(run_id, "failed")

        finished = await rpc.refused(
            "retryTask", 409, "NODE_NOT_FAILED", runId=run_id, nodeId="prep"
        )
        assert finished["state"] == "finished" and finished["nodeId"] == "prep"
        await rpc.refused("retryTask", 404, "NOT_FOUND", runId=run_id, nodeId="nope")
        await rpc.refused("retryTask", 404, "NOT_FOUND", runId=run_id, nodeId="shaky", iteration=3)
        await rpc.refused("retryTask", 404, "NOT_FOUND", runId="smi_missing", nodeId="shaky")
        await rpc.refused("retryTask", 400, "INVALID_REQUEST", runId=run_id)
        await rpc.refused("retryTask", 400, "INVALID_REQUEST", runId=run_id, nodeId="")
        await rpc.refused(
            "retryTask", 400, "INVALID_REQUEST", runId=run_id, nodeId="shaky", iteration=-1
        )
        async with gw.client("reader-token") as reader:
            refusal = await Rpc(reader).refused(
                "retryTask", 403, "FORBIDDEN", runId=run_id, nodeId="shaky"
            )
            assert refusal["requiredScope"] == "run:write"
        assert (await rpc("getRun", runId=run_id))["status"] == "failed"

        # Retried once, the run finishes: it ended, so nothing of it is retried again.
        await rpc("retryTask", runId=run_id, nodeId="shaky")
        await rpc.wait_status(run_id, "finished")
        await rpc.refused("retryTask", 409, "RUN_NOT_ACTIVE", runId=run_id, nodeId="shaky")

        # A task still running has not failed.
        slow = (await rpc("launchRun", workflow="slow", input={"seconds": 1.5}))["runId"]
        while "in-progress" not in {s["state"] for s in await rpc("listNodeStates", runId=slow)}:
            await anyio.sleep(0.02)
        running = await rpc.refused("retryTask", 409, "NODE_NOT_FAILED", runId=slow, nodeId="first")
        assert running["state"] == "in-progress"
        # A node of it not reached yet is a task that has not failed either.
        later = await rpc.refused("retryTask", 409, "NODE_NOT_FAILED", runId=slow, nodeId="second")
        assert later["state"] == "pending"
        await rpc("cancelRun", runId=slow)

        # An approval is not a task.
        gated = (await rpc("launchRun", workflow="gate"))["runId"]
        await rpc.wait_status(gated, "waiting-approval")
        await rpc.refused("retryTask", 400, "INVALID_REQUEST", runId=gated, nodeId="go")
