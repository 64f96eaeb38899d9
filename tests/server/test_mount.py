"""The server app mounted under a prefix in a host app (Starlette, FastAPI), lifespan forwarded.

Driven in process through `httpx.ASGITransport`; the host app's ASGI lifespan is run the
way a server runs it (startup, then shutdown), and the host's lifespan enters the mounted
app's `router.lifespan_context`, which is how the docs tell users to mount it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from smithers_server import create_app

from .conftest import TERMINAL, assert_error, make_root, parse_block

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOKEN = "mount-token-123"


@asynccontextmanager
async def asgi_lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run `app`'s lifespan over the ASGI protocol, as uvicorn does."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)

    async def receive() -> dict[str, Any]:
        return await app_inbox.receive()

    async def send(message: dict[str, Any]) -> None:
        await app_outbox.send(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with anyio.create_task_group() as tg:
        tg.start_soon(app, scope, receive, send)
        await to_app.send({"type": "lifespan.startup"})
        started = await from_app.receive()
        assert started["type"] == "lifespan.startup.complete", started
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            with anyio.fail_after(30):
                stopped = await from_app.receive()
            assert stopped["type"] == "lifespan.shutdown.complete", stopped


def forward_lifespan(*inner: Starlette) -> Callable[[Any], Any]:
    """A host lifespan that enters each mounted app's lifespan (what users are told to do)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for mounted in inner:
                await stack.enter_async_context(mounted.router.lifespan_context(mounted))
            yield

    return lifespan


def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("host home")


def starlette_host(**mounts: Starlette) -> Starlette:
    return Starlette(
        routes=[Route("/", home), *[Mount(f"/{p}", app=a) for p, a in mounts.items()]],
        lifespan=forward_lifespan(*mounts.values()),
    )


def fastapi_host(**mounts: Starlette) -> Any:
    fastapi = pytest.importorskip("fastapi")
    host = fastapi.FastAPI(lifespan=forward_lifespan(*mounts.values()))

    @host.get("/")
    def fastapi_home() -> PlainTextResponse:
        return PlainTextResponse("host home")

    for prefix, app in mounts.items():
        host.mount(f"/{prefix}", app)
    return host


HOSTS = {"starlette": starlette_host, "fastapi": fastapi_host}


@asynccontextmanager
async def serve(
    host: ASGIApp, base_url: str = "http://127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_lifespan(host):
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=15) as c:
            yield c


async def wait_status(
    c: httpx.AsyncClient, prefix: str, run_id: str, wanted: tuple[str, ...]
) -> dict[str, Any]:
    with anyio.fail_after(15):
        while True:
            res = await c.get(f"{prefix}/v1/runs/{run_id}")
            assert res.status_code == 200, res.text
            if res.json()["status"] in wanted:
                view: dict[str, Any] = res.json()
                return view
            await anyio.sleep(0.02)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


@pytest.mark.parametrize("kind", list(HOSTS))
async def test_mounted_under_a_prefix(kind: str, root: Path, tmp_path: Path) -> None:
    inner = create_app(db=f"sqlite:///{tmp_path / 'mounted.db'}", root_dir=root)
    host = HOSTS[kind](smithers=inner)
    async with serve(host) as c:
        res = await c.get("/smithers/health")
        assert res.status_code == 200 and res.json() == {"ok": True}
        assert res.headers["cache-control"] == "no-store"
        assert (await c.get("/")).text == "host home"

        res = await c.post("/smithers/v1/runs", json={"workflowPath": "hello.py", "input": {}})
        assert res.status_code == 200, res.text
        run_id = res.json()["runId"]
        view = await wait_status(c, "/smithers", run_id, TERMINAL)
        assert view["status"] == "finished" and view["workflowName"] == "hello"
        listed = (await c.get("/smithers/v1/runs")).json()
        assert run_id in [r["runId"] for r in listed]

        res = await c.get(f"/smithers/v1/runs/{run_id}/events")
        assert res.headers["content-type"].startswith("text/event-stream")
        blocks = [b for b in res.text.split("\n\n") if b]
        assert blocks[0] == "retry: 1000"
        events = [parse_block(b) for b in blocks[1:]]
        assert [int(e["id"]) for e in events if e] == list(range(len(blocks) - 1))
        assert '"RunFinished"' in blocks[-1]

        # A parked run is approved under the prefix and resumes by itself.
        res = await c.post("/smithers/v1/runs", json={"workflowPath": "approval.py"})
        parked = res.json()["runId"]
        await wait_status(c, "/smithers", parked, ("waiting-approval",))
        approvals = (await c.get("/smithers/v1/approvals")).json()["approvals"]
        assert [a["runId"] for a in approvals] == [parked]
        res = await c.post(f"/smithers/v1/runs/{parked}/nodes/review/approve")
        assert res.status_code == 200 and res.json()["approved"] is True
        assert (await wait_status(c, "/smithers", parked, TERMINAL))["status"] == "finished"

        # The app's own 404 and 405 envelopes under the prefix.
        for path in ("/smithers/nope", "/smithers/", "/smithers/v1/nothing"):
            err = assert_error(await c.get(path), 404, "NOT_FOUND")
            assert err["message"] == "Route not found"
        assert_error(await c.get("/smithers/v1/runs/unknown"), 404, "NOT_FOUND")
        res = await c.put("/smithers/v1/runs")
        assert_error(res, 405, "METHOD_NOT_ALLOWED")
        assert "POST" in res.headers["allow"]
        # Outside the prefix the host answers, not the mounted app.
        res = await c.get("/v1/runs")
        assert res.status_code == 404 and "NOT_FOUND" not in res.text

        # Metrics label routes by template, not by prefix or raw path.
        text = (await c.get("/smithers/metrics")).text
        assert re.search(r'smithers_http_requests_total\{[^}]*route="/v1/runs/\{runId\}"', text)
        assert run_id not in text and parked not in text


