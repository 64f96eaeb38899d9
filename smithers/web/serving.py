"""Serving an app with uvicorn: in a background thread (a handle) or in the foreground.

uvicorn bounds idle keep-alive connections but not a client that sends its request
headers slowly; our protocols close a connection whose headers have not all arrived
`headers_timeout` after it opened (or after its previous response). uvicorn answers a
request its parser rejects in plain text; ours answer with the JSON error envelope, and
hold an unfinished request head to the guard's limits (httptools has none of its own).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import SmithersError
from .guard import MAX_HEAD_BYTES, MAX_URL_BYTES, headers_too_large, uri_too_long
from .responses import error_response
from .sse import WRITE_NOW, StreamSlots


class _HeadersDeadline:
    """Closes a connection whose request headers are not all in `headers_timeout` after it
    opened or after its previous response. Mixed in before uvicorn's protocol classes;
    each subclass cancels the deadline where its parser sees the headers complete."""

    headers_timeout: float = 30.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _headers_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_headers_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_headers_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_headers_timer(self) -> None:
        self._cancel_headers_timer()
        self._headers_timer = self.loop.call_later(self.headers_timeout, self._headers_late)

    def _cancel_headers_timer(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_late(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def refusal_bytes(refusal: SmithersError, default_headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response carrying the error envelope, closing the connection."""
    response = error_response(refusal, {"connection": "close"})
    lines = [b"HTTP/1.1 %d %s" % (refusal.status, HTTPStatus(refusal.status).phrase.encode())]
    lines += [name + b": " + value for name, value in [*default_headers, *response.raw_headers]]
    return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(response.body)


def malformed() -> SmithersError:
    return SmithersError("INVALID_REQUEST", "malformed HTTP request")


class _RefusedAsJson:
    """Replaces uvicorn's plain-text `send_400_response` (called when its parser rejects
    the bytes): the JSON envelope when the connection owes no other answer, else a bare
    close (a response already under way, or owed to an earlier pipelined request)."""

    transport: asyncio.Transport
    server_state: Any
    cycle: Any

    def send_400_response(self, msg: str) -> None:
        if self._may_answer():
            refusal = self._refusal()
            self.transport.write(refusal_bytes(refusal, self.server_state.default_headers))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's answer, if any, goes nowhere
        self.transport.close()

    def _may_answer(self) -> bool:
        raise NotImplementedError

    def _refusal(self) -> SmithersError:
        raise NotImplementedError


