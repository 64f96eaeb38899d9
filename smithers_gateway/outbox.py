"""Frames to one WebSocket, sent in order by its one writer task.

`send` never waits: it queues the frame's text. More than `max_bytes` queued (a client
that does not read) closes the socket with 1013 "event backpressure". Each run stream
counts its own queued frames, so a stream that falls far behind can be told to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.lowlevel
from starlette.websockets import WebSocket

from smithers.clock import now_ms

from .frames import event_parts, event_tail, to_json

MAX_QUEUED_BYTES = 8 * 1024 * 1024
BATCH = 64  # frames sent before the writer lets other tasks run


@dataclass
class Backlog:
    """Frames of one stream still queued."""

    queued: int = 0


class Outbox:
    def __init__(self, websocket: WebSocket, max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.websocket = websocket
        self.max_bytes = max_bytes
        self.queue: deque[tuple[str, Backlog | None]] = deque()
        self.queued_bytes = 0
        self.event_seq = 0
        self.closing: tuple[int, str] | None = None
        self.wake = asyncio.Event()
        self.state_version: Callable[[], int] = lambda: 0
        self.held: list[str] | None = None  # event frames kept back by `hold`

    @property
    def open(self) -> bool:
        return self.closing is None

    def send(self, frame: dict[str, Any], backlog: Backlog | None = None) -> None:
        if self.closing is None:
            self._queue(to_json(frame), backlog)

    def _queue(self, text: str, backlog: Backlog | None) -> None:
        self.queue.append((text, backlog))
        self.queued_bytes += len(text)
        if backlog is not None:
            backlog.queued += 1
        if self.queued_bytes > self.max_bytes:
            self.close(1013, "event backpressure", drop=True)
        self.wake.set()

    def event(self, name: str, payload: dict[str, Any], backlog: Backlog | None = None) -> None:
        """An event frame; `seq` counts this connection's event frames from 1."""
        self.encoded_event(event_parts(name, payload, self.state_version()), backlog)

    def tail(self) -> str:
        """The end of an event frame sent now (`frames.event_tail`)."""
        return event_tail(self.state_version())

    def encoded_event(self, parts: tuple[str, str], backlog: Backlog | None = None) -> None:
        """An event frame from `frames.event_parts`, numbered for this connection."""
        if self.closing is None:
            self.event_seq += 1
            head, tail = parts
            text = f"{head}{self.event_seq}{tail}"
            if self.held is not None and backlog is None:
                self.held.append(text)
            else:
                self._queue(text, backlog)

    def hold(self) -> None:
        """Keep event frames back until `release` (while an answer they must follow is
        being made)."""
        self.held = []

    def release(self) -> None:
        held, self.held = self.held or [], None
        if self.closing is None:
            for text in held:
                self._queue(text, None)

    def tick(self) -> None:
        self.event("tick", {"ts": now_ms()})

    def close(self, code: int, reason: str = "", *, drop: bool = False) -> None:
        """Close after the frames queued so far (or dropping them: backpressure)."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        if drop:
            self.queue.clear()
        self.wake.set()

    async def run(self) -> None:
        """The writer: send queued frames until closed (or the peer is gone), BATCH at a
        time: between batches the other tasks run (a send that the socket's buffer
        accepts never waits, so a long queue would otherwise hold the loop)."""
        with contextlib.suppress(Exception):  # the peer went away: the reader sees it
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.queue:
                    for _ in range(min(BATCH, len(self.queue))):
                        text, backlog = self.queue.popleft()
                        self.queued_bytes -= len(text)
                        if backlog is not None:
                            backlog.queued -= 1
                        await self.websocket.send_text(text)
                    if self.queue:
                        await anyio.lowlevel.checkpoint()
                if self.closing is not None:
                    code, reason = self.closing
                    await self.websocket.close(code, reason)
                    return
