"""The apps tested in-process, as a user tests their own: httpx's ASGITransport and
Starlette's TestClient with their defaults (host `testserver`), with and without the
lifespan, and through several lifespans in a row; the DNS-rebinding guard still holds."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from smithers import Runtime, Store, load_workflow, run_workflow
from smithers_gateway import Gateway
from smithers_serve import create_serve_app
from smithers_server import create_app
from tests.helpers import EXAMPLES

pytestmark = pytest.mark.anyio


def finished(client: TestClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        view: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if view["status"] == "finished" or time.monotonic() > deadline:
            return view
        time.sleep(0.02)


def test_the_server_under_test_clients_one_lifespan_after_another(
    db_url: str, tmp_path: Path
) -> None:
    app = create_app(db=db_url, root_dir=EXAMPLES)
    for name in ("first", "second", "third"):  # as pytest fixtures do, one client per test
        with TestClient(app) as client:
            started = client.post("/v1/runs", json={"workflowPath": "hello.py", "input": {}})
            assert started.status_code == 200, started.text
            assert finished(client, started.json()["runId"])["status"] == "finished", name
            assert client.get("/v1/runs").status_code == 200


async def test_the_server_through_asgi_transport_with_and_without_lifespan(
    db_url: str,
) -> None:
    app = create_app(db=db_url, root_dir=EXAMPLES)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/health")).json() == {"ok": True}
        refused = await client.post("/v1/runs", json={"workflowPath": "hello.py"})
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "SERVER_NOT_STARTED"
        assert "TestClient" in error["message"] and "\n" not in error["message"]
        async with app.router.lifespan_context(app):
            started = await client.post("/v1/runs", json={"workflowPath": "hello.py"})
            assert started.status_code == 200, started.text
            view = await client.get(f"/v1/runs/{started.json()['runId']}")
            assert view.status_code == 200


async def test_the_serve_app_through_asgi_transport_without_lifespan(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "hello.py")
    async with Runtime(store, adopt=False) as runtime:
        run_id = await runtime.start(wf, input={"name": "in-process"})
        await runtime.wait(run_id)
        app = create_serve_app(workflow=wf, store=store, run_id=run_id, runtime=runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            view = await c.get("/")
            assert view.status_code == 200 and view.json()["status"] == "finished"


def test_the_serve_app_under_test_clients_one_lifespan_after_another(store: Store) -> None:
    wf = load_workflow(EXAMPLES / "hello.py")
    done = anyio.run(partial(run_workflow, wf, input={"name": "twice"}, store=store))
    app = create_serve_app(workflow=wf, store=store, run_id=done.run_id)
    for name in ("first", "second"):
        with TestClient(app) as client:
            view = client.get("/")
            assert view.status_code == 200 and view.json()["status"] == "finished", name
            assert client.get("/frames").status_code == 200, name


@pytest.mark.parametrize(
    ("host", "server"),
    [
        ("evil.example", ("testserver", 80)),  # a foreign Host
        ("testserver", ("127.0.0.1", 7331)),  # a rebound name on a real socket
        ("testserver:80", ("10.0.0.5", 80)),
    ],
)
async def test_the_rebinding_guard_still_refuses_foreign_hosts(
    tmp_path: Path, host: str, server: tuple[str, int]
) -> None:
    app = create_app(db=f"sqlite:///{tmp_path / 's.db'}", root_dir=EXAMPLES)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 403


def test_the_gateway_under_test_clients_one_lifespan_after_another(tmp_path: Path) -> None:
    gateway = Gateway(db=f"sqlite:///{tmp_path / 'g.db'}").register(
        "hello", load_workflow(EXAMPLES / "hello.py")
    )
    for name in ("first", "second"):
        with TestClient(gateway.app) as client:
            res = client.post("/v1/rpc/launchRun", json={"workflow": "hello", "input": {}})
            assert res.status_code == 200 and res.json()["ok"], (name, res.text)
            run_id = res.json()["payload"]["runId"]
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                got = client.post("/v1/rpc/getRun", json={"runId": run_id}).json()
                if got["payload"]["status"] == "finished":
                    break
                time.sleep(0.02)
            assert got["payload"]["status"] == "finished", name
            with client.websocket_connect("/") as ws:  # the protocol in-process too
                assert ws.receive_json()["event"] == "connect.challenge"


async def test_the_gateway_through_asgi_transport_without_lifespan(tmp_path: Path) -> None:
    gateway = Gateway(db=f"sqlite:///{tmp_path / 'g.db'}").register(
        "hello", load_workflow(EXAMPLES / "hello.py")
    )
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/health")).json()["ok"] is True
        refused = await client.post("/v1/rpc/launchRun", json={"workflow": "hello"})
        error = refused.json()["error"]
        assert error["code"] == "SERVER_NOT_STARTED", refused.text
        assert "TestClient" in error["message"] and "\n" not in error["message"]
