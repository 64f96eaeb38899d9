"""Typed access to request fields and query parameters, each error a 400 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import SmithersError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Integers the databases store (64-bit); anything wider is a 400, not a driver error.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object"}


def invalid(field: str, message: str) -> SmithersError:
    return SmithersError("INVALID_REQUEST", message, {"field": field})


def from_validation(exc: ValidationError) -> SmithersError:
    """The first error of a model's validation as a 400 naming its field (a dot path)."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    return invalid(field, f"{field}: {first['msg']}")


def parse_model(model: type[M], value: Mapping[str, Any]) -> M:
    """`value` checked by `model`; a failure is a 400 naming the field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise from_validation(exc) from None


def parse_query(model: type[M], params: Mapping[str, str]) -> M:
    """The model's fields read from a query string: absent and empty take the default, a
    NUL is refused (it never names anything stored)."""
    given: dict[str, str] = {}
    for name in model.model_fields:
        value = params.get(name)
        if value is None or value == "":
            continue
        if has_nul(value):
            raise invalid(name, f"{name} contains a NUL character")
        given[name] = value
    return parse_model(model, given)


def has_nul(text: str) -> bool:
    """PostgreSQL refuses NUL in text: a value holding one never names anything stored."""
    return "\x00" in text


def path_name(path_params: Any, name: str) -> str:
    """A name from the URL path (`nodeId`, `signalName`), refused when it holds a NUL."""
    value: str = path_params[name]
    if has_nul(value):
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
