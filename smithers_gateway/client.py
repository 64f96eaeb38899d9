"""GatewayClient: a Gateway's WebSocket protocol from Python.

`await client.connect()` answers the challenge with `connect` and returns the hello;
`await client.call(method, **params)` returns a payload or raises `GatewayError`;
`stream_run_events(run_id, after_seq)` yields `run.event` payloads, reconnecting with
backoff and jitter and resuming after the last seq it yielded, until `run.completed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections.abc import AsyncGenerator
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from smithers.errors import SmithersError

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 10.0
STREAM_FRAMES = frozenset({"run.event", "run.error", "run.heartbeat"})


class GatewayError(SmithersError):
    """An error frame's error: `.code`, `.message`, `.details` (its other fields)."""


class ConnectionLost(Exception):
    """The socket closed while a call or stream waited on it."""


_LOST: dict[str, Any] = {}  # queued to a stream when its socket goes


def websocket_url(url: str) -> str:
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            return ws + url[len(http) :]
    return url


def _error(error: dict[str, Any]) -> GatewayError:
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    return GatewayError(str(error.get("code")), str(error.get("message", "")), details)


class GatewayClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        client_id: str = "smithers-python",
        open_timeout: float = 15.0,
    ) -> None:
        self.url = websocket_url(url)
        self.token = token
        self.client_id = client_id
        self.open_timeout = open_timeout
        self.hello: dict[str, Any] | None = None
        self._conn: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._stream_requests: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._streams: dict[str, asyncio.Queue[dict[str, Any]]] = {}

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def connect(self) -> dict[str, Any]:
        """Open the socket, answer the challenge; returns the hello payload."""
        await self.close()
        conn = await connect(self.url, open_timeout=self.open_timeout, max_size=None)
        try:
            async with asyncio.timeout(self.open_timeout):
                challenge = json.loads(await conn.recv())
            if challenge.get("event") != "connect.challenge":
                raise ConnectionLost("the gateway sent no challenge")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._reader = asyncio.create_task(self._read(conn), name="smithers-gateway-client")
        params: dict[str, Any] = {
            "minProtocol": 1,
            "maxProtocol": 1,
            "client": {"id": self.client_id, "version": "1", "platform": "python"},
        }
        if self.token is not None:
            params["auth"] = {"token": self.token}
        self.hello = await self.call("connect", **params)
        return self.hello

    async def close(self) -> None:
        conn, reader, self._conn, self._reader = self._conn, self._reader, None, None
        if conn is not None:
            await conn.close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def call(self, method: str, **params: Any) -> Any:
        res = await self._request(method, params)
        if not res.get("ok"):
            raise _error(res.get("error") or {})
        return res.get("payload")

    async def _request(
        self,
        method: str,
        params: dict[str, Any],
        stream: asyncio.Queue[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        if self._conn is None or not self.connected:
            raise ConnectionLost("not connected")
        frame_id = f"c{next(self._ids)}"
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[frame_id] = answer
        if stream is not None:
            self._stream_requests[frame_id] = stream
        frame = {"type": "req", "id": frame_id, "method": method, "params": params}
        try:
            await self._conn.send(json.dumps(frame))
            return await answer
        finally:
            self._answers.pop(frame_id, None)
            self._stream_requests.pop(frame_id, None)

    async def _read(self, conn: ClientConnection) -> None:
        try:
            async for text in conn:
                self._take(json.loads(text))
        except WebSocketException:
            pass
        finally:
            for answer in self._answers.values():
                if not answer.done():
                    answer.set_exception(ConnectionLost("the socket closed"))
            for queue in self._streams.values():
                queue.put_nowait(_LOST)
            self._streams.clear()

    def _take(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "res":
            frame_id = frame.get("id")
            queue = self._stream_requests.get(str(frame_id))
            if queue is not None and frame.get("ok"):
                # Registered before the stream's first frame is read: they follow the answer.
                self._streams[frame["payload"]["streamId"]] = queue
            answer = self._answers.get(str(frame_id))
            if answer is not None and not answer.done():
                answer.set_result(frame)
        elif frame.get("event") in STREAM_FRAMES:
            queue = self._streams.get(frame.get("payload", {}).get("streamId"))
            if queue is not None:
                queue.put_nowait(frame)

    async def stream_run_events(
        self, run_id: str, after_seq: int | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The run's `run.event` payloads after `after_seq` (None: live ones only), each
        seq once and in order, through reconnections, until `run.completed`."""
        last = after_seq
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                if not self.connected:
                    await self.connect()
                queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                params: dict[str, Any] = {"runId": run_id}
                if last is not None:
                    params["afterSeq"] = last
                res = await self._request("streamRunEvents", params, queue)
                if not res.get("ok"):
                    raise _error(res.get("error") or {})
                last = res["payload"]["afterSeq"]
                backoff = FIRST_BACKOFF_S
                while True:
                    frame = await queue.get()
                    if frame is _LOST:
                        raise ConnectionLost("the socket closed")
                    payload = frame["payload"]
                    if frame["event"] == "run.error":
                        if payload.get("code") == "BackpressureDisconnect":
                            break  # resume at once after the last seq seen
                        raise _error(payload)
                    if frame["event"] != "run.event" or payload["seq"] <= last:
                        continue
                    last = payload["seq"]
                    yield payload
                    if payload["event"] == "run.completed":
                        return
            except (ConnectionLost, OSError, WebSocketException, TimeoutError):
                await self.close()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
