"""The ASGI middleware every app wears: HTTP metrics, DNS-rebinding guard, token auth."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import is_loopback_host, is_loopback_origin, presented_token, token_matches
from ..errors import SmithersError
from ..metrics import Metrics
from ..tracing import span
from .responses import error_response

logger = logging.getLogger("smithers.web")

OPEN_PATHS = frozenset({"/health"})


class GuardMiddleware:
    """Counts every request; refuses foreign Host/Origin when open; checks the token."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        host_guard: bool,
        metrics: Metrics | None,
    ) -> None:
        self.app = app
        self.token = token
        self.host_guard = host_guard
        self.metrics = metrics

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
                    response = error_response(refusal, self.challenge(refusal))
                    await response(scope, receive, send_status)
        finally:
            if self.metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                self.metrics.observe_http(
                    scope["method"], template, status, (time.perf_counter() - started) * 1000
                )

    def refusal(self, scope: Scope) -> SmithersError | None:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        relative = path[len(root) :] if root and path.startswith(root) else path
        headers = Headers(scope=scope)
        if self.host_guard:
            host = headers.get("host", "")
            origin = headers.get("origin")
            if (host and not is_loopback_host(host)) or (
                origin is not None and not is_loopback_origin(origin)
            ):
                return SmithersError(
                    "FORBIDDEN",
                    "this server has no token and only answers loopback Host and Origin",
                )
        if self.token is None or relative in OPEN_PATHS:
            return None
        if not token_matches(self.token, presented_token(headers)):
            return SmithersError("UNAUTHORIZED", "missing or invalid token")
        return None

    @staticmethod
    def challenge(refusal: SmithersError) -> dict[str, str] | None:
        return {"www-authenticate": "Bearer"} if refusal.code == "UNAUTHORIZED" else None
