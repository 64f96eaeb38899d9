"""uvicorn's sans-I/O WebSocket protocol with its writes coalesced: the frames one socket
sends during one turn of the event loop leave in one `send` system call. An uncompressed
text message on an open socket is framed here (two to ten header bytes), not through
uvicorn's checks and the `websockets` frame objects: under fan-out that path was a
third of the time spent per frame.

uvicorn writes each ASGI `websocket.send` to the transport at once, and an idle asyncio
transport makes that a system call per frame: a writer draining a queue of small frames
spends most of its time there. Here the frames wait until the loop's next turn (no timer:
the callbacks already ready run first), in order, then go out together.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State


class CoalescedTransport:
    """A transport whose `write`s within one loop turn reach the real one as one write;
    anything else (close first sends what is pending) goes straight through."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(bytes(data))

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        if pending and not self.transport.is_closing():
            self.transport.write(b"".join(pending))

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.pending.clear()
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescedWebSocketProtocol(WebSocketsSansIOProtocol):
    """`uvicorn.Config(ws=CoalescedWebSocketProtocol)`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(CoalescedTransport(transport))  # type: ignore[arg-type]

    async def send(self, message: ASGISendEvent) -> None:
        text = cast(dict[str, Any], message).get("text")
        if (
            message["type"] == "websocket.send"
            and isinstance(text, str)
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
            and self.writable.is_set()
            and self.conn.state is State.OPEN
            and not self.conn.extensions
            and not self.conn.expect_continuation_frame
        ):
            self.transport.write(text_frame(text.encode()))
        else:
            await super().send(message)


def text_frame(data: bytes) -> bytes:
    """A final, unmasked text frame (RFC 6455 5.2: a server does not mask)."""
    n = len(data)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + data
