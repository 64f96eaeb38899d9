"""The headers deadline on both of uvicorn's HTTP protocols (httptools and h11)."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from smithers.web.serving import (
    SlowHeadersH11,
    _httptools_protocol,
    bind_socket,
    serve_in_thread,
)

PROTOCOLS = {"h11": SlowHeadersH11, "httptools": _httptools_protocol()}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_slow_headers_are_cut_off_and_others_served(name: str) -> None:
    base = PROTOCOLS[name]
    assert base is not None, f"{name} protocol is not available"
    protocol = type("P", (base,), {"headers_timeout": 0.5})
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=protocol, log_level="error", lifespan="off"
    )
    handle = serve_in_thread(config)
    try:
        slow = socket.create_connection(("127.0.0.1", handle.port))
        slow.settimeout(5)
        started = time.monotonic()
        slow.sendall(b"GET / HTTP/1.1\r\nHo")
        # Others are served while the slow client dawdles.
        assert httpx.get(handle.url + "/", timeout=5).text == "ok"
        closed_after = None
        while time.monotonic() - started < 4:
            try:
                slow.sendall(b"s")
                if slow.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed_after = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.1)
        assert closed_after is not None and closed_after >= 0.45
        # A complete request on a fresh connection is not cut off.
        assert httpx.get(handle.url + "/", timeout=5).text == "ok"
    finally:
        handle.close()


def test_shutting_down_ends_open_event_streams_cleanly() -> None:
    """An event stream that would never end (a parked run) does not hold a shutdown: the
    server ends it, and the client reads a complete response."""
    import threading
    from collections.abc import AsyncIterator

    import anyio
    from starlette.requests import Request

    from smithers.events import Event
    from smithers.web.app import build_app
    from smithers.web.serving import uvicorn_config
    from smithers.web.sse import EventStreamResponse, StreamSlots

    slots = StreamSlots()

    async def quiet() -> AsyncIterator[list[Event] | None]:
        while True:
            await anyio.sleep(0.05)
            yield None

    def events(request: Request) -> EventStreamResponse:
        return EventStreamResponse(quiet(), on_close=slots.take("r"), slots=slots)

    app = build_app(
        [Route("/events", events)], token=None, insecure=False, metrics=None, streams=slots
    )
    handle = serve_in_thread(
        uvicorn_config(app, host="127.0.0.1", port=0, headers_timeout_ms=30_000)
    )
    read: list[str] = []
    opened = threading.Event()

    def follow() -> None:
        with httpx.stream("GET", f"{handle.url}/events", timeout=30) as res:
            opened.set()
            read.extend(res.iter_lines())  # raises if the response is cut off
        read.append("complete")

    reader = threading.Thread(target=follow)
    reader.start()
    try:
        assert opened.wait(10)
        time.sleep(0.2)
        assert slots.open == 1
    finally:
        handle.close()
        reader.join(10)
    assert not handle.thread.is_alive()
    assert read[0] == "retry: 1000" and ": keep-alive" in read and read[-1] == "complete"
    assert slots.open == 0


@pytest.mark.anyio
async def test_connections_on_a_bound_socket_send_without_delay() -> None:
    # asyncio turns Nagle off only on sockets that say TCP; with it on, a response
    # written in two parts waits for a delayed ACK (~40 ms a request).
    sock = bind_socket("127.0.0.1", 0)
    accepted: list[socket.socket] = []

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("socket"))

    server = await asyncio.start_server(connected, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        while not accepted:
            await asyncio.sleep(0.01)
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
