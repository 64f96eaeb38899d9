"""The auth modes at the Gateway's door over HTTP: JWT claims (a custom scopes claim, a
wrong audience refused), expired and revoked tokens, `allowedOrigins`, the trusted proxy,
the open mode's loopback guard, and `/metrics` behind `observability:read`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from smithers.clock import now_ms

from .conftest import Rpc, serve_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SECRET = "jwt-test-secret-" + "s" * 64  # long enough for HS512 too
JWT_AUTH = {
    "mode": "jwt",
    "issuer": "https://id.example",
    "audience": "smithers-gateway",
    "secret": SECRET,
    "scopesClaim": "permissions",
    "userClaim": "email",
}


def token(**claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": "https://id.example",
        "aud": "smithers-gateway",
        "exp": now + 300,
        "iat": now,
        "email": "jay@example.com",
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, "HS256")


async def test_jwt_scopes_from_a_custom_claim(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=JWT_AUTH) as gw:
        writer = token(permissions="run:read run:write", role="deployer")
        async with gw.client(writer) as client:
            rpc = Rpc(client)
            run_id = (await rpc("launchRun", workflow="hello"))["runId"]
            await rpc.wait_status(run_id, "finished")
            who = (await rpc("getNodeOutput", runId=run_id, nodeId="who"))["output"]
            assert who["triggeredBy"] == "jay@example.com" and who["role"] == "deployer"
            assert who["scopes"] == ["run:read", "run:write"]
        # A list claim works too; `scope` (the default claim name) is not read here.
        reader = token(permissions=["run:read"], scope="run:write")
        async with gw.client(reader) as client:
            rpc = Rpc(client)
            assert len(await rpc("listRuns")) == 1
            error = await rpc.refused("launchRun", 403, "FORBIDDEN", workflow="hello")
            assert error["requiredScope"] == "run:write"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "another-service"}, "wrong audience"),
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"exp": None}, "missing claim exp"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ],
)
async def test_jwt_refusals(tmp_path: Path, claims: dict[str, Any], message: str) -> None:
    async with serve_gateway(tmp_path, auth=JWT_AUTH) as gw:
        async with gw.client(token(permissions="*", **claims)) as client:
            rpc = Rpc(client)
            error = await rpc.refused("listRuns", 401, "UNAUTHORIZED")
            assert message in error["message"]
            await rpc.refused("launchRun", 401, "UNAUTHORIZED", workflow="hello")
        async with gw.client(token(permissions="*")) as client:
            assert await Rpc(client)("listRuns") == []  # nothing was started


async def test_jwt_with_another_algorithm_or_a_tampered_payload(tmp_path: Path) -> None:
    good = token(permissions="*")
    header, payload, signature = good.split(".")
    unsigned = jwt.encode({"permissions": "*", "exp": int(time.time()) + 60}, None, "none")
    claims = jwt.decode(good, options={"verify_signature": False})
    hs512 = jwt.encode(claims, SECRET, "HS512")  # the right secret, another algorithm
    forged = jwt.encode(
        {"permissions": "*", "email": "x"}, "a-guessed-secret-that-is-not-the-right-one", "HS256"
    )
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    async with serve_gateway(tmp_path, auth=JWT_AUTH) as gw:
        for presented in (unsigned, hs512, forged, tampered, "not.a.jwt"):
            async with gw.client(presented) as client:
                await Rpc(client).refused("listRuns", 401, "UNAUTHORIZED")


async def test_expired_and_revoked_tokens(tmp_path: Path) -> None:
    now = now_ms()
    tokens = {
        "fine": {"role": "operator", "scopes": ["*"], "expiresAtMs": now + 600_000},
        "old": {"role": "operator", "scopes": ["*"], "expiresAtMs": now - 1},
        "gone": {"role": "operator", "scopes": ["*"], "revokedAtMs": now - 1},
    }
    async with serve_gateway(tmp_path, auth={"mode": "token", "tokens": tokens}) as gw:
        async with gw.client("fine") as client:
            assert await Rpc(client)("listRuns") == []
        async with gw.client("old") as client:
            error = await Rpc(client).refused("listRuns", 401, "UNAUTHORIZED")
            assert error["message"] == "token expired"
        async with gw.client("gone") as client:
            error = await Rpc(client).refused("listRuns", 401, "UNAUTHORIZED")
            assert error["message"] == "token revoked"


async def test_allowed_origins_refuse_other_browsers(tmp_path: Path) -> None:
    auth = {
        "mode": "token",
        "tokens": {"op-token": {"role": "operator", "scopes": ["*"]}},
        "allowedOrigins": ["https://console.example"],
    }
    async with serve_gateway(tmp_path, auth=auth) as gw:
        for origin, status in (
            ({"origin": "https://console.example"}, 200),
            ({}, 200),
            ({"origin": "https://evil.example"}, 401),
            ({"origin": "null"}, 401),
        ):
            async with gw.client(headers=origin) as client:
                res = await client.post("/v1/rpc/listRuns", json={})
                assert res.status_code == status, (origin, res.text)


async def test_trusted_proxy_fails_closed(tmp_path: Path) -> None:
    auth = {"mode": "trusted-proxy"}
    async with serve_gateway(tmp_path, auth=auth) as gw:
        proxied = {"x-user-id": "pat", "x-user-scopes": "run:read,run:write", "x-user-role": "ops"}
        async with gw.client(token=None, headers=proxied) as client:
            rpc = Rpc(client)
            run_id = (await rpc("launchRun", workflow="hello"))["runId"]
            await rpc.wait_status(run_id, "finished")
            who = (await rpc("getNodeOutput", runId=run_id, nodeId="who"))["output"]
            assert (who["triggeredBy"], who["role"]) == ("pat", "ops")
        async with gw.client(token=None, headers={"x-user-id": "pat"}) as client:
            await Rpc(client).refused("listRuns", 401, "UNAUTHORIZED")


async def test_an_open_gateway_answers_loopback_only(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=None) as gw, gw.client(token=None) as client:
        assert await Rpc(client)("listRuns") == []
        for headers in ({"host": "evil.example"}, {"origin": "https://evil.example"}):
            res = await client.post("/v1/rpc/listRuns", json={}, headers=headers)
            assert res.status_code == 403, res.text
            assert res.json()["error"]["code"] == "FORBIDDEN"
            assert res.headers["x-smithers-api-version"] == "v1"
        res = await client.get("/health", headers={"host": "evil.example"})
        assert res.status_code == 403


async def test_metrics_behind_observability_read(tmp_path: Path) -> None:
    tokens = {
        "obs": {"role": "viewer", "scopes": ["observability:read"]},
        "reader": {"role": "viewer", "scopes": ["run:read"]},
    }
    auth = {"mode": "token", "tokens": tokens}
    async with serve_gateway(tmp_path, auth=auth, metrics_auth=True) as gw:
        async with gw.client("obs") as client:
            res = await client.get("/metrics")
            assert res.status_code == 200
            assert "smithers_gateway_rpc_calls_total" in res.text
        async with gw.client("reader") as client:
            res = await client.get("/metrics")
            assert res.status_code == 403
            assert res.json()["error"]["details"]["requiredScope"] == "observability:read"
        async with gw.client(None) as client:
            assert (await client.get("/metrics")).status_code == 401
