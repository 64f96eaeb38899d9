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

Pieces = tuple[str, ...]  # a frame's text in parts, joined when sent


@dataclass
class Backlog:
    """Frames of one stream still queued."""

    queued: int = 0


class Outbox:
    """Queued frames are kept as their parts (`Pieces`) and joined as they are sent: an
    event's text is shared by every socket that queues it, so a queue that falls behind
    holds little more than references."""

    def __init__(self, websocket: WebSocket, max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.websocket = websocket
        self.max_bytes = max_bytes
        self.queue: deque[tuple[Pieces, int, Backlog | None]] = deque()
        self.queued_bytes = 0
        self.event_seq = 0
        self.closing: tuple[int, str] | None = None
        self.wake = asyncio.Event()
        self.state_version: Callable[[], int] = lambda: 0
        self.held: list[tuple[Pieces, int]] | None = None  # event frames kept back by `hold`
        self._tail = (0, event_tail(0))

    @property
    def open(self) -> bool:
        return self.closing is None

    def send(self, frame: dict[str, Any], backlog: Backlog | None = None) -> None:
        if self.closing is None:
            text = to_json(frame)
            self._queue((text,), len(text), backlog)

    def _queue(self, pieces: Pieces, size: int, backlog: Backlog | None) -> None:
        self.queue.append((pieces, size, backlog))
        self.queued_bytes += size
        if backlog is not None:
            backlog.queued += 1
        if self.queued_bytes > self.max_bytes:
            self.close(1013, "event backpressure", drop=True)
        self.wake.set()

    def event(self, name: str, payload: dict[str, Any], backlog: Backlog | None = None) -> None:
        """An event frame; `seq` counts this connection's event frames from 1."""
        head, tail = event_parts(name, payload, self.state_version())
        self.encoded_event((head,), tail, backlog)

    def tail(self) -> str:
        """The end of an event frame sent now (`frames.event_tail`)."""
        version = self.state_version()
        if self._tail[0] != version:
            self._tail = (version, event_tail(version))
        return self._tail[1]

    def encoded_event(self, head: Pieces, tail: str, backlog: Backlog | None = None) -> None:
        """An event frame from `frames.event_parts` (`head` may come in pieces), numbered
        for this connection: `*head, seq, tail`."""
        if self.closing is None:
            self.event_seq += 1
            seq = str(self.event_seq)
            pieces = (*head, seq, tail)
            size = sum(map(len, head)) + len(seq) + len(tail)
            if self.held is not None and backlog is None:
                self.held.append((pieces, size))
            else:
                self._queue(pieces, size, backlog)

    def hold(self) -> None:
        """Keep event frames back until `release` (while an answer they must follow is
        being made)."""
        self.held = []

    def release(self) -> None:
        held, self.held = self.held or [], None
        if self.closing is None:
            for pieces, size in held:
                self._queue(pieces, size, None)

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
                        pieces, size, backlog = self.queue.popleft()
                        self.queued_bytes -= size
                        if backlog is not None:
                            backlog.queued -= 1
                        await self.websocket.send_text("".join(pieces))
                    if self.queue:
                        await anyio.lowlevel.checkpoint()
                if self.closing is not None:
                    code, reason = self.closing
                    await self.websocket.close(code, reason)
                    return
