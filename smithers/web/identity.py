"""Who is calling: the Gateway's auth modes (open, token, JWT, trusted proxy) -> Principal.

Pure functions over a header mapping and a presented token: no web framework here, so the
HTTP routes and the WebSocket `connect` frame share every check.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..auth import presented_token
from ..clock import now_ms
from ..errors import SmithersError
from ..principal import Principal
from ..scopes import parse_scopes

OPEN = Principal(user_id=None, role="operator", scopes=frozenset({"*"}))


def _unauthorized(message: str) -> SmithersError:
    return SmithersError("UNAUTHORIZED", message)


def _invalid(message: str) -> SmithersError:
    return SmithersError("INVALID_REQUEST", f"auth config: {message}")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class TokenGrant:
    role: str
    scopes: frozenset[str]
    user_id: str | None = None
    token_id: str | None = None
    issued_at_ms: int | None = None
    expires_at_ms: int | None = None
    revoked_at_ms: int | None = None


def _optional_int(entry: Mapping[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{key} must be an integer (ms)")
    return value


def _grant(entry: object) -> TokenGrant:
    if not isinstance(entry, Mapping):
        raise _invalid("each token maps to {role, scopes, ...}")
    return TokenGrant(
        role=str(entry.get("role", "operator")),
        scopes=parse_scopes(entry.get("scopes", [])),
        user_id=entry.get("userId"),
        token_id=entry.get("tokenId"),
        issued_at_ms=_optional_int(entry, "issuedAtMs"),
        expires_at_ms=_optional_int(entry, "expiresAtMs"),
        revoked_at_ms=_optional_int(entry, "revokedAtMs"),
    )


@dataclass(frozen=True)
class Authenticator:
    """One auth mode, parsed and checked once when the gateway is built."""

    mode: str  # "open" | "token" | "jwt" | "trusted-proxy"
    allowed_origins: frozenset[str] = frozenset()
    tokens: tuple[tuple[bytes, TokenGrant], ...] = ()
    jwt_options: Mapping[str, Any] = field(default_factory=dict)
    trusted_headers: tuple[str, str, str] = ("x-user-id", "x-user-scopes", "x-user-role")
    default_role: str = "operator"
    default_scopes: frozenset[str] | None = None

    def authenticate(
        self, headers: Mapping[str, str], token: str | None = None, *, now: int | None = None
    ) -> Principal:
        """The caller of a request with these headers (and the WebSocket `connect` token,
        which comes first); raises UNAUTHORIZED."""
        if self.mode == "open":
            return OPEN
        if self.mode == "trusted-proxy":
            return self._from_proxy(headers)
        presented = token or presented_token(headers)
        if not presented:
            raise _unauthorized("a token is required (Authorization: Bearer, x-smithers-key)")
        current = now_ms() if now is None else now
        if self.mode == "token":
            return self._from_token(presented, current)
        return self._from_jwt(presented, current)

    def _from_token(self, presented: str, now: int) -> Principal:
        digest = _digest(presented)
        found: TokenGrant | None = None
        for known, grant in self.tokens:  # every digest compared: no early exit to time
            if hmac.compare_digest(known, digest):
                found = grant
        if found is None:
            raise _unauthorized("invalid token")
        if found.revoked_at_ms is not None and found.revoked_at_ms <= now:
            raise _unauthorized("token revoked")
        if found.expires_at_ms is not None and found.expires_at_ms <= now:
            raise _unauthorized("token expired")
        return Principal(found.user_id, found.role, found.scopes, found.token_id)

    def _from_jwt(self, presented: str, now: int) -> Principal:
        o = self.jwt_options
        try:
            header = jwt.get_unverified_header(presented)
            if header.get("alg") != "HS256":
                raise _unauthorized("invalid token: only HS256 is accepted")
            claims = jwt.decode(
                presented,
                o["secret"],
                algorithms=["HS256"],
                audience=o.get("audience"),
                issuer=o.get("issuer"),
                leeway=o.get("clockSkewSeconds", 60),
                options={
                    "require": ["exp"],
                    "verify_aud": o.get("audience") is not None,
                    "verify_iss": o.get("issuer") is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("token not yet valid (nbf)") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("invalid token: wrong audience") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("invalid token: wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"invalid token: missing claim {exc.claim}") from None
        except jwt.PyJWTError:
            raise _unauthorized("invalid token") from None
        scopes = claims.get(o.get("scopesClaim", "scope"))
        role = claims.get(o.get("roleClaim", "role"))
        user = claims.get(o.get("userClaim", "sub"))
        return Principal(
            user_id=str(user) if user is not None else None,
            role=str(role) if isinstance(role, str) else o.get("defaultRole", "operator"),
            scopes=parse_scopes(scopes)
            if scopes is not None
            else frozenset(o.get("defaultScopes", [])),
            token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
        )

    def _from_proxy(self, headers: Mapping[str, str]) -> Principal:
        user_h, scopes_h, role_h = self.trusted_headers
        user = headers.get(user_h)
        if not user:
            raise _unauthorized(f"no {user_h} header from the trusted proxy")
        raw = headers.get(scopes_h)
        if raw is None and self.default_scopes is None:
            raise _unauthorized(f"no {scopes_h} header from the trusted proxy")
        scopes = parse_scopes(raw) if raw is not None else self.default_scopes or frozenset()
        return Principal(user, headers.get(role_h) or self.default_role, scopes)

    def origin_allowed(self, origin: str | None) -> bool:
        """A present `Origin` must be listed when `allowedOrigins` is not empty."""
        return origin is None or not self.allowed_origins or origin in self.allowed_origins


def authenticator(config: Mapping[str, Any] | None) -> Authenticator:
    """The Authenticator of a Gateway `auth=` setting (None: open); a bad setting is
    INVALID_REQUEST, raised when the gateway is built rather than at the first request."""
    if config is None:
        return Authenticator("open")
    if not isinstance(config, Mapping):
        raise _invalid("auth must be a dict with a mode")
    mode = config.get("mode")
    origins = frozenset(config.get("allowedOrigins") or ())
    if mode == "token":
        tokens = config.get("tokens")
        if not isinstance(tokens, Mapping) or not tokens:
            raise _invalid("token mode needs tokens: {token: {role, scopes}}")
        pairs = tuple((_digest(str(t)), _grant(e)) for t, e in tokens.items())
        return Authenticator("token", origins, tokens=pairs)
    if mode == "jwt":
        secret = config.get("secret")
        if not isinstance(secret, str) or not secret:
            raise _invalid("jwt mode needs a secret (HS256)")
        return Authenticator("jwt", origins, jwt_options=dict(config))
    if mode == "trusted-proxy":
        names = [h.lower() for h in config.get("trustedHeaders") or Authenticator.trusted_headers]
        if len(names) != 3:
            raise _invalid("trustedHeaders names the user, scopes and role headers")
        default = config.get("defaultScopes")
        return Authenticator(
            "trusted-proxy",
            origins,
            trusted_headers=(names[0], names[1], names[2]),
            default_role=str(config.get("defaultRole", "operator")),
            default_scopes=None if default is None else parse_scopes(default),
        )
    raise _invalid(f"unknown mode {mode!r} (token, jwt or trusted-proxy)")
