"""A real Gateway under uvicorn in the test's event loop, and an HTTP RPC client for it.

`serve_gateway` builds a Gateway on a SQLite file of the test's temporary directory (or a
database URL), registers the workflows of `tests/gateway/workflows.py`, listens on a free
port and closes it afterwards. `Rpc` posts `/v1/rpc/{method}` with a token.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from smithers_gateway import Gateway, GatewayServer

from . import workflows

TOKENS: dict[str, dict[str, Any]] = {
    "op-token": {"role": "operator", "scopes": ["*"], "userId": "ops"},
    "alice-token": {
        "role": "operator",
        "scopes": ["run:write", "approval:submit"],
        "userId": "alice",
    },
    "bob-token": {
        "role": "operator",
        "scopes": ["run:write", "approval:submit", "release:approve"],
        "userId": "bob",
    },
    "reader-token": {"role": "viewer", "scopes": ["run:read"], "userId": "reader"},
}
TOKEN_AUTH = {"mode": "token", "tokens": TOKENS}
TERMINAL = ("finished", "failed", "cancelled")


def register_all(gateway: Gateway) -> Gateway:
    return (
        gateway.register("hello", workflows.hello, description="says hello")
        .register("review", workflows.review, readable_name="Review")
        .register("payment", workflows.payment)
        .register("gate", workflows.gate)
        .register("slow", workflows.slow)
    )


@dataclass
class Running:
    gateway: Gateway
    server: GatewayServer
    db_path: Path | None

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = "op-token", **options: Any) -> httpx.AsyncClient:
        headers = dict(options.pop("headers", {}))
        if token is not None:
            headers.setdefault("authorization", f"Bearer {token}")
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=15, **options)

    def db(self) -> sqlite3.Connection:
        assert self.db_path is not None
        return sqlite3.connect(self.db_path, timeout=15)


@asynccontextmanager
async def serve_gateway(
    tmp_path: Path,
    *,
    auth: Mapping[str, Any] | None = TOKEN_AUTH,
    db: str | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    db_path = None if db is not None else tmp_path / "gateway.db"
    gateway = register_all(
        Gateway(auth=auth, db=db or f"sqlite:///{db_path}", workspace_root=tmp_path, **options)
    )
    server = await gateway.listen(port=0)
    try:
        yield Running(gateway, server, db_path)
    finally:
        await gateway.close()


class Rpc:
    """`await rpc("getRun", runId=...)`: the payload of an ok frame (or AssertionError);
    `await rpc.frame(...)` / `rpc.post(...)`: the response itself."""

    def __init__(self, client: httpx.AsyncClient, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix

    async def post(self, method: str, params: Any = None) -> httpx.Response:
        path = f"{self.prefix}/v1/rpc/{method}"
        return await self.client.post(path, json={} if params is None else params)

    async def __call__(self, method: str, **params: Any) -> Any:
        res = await self.post(method, params)
        body = res.json()
        assert res.status_code == 200 and body["ok"] is True, (res.status_code, body)
        return body["payload"]

    async def refused(self, method: str, status: int, code: str, **params: Any) -> dict[str, Any]:
        """The call is refused with this status and code; returns the frame's error."""
        res = await self.post(method, params)
        body = res.json()
        assert res.status_code == status, (res.status_code, body)
        assert body["type"] == "res" and body["ok"] is False and body["apiVersion"] == "v1"
        error: dict[str, Any] = body["error"]
        assert error["code"] == code, error
        return error

    async def wait_status(
        self, run_id: str, wanted: str | tuple[str, ...], timeout: float = 15.0
    ) -> dict[str, Any]:
        wanted = (wanted,) if isinstance(wanted, str) else wanted
        view: dict[str, Any] = {}
        with anyio.fail_after(timeout):
            while True:
                view = await self("getRun", runId=run_id)
                if view["status"] in wanted:
                    return view
                await anyio.sleep(0.02)
