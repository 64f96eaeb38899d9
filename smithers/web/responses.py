"""JSON responses with the common headers, and the error envelope."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from ..errors import SmithersError

JSON_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(content, status_code, {**JSON_HEADERS, **(headers or {})})

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def error_response(exc: SmithersError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": exc.to_json()}, exc.status, headers)


def error(code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    return error_response(SmithersError(code, message, details))
