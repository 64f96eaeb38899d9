"""Token auth as pure functions on headers: no web framework here."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

TOKEN_ENV = "SMITHERS_API_KEY"


def configured_token(token: str | None, env: str = TOKEN_ENV) -> str | None:
    """The token given, else the environment's; `None` (auth off) when neither is set."""
    if token:
        return token
    return os.environ.get(env) or None


def presented_token(headers: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <token>` (scheme case-insensitive) or `x-smithers-key`."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-smithers-key")
    return key.strip() if key and key.strip() else None


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison (no timing side channel)."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def is_loopback_host(value: str) -> bool:
    """Whether a Host header (or an address) names this machine's loopback."""
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_origin(origin: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return bool(parts.hostname) and is_loopback_host(parts.hostname or "")
