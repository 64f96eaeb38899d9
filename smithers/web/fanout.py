"""A run's SSE frames built once and written to all of the run's streams in this app.

Each event used to cost every stream of its run a pass of its own: its own subscription
woken, its own JSON encoding, its own task step through the middleware and its own write
(a system call) per event. A thousand streams on a run logging 200 lines a second made that
200,000 of each a second, and the streams fell seconds behind.

Here one task per run (`RunFrames`) follows the run (`RunService.events`: the table, then
pushes or the run's follower), builds each event's frame once and keeps the last ones
(KEPT, KEPT_BYTES). A stream that has caught up hands itself over (`Reader`): from then on
the run writes to it, all of its readers in one pass, every frame a reader lacks in one
write, and no task of the stream's runs until the run ends or the reader's socket cannot
take more. Passes are spaced so that writing takes at most half of the loop's CPU time:
under load each write carries more frames instead of the loop spending itself on writes.
A stream whose socket is full (a slow client) goes back to its own task, which waits for
the socket, reads from the table what it missed if the run has moved on past the kept
frames, and catches up. Keep-alives come from one timer per run: a stream that sent
nothing for a whole interval gets one.

The run writes straight to the socket through the server's `WRITE_NOW` extension
(serving.py); under a server without it, each stream's task sends the frames after its
place whenever the run has new ones, still several frames in one send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..finders import Located
from ..service import RunService
from .sse import KEEPALIVE, SendBody, StreamResponse, StreamSlots, WriteNow, frame

KEPT = 4096  # frames kept per run (up to twice as many between trims)
KEPT_BYTES = 8 << 20  # and their size at most (likewise)
PAGE = 500  # events per table read of a stream behind the kept frames
# The keep-alive timer ticks twice an interval; a stream that sent data between two ticks
# is quiet for a whole interval by the third tick after it (a keep-alive then follows each
# second tick).
DATA_QUIET = 3

Key = tuple[object, str, asyncio.AbstractEventLoop]


class Reader:
    """A stream the run writes to: its place (`sent`, the seq it has), the tick at which a
    keep-alive is due, and what its task waits on meanwhile."""

    __slots__ = ("back", "due", "sent", "write")

    def __init__(self, write: WriteNow, sent: int, due: int) -> None:
        self.write, self.sent, self.due = write, sent, due
        self.back = asyncio.get_running_loop().create_future()


class RunFrames:
    """The frames of one run's events from when it started following the run (the run's
    last seq then) on: `frames[i]` is the frame of seq `first + i`. `ticks` counts half
    keep-alive intervals; `ended` once the run's terminal event is in (or following it
    failed: `error`)."""

    def __init__(self, service: RunService, at: Located, keepalive_s: float) -> None:
        self.frames: list[bytes] = []
        self.size = 0  # of the frames, in bytes
        self.first = 0
        self.started = False
        self.ended = False
        self.error: Exception | None = None
        self.ticks = 0
        self.streams = 0
        self.keepalive_s = keepalive_s
        self.readers: dict[Reader, None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        self._pass: asyncio.Handle | None = None
        self._next_pass = 0.0
        self._task = self._loop.create_task(self._follow(service, at))
        self._timer = self._loop.call_later(keepalive_s / 2, self._tick)

    @property
    def last(self) -> int:
        return self.first + len(self.frames) - 1

    def after(self, seq: int) -> list[bytes] | None:
        """The kept frames after `seq` (none yet: empty); None when they start past
        `seq + 1` (the stream is behind: the table has the ones in between)."""
        if not self.started:
            return []
        skip = seq + 1 - self.first
        if skip < 0:
            return None
        return self.frames[skip:]

    async def changed(self) -> None:
        """Wait for new frames, the end, or the next keep-alive tick."""
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def write_to(self, reader: Reader) -> None:
        """Let the run write to `reader` (caught up: nothing kept after its place) until it
        ends or the reader's socket cannot take a write."""
        self.readers[reader] = None
        try:
            await reader.back
        finally:
            self.readers.pop(reader, None)

    def close(self) -> None:
        self._task.cancel()
        self._timer.cancel()
        if self._pass is not None:
            self._pass.cancel()

    async def _follow(self, service: RunService, at: Located) -> None:
        try:
            start = await service.last_seq(at)
            self.first, self.started = start + 1, True
            self._wake()
            async for event in service.events(at, start):
                if event is None:  # a keep-alive: only with `idle`, not asked for here
                    continue
                if event.seq != self.last + 1:  # never seen: seqs come in order
                    self.frames, self.size, self.first = [], 0, event.seq
                self._keep(frame(event))
                self._wake()
                self._schedule_pass()
        except Exception as exc:  # each stream ends with it, as a stream of its own would
            self.error = exc
        self.ended = True
        if self._pass is not None:
            self._pass.cancel()
        self._write_all()
        for reader in list(self.readers):
            self._give_back(reader)
        self._wake()

    def _keep(self, data: bytes) -> None:
        self.frames.append(data)
        self.size += len(data)
        if len(self.frames) <= 2 * KEPT and self.size <= 2 * KEPT_BYTES:
            return
        dropped, size = 0, self.size
        while dropped < len(self.frames) - 1 and (
            len(self.frames) - dropped > KEPT or size > KEPT_BYTES
        ):
            size -= len(self.frames[dropped])
            dropped += 1
        del self.frames[:dropped]
        self.first += dropped
        self.size = size

    def _schedule_pass(self) -> None:
        if self._pass is None and self.readers:
            delay = self._next_pass - time.monotonic()
            if delay > 0:
                self._pass = self._loop.call_later(delay, self._write_all)
            else:
                self._pass = self._loop.call_soon(self._write_all)

    def _write_all(self) -> None:
        """One pass over the readers: each gets the frames it lacks, joined once for all
        the readers at the same place."""
        self._pass = None
        started = time.thread_time()
        last, ticks = self.last, self.ticks
        joined: dict[int, bytes] = {}
        for reader in list(self.readers):
            if reader.sent >= last:
                continue
            body = joined.get(reader.sent)
            if body is None:
                found = self.after(reader.sent)
                if found is None:
                    self._give_back(reader)
                    continue
                body = joined[reader.sent] = b"".join(found)
            if reader.write(body):
                reader.sent, reader.due = last, ticks + DATA_QUIET
            else:
                self._give_back(reader)
        # The pass's CPU time, not its wall time: a process that waited for a core
        # meanwhile (a loaded machine) need not wait longer still.
        self._next_pass = time.monotonic() + (time.thread_time() - started)

    def _give_back(self, reader: Reader) -> None:
        """Back to the stream's own task (its place unchanged)."""
        self.readers.pop(reader, None)
        if not reader.back.done():
            reader.back.set_result(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _tick(self) -> None:
        self.ticks += 1
        self._timer = self._loop.call_later(self.keepalive_s / 2, self._tick)
        for reader in list(self.readers):
            if self.ticks >= reader.due and reader.sent >= self.last:
                reader.due = self.ticks + 2
                if not reader.write(KEEPALIVE):
                    self._give_back(reader)
        self._wake()


class RunFanouts:
    """The `RunFrames` of each run with streams open, per store and event loop."""

    def __init__(self) -> None:
        self.runs: dict[Key, RunFrames] = {}

    def attach(self, service: RunService, at: Located, keepalive_s: float) -> RunFrames:
        key = (at.store, at.run_id, asyncio.get_running_loop())
        found = self.runs.get(key)
        if found is None or found.ended:
            found = self.runs[key] = RunFrames(service, at, keepalive_s)
        found.streams += 1
        return found

    def detach(self, at: Located, frames: RunFrames) -> None:
        frames.streams -= 1
        if frames.streams:
            return
        frames.close()
        key = (at.store, at.run_id, asyncio.get_running_loop())
        if self.runs.get(key) is frames:
            del self.runs[key]


class SharedEventStream(StreamResponse):
    """The run's events after `after`, from the run's shared frames."""

    def __init__(
        self,
        service: RunService,
        at: Located,
        after: int,
        *,
        fanouts: RunFanouts,
        keepalive_s: float,
        on_close: Callable[[], None] | None = None,
        slots: StreamSlots | None = None,
    ) -> None:
        super().__init__(on_close=on_close, slots=slots)
        self.service, self.at, self.after = service, at, after
        self.fanouts, self.keepalive_s = fanouts, keepalive_s

    async def stream(self, send_body: SendBody, write_now: WriteNow | None) -> None:
        frames = self.fanouts.attach(self.service, self.at, self.keepalive_s)
        try:
            await self._send(frames, send_body, write_now)
        finally:
            self.fanouts.detach(self.at, frames)

    async def _send(
        self, frames: RunFrames, send_body: SendBody, write_now: WriteNow | None
    ) -> None:
        # The seq sent last; the tick at which a keep-alive is due.
        sent, due = self.after, frames.ticks + DATA_QUIET
        while True:
            found = frames.after(sent)
            if found is None:  # behind the kept frames
                events = await self.service.events_page(self.at, sent, PAGE)
                if not events:
                    return  # gone from the table too (never seen): the client resumes
                sent = events[-1].seq
                await send_body(b"".join(map(frame, events)))
                due = frames.ticks + DATA_QUIET
            elif found:
                sent += len(found)
                await send_body(b"".join(found))
                due = frames.ticks + DATA_QUIET
            elif frames.ended:
                if frames.error is not None:
                    raise frames.error
                return
            elif write_now is not None and frames.started:
                reader = Reader(write_now, sent, due)
                await frames.write_to(reader)
                sent, due = reader.sent, reader.due
            else:
                await frames.changed()
                if frames.ticks >= due and not frames.ended and not frames.after(sent):
                    due = frames.ticks + 2
                    await send_body(KEEPALIVE)
