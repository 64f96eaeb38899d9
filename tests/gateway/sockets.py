"""A raw WebSocket test client for the Gateway: `open_socket(url)` gives a `Socket` that
reads the challenge, sends requests and waits for their answers (ticks are skipped)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from websockets.asyncio.client import ClientConnection, connect

_ids = itertools.count(1)


def ws_url(http_url: str) -> str:
    return "ws" + http_url.removeprefix("http")


class Socket:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []  # event frames seen while waiting for answers

    async def frame(self, timeout: float = 15.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.conn.recv())
                if frame.get("event") != "tick":
                    return frame

    async def send(self, method: str, **params: Any) -> str:
        frame_id = f"r{next(_ids)}"
        await self.conn.send(
            json.dumps({"type": "req", "id": frame_id, "method": method, "params": params})
        )
        return frame_id

    async def answer(self, frame_id: str) -> dict[str, Any]:
        while True:
            frame = await self.frame()
            if frame["type"] == "res" and frame["id"] == frame_id:
                return frame
            self.events.append(frame)

    async def request(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.answer(await self.send(method, **params))

    async def event(self, name: str, run_id: str | None = None) -> dict[str, Any]:
        """The next event frame named `name` (of the run `run_id`), from those seen while
        waiting for answers first; the frames before it stay in `events`."""
        for i, frame in enumerate(self.events):
            if _matches(frame, name, run_id):
                return self.events.pop(i)
        while True:
            frame = await self.frame()
            if _matches(frame, name, run_id):
                return frame
            self.events.append(frame)

    async def call(self, method: str, **params: Any) -> Any:
        res = await self.request(method, **params)
        assert res["ok"] is True, res
        return res["payload"]

    async def connect(self, token: str | None = "op-token", **params: Any) -> dict[str, Any]:
        params.setdefault("minProtocol", 1)
        params.setdefault("maxProtocol", 1)
        params.setdefault("client", {"id": "tests", "version": "1", "platform": "python"})
        if token is not None:
            params["auth"] = {"token": token}
        return await self.request("connect", **params)


def _matches(frame: dict[str, Any], name: str, run_id: str | None) -> bool:
    if frame.get("type") != "event" or frame.get("event") != name:
        return False
    return run_id is None or frame["payload"].get("runId") == run_id


@asynccontextmanager
async def open_socket(
    http_url: str, *, challenge: bool = True, **options: Any
) -> AsyncIterator[Socket]:
    async with connect(ws_url(http_url), open_timeout=15, **options) as conn:
        socket = Socket(conn)
        if challenge:
            first = await socket.frame()
            assert first["type"] == "event" and first["event"] == "connect.challenge", first
        yield socket


@asynccontextmanager
async def connected(http_url: str, token: str = "op-token", **params: Any) -> AsyncIterator[Socket]:
    """A socket past `connect` (`params` such as `subscribe` go with it)."""
    async with open_socket(http_url) as socket:
        hello = await socket.connect(token, **params)
        assert hello["ok"] is True, hello
        yield socket
