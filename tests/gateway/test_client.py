"""GatewayClient: connect and call, errors as GatewayError, and `stream_run_events`
through a connection cut three times mid-run, ending with the complete sequence; the sync
wrapper."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from smithers_gateway import GatewayClient, GatewayError, SyncGatewayClient

from .conftest import Rpc, serve_gateway
from .proxy import cutting_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def wait_waiting(rpc: Rpc, run_id: str) -> None:
    await rpc.wait_status(run_id, "waiting-approval")


async def test_connect_and_call(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:
        async with GatewayClient(gw.url, "reader-token") as client:
            assert client.hello is not None and client.hello["auth"]["userId"] == "reader"
            assert (await client.call("health"))["protocol"] == 1
            with pytest.raises(GatewayError) as refused:
                await client.call("launchRun", workflow="hello")
            assert refused.value.code == "FORBIDDEN"
            assert refused.value.details["requiredScope"] == "run:write"
        with pytest.raises(GatewayError) as unauthorized:
            await GatewayClient(gw.url, "wrong").connect()
        assert unauthorized.value.code == "UNAUTHORIZED"


async def test_a_stream_through_three_cuts_is_complete(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as http:
        rpc = Rpc(http)
        run_id = (await rpc("launchRun", workflow="gate"))["runId"]
        await wait_waiting(rpc, run_id)
        async with cutting_proxy(gw.server.port) as proxy:
            client = GatewayClient(f"http://127.0.0.1:{proxy.port}", "op-token")
            seen: list[dict[str, Any]] = []

            async def consume() -> None:
                async for event in client.stream_run_events(run_id, after_seq=-1):
                    seen.append(event)

            async def connections(count: int) -> None:
                with anyio.fail_after(30):
                    while proxy.accepted < count or not client.connected:
                        await anyio.sleep(0.01)

            task = asyncio.create_task(consume())
            with anyio.fail_after(30):
                while not any(e["event"] == "node.waiting_approval" for e in seen):
                    await anyio.sleep(0.01)
            proxy.cut()
            await connections(2)
            proxy.cut()
            await connections(3)
            await rpc("submitApproval", runId=run_id, nodeId="go", approved=True)
            proxy.cut()  # events of the resumed run commit while the client is away
            with anyio.fail_after(60):
                await task
            await client.close()
        assert proxy.accepted >= 4
        seqs = [e["seq"] for e in seen]
        assert seqs == list(range(len(seqs)))
        assert seen[-1]["event"] == "run.completed"
        assert seen[-1]["payload"]["type"] == "RunFinished"


async def test_a_run_error_is_raised(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, GatewayClient(gw.url, "op-token") as client:
        with pytest.raises(GatewayError) as missing:
            async for _ in client.stream_run_events("no-such-run", after_seq=-1):
                pass
        assert missing.value.code == "RunNotFound"


async def test_the_sync_client(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as http:
        rpc = Rpc(http)
        run_id = (await rpc("launchRun", workflow="hello"))["runId"]
        await rpc.wait_status(run_id, "finished")

        def script() -> list[int]:
            with SyncGatewayClient(gw.url, "op-token") as client:
                assert client.call("getRun", runId=run_id)["status"] == "finished"
                return [e["seq"] for e in client.stream_run_events(run_id, after_seq=-1)]

        seqs = await anyio.to_thread.run_sync(script)
        assert seqs == list(range(len(seqs))) and len(seqs) > 3
