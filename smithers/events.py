"""Events of the run log and the in-process bus that pushes them to subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

TERMINAL_EVENT_TYPES = frozenset({"RunFinished", "RunFailed", "RunCancelled"})


@dataclass(frozen=True, slots=True)
class Event:
    """One row of `_smithers_events`: `payload` is the full wire object."""

    run_id: str
    seq: int
    timestamp_ms: int
    type: str
    payload: dict[str, Any]
    # The payload as stored (`payload_text`): every stream of the event sends these bytes.
    text: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES

    def to_json(self) -> dict[str, Any]:
        return self.payload

    def to_json_text(self) -> str:
        return self.text if self.text is not None else payload_text(self.payload)


def payload_text(payload: dict[str, Any]) -> str:
    """An event's payload as stored and streamed: compact JSON."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (an int past 64 bits) json still writes
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def make_payload(
    run_id: str, type_: str, timestamp_ms: int, fields: dict[str, Any]
) -> dict[str, Any]:
    return {"type": type_, "runId": run_id, "timestampMs": timestamp_ms, **fields}


class _LoopTarget:
    """A function to call on the event loop that registered it."""

    __slots__ = ("fn", "loop", "thread_id")

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.fn = fn
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()


def _call_all(calls: list[tuple[Callable[[Any], None], Any]]) -> None:
    for fn, item in calls:
        try:
            fn(item)
        except Exception as exc:  # one failing listener does not starve the others
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"event callback {fn!r} failed", "exception": exc}
            )


def _dispatch(calls: list[tuple[_LoopTarget, Any]]) -> None:
    """Make `calls` in order, each on its target's loop: directly on this thread's, and one
    hand-off per other loop (not one per call: a thousand subscribers to one run would
    make the publishing thread, which commits the run's work, queue a thousand callbacks
    per event)."""
    me = threading.get_ident()
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Callable[[Any], None], Any]]] = {}
    for target, item in calls:
        if target.thread_id == me:
            target.fn(item)
        else:
            by_loop.setdefault(target.loop, []).append((target.fn, item))
    for loop, batch in by_loop.items():
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed since the check
                loop.call_soon_threadsafe(_call_all, batch)


@dataclass(eq=False)
class Subscription:
    """A bounded buffer of live events for one run. Overflow marks it `behind`.

    A subscriber that falls behind drops its buffer and reads the rest from the table, so
    the publisher never waits for it and no event is lost.
    """

    run_id: str
    max_buffer: int = 1024
    buffer: deque[Event] = field(default_factory=deque)
    behind: bool = False
    _waiter: asyncio.Future[None] | None = None

    def deliver(self, event: Event) -> None:
        if len(self.buffer) >= self.max_buffer:
            self.buffer.clear()
            self.behind = True
        else:
            self.buffer.append(event)
        if self._waiter is not None:
            _wake(self._waiter)

    async def wait(self, timeout: float | None) -> None:
        """Wait until something is buffered (or `behind`), at most `timeout` seconds."""
        if self.buffer or self.behind:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class EventBus:
    """Pushes committed events to in-process subscribers, keyed by run id.

    `publish` may be called from any thread (the store commits in worker threads); each
    subscriber receives events on its own event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, dict[Subscription, _LoopTarget]] = {}
        self._listeners: dict[object, _LoopTarget] = {}
        self._touch_listeners: dict[object, _LoopTarget] = {}

    def publish(self, events: list[Event]) -> None:
        """Push events this process has just committed to subscribers and listeners."""
        self._send(events, listeners=True)

    def forward(self, events: list[Event]) -> None:
        """Push events read from the table (committed by another process) to the run's
        subscribers only: listeners (the runtime, metrics) see each local commit once and
        never what another process committed."""
        self._send(events, listeners=False)

    def _send(self, events: list[Event], *, listeners: bool) -> None:
        if not events:
            return
        with self._lock:
            others = list(self._listeners.values()) if listeners else []
            calls = [
                (target, event)
                for event in events
                for target in (*self._subs.get(event.run_id, {}).values(), *others)
            ]
        _dispatch(calls)

    def subscribe(self, run_id: str, max_buffer: int = 1024) -> Subscription:
        sub = Subscription(run_id, max_buffer)
        target = _LoopTarget(sub.deliver)
        with self._lock:
            self._subs.setdefault(run_id, {})[sub] = target
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.run_id)
            if subs is not None:
                subs.pop(sub, None)
                if not subs:
                    del self._subs[sub.run_id]

    def subscriber_count(self, run_id: str | None = None) -> int:
        with self._lock:
            if run_id is not None:
                return len(self._subs.get(run_id, ()))
            return sum(len(s) for s in self._subs.values())

    def add_listener(self, fn: Callable[[Event], None]) -> object:
        """Call `fn(event)` on the caller's loop for every event of every run."""
        token = object()
        with self._lock:
            self._listeners[token] = _LoopTarget(fn)
        return token

    def add_touch_listener(self, fn: Callable[[str], None]) -> object:
        """Call `fn(run_id)` on the caller's loop after a command on that run commits."""
        token = object()
        with self._lock:
            self._touch_listeners[token] = _LoopTarget(fn)
        return token

    def notify_touched(self, run_ids: list[str]) -> None:
        with self._lock:
            targets = list(self._touch_listeners.values())
        _dispatch([(target, run_id) for target in targets for run_id in run_ids])

    def remove_listener(self, token: object) -> None:
        with self._lock:
            self._listeners.pop(token, None)
            self._touch_listeners.pop(token, None)
