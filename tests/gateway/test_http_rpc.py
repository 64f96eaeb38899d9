"""HTTP RPC for stateless callers: the routes without auth, response frames, both header
forms, scope enforcement, the legacy `/rpc`, and refusals in the frame with their status."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Rpc, serve_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def assert_common_headers(res: object) -> None:
    headers = res.headers  # type: ignore[attr-defined]
    assert headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-smithers-api-version"] == "v1"


async def test_health_workflows_and_metrics_need_no_token(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client(token=None) as client:
        res = await client.get("/health")
        assert res.status_code == 200
        assert_common_headers(res)
        health = res.json()
        assert health["ok"] is True and health["protocol"] == 1
        assert isinstance(health["features"], list) and isinstance(health["stateVersion"], int)
        assert set(health["identity"]) == {"pid", "startedAtMs", "version"}
        assert health["workflowsLoaded"] == health["workflowsTotal"] == 5

        res = await client.get("/workflows")
        assert_common_headers(res)
        listed = res.json()["workflows"]
        assert [w["key"] for w in listed] == ["gate", "hello", "payment", "review", "slow"]
        hello = next(w for w in listed if w["key"] == "hello")
        assert hello == {
            "key": "hello",
            "readableName": "hello",
            "description": "says hello",
            "hasUi": False,
            "uiPath": None,
            "inputSchema": None,
        }
        assert next(w for w in listed if w["key"] == "review")["readableName"] == "Review"

        res = await client.get("/metrics")
        assert res.status_code == 200 and "smithers_runs_total" in res.text
        assert res.headers["x-smithers-api-version"] == "v1"


async def test_rpc_with_bearer_and_x_smithers_key(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:
        for headers in ({"authorization": "Bearer op-token"}, {"x-smithers-key": "op-token"}):
            async with gw.client(token=None, headers=headers) as client:
                res = await client.post("/v1/rpc/listWorkflows", json={})
                assert res.status_code == 200, res.text
                assert_common_headers(res)
                frame = res.json()
                assert set(frame) == {"type", "id", "ok", "apiVersion", "payload"}
                assert frame["type"] == "res" and frame["ok"] is True
                assert frame["apiVersion"] == "v1" and isinstance(frame["id"], str)
                assert len(frame["payload"]) == 5
                health = await Rpc(client)("health")
                assert health["protocol"] == 1 and health["uptimeMs"] >= 0
                assert set(health["identity"]) == {"pid", "startedAtMs", "version"}


async def test_no_token_or_a_wrong_one_is_401_in_a_frame(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:
        for token in (None, "wrong-token"):
            async with gw.client(token=token) as client:
                error = await Rpc(client).refused("listRuns", 401, "UNAUTHORIZED")
                assert error["message"]
                res = await client.post("/v1/rpc/listRuns", json={})
                assert res.headers["www-authenticate"] == "Bearer"
                assert_common_headers(res)


async def test_a_missing_scope_is_403_naming_it(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client("reader-token") as client:
        rpc = Rpc(client)
        assert await rpc("listRuns") == []
        error = await rpc.refused("launchRun", 403, "FORBIDDEN", workflow="hello")
        assert error["message"] == "Missing required scope run:write for launchRun"
        assert error["requiredScope"] == "run:write"
        # A legacy name is refused under its own name, for the same scope.
        error = await rpc.refused("runs.create", 403, "FORBIDDEN", workflow="hello")
        assert error["message"] == "Missing required scope run:write for runs.create"
        error = await rpc.refused(
            "submitApproval", 403, "FORBIDDEN", runId="x", nodeId="y", approved=True
        )
        assert error["requiredScope"] == "approval:submit"
        assert await rpc("listRuns") == []  # nothing was started


async def test_method_and_prefix_grants(tmp_path: Path) -> None:
    tokens = {
        "one-method": {"role": "viewer", "scopes": ["listWorkflows"]},
        "legacy-prefix": {"role": "viewer", "scopes": ["runs.*"]},
        "legacy-rank": {"role": "operator", "scopes": ["execute"]},
    }
    async with serve_gateway(tmp_path, auth={"mode": "token", "tokens": tokens}) as gw:
        async with gw.client("one-method") as client:
            rpc = Rpc(client)
            assert len(await rpc("listWorkflows")) == 5
            await rpc.refused("listRuns", 403, "FORBIDDEN")
        async with gw.client("legacy-prefix") as client:
            rpc = Rpc(client)
            assert await rpc("runs.list") == []
            await rpc.refused("workflows.list", 403, "FORBIDDEN")
        async with gw.client("legacy-rank") as client:
            rpc = Rpc(client)
            launched = await rpc("launchRun", workflow="hello")
            assert launched["workflow"] == "hello"
            error = await rpc.refused(
                "submitApproval", 403, "FORBIDDEN", runId="x", nodeId="y", approved=True
            )
            assert error["requiredScope"] == "approval:submit"


async def test_legacy_rpc_route_echoes_the_id(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        res = await client.post("/rpc", json={"id": "call-1", "method": "workflows.list"})
        assert res.status_code == 200
        frame = res.json()
        assert frame["id"] == "call-1" and frame["ok"] is True and len(frame["payload"]) == 5
        res = await client.post("/rpc", json={"id": 7, "method": "listRuns", "params": {}})
        assert res.json()["id"] == 7 and res.json()["payload"] == []
        res = await client.post("/rpc", json={"method": "nope"})
        assert res.status_code == 404 and res.json()["error"]["code"] == "METHOD_NOT_FOUND"
        res = await client.post("/rpc", json={"id": "x"})
        assert res.status_code == 400 and res.json()["error"]["code"] == "INVALID_REQUEST"


async def test_refusals_are_frames_with_the_error_status(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, max_body_bytes=1024) as gw, gw.client() as client:
        rpc = Rpc(client)
        await rpc.refused("noSuchMethod", 404, "METHOD_NOT_FOUND")
        await rpc.refused("getRun", 404, "NOT_FOUND", runId="smi_missing")
        error = await rpc.refused("getRun", 400, "INVALID_REQUEST")
        assert error["field"] == "runId"
        await rpc.refused("getRun", 400, "INVALID_REQUEST", runId=5)
        error = await rpc.refused("streamRunEvents", 400, "INVALID_REQUEST", runId="r")
        assert "WebSocket only" in error["message"]
        for body in (b"{not json", b"[1, 2]"):
            res = await client.post(
                "/v1/rpc/getRun", content=body, headers={"content-type": "application/json"}
            )
            assert res.status_code == 400 and res.json()["error"]["code"] == "INVALID_REQUEST"
            assert_common_headers(res)
        res = await client.post("/v1/rpc/listRuns", json={"pad": "x" * 2048})
        assert res.status_code == 413
        assert res.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        # An unknown path is the JSON 404 envelope, not a frame.
        res = await client.get("/no/such/path")
        assert res.status_code == 404 and res.json() == {
            "error": {"code": "NOT_FOUND", "message": "Route not found"}
        }
        assert_common_headers(res)


async def test_extend_adds_namespaced_methods_with_their_scopes(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw:

        async def whoami(call: object) -> dict[str, object]:
            principal = call.principal  # type: ignore[attr-defined]
            return {"userId": principal.user_id, "params": call.params}  # type: ignore[attr-defined]

        gw.gateway.extend(
            "ops",
            {
                "whoami": {"scope": "run:read", "handler": whoami},
                "purge": {"scope": "run:admin", "handler": lambda call: {"purged": 0}},
            },
        )
        async with gw.client("reader-token") as client:
            rpc = Rpc(client)
            assert await rpc("ops.whoami", a=1) == {"userId": "reader", "params": {"a": 1}}
            error = await rpc.refused("ops.purge", 403, "FORBIDDEN")
            assert error["requiredScope"] == "run:admin"
        async with gw.client("op-token") as client:
            assert await Rpc(client)("ops.purge") == {"purged": 0}
