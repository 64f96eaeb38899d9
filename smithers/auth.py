"""Token auth and Host/Origin parsing as pure functions on headers: no web framework here."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import SmithersError

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


DEFAULT_PORTS = {"http": 80, "https": 443}

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Authority:
    """A parsed `host[:port]`: the host lower-case, an IPv6 address without brackets."""

    host: str
    port: int | None

    def is_loopback(self) -> bool:
        return _is_loopback(self.host)

    def origin(self, scheme: str) -> str:
        """`scheme://host[:port]`, the port left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None or self.port == DEFAULT_PORTS.get(scheme):
            return f"{scheme}://{host}"
        return f"{scheme}://{host}:{self.port}"


@functools.lru_cache(maxsize=256)
def _is_loopback(host: str) -> bool:
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)  # every request parses its Host: mostly one value
def parse_authority(value: str) -> Authority | None:
    """A Host header as `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6
    address, then an optional port of digits. `None` for anything else: userinfo (`@`),
    a path, spaces, an empty host, a name ending in a number that is not an IPv4 address."""
    if not value.isascii():
        return None
    value = value.lower()
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        ipv6 = _ipv6(inside) if bracket else None
        if ipv6 is None:
            return None
        host = ipv6
    else:
        host = value.partition(":")[0]
        rest = value[len(host) :]
        if not _is_host_name(host):
            return None
    if not rest:
        return Authority(host, None)
    if not rest.startswith(":") or not _PORT.fullmatch(rest[1:]) or int(rest[1:]) > 65535:
        return None
    return Authority(host, int(rest[1:]))


def parse_origin(value: str) -> str | None:
    """An Origin as `scheme://host[:port]` (http or https), lower-case and without the
    default port; `None` when it is anything else (`null`, a path, userinfo, a query)."""
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        return None
    authority = parse_authority(rest)
    return authority.origin(scheme) if authority is not None else None


def _ipv6(text: str) -> str | None:
    """The address in its compressed form (as browsers write it), no zone id."""
    if "%" in text:
        return None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def _is_host_name(text: str) -> bool:
    if len(text) > 254 or not _DNS_NAME.fullmatch(text):
        return False
    last = text.rstrip(".").rsplit(".", 1)[-1]
    if not last.isdigit():
        return True
    # A name ending in a number is an IPv4 address or nothing (as browsers read it).
    try:
        ipaddress.IPv4Address(text.rstrip("."))
    except ValueError:
        return False
    return True


def normalise_origins(origins: Iterable[str], what: str = "allowed origin") -> frozenset[str]:
    """Configured origins in the form `parse_origin` gives (a trailing `/` is forgiven)."""
    found: set[str] = set()
    for origin in [origins] if isinstance(origins, str) else origins:
        parsed = parse_origin(origin.strip().removesuffix("/"))
        if parsed is None:
            raise SmithersError(
                "INVALID_REQUEST",
                f"{what} {origin!r} is not scheme://host[:port] (http or https)",
            )
        found.add(parsed)
    return frozenset(found)