async def test_in_flight_run_is_released_when_the_lifespan_ends(root: Path, tmp_path: Path) -> None:
    """Drain on shutdown: runs in flight are handed back unowned (they used to stay owned)."""
    db = tmp_path / "drain.db"
    inner = create_app(db=f"sqlite:///{db}", root_dir=root)
    async with serve(starlette_host(smithers=inner)) as c:
        res = await c.post(
            "/smithers/v1/runs", json={"workflowPath": "slow.py", "input": {"seconds": 30}}
        )
        slow = res.json()["runId"]
        await wait_status(c, "/smithers", slow, ("running",))
    # Handed back unowned, so another process adopts it at once.
    with sqlite3.connect(db) as con:
        status, owner = con.execute(
            "SELECT status, runtime_owner_id FROM _smithers_runs WHERE run_id = ?", (slow,)
        ).fetchone()
    assert status == "running"
    assert owner is None


@pytest.mark.parametrize("kind", list(HOSTS))
async def test_mounted_with_token(kind: str, root: Path, tmp_path: Path) -> None:
    inner = create_app(db=f"sqlite:///{tmp_path / 'tok.db'}", root_dir=root, auth_token=TOKEN)
    async with serve(HOSTS[kind](smithers=inner)) as c:
        assert (await c.get("/smithers/health")).json() == {"ok": True}
        assert_error(await c.get("/smithers/v1/runs"), 401, "UNAUTHORIZED")
        assert_error(
            await c.post("/smithers/v1/runs", json={"workflowPath": "hello.py"}),
            401,
            "UNAUTHORIZED",
        )
        assert_error(await c.get("/smithers/openapi.json"), 401, "UNAUTHORIZED")
        res = await c.get("/smithers/v1/runs", headers={"authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and res.json() == []
        res = await c.get("/smithers/v1/runs", headers={"x-smithers-key": TOKEN})
        assert res.status_code == 200


async def test_mounted_open_app_keeps_the_loopback_guard(root: Path, tmp_path: Path) -> None:
    inner = create_app(db=f"sqlite:///{tmp_path / 'g.db'}", root_dir=root)
    host = starlette_host(smithers=inner)
    async with serve(host, base_url="http://evil.example.com") as c:
        assert_error(await c.get("/smithers/v1/runs"), 403, "FORBIDDEN")
        res = await c.get("/smithers/v1/runs", headers={"host": "localhost"})
        assert res.status_code == 200


async def test_two_apps_in_one_host_do_not_collide(root: Path, tmp_path: Path) -> None:
    first = create_app(db=f"sqlite:///{tmp_path / 'a.db'}", root_dir=root)
    second = create_app(db=f"sqlite:///{tmp_path / 'b.db'}", root_dir=root)
    async with serve(starlette_host(a=first, b=second)) as c:
        res = await c.post("/a/v1/runs", json={"workflowPath": "hello.py", "runId": "only-in-a"})
        assert res.status_code == 200
        await wait_status(c, "/a", "only-in-a", TERMINAL)
        assert [r["runId"] for r in (await c.get("/a/v1/runs")).json()] == ["only-in-a"]
        assert (await c.get("/b/v1/runs")).json() == []
        assert_error(await c.get("/b/v1/runs/only-in-a"), 404, "NOT_FOUND")
        # Each app counts its own requests.
        metrics_b = (await c.get("/b/metrics")).text
        assert 'method="POST",route="/v1/runs"' not in metrics_b
        metrics_a = (await c.get("/a/metrics")).text
        assert 'method="POST",route="/v1/runs"' in metrics_a
