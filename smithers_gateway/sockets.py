"""What the Gateway's WebSockets share: their settings, the counts its limits are
checked against (unauthenticated and authenticated sockets, run streams), the broadcast,
and closing them all when the gateway closes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import anyio

from smithers.errors import SmithersError

from .broadcast import Broadcast
from .outbox import Outbox

MAX_UNAUTHENTICATED = 64
STREAMS_PER_GATEWAY = 256
STREAMS_PER_USER = 32
STREAMS_PER_CONNECTION = 8
STREAMS_PER_RUN = 64


@dataclass(frozen=True)
class SocketSettings:
    heartbeat_ms: int
    max_connections: int
    max_payload: int
    auth_deadline_ms: int


@dataclass
class Sockets:
    settings: SocketSettings
    unauthenticated: int = 0
    authenticated: int = 0
    streams: Counter[str] = field(default_factory=Counter)  # by "run:<id>" / "user:<id>"
    stream_count: int = 0
    broadcast: Broadcast = field(default_factory=Broadcast)
    outboxes: set[Outbox] = field(default_factory=set)  # every open socket's
    closing: bool = False

    async def close_all(self, timeout_s: float) -> None:
        """Close every socket with 1001 "going away" (after the frames queued for it) and
        refuse new ones; wait up to `timeout_s` for them to be gone."""
        self.closing = True
        for outbox in list(self.outboxes):
            outbox.close(1001, "gateway closing")
        with anyio.move_on_after(timeout_s):
            while self.outboxes:
                await anyio.sleep(0.01)

    def open_stream(self, run_id: str, user: str | None, own: int) -> None:
        """Count a new stream, or RateLimited when a limit is reached."""
        limits = [
            (self.stream_count, STREAMS_PER_GATEWAY, "gateway"),
            (own, STREAMS_PER_CONNECTION, "connection"),
            (self.streams[f"run:{run_id}"], STREAMS_PER_RUN, "run"),
        ]
        if user is not None:
            limits.append((self.streams[f"user:{user}"], STREAMS_PER_USER, "user"))
        for count, limit, per in limits:
            if count >= limit:
                raise SmithersError(
                    "RateLimited", f"at most {limit} run streams per {per}", {"limit": limit}
                )
        self.stream_count += 1
        self.streams[f"run:{run_id}"] += 1
        if user is not None:
            self.streams[f"user:{user}"] += 1

    def close_stream(self, run_id: str, user: str | None) -> None:
        self.stream_count -= 1
        for key in (f"run:{run_id}", *([f"user:{user}"] if user is not None else [])):
            self.streams[key] -= 1
            if self.streams[key] <= 0:
                del self.streams[key]
