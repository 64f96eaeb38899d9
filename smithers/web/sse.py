"""Server-sent events of a run's log: `id:` lines, `retry:`, keep-alives, close on terminal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
from starlette.types import Receive, Scope, Send

from ..events import Event

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"x-content-type-options", b"nosniff"),
]


def frame(event: Event) -> bytes:
    return f"id: {event.seq}\nevent: smithers\ndata: {event.to_json_text()}\n\n".encode()


class EventStreamResponse:
    """Streams `events`: an iterator of events, with `None` where the stream has been
    quiet long enough for a keep-alive comment, that ends after the terminal event.
    A client that goes away stops the iterator at once."""

    def __init__(
        self,
        events: AsyncIterator[Event | None],
        *,
        on_open: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.events = events
        self.on_open = on_open
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        if self.on_open:
            self.on_open()
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(watch_disconnect)
                async for event in self.events:
                    body = b": keep-alive\n\n" if event is None else frame(event)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            if self.on_close:
                self.on_close()
