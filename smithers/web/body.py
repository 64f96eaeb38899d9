"""Reading a JSON request body within the limits: size, time, nesting depth."""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request

from ..errors import SmithersError
from ..tracing import span

DEFAULT_MAX_BODY_BYTES = 1_048_576
MAX_JSON_DEPTH = 32


def too_large(max_bytes: int) -> SmithersError:
    return SmithersError(
        "PAYLOAD_TOO_LARGE",
        f"request body exceeds {max_bytes} bytes",
        {"maxBytes": max_bytes},
    )


async def read_body(request: Request, max_bytes: int, timeout_s: float | None = None) -> bytes:
    """The body, refused by Content-Length before reading, or the moment it passes the limit."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise SmithersError("INVALID_REQUEST", "invalid Content-Length header") from None
        if declared > max_bytes:
            raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(timeout_s) as scope:
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                chunks.append(chunk)
        except ClientDisconnect:
            # Nobody hears the answer; it is still a refusal, not a server error.
            raise SmithersError("INVALID_REQUEST", "connection closed inside the body") from None
    if scope.cancelled_caught:
        raise SmithersError("REQUEST_TIMEOUT", "request body did not arrive in time")
    return b"".join(chunks)


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(raw: bytes) -> Any:
    """Parse a body: empty reads as `{}`; bad JSON, bad UTF-8 and deep nesting are 400s."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SmithersError("INVALID_JSON", "request body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise SmithersError("INVALID_JSON", f"request body is not valid JSON: {exc}") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise _too_deep()
    try:
        # `\ud800` escapes parse into strings that no UTF-8 store or response can hold.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SmithersError("INVALID_JSON", "request body has an unpaired surrogate") from None
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep() -> SmithersError:
    return SmithersError(
        "INVALID_REQUEST",
        f"JSON nesting deeper than {MAX_JSON_DEPTH}",
        {"maxDepth": MAX_JSON_DEPTH},
    )


def is_json_media_type(content_type: str) -> bool:
    """`application/json` or `application/*+json`, any parameters but a charset other than
    UTF-8."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    kind, slash, subtype = media.partition("/")
    if kind != "application" or not slash or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def unsupported_media_type() -> SmithersError:
    return SmithersError(
        "UNSUPPORTED_MEDIA_TYPE",
        "a request body must be JSON, sent with Content-Type: application/json",
    )


async def read_json_object(
    request: Request, max_bytes: int, timeout_s: float | None = None
) -> dict[str, Any]:
    """The body as a JSON object. A Content-Type other than JSON is refused before reading
    (a browser form or `text/plain` fetch is never parsed); no Content-Type is refused
    unless the body is empty."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise unsupported_media_type()
    raw = await read_body(request, max_bytes, timeout_s)
    if content_type is None and raw:
        raise unsupported_media_type()
    with span("smithers.body.parse", bytes=len(raw)):
        value = parse_json(raw)
    if not isinstance(value, dict):
        raise SmithersError(
            "INVALID_REQUEST", "request body must be a JSON object", {"field": "body"}
        )
    return value