class SlowHeadersH11(_RefusedAsJson, _HeadersDeadline, H11Protocol):
    _reading_head = True

    def handle_events(self) -> None:
        before = self.cycle
        self._reading_head = self.conn.their_state is h11.IDLE
        super().handle_events()
        if self.cycle is not before:
            self._cancel_headers_timer()

    def _may_answer(self) -> bool:
        # h11 reads one request at a time: an error is in the request being answered.
        return self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    def _refusal(self) -> SmithersError:
        # h11 refuses an unfinished head past `h11_max_incomplete_event_size`.
        buffered = self.conn.trailing_data[0]
        if not self._reading_head or len(buffered) <= MAX_HEAD_BYTES:
            return malformed()
        line_end = buffered.find(b"\n")
        return uri_too_long() if line_end < 0 or line_end > MAX_URL_BYTES else headers_too_large()


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional for uvicorn; h11 serves without it
        return None

    class SlowHeadersHttpTools(_RefusedAsJson, _HeadersDeadline, HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0
        _too_large: SmithersError | None = None

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            unfinished = self._in_head and not self.transport.is_closing()
            if unfinished and self._head_bytes > MAX_HEAD_BYTES:
                self._too_large = headers_too_large()
                self.send_400_response("")

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > MAX_URL_BYTES:
                self._too_large = uri_too_long()
                raise httptools.HttpParserError("URL too long")  # stops the parser

        def on_headers_complete(self) -> None:
            self._cancel_headers_timer()
            self._in_head = False
            self._head_bytes = 0
            before = self.cycle
            super().on_headers_complete()
            if self.cycle is not before:
                extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
                extensions[WRITE_NOW] = partial(write_now, self.cycle)

        def on_message_complete(self) -> None:
            self._in_head = True
            super().on_message_complete()

        def _may_answer(self) -> bool:
            if self.pipeline:
                return False
            if self._in_head:
                return self.cycle is None or bool(self.cycle.response_complete)
            return self.cycle is not None and not self.cycle.response_started

        def _refusal(self) -> SmithersError:
            return self._too_large or malformed()

    return SlowHeadersHttpTools


def write_now(cycle: Any, body: bytes) -> bool:
    """`WRITE_NOW` for uvicorn's httptools request cycle: `body` as the next chunk of its
    started response, written at once, as its `send` would when it need not wait; False
    (nothing written) when it would wait (the socket's buffer is full) or cannot write."""
    if (
        cycle.disconnected
        or cycle.flow.write_paused
        or not cycle.response_started
        or cycle.response_complete
        or not cycle.chunked_encoding
    ):
        return False
    cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
    return True


class SmithersServer(uvicorn.Server):
    """uvicorn that ends the app's event streams as it shuts down. uvicorn waits for open
    responses to finish, and an event stream of a parked run never does: it would hold a
    Ctrl-C for `timeout_graceful_shutdown`, then be cancelled with a traceback. Our apps
    (`build_app(streams=...)`) say where their streams are."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        streams = getattr(getattr(self.config.app, "state", None), "event_streams", None)
        if not isinstance(streams, StreamSlots):
            await super().shutdown(sockets)
            return
        with streams.shutting_down():
            await super().shutdown(sockets)


class EmbeddedServer(SmithersServer):
    """uvicorn inside an event loop we own: it leaves signal handling to us."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def protocol_with_timeout(
    headers_timeout_s: float, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol]:
    """`base` (default: uvicorn's httptools protocol, its fast C parser, when installed,
    else h11's, both ours) with the headers deadline."""
    base = base or _httptools_protocol() or SlowHeadersH11
    return type("SmithersHttpProtocol", (base,), {"headers_timeout": headers_timeout_s})


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error (port in use, address not ours)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it a response written in two parts waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise SmithersError(
            "INVALID_REQUEST", f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


def is_loopback_bind(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    if token is None and not is_loopback_bind(host) and not insecure:
        raise SmithersError(
            "INVALID_REQUEST",
            f"refusing to serve {host} without a token: set one or pass insecure=True",
        )


def log_config(log_level: str, access_log: bool) -> dict[str, Any]:
    """uvicorn's logging config at `log_level`, every line on stderr (stdout carries what
    a command prints). The access log, when on, logs at INFO whatever the level."""
    level = LOG_LEVELS.get(log_level.lower())
    if level is None:
        raise SmithersError(
            "INVALID_REQUEST",
            f"unknown log level {log_level!r} (one of {', '.join(LOG_LEVELS)})",
        )
    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    loggers = config["loggers"]
    loggers["uvicorn"]["level"] = loggers["uvicorn.error"]["level"] = level
    loggers["uvicorn.access"]["level"] = min(level, logging.INFO) if access_log else level
    return config


def uvicorn_config(
    app: Any,
    *,
    host: str,
    port: int,
    headers_timeout_ms: int,
    log_level: str = "warning",
    access_log: bool = False,
    ws: str | type[asyncio.Protocol] = "none",
    ws_max_size: int = 16 * 1024 * 1024,
) -> uvicorn.Config:
    """`ws`: "none", or for an app with WebSocket routes (the Gateway) a uvicorn WebSocket
    protocol: "websockets-sansio", or `coalesced.CoalescedWebSocketProtocol`."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_with_timeout(headers_timeout_ms / 1000),
        ws=ws,
        ws_max_size=ws_max_size,
        lifespan="on",
        log_config=log_config(log_level, access_log),
        log_level=None,  # set by the config above
        access_log=access_log,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )


@dataclass
class ServerHandle:
    """A server listening in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop accepting, drain, run the app's shutdown, and join the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_in_thread(config: uvicorn.Config, startup_timeout: float = 30.0) -> ServerHandle:
    """Start uvicorn in a thread and return once the socket is bound (port 0: a free one)."""
    server = SmithersServer(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="smithers-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if failure or not thread.is_alive():
            raise SmithersError("SERVER_ERROR", f"server failed to start: {failure or 'exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise SmithersError("SERVER_ERROR", "server did not start in time")
        time.sleep(0.01)
    port = config.port
    for srv in getattr(server, "servers", []):
        for sock in srv.sockets:
            port = sock.getsockname()[1]
            break
    return ServerHandle(server, thread, config.host, port)
