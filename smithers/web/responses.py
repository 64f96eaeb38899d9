"""JSON responses with the common headers, and the error envelope."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..encoding import dumps
from ..errors import SmithersError

JSON_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


_RAW_JSON_HEADERS = [
    *((name.encode(), value.encode()) for name, value in JSON_HEADERS.items()),
    (b"content-type", b"application/json"),
]


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        if headers:
            super().__init__(content, status_code, {**JSON_HEADERS, **headers})
            return
        # The common case, every read: the head Starlette would build, built from constants.
        self._encoded(self.render(content), status_code)

    @classmethod
    def encoded(cls, body: bytes, status_code: int = 200) -> JSONResponse:
        """The response of JSON already encoded (a kept view)."""
        response = cls.__new__(cls)
        response._encoded(body, status_code)
        return response

    def _encoded(self, body: bytes, status_code: int) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        length = (b"content-length", b"%d" % len(body))
        self.raw_headers = [*_RAW_JSON_HEADERS[:-1], length, _RAW_JSON_HEADERS[-1]]

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(exc: SmithersError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": exc.to_json()}, exc.status, headers)


def error(code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return error_response(SmithersError(code, message, details))
