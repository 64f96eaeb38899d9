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
    """Streams `events` (an async iterator that ends after the terminal event).

    The iterator runs in its own task feeding a small buffer, so a keep-alive comment can
    be sent after `keepalive_s` of silence without cancelling the iterator mid-step; a
    client that goes away cancels both at once.
    """

    def __init__(
        self,
        events: AsyncIterator[Event],
        *,
        keepalive_s: float = 10.0,
        on_open: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.events = events
        self.keepalive_s = keepalive_s
        self.on_open = on_open
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        if self.on_open:
            self.on_open()
        sender, receiver = anyio.create_memory_object_stream[Event](64)
        try:
            async with anyio.create_task_group() as tg:

                async def produce() -> None:
                    async with sender:
                        async for event in self.events:
                            await sender.send(event)

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(produce)
                tg.start_soon(watch_disconnect)
                async with receiver:
                    while True:
                        body = b": keep-alive\n\n"
                        with anyio.move_on_after(self.keepalive_s):
                            try:
                                body = frame(await receiver.receive())
                            except anyio.EndOfStream:
                                break
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:
            pass  # the client went away while we wrote
        finally:
            if self.on_close:
                self.on_close()
