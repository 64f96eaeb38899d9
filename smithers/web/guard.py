"""The ASGI middleware every app wears: HTTP metrics, request head checks, DNS-rebinding
guard, Origin check, token auth."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import Authority, parse_authority, parse_origin, presented_token, token_matches
from ..errors import SmithersError
from ..metrics import Metrics
from ..tracing import span
from .cors import is_preflight
from .responses import error_response

logger = logging.getLogger("smithers.web")

OPEN_PATHS = frozenset({"/health"})
# The request line and headers: beyond these a request is refused (414, 431). The HTTP
# protocols in `serving` hold incomplete heads to the same bounds.
MAX_URL_BYTES = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024
HEAD_REFUSALS = frozenset({"INVALID_REQUEST", "URI_TOO_LONG", "HEADERS_TOO_LARGE"})


class GuardMiddleware:
    """Counts every request; refuses a malformed or oversized head, a foreign Host when
    `host_guard`, a cross-origin request when `origin_guard`, and a missing token.

    With `cors` (the app's CORS middleware, wrapped around the app inside this one), a
    preflight that passed the Origin check goes on without a token, and a refusal of a
    listed origin carries the CORS headers, so the page can read why."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        host_guard: bool,
        origin_guard: bool,
        allowed_origins: frozenset[str],
        metrics: Metrics | None,
        cors: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.host_guard = host_guard
        self.origin_guard = origin_guard
        self.allowed_origins = allowed_origins
        self.metrics = metrics
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with span("smithers.http", method=scope["method"], path=scope.get("path", "")):
                refusal = self.refusal(scope)
                if refusal is None:
                    await self.app(scope, receive, send_status)
                else:
                    response: ASGIApp = error_response(refusal, self.refusal_headers(refusal))
                    if self.cors is not None and not is_preflight(scope):
                        response = self.cors(response)
                    await response(scope, receive, send_status)
        finally:
            if self.metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self.metrics.observe_http(
                    scope["method"], template, status, (time.perf_counter() - started) * 1000
                )

    def refusal(self, scope: Scope) -> SmithersError | None:
        authority, origins, refusal = head_refusal(scope)
        if refusal is not None:
            return refusal
        if (
            self.host_guard
            and authority is not None
            and not authority.is_loopback()
            and not in_process(scope, authority)
        ):
            return SmithersError(
                "FORBIDDEN", "this server has no token and only answers a loopback Host"
            )
        if self.origin_guard and not self.origin_allowed(scope, origins, authority):
            return SmithersError(
                "FORBIDDEN", "cross-origin request: the Origin is neither this server nor allowed"
            )
        if self.token is None or relative_path(scope) in OPEN_PATHS:
            return None
        if self.cors is not None and is_preflight(scope):
            return None  # the CORS middleware answers it; it carries no credentials
        if not token_matches(self.token, presented_token(Headers(scope=scope))):
            return SmithersError("UNAUTHORIZED", "missing or invalid token")
        return None

    def origin_allowed(self, scope: Scope, values: list[str], authority: Authority | None) -> bool:
        """No Origin (not a browser's cross-site request), our own origin, or a listed one."""
        if not values:
            return True
        origin = parse_origin(values[0]) if len(values) == 1 else None
        if origin is None:
            return False  # `null`, a malformed value, several values
        if authority is not None and origin == authority.origin(scope.get("scheme", "http")):
            return True
        return origin in self.allowed_origins

    @staticmethod
    def refusal_headers(refusal: SmithersError) -> dict[str, str] | None:
        if refusal.code == "UNAUTHORIZED":
            return {"www-authenticate": "Bearer"}
        if refusal.code in HEAD_REFUSALS:
            # The body (if any) is unread and its framing not trusted: the connection ends.
            return {"connection": "close"}
        return None


def relative_path(scope: Scope) -> str:
    """The request path below the app's mount point."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


# The host name in-process ASGI clients (httpx's ASGITransport, Starlette's TestClient)
# put in the URL by default; they report it as the ASGI `server` too.
IN_PROCESS_HOST = "testserver"


def in_process(scope: Scope, authority: Authority) -> bool:
    """A request from an in-process test client, not from the network: its `server` is
    the name the client invented. A server on a socket reports the socket's address there
    (an IP, or a path), whatever Host a browser was tricked into sending, so a rebinding
    attack cannot pass for this."""
    server = scope.get("server")
    return (
        authority.host == IN_PROCESS_HOST
        and isinstance(server, list | tuple)
        and len(server) == 2
        and server[0] == IN_PROCESS_HOST
    )


def head_refusal(scope: Scope) -> tuple[Authority | None, list[str], SmithersError | None]:
    """The parsed Host (None when absent) and the Origin values, or why the request head is
    refused: a Host missing from HTTP/1.1, repeated or malformed (400), a URL or head over
    the limits."""
    hosts: list[str] = []
    origins: list[str] = []
    framings = 0
    head_bytes = 0
    for name, value in scope["headers"]:  # one pass over the head, every request
        head_bytes += len(name) + len(value) + 4
        if name == b"host":
            hosts.append(value.decode("latin-1"))
        elif name == b"origin":
            origins.append(value.decode("latin-1"))
        elif name == b"transfer-encoding" or name == b"content-length":
            framings |= 1 if name == b"content-length" else 2
    if len(hosts) > 1:
        return None, origins, SmithersError("INVALID_REQUEST", "more than one Host header")
    authority = parse_authority(hosts[0]) if hosts else None
    if hosts and authority is None:
        return None, origins, SmithersError("INVALID_REQUEST", "Host header is not host[:port]")
    if not hosts and scope.get("http_version", "1.1") not in ("1.0", "0.9"):
        return None, origins, SmithersError("INVALID_REQUEST", "Host header is required")
    if framings == 3:
        # Two framings: where this body ends is ambiguous (request smuggling).
        return (
            None,
            origins,
            SmithersError("INVALID_REQUEST", "both Content-Length and Transfer-Encoding"),
        )
    if len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) > MAX_URL_BYTES:
        return authority, origins, uri_too_long()
    if head_bytes > MAX_HEAD_BYTES:
        return authority, origins, headers_too_large()
    return authority, origins, None


def uri_too_long() -> SmithersError:
    return SmithersError(
        "URI_TOO_LONG", f"request URL exceeds {MAX_URL_BYTES} bytes", {"maxBytes": MAX_URL_BYTES}
    )


def headers_too_large() -> SmithersError:
    return SmithersError(
        "HEADERS_TOO_LARGE",
        f"request headers exceed {MAX_HEAD_BYTES} bytes",
        {"maxBytes": MAX_HEAD_BYTES},
    )
