"""Typed access to request fields and query parameters, each error a 400 naming the field."""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import SmithersError

T = TypeVar("T")

# Integers the databases store (64-bit); anything wider is a 400, not a driver error.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object"}


def invalid(field: str, message: str) -> SmithersError:
    return SmithersError("INVALID_REQUEST", message, {"field": field})


def body_field(
    body: dict[str, Any], name: str, kind: type[T], default: T | None = None
) -> T | None:
    """`body[name]` when present and of `kind` (bool is not an int), else `default`."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(name, f"{name} must be {_NAMES.get(kind, kind.__name__)}")
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise invalid(name, f"{name} is out of range")
    return value


def has_nul(text: str) -> bool:
    """PostgreSQL refuses NUL in text: a value holding one never names anything stored."""
    return "\x00" in text


def path_name(path_params: Any, name: str) -> str:
    """A name from the URL path (`nodeId`, `signalName`), refused when it holds a NUL."""
    value: str = path_params[name]
    if has_nul(value):
        raise invalid(name, f"{name} contains a NUL character")
    return value


def query_text(params: Any, name: str) -> str | None:
    """A text query parameter (absent or empty: None), refused when it holds a NUL."""
    value: str | None = params.get(name) or None
    if value is not None and has_nul(value):
        raise invalid(name, f"{name} contains a NUL character")
    return value


def query_int(
    params: Any,
    name: str,
    default: int | None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, f"{name} must be an integer") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise invalid(name, f"{name} is out of range")
    if minimum is not None and value < minimum:
        raise invalid(name, f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(name, f"{name} must be at most {maximum}")
    return value
