"""A JWT as the WebSocket `connect` token (`params.auth.token`): its custom scopes claim
decides what the socket may call, and a JWT for another audience is refused at connect
(an error, then close 1008)."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import serve_gateway
from .sockets import open_socket
from .test_auth import JWT_AUTH, token

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_a_jwt_connect_token_and_its_custom_scopes_claim(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=JWT_AUTH) as gw:
        async with open_socket(gw.url) as socket:
            hello = await socket.connect(token(permissions="run:read", role="viewer"))
            assert hello["ok"] is True, hello
            auth = hello["payload"]["auth"]
            assert auth["userId"] == "jay@example.com" and auth["role"] == "viewer"
            assert auth["scopes"] == ["run:read"]
            assert await socket.call("listRuns") == []
            refused = await socket.request("launchRun", workflow="hello")
            assert refused["ok"] is False and refused["error"]["code"] == "FORBIDDEN"
            assert refused["error"]["requiredScope"] == "run:write"
            # A refused call leaves the socket open and as authenticated as it was.
            assert "hello" in [w["key"] for w in await socket.call("listWorkflows")]

        async with open_socket(gw.url) as socket:
            hello = await socket.connect(token(permissions=["run:read", "run:write"]))
            assert hello["payload"]["auth"]["scopes"] == ["run:read", "run:write"]
            run_id = (await socket.call("launchRun", workflow="hello"))["runId"]
            done = await socket.event("run.completed", run_id)
            assert done["payload"]["status"] == "finished"
            who = (await socket.call("getNodeOutput", runId=run_id, nodeId="who"))["output"]
            assert who["triggeredBy"] == "jay@example.com"
            assert who["scopes"] == ["run:read", "run:write"]


async def test_a_jwt_for_another_audience_is_refused_at_connect(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=JWT_AUTH) as gw, open_socket(gw.url) as socket:
        res = await socket.connect(token(aud="another-service", permissions="*"))
        assert res["ok"] is False and res["error"]["code"] == "UNAUTHORIZED"
        assert "audience" in res["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await socket.frame()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
