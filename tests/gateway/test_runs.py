"""Runs launched over HTTP RPC and read back: the run with its summary and state, frames,
node states, attempts, a node's output, `ctx.auth` reaching tasks, idempotency keys, and
the commands (cancel, pause, resume)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from .conftest import TERMINAL, Rpc, serve_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def test_a_run_launched_and_read_back(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        launched = await rpc("launchRun", workflow="hello", input={"name": "gateway"})
        assert launched["workflow"] == "hello"
        run_id = launched["runId"]
        view = await rpc.wait_status(run_id, TERMINAL)
        assert view["status"] == "finished"
        assert view["workflowKey"] == "hello" and view["workflowName"] == "hello"
        assert view["summary"] == {"finished": 2}
        assert view["runState"]["state"] == "succeeded"

        frames = await rpc("listFrames", runId=run_id)
        assert frames and frames[0]["runId"] == run_id
        numbers = [f["frameNo"] for f in frames]
        assert numbers == sorted(numbers, reverse=True)
        first = await rpc("getFrame", runId=run_id, frameNo=numbers[-1])
        assert first == frames[-1]
        await rpc.refused("getFrame", 404, "NOT_FOUND", runId=run_id, frameNo=10_000)

        states = await rpc("listNodeStates", runId=run_id)
        assert [(s["nodeId"], s["state"]) for s in states] == [
            ("greet", "finished"),
            ("who", "finished"),
        ]
        attempts = await rpc("listAttempts", runId=run_id)
        assert {(a["nodeId"], a["state"]) for a in attempts} == {
            ("greet", "finished"),
            ("who", "finished"),
        }
        one = attempts[0]
        got = await rpc("getAttempt", runId=run_id, nodeId=one["nodeId"], attempt=one["attempt"])
        assert got == one
        assert await rpc("listAttempts", runId=run_id, nodeId="who") == [
            a for a in attempts if a["nodeId"] == "who"
        ]
        await rpc.refused("getAttempt", 404, "NOT_FOUND", runId=run_id, nodeId="who", attempt=99)

        output = await rpc("getNodeOutput", runId=run_id, nodeId="greet")
        assert output["output"] == {"message": "Hello, gateway!"}
        assert output["outputKey"] == "gw_greeting" and output["iteration"] == 0
        assert output["schema"]["properties"]["message"]["type"] == "string"
        await rpc.refused("getNodeOutput", 404, "NOT_FOUND", runId=run_id, nodeId="nope")

        listed = await rpc("listRuns")
        assert [r["runId"] for r in listed] == [run_id]
        assert listed[0]["workflowName"] == "hello" and listed[0]["status"] == "finished"
        by_key = await rpc("runs.list", filter={"workflow": "hello"})
        assert [r["runId"] for r in by_key] == [run_id]
        assert await rpc("listRuns", filter={"workflow": "review"}) == []
        assert await rpc("listRuns", status="failed") == []


async def test_the_auth_context_reaches_tasks(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:
        async with gw.client("alice-token") as client:
            rpc = Rpc(client)
            run_id = (await rpc("launchRun", workflow="hello"))["runId"]
            await rpc("resumeRun", runId=run_id)  # idempotent on a live or finished run
        async with gw.client("op-token") as client:
            rpc = Rpc(client)
            await rpc.wait_status(run_id, "finished")
            who = (await rpc("getNodeOutput", runId=run_id, nodeId="who"))["output"]
            assert who["triggeredBy"] == "alice" and who["role"] == "operator"
            assert who["scopes"] == ["approval:submit", "run:write"]
            assert isinstance(who["createdAt"], int)


async def test_an_open_gateway_starts_runs_as_the_gateway(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=None) as gw, gw.client(token=None) as client:
        rpc = Rpc(client)
        run_id = (await rpc("launchRun", workflow="hello"))["runId"]
        await rpc.wait_status(run_id, "finished")
        who = (await rpc("getNodeOutput", runId=run_id, nodeId="who"))["output"]
        assert who["triggeredBy"] == "gateway" and who["scopes"] == ["*"]


async def test_an_idempotency_key_returns_the_first_run(tmp_path: Path, db_url: str) -> None:
    async with serve_gateway(tmp_path, db=db_url) as gw:
        async with gw.client("op-token") as client:
            rpc = Rpc(client)
            options = {"idempotencyKey": f"deploy-{tmp_path.name}"}
            first = await rpc("launchRun", workflow="hello", options=options)
            again = await rpc("launchRun", workflow="hello", options=options)
            assert again["runId"] == first["runId"]
            # Racing launches with one key start one run.
            raced: list[str] = []

            async def launch() -> None:
                raced.append(
                    (
                        await rpc(
                            "launchRun",
                            workflow="hello",
                            options={"idempotencyKey": f"race-{tmp_path.name}"},
                        )
                    )["runId"]
                )

            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(launch)
            assert len(set(raced)) == 1
            other = await rpc("launchRun", workflow="hello", options={"idempotencyKey": "x"})
            assert other["runId"] not in (first["runId"], raced[0])
            fresh = await rpc("launchRun", workflow="hello")
            assert fresh["runId"] != first["runId"]
        # Another caller's key is its own.
        async with gw.client("alice-token") as client:
            theirs = await Rpc(client)("launchRun", workflow="hello", options=options)
            assert theirs["runId"] != first["runId"]


async def test_launch_refusals(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        error = await rpc.refused("launchRun", 404, "NOT_FOUND", workflow="nope")
        assert "nope" in error["message"]
        run_id = (await rpc("launchRun", workflow="gate", runId="gw-run-1"))["runId"]
        assert run_id == "gw-run-1"
        await rpc.wait_status(run_id, "waiting-approval")
        error = await rpc.refused("launchRun", 409, "CONFLICT", workflow="gate", runId="gw-run-1")
        assert error["cause"] == "RUN_ALREADY_EXISTS" and error["runId"] == "gw-run-1"
        await rpc.refused("launchRun", 400, "INVALID_REQUEST", workflow="gate", runId="a/b")
        await rpc.refused("launchRun", 400, "INVALID_REQUEST", workflow="hello", input=[1])
        await rpc.refused(
            "launchRun", 400, "INVALID_REQUEST", workflow="hello", options={"maxConcurrency": 0}
        )
        assert [r["runId"] for r in await rpc("listRuns")] == ["gw-run-1"]


async def test_cancel_pause_and_resume(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        gated = (await rpc("launchRun", workflow="gate"))["runId"]
        await rpc.wait_status(gated, "waiting-approval")
        assert await rpc("cancelRun", runId=gated) == {"runId": gated, "status": "cancelled"}
        await rpc.refused("cancelRun", 409, "RUN_NOT_ACTIVE", runId=gated)
        assert await rpc("resumeRun", runId=gated) == {
            "runId": gated,
            "status": "already_terminal",
        }
        await rpc.refused("resumeRun", 404, "NOT_FOUND", runId="smi_missing")

        slow = (await rpc("launchRun", workflow="slow", input={"seconds": 0.3}))["runId"]
        assert await rpc("pauseRun", runId=slow) == {"runId": slow, "status": "pausing"}
        await rpc.wait_status(slow, "paused")
        assert await rpc("resumeRun", runId=slow) == {
            "runId": slow,
            "status": "resume_requested",
        }
        await rpc.wait_status(slow, "finished")
        await rpc.refused("pauseRun", 409, "RUN_NOT_ACTIVE", runId=slow)
