"""Several processes on one PostgreSQL database (docs/deploy.md): a run driven by server A
is streamed by server B (SSE) and by a gateway (WebSocket), every event once and in order;
an approval and a cancel sent to B reach A's tasks within a second (PostgreSQL
LISTEN/NOTIFY); and connections the database drops under load are made again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from smithers.store.postgres import ASK_WINDOW_S
from tests.conftest import POSTGRES_URL
from tests.gateway.processes import started_gateway
from tests.gateway.sockets import Socket, connected

from .conftest import (
    TERMINAL,
    ServerProcess,
    SSEStream,
    make_root,
    read_sse,
    start_run,
    wait_status,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

TERMINAL_TYPES = ("RunFinished", "RunFailed", "RunCancelled")


def stored_types(client: httpx.Client, run_id: str) -> list[tuple[int, str]]:
    """(seq, type) of every stored event, from a stream of the finished run."""
    stream = SSEStream()
    with client.stream("GET", f"/v1/runs/{run_id}/events", timeout=30) as res:
        read_sse(res, stream)
    return [(int(e["id"]), json.loads(e["data"])["type"]) for e in stream.events]


def sse_in_thread(client: httpx.Client, run_id: str) -> tuple[threading.Thread, SSEStream]:
    stream = SSEStream()

    def read() -> None:
        with client.stream("GET", f"/v1/runs/{run_id}/events", timeout=60) as res:
            read_sse(res, stream)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, stream


async def ws_events(socket: Socket, run_id: str) -> list[dict[str, Any]]:
    """The run's events from a `streamRunEvents` opened at the start, to the terminal one."""
    opened = await socket.call("streamRunEvents", runId=run_id, afterSeq=-1)
    found: list[dict[str, Any]] = []
    while True:
        frame = await socket.frame(timeout=60)
        if frame.get("event") != "run.event":
            continue
        payload = frame["payload"]
        if payload["streamId"] == opened["streamId"]:
            found.append(payload)
            if payload["payload"]["type"] in TERMINAL_TYPES:
                return found


