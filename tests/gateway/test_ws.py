"""The WebSocket protocol: challenge and `connect` (protocol, auth, scopes), requests
before `connect`, bad frames that keep the socket open, the auth deadline, the connection
limit, ticks."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import TERMINAL, serve_gateway
from .sockets import connected, open_socket

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def test_handshake_connect_and_scopes(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:
        async with open_socket(gw.url) as socket:
            hello = await socket.connect("reader-token")
            assert hello["ok"] is True and hello["apiVersion"] == "v1"
            payload = hello["payload"]
            assert payload["protocol"] == 1 and "runs" in payload["features"]
            assert payload["policy"] == {"heartbeatMs": 15_000}
            assert payload["auth"]["role"] == "viewer"
            assert payload["auth"]["scopes"] == ["run:read"]
            assert payload["auth"]["userId"] == "reader"
            snapshot = payload["snapshot"]
            assert snapshot["runs"] == [] and snapshot["approvals"] == []
            assert isinstance(snapshot["stateVersion"], int)

            health = await socket.call("health")
            assert health["protocol"] == 1
            refused = await socket.request("launchRun", workflow="hello")
            assert refused["ok"] is False
            assert refused["error"]["code"] == "FORBIDDEN"
            assert refused["error"]["requiredScope"] == "run:write"

        async with connected(gw.url) as socket:
            launched = await socket.call("launchRun", workflow="gate")
            run_id = launched["runId"]
            assert (await socket.call("getRun", runId=run_id))["runId"] == run_id
            async with open_socket(gw.url) as other:
                hello = (await other.connect())["payload"]
                assert run_id in [run["runId"] for run in hello["snapshot"]["runs"]]
                assert [a["runId"] for a in hello["snapshot"]["approvals"]] == [run_id]
            await socket.call("cancelRun", runId=run_id)


async def test_connect_refusals(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:
        async with open_socket(gw.url) as socket:
            res = await socket.connect(minProtocol=2, maxProtocol=3)
            assert res["error"]["code"] == "PROTOCOL_UNSUPPORTED"
            res = await socket.request("connect", minProtocol="one")
            assert res["error"]["code"] == "INVALID_REQUEST"
            res = await socket.connect("wrong-token")
            assert res["ok"] is False and res["error"]["code"] == "UNAUTHORIZED"
            with pytest.raises(ConnectionClosed) as closed:
                await socket.frame()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

        # a token in the upgrade's headers serves as well
        headers = {"authorization": "Bearer alice-token"}
        async with open_socket(gw.url, additional_headers=headers) as socket:
            hello = await socket.connect(token=None)
            assert hello["payload"]["auth"]["userId"] == "alice"


async def test_a_method_before_connect_is_refused(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, open_socket(gw.url) as socket:
        res = await socket.request("getRun", runId="nope")
        assert res["ok"] is False
        assert res["error"] == {"code": "UNAUTHORIZED", "message": "Connect first"}
        assert (await socket.connect())["ok"] is True


async def test_bad_frames_keep_the_socket_open(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        bad = [
            "not json",
            "[]",
            json.dumps({"type": "req", "method": "health"}),
            json.dumps({"type": "req", "id": "x" * 129, "method": "health"}),
            json.dumps({"type": "req", "id": "a", "method": "health", "params": [1]}),
            "[" * 40 + "]" * 40,
            json.dumps({"type": "req", "id": "a", "method": "health", "params": {"l": [0] * 257}}),
            json.dumps(
                {"type": "req", "id": "a", "method": "health", "params": {"s": "x" * 17_000}}
            ),
        ]
        for text in bad:
            await socket.conn.send(text)
            frame = await socket.frame()
            assert frame["type"] == "res" and frame["id"] == "invalid", (text[:40], frame)
            assert frame["ok"] is False and frame["error"]["code"] == "INVALID_FRAME"
        assert (await socket.call("health"))["protocol"] == 1
        res = await socket.request("noSuchMethod")
        assert res["error"]["code"] == "METHOD_NOT_FOUND"


async def test_an_oversized_frame_closes_with_1009(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, max_payload=4096) as gw, connected(gw.url) as socket:
        await socket.conn.send(
            json.dumps({"type": "req", "id": "a", "method": "x", "params": {"s": "x" * 5000}})
        )
        with pytest.raises(ConnectionClosed) as closed:
            await socket.frame()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_an_idle_unauthenticated_socket_is_closed_at_the_deadline(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth_deadline_ms=300) as gw:
        async with open_socket(gw.url) as idle:
            with pytest.raises(ConnectionClosed) as closed:
                await idle.frame()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connected(gw.url) as socket:  # a connected one stays
            assert (await socket.call("health"))["protocol"] == 1


async def test_the_connection_limit(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, max_connections=5) as gw:
        async with (
            connected(gw.url),
            connected(gw.url),
            connected(gw.url),
            connected(gw.url),
            connected(gw.url, "alice-token"),
            open_socket(gw.url) as sixth,
        ):
            res = await sixth.connect()
            assert res["ok"] is False and res["error"]["code"] == "CONNECTION_LIMIT"
            with pytest.raises(ConnectionClosed) as closed:
                await sixth.frame()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        async with connected(gw.url) as again:  # the count went down with them
            assert (await again.call("health"))["protocol"] == 1


async def test_ticks_every_heartbeat(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, heartbeat_ms=50) as gw, connected(gw.url) as socket:
        raw = json.loads(await socket.conn.recv())
        while raw.get("event") != "tick":
            raw = json.loads(await socket.conn.recv())
        assert raw["type"] == "event" and isinstance(raw["payload"]["ts"], int)
        assert raw["seq"] >= 2 and raw["apiVersion"] == "v1"


async def test_runs_over_the_socket(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        run_id = (await socket.call("launchRun", workflow="hello"))["runId"]
        for _ in range(500):
            if (await socket.call("getRun", runId=run_id))["status"] in TERMINAL:
                break
        assert (await socket.call("getRun", runId=run_id))["status"] == "finished"


async def test_pending_sockets_are_capped_without_locking_callers_out(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, AsyncExitStack() as stack:
        for _ in range(64):
            await stack.enter_async_context(open_socket(gw.url))
        with pytest.raises(InvalidStatus) as refused:
            await stack.enter_async_context(open_socket(gw.url))
        assert refused.value.response.status_code == 503
        # an upgrade with valid credentials still gets in
        headers = {"authorization": "Bearer alice-token"}
        async with open_socket(gw.url, additional_headers=headers) as socket:
            assert (await socket.connect(token=None))["ok"] is True
        await stack.aclose()
        async with connected(gw.url) as socket:
            assert (await socket.call("health"))["protocol"] == 1
