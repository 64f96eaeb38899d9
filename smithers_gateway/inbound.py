"""Checking a WebSocket request frame before anything reads it: JSON text within the
limits (depth 32, arrays of 256 items, strings of 16 KiB) and the `req` shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from smithers.errors import SmithersError

MAX_DEPTH = 32
MAX_ITEMS = 256
MAX_STRING = 16 * 1024
MAX_ID = 128


@dataclass(frozen=True)
class Request:
    id: str
    method: str
    params: dict[str, Any]


def invalid(message: str) -> SmithersError:
    return SmithersError("INVALID_FRAME", message)


def _check(value: Any) -> None:
    """Walk without recursion: a hostile frame cannot exhaust the stack."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if len(item) > MAX_STRING:
                raise invalid(f"strings hold at most {MAX_STRING} characters")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise invalid(f"frames nest at most {MAX_DEPTH} levels")
            if isinstance(item, list):
                if len(item) > MAX_ITEMS:
                    raise invalid(f"arrays hold at most {MAX_ITEMS} items")
                pending.extend((child, depth + 1) for child in item)
            else:
                pending.extend((key, depth + 1) for key in item)
                pending.extend((child, depth + 1) for child in item.values())


def parse_request(text: str) -> Request:
    """The request a frame holds, or INVALID_FRAME."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid("a frame is one JSON object") from None
    _check(frame)
    if not isinstance(frame, dict) or frame.get("type") != "req":
        raise invalid('a request frame is {"type": "req", "id", "method", "params"?}')
    frame_id, method, params = frame.get("id"), frame.get("method"), frame.get("params")
    if not isinstance(frame_id, str) or not 0 < len(frame_id) <= MAX_ID:
        raise invalid(f"id is a string of 1 to {MAX_ID} characters")
    if not isinstance(method, str) or not 0 < len(method) <= MAX_ID:
        raise invalid("method is a non-empty string")
    if params is not None and not isinstance(params, dict):
        raise invalid("params is an object")
    return Request(frame_id, method, params or {})