def waited_ms(path: Path, sent_ns: int, timeout: float = 10.0) -> float:
    """How long after `sent_ns` the task wrote its `time.time_ns()` to `path`."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path.name} never written"
        time.sleep(0.005)
    return (int(path.read_text()) - sent_ns) / 1e6


async def test_streams_on_b_see_a_run_of_a_and_commands_to_b_reach_a_at_once(
    servers: Callable[..., ServerProcess], pg_schema_url: str, tmp_path: Path
) -> None:
    root = make_root(tmp_path / "root")
    a, b = servers(pg_schema_url, root), servers(pg_schema_url, root)
    started = time.monotonic()
    client_a, client_b = a.client(), b.client()
    folder = tmp_path / "run"
    folder.mkdir()
    gw_dir = tmp_path / "gateway"
    gw_dir.mkdir()
    async with started_gateway(gw_dir, pg_schema_url) as gateway, connected(gateway.url) as ws:
        # Past a new process's first second, when it announces every run's events: A
        # announces this run's because B and the gateway follow it.
        await anyio.sleep(max(0.0, started + ASK_WINDOW_S + 0.5 - time.monotonic()))
        run_id = start_run(client_a, "srv_scale.py", input={"dir": str(folder), "lines": 200})
        thread, sse = sse_in_thread(client_b, run_id)
        async with anyio.create_task_group() as tg:
            ws_found: list[dict[str, Any]] = []

            async def read_ws() -> None:
                ws_found.extend(await ws_events(ws, run_id))

            tg.start_soon(read_ws)
            await anyio.sleep(0.5)  # both streams are open and have read the table
            (folder / "go").touch()
            await anyio.to_thread.run_sync(wait_status, client_a, run_id, "running")
            while "ApprovalRequested" not in sse.types:
                await anyio.sleep(0.01)
            sent = time.time_ns()
            res = client_b.post(f"/v1/runs/{run_id}/nodes/ok/approve")
            assert res.status_code == 200, res.text
            approved_ms = waited_ms(folder / "after", sent)
            sent = time.time_ns()
            res = client_b.post(f"/v1/runs/{run_id}/cancel")
            assert res.status_code == 200, res.text
            cancelled_ms = waited_ms(folder / "cancelled", sent)
        await anyio.to_thread.run_sync(thread.join, 30)
    print(f"approval on B to A's task: {approved_ms:.1f} ms; cancel: {cancelled_ms:.1f} ms")
    assert approved_ms < 1000 and cancelled_ms < 1000
    stored = stored_types(client_a, run_id)
    assert [seq for seq, _ in stored] == list(range(len(stored)))
    assert stored[-1][1] == "RunCancelled"
    assert sse.closed and list(zip(sse.ids, sse.types, strict=True)) == stored
    assert [(e["seq"], e["payload"]["type"]) for e in ws_found] == stored
    assert [t for _, t in stored].count("NodeOutput") == 200


def admin_count(sql: str, name: str) -> int:
    """An integer `sql` reads about the connections named `name`, over a connection of
    its own (not one of those under test)."""
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        found = conn.execute(sa.text(sql), {"name": name}).scalar_one()
    admin.dispose()
    return int(found)


def kill_connections(name: str) -> int:
    """`pg_terminate_backend` on every connection named `name`."""
    return admin_count(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND application_name = :name",
        name,
    )


def listening(name: str) -> int:
    return admin_count(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = :name AND query LIKE 'LISTEN %'",
        name,
    )


async def test_connections_killed_under_load_are_made_again_and_lose_nothing(
    servers: Callable[..., ServerProcess], pg_schema_url: str, tmp_path: Path
) -> None:
    """Two servers and a gateway drive runs while every connection of theirs is killed
    three times (as a PostgreSQL restart or failover does)."""
    root = make_root(tmp_path / "root")
    # Name the connections after the schema, so only this test's are killed.
    schema = pg_schema_url.rsplit("search_path%3D", 1)[1]
    url = f"{pg_schema_url}&application_name={schema}"
    a, b = servers(url, root), servers(url, root)
    clients = [a.client(), b.client()]
    runs: list[tuple[httpx.Client, str]] = []
    for i in range(24):
        client = clients[i % 2]
        runs.append((client, start_run(client, "srv_chatty.py", input={"lines": 40})))
    watcher = clients[1]
    thread, sse = sse_in_thread(watcher, runs[0][1])  # a run of A, streamed by B
    gw_dir = tmp_path / "gateway"
    gw_dir.mkdir()
    async with started_gateway(gw_dir, url) as gateway, connected(gateway.url) as ws:
        for _ in range(8):
            launched = await ws.call("launchRun", workflow="slow", input={"seconds": 0.4})
            runs.append((watcher, launched["runId"]))  # read back through server B
        killed = 0
        for _ in range(3):
            await anyio.sleep(0.3)
            killed += await anyio.to_thread.run_sync(kill_connections, schema)
        assert killed >= 6  # the pools and listeners of three processes, at least
        for client, run_id in runs:
            view = await anyio.to_thread.run_sync(
                lambda c=client, r=run_id: wait_status(c, r, TERMINAL, timeout=60)
            )
            assert view["status"] == "finished", view
        # Each process listens again, on one connection.
        assert await anyio.to_thread.run_sync(listening, schema) == 3
    await anyio.to_thread.run_sync(thread.join, 30)
    for client, run_id in runs:
        stored = stored_types(client, run_id)
        assert [seq for seq, _ in stored] == list(range(len(stored)))
        types = [t for _, t in stored]
        assert types.count("RunFinished") == 1
        assert types.count("NodeFinished") == types.count("NodeStarted") >= 1
    assert sse.closed and sse.ids == list(range(len(stored_types(watcher, runs[0][1]))))
    for server in (a, b):
        assert "Traceback" not in server.log(), server.log()
        assert "listening connection lost" in server.log()
