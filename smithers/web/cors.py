"""CORS for the origins an app lists in `cors_origins`: Starlette's middleware, matching
origins the way the guard does and refusing a preflight with the error envelope.

It sits inside the guard (`build_app`): the guard has already refused a foreign Host or
an Origin that is not listed, and lets a preflight of a listed origin through without a
token (a browser never sends credentials on a preflight), so this answers it.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from ..auth import parse_origin
from ..errors import SmithersError
from .responses import error_response

ALLOWED_METHODS = ("GET", "POST")
# The token headers, JSON bodies, and resuming an event stream.
ALLOWED_HEADERS = ("authorization", "x-smithers-key", "content-type", "last-event-id")


def is_preflight(scope: Scope) -> bool:
    """A browser's CORS preflight: OPTIONS with an Origin and the method it asks for."""
    if scope.get("method") != "OPTIONS":
        return False
    headers = Headers(scope=scope)
    return "origin" in headers and "access-control-request-method" in headers


class CORS(CORSMiddleware):
    """`CORSMiddleware` for `origins` (as `normalise_origins` gives them)."""

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        super().__init__(
            app,
            allow_origins=sorted(origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
        )
        self.origins = origins

    def is_allowed_origin(self, origin: str) -> bool:
        return parse_origin(origin) in self.origins

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        return error_response(
            SmithersError(
                "FORBIDDEN",
                f"CORS preflight refused: {refused} not allowed",
                {"allowedMethods": list(ALLOWED_METHODS), "allowedHeaders": list(ALLOWED_HEADERS)},
            ),
            {"vary": answer.headers["vary"]},
        )


__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "CORS", "is_preflight"]
