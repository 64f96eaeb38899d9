"""`Gateway.listen(path=...)`: HTTP RPC and the WebSocket protocol over a unix socket; the
socket file is its owner's only, a stale one is replaced, a live one or another kind of
file refused, and `close()` removes it."""

from __future__ import annotations

import socket
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import unix_connect

from smithers import SmithersError
from smithers_gateway import Gateway

from .conftest import TERMINAL, TOKEN_AUTH, Rpc, register_all
from .sockets import Socket

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def gateway_on(tmp_path: Path, **options: Any) -> Gateway:
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    return register_all(Gateway(db=db, workspace_root=tmp_path, **options))


async def test_http_rpc_and_a_websocket_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    gateway = gateway_on(tmp_path, auth=TOKEN_AUTH)
    server = await gateway.listen(path=path)
    try:
        assert server.path == str(path) and server.port is None
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600

        transport = httpx.AsyncHTTPTransport(uds=str(path))
        headers = {"authorization": "Bearer op-token"}
        async with httpx.AsyncClient(
            transport=transport, base_url=server.url, headers=headers, timeout=15
        ) as client:
            health = await client.get("/health")
            assert health.status_code == 200 and health.json()["ok"] is True
            rpc = Rpc(client)
            run_id = (await rpc("launchRun", workflow="hello"))["runId"]
            assert (await rpc.wait_status(run_id, TERMINAL))["status"] == "finished"

        async with unix_connect(str(path), uri="ws://localhost/", open_timeout=15) as conn:
            ws = Socket(conn)
            challenge = await ws.frame()
            assert challenge["event"] == "connect.challenge"
            hello = await ws.connect("op-token")
            assert hello["ok"] is True and hello["payload"]["auth"]["userId"] == "ops"
            view = await ws.call("getRun", runId=run_id)
            assert view["status"] == "finished"
    finally:
        await gateway.close()
    assert not path.exists()


async def test_an_open_gateway_on_a_unix_socket_answers_localhost(tmp_path: Path) -> None:
    path = tmp_path / "open.sock"
    gateway = gateway_on(tmp_path)
    server = await gateway.listen(path=path)
    try:
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
            listed = await Rpc(client)("listWorkflows")
            assert "hello" in [w["key"] for w in listed]
    finally:
        await gateway.close()


async def test_a_stale_socket_is_replaced_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file whose process is gone: nothing listens
    stale.close()
    first = gateway_on(tmp_path, auth=TOKEN_AUTH)
    await first.listen(path=path)
    try:
        second = gateway_on(tmp_path, auth=TOKEN_AUTH)
        with pytest.raises(SmithersError) as refused:
            await second.listen(path=path)
        assert refused.value.code == "INVALID_REQUEST" and "in use" in refused.value.message
    finally:
        await first.close()

    plain = tmp_path / "not-a-socket"
    plain.write_text("keep me")
    with pytest.raises(SmithersError) as not_socket:
        await gateway_on(tmp_path, auth=TOKEN_AUTH).listen(path=plain)
    assert "not a socket" in not_socket.value.message and plain.read_text() == "keep me"
