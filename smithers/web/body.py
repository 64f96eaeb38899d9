"""Reading a JSON request body within the limits: size, time, nesting depth."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request

from ..errors import SmithersError
from ..tracing import span
from .params import INT64_MAX, INT64_MIN

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


# Text no UTF-8 store or response can hold (lone surrogates, from `\ud800` escapes) or that
# PostgreSQL refuses in text (NUL).
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

# Where a value sits: (where its parent sits, its key or index); None for the body.
_Path = tuple["_Path", str | int] | None


def parse_json(raw: bytes) -> Any:
    """Parse a body: empty reads as `{}`; bad JSON, bad UTF-8 and deep nesting are 400s,
    and so is any value a store cannot keep as it came (see `check_json`)."""
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
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """Refuse, naming where (`details.field`, a dot path), what no store keeps losslessly:
    nesting deeper than MAX_JSON_DEPTH, NUL or lone surrogates in a string or key, a
    non-finite number (`1e999` parses as infinity) and an integer outside int64."""
    _check_scalar(value, None)
    # Only containers go on the stack (with their depth and path); scalars are checked as
    # they are met, which keeps a 1 MiB body to a few tens of milliseconds.
    stack: list[tuple[Any, int, _Path]] = []
    if isinstance(value, dict | list):
        stack.append((value, 1, None))
    while stack:
        item, depth, path = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        pairs: Iterable[tuple[Any, Any]] = (
            item.items() if isinstance(item, dict) else enumerate(item)
        )
        for key, child in pairs:
            if type(key) is str and _BAD_TEXT.search(key):
                _refuse_text(key, (path, key))
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1, (path, key)))
            elif kind is not bool and child is not None:
                _check_scalar(child, (path, key))


def _check_scalar(value: Any, path: _Path) -> None:
    if isinstance(value, str):
        if _BAD_TEXT.search(value):
            _refuse_text(value, path)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _refused(path, "is an integer outside the 64-bit range")
    elif isinstance(value, float) and not math.isfinite(value):
        raise _refused(path, "is a number too large to represent")


def field_path(path: _Path) -> str:
    """`input.items.0.name`; the body itself is `body`. Keys are shown printable."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(
            key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
            if isinstance(key, str)
            else str(key)
        )
    return ".".join(reversed(parts)) or "body"


def _refuse_text(text: str, path: _Path) -> None:
    found = _BAD_TEXT.search(text)
    if found is not None and found.group() != "\x00":
        raise SmithersError("INVALID_JSON", "request body has an unpaired surrogate")
    raise _refused(path, "contains a NUL character")


def _refused(path: _Path, problem: str) -> SmithersError:
    field = field_path(path)
    return SmithersError("INVALID_REQUEST", f"{field} {problem}", {"field": field})


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
