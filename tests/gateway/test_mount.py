"""The Gateway mounted in a FastAPI app, its lifespan forwarded, driven in process through
`httpx.ASGITransport`: HTTP RPC under the mount prefix, beside the host's own routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from smithers_gateway import Gateway

from .conftest import TOKEN_AUTH, Rpc, register_all

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def host_app(gateway: Gateway) -> FastAPI:
    inner = gateway.app

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):
            yield

    api = FastAPI(lifespan=lifespan)

    @api.get("/")
    def home() -> dict[str, Any]:
        return {"host": True}

    api.mount("/gateway", inner)
    return api


async def test_mounted_in_fastapi_through_asgi_transport(tmp_path: Path) -> None:
    gateway = register_all(
        Gateway(auth=TOKEN_AUTH, db=f"sqlite:///{tmp_path / 'gw.db'}", workspace_root=tmp_path)
    )
    api = host_app(gateway)
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        headers = {"authorization": "Bearer op-token"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            assert (await client.get("/")).json() == {"host": True}
            health = await client.get("/gateway/health")
            assert health.status_code == 200 and health.json()["workflowsTotal"] == 5
            assert health.headers["x-smithers-api-version"] == "v1"
            rpc = Rpc(client, prefix="/gateway")
            run_id = (await rpc("launchRun", workflow="hello", input={"name": "mount"}))["runId"]
            view = await rpc.wait_status(run_id, "finished")
            assert view["workflowKey"] == "hello"
            greet = await rpc("getNodeOutput", runId=run_id, nodeId="greet")
            assert greet["output"] == {"message": "Hello, mount!"}
            res = await client.post("/gateway/rpc", json={"id": "a", "method": "runs.list"})
            assert [r["runId"] for r in res.json()["payload"]] == [run_id]
            res = await client.get("/gateway/nope")
            assert res.status_code == 404 and res.json()["error"]["code"] == "NOT_FOUND"
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anon:
            await Rpc(anon, prefix="/gateway").refused("listRuns", 401, "UNAUTHORIZED")
    await gateway.close()  # after its lifespan: nothing left to park


async def test_an_open_gateway_mounted_answers_in_process_clients(tmp_path: Path) -> None:
    gateway = register_all(Gateway(db=f"sqlite:///{tmp_path / 'gw.db'}", workspace_root=tmp_path))
    api = host_app(gateway)
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert len(await Rpc(client, prefix="/gateway")("listWorkflows")) == 5


def test_mounted_in_fastapi_over_a_websocket_through_test_client(tmp_path: Path) -> None:
    gateway = register_all(
        Gateway(auth=TOKEN_AUTH, db=f"sqlite:///{tmp_path / 'gw.db'}", workspace_root=tmp_path)
    )
    with TestClient(host_app(gateway)) as client, client.websocket_connect("/gateway/") as ws:
        assert ws.receive_json()["event"] == "connect.challenge"
        ws.send_json(
            {
                "type": "req",
                "id": "1",
                "method": "connect",
                "params": {"minProtocol": 1, "maxProtocol": 1, "auth": {"token": "op-token"}},
            }
        )
        hello = ws.receive_json()
        assert hello["id"] == "1" and hello["ok"] is True
        assert hello["payload"]["auth"]["userId"] == "ops"
        launch = {"workflow": "hello", "input": {"name": "socket"}}
        ws.send_json({"type": "req", "id": "2", "method": "launchRun", "params": launch})
        run_id = ws.receive_json()["payload"]["runId"]
        params = {"runId": run_id, "afterSeq": -1}
        ws.send_json({"type": "req", "id": "3", "method": "streamRunEvents", "params": params})
        assert ws.receive_json()["payload"]["runId"] == run_id
        seqs: list[int] = []
        while True:
            frame = ws.receive_json()
            if frame.get("event") != "run.event":
                continue
            seqs.append(frame["payload"]["seq"])
            if frame["payload"]["event"] == "run.completed":
                break
        assert seqs == list(range(len(seqs)))
