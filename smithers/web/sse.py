"""Server-sent events of a run's log: `id:` lines, `retry:`, keep-alives, close on terminal;
the cap on how many streams are open at once; and their end when the server shuts down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from starlette.types import Receive, Scope, Send

from ..errors import SmithersError
from ..events import Event

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"x-content-type-options", b"nosniff"),
]
RETRY = b"retry: 1000\n\n"


def frames(events: Sequence[Event]) -> bytes:
    """Events as one chunk of the stream: written at once, they cost one send."""
    return "".join(
        f"id: {e.seq}\nevent: smithers\ndata: {e.to_json_text()}\n\n" for e in events
    ).encode()


@dataclass
class StreamSlots:
    """Counts the open streams of an app, per run and in all, and refuses one past either
    cap with 429 `TOO_MANY_STREAMS` (each stream holds a socket and a little memory).
    Ends them all while the server shuts down (`shutting_down`)."""

    max_streams: int = 1000
    max_streams_per_run: int = 100
    open: int = 0
    by_run: dict[str, int] = field(default_factory=dict)
    _stops: set[Callable[[], None]] = field(default_factory=set, init=False, repr=False)
    _closing: bool = field(default=False, init=False, repr=False)

    def take(self, run_id: str) -> Callable[[], None]:
        """Count a new stream of `run_id`; returns what gives its slot back."""
        if self.open >= self.max_streams:
            raise _too_many(
                f"{self.max_streams} event streams are already open", "server", self.max_streams
            )
        if self.by_run.get(run_id, 0) >= self.max_streams_per_run:
            raise _too_many(
                f"run {run_id!r} already has {self.max_streams_per_run} event streams open",
                "run",
                self.max_streams_per_run,
            )
        self.open += 1
        self.by_run[run_id] = self.by_run.get(run_id, 0) + 1

        def give_back() -> None:
            self.open -= 1
            self.by_run[run_id] -= 1
            if not self.by_run[run_id]:
                del self.by_run[run_id]

        return give_back

    def on_shutdown(self, stop: Callable[[], None]) -> Callable[[], None]:
        """Have `stop` called when the server shuts down (now, if it is shutting down);
        returns what forgets it. Called on the server's event loop."""
        if self._closing:
            stop()
        self._stops.add(stop)
        return lambda: self._stops.discard(stop)

    @contextmanager
    def shutting_down(self) -> Iterator[None]:
        """While the server shuts down: open streams end, and so does any that opens."""
        self._closing = True
        try:
            for stop in list(self._stops):
                stop()
            yield
        finally:
            self._closing = False


def _too_many(message: str, scope: str, limit: int) -> SmithersError:
    details = {"scope": scope, "limit": limit}
    return SmithersError("TOO_MANY_STREAMS", f"{message}: try again later", details)


class EventStreamResponse:
    """Streams `events`: an iterator of lists of events (each written at once), with
    `None` where the stream has been quiet long enough for a keep-alive comment, that ends
    after the terminal event.
    A client that goes away stops the iterator at once. `on_close` is called once the
    stream is over, however it ended. With `slots`, the stream ends (cleanly: the client
    sees the response complete) when the server shuts down."""

    def __init__(
        self,
        events: AsyncIterator[Sequence[Event] | None],
        *,
        on_close: Callable[[], None] | None = None,
        slots: StreamSlots | None = None,
    ) -> None:
        self.events = events
        self.on_close = on_close
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await send(
                {"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True}
            )
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                with anyio.CancelScope() as streaming:
                    forget = self.slots.on_shutdown(streaming.cancel) if self.slots else None
                    try:
                        async for batch in self.events:
                            body = b": keep-alive\n\n" if batch is None else frames(batch)
                            await send(
                                {"type": "http.response.body", "body": body, "more_body": True}
                            )
                    finally:
                        if forget is not None:
                            forget()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            if self.on_close:
                self.on_close()
