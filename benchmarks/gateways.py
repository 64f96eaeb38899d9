"""Shared pieces of the Gateway benchmarks: a `smithers gateway` subprocess and a small
WebSocket client.

Not a benchmark itself. The gateway runs in its own process (benchmarks/workflows/
gateway_app.py) so that clients and server do not share a GIL. The client is a bare
RFC 6455 client on an asyncio protocol (no compression offered, pings answered, frames
parsed by hand, receipt time taken once per read) so that holding hundreds of sockets
costs the client little next to the server.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from servers import BENCH_DIR, HOST, HttpError, ServerProcess, free_port

GATEWAY_APP = BENCH_DIR / "workflows" / "gateway_app.py"
CONNECT = {"minProtocol": 1, "maxProtocol": 1, "client": {"id": "bench", "version": "1"}}

FrameHandler = Callable[[dict[str, Any], int], None]


def gateway_process(
    db: str, *, env: dict[str, str] | None = None, port: int | None = None
) -> ServerProcess:
    """`smithers gateway` serving gateway_app.py on a free loopback port and `db`."""
    port = port or free_port()
    argv = [sys.executable, "-m", "smithers_cli", "gateway", f"{GATEWAY_APP}:gateway"]
    argv += ["--host", HOST, "--port", str(port), "--db", db]
    return ServerProcess(argv, port, env=env)


def _masked(opcode: int, data: bytes) -> bytes:
    """A client frame (clients must mask)."""
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(data, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + body


class WsConnection(asyncio.Protocol):
    """One WebSocket to the gateway. Every text frame is parsed and handed to `on_frame`
    with `time.time_ns()` of the read that completed it; answers to `call` resolve their
    futures first."""

    def __init__(self, on_frame: FrameHandler | None = None) -> None:
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.fragments = bytearray()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.close_code: int | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.upgraded, self.closed):
            if not future.done():
                future.set_result(None)
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(HttpError(f"socket closed ({self.close_code})"))

    def data_received(self, data: bytes) -> None:
        received = time.time_ns()
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(HttpError(f"upgrade refused: {head[:200]!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded.set_result(None)
        self._frames(received)

    # -- frames ----------------------------------------------------------------------------

    def _frames(self, received: int) -> None:
        buf = self.buffer
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, start = b1 & 0x7F, pos + 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, pos + 2)
                start = pos + 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                start = pos + 10
            if len(buf) - start < length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload, received)
        del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes, received: int) -> None:
        assert self.transport is not None
        if opcode == 0x9:
            self.transport.write(_masked(0xA, payload))
        elif opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self.transport.close()
        elif opcode in (0x0, 0x1, 0x2):
            self.fragments += payload
            if fin:
                text = bytes(self.fragments)
                self.fragments.clear()
                self._message(json.loads(text), received)

    def _message(self, frame: dict[str, Any], received: int) -> None:
        if frame.get("type") == "res":
            waiting = self.pending.pop(str(frame.get("id")), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)
                return
        if self.on_frame is not None:
            self.on_frame(frame, received)

    # -- calls -----------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(_masked(0x1, json.dumps(frame, separators=(",", ":")).encode()))

    def request(self, method: str, params: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a request; the future gets its response frame (ok or not)."""
        request_id = str(next(self.ids))
        future = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.send({"type": "req", "id": request_id, "method": method, "params": params})
        return future

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        frame = await self.request(method, params)
        if not frame.get("ok"):
            raise HttpError(f"{method}: {frame.get('error')}")
        return frame["payload"]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_masked(0x8, struct.pack("!H", 1000)))
            self.transport.close()


async def open_socket(port: int, on_frame: FrameHandler | None = None) -> WsConnection:
    """A connected (`connect` answered) WebSocket to the gateway on `port`."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: WsConnection(on_frame), HOST, port)
    await conn.upgraded
    await conn.call("connect", CONNECT)
    return conn
