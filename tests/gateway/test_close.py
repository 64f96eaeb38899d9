"""`close()` parks the runs the gateway drives as `paused` (their in-flight task finishes
first) and a later gateway resumes them; `close(kill_runs=True)` cancels them; sockets
are closed with 1001 "going away"."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import Rpc, Running, serve_gateway
from .sockets import connected, open_socket

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def start_slow(rpc: Rpc) -> str:
    run_id: str = (await rpc("launchRun", workflow="slow", input={"seconds": 0.5}))["runId"]
    await rpc.wait_status(run_id, "running")
    return run_id


def status(gw: Running, run_id: str) -> str:
    with gw.db() as conn:
        row = conn.execute("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))
        found: str = row.fetchone()[0]
        return found


async def test_close_parks_runs_and_a_new_gateway_resumes_them(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        run_id = await start_slow(rpc)
        gated = (await rpc("launchRun", workflow="gate"))["runId"]
        await rpc.wait_status(gated, "waiting-approval")
        await gw.gateway.close()
        assert status(gw, run_id) == "paused"
        assert status(gw, gated) == "waiting-approval"  # parked already: left as it was
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        assert (await rpc("getRun", runId=run_id))["summary"]["finished"] >= 1
        await rpc("resumeRun", runId=run_id)
        await rpc.wait_status(run_id, "finished")


async def test_close_with_kill_runs_cancels_them(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        run_id = await start_slow(Rpc(client))
        await gw.gateway.close(kill_runs=True)
        assert status(gw, run_id) == "cancelled"


async def test_a_run_not_parked_in_time_is_paused_and_resumed_by_the_next_gateway(
    tmp_path: Path,
) -> None:
    async with serve_gateway(tmp_path, drain_timeout_ms=1) as gw, gw.client() as client:
        rpc = Rpc(client)
        run_id: str = (await rpc("launchRun", workflow="slow", input={"seconds": 1.0}))["runId"]
        await rpc.wait_status(run_id, "running")
        await gw.gateway.close()  # the task is still running at the deadline: cut short
        assert status(gw, run_id) == "paused"  # the pause outlives the process
    # The next gateway with the same registrations finds the workflow by the run's key.
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        await rpc("resumeRun", runId=run_id)
        view = await rpc.wait_status(run_id, ("finished", "failed"))
        assert view["status"] == "finished" and view["workflowKey"] == "slow"


async def test_close_closes_sockets_with_1001(tmp_path: Path) -> None:
    async with (
        serve_gateway(tmp_path) as gw,
        connected(gw.url) as socket,
        open_socket(gw.url) as pending,
    ):
        run_id = (await socket.call("launchRun", workflow="gate"))["runId"]
        await socket.event("approval.requested", run_id)
        await gw.gateway.close()
        for each in (socket, pending):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await each.frame()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
