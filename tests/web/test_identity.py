"""The Gateway's auth modes: tokens, JWTs (and attacks on them), the trusted proxy."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from smithers.errors import SmithersError
from smithers.web.identity import authenticator

SECRET = "s" * 32
JWT_AUTH = {
    "mode": "jwt",
    "secret": SECRET,
    "issuer": "https://issuer.example",
    "audience": "smithers",
    "scopesClaim": "perms",
    "clockSkewSeconds": 60,
}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "ann",
        "iss": "https://issuer.example",
        "aud": "smithers",
        "exp": now + 300,
        "perms": "run:read approval:submit",
        "role": "reviewer",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(auth: Any, token: str, message: str) -> None:
    with pytest.raises(SmithersError) as caught:
        auth.authenticate({}, token)
    assert caught.value.code == "UNAUTHORIZED"
    assert message in caught.value.message


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_jwt_gives_user_role_and_scopes_from_the_custom_claim() -> None:
    auth = authenticator(JWT_AUTH)
    principal = auth.authenticate({}, jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert principal.user_id == "ann"
    assert principal.role == "reviewer"
    assert principal.scopes == {"run:read", "approval:submit"}
    header = {"authorization": f"Bearer {jwt.encode(claims(), SECRET, algorithm='HS256')}"}
    assert auth.authenticate(header).user_id == "ann"


def test_jwt_attacks_are_refused() -> None:
    auth = authenticator(JWT_AUTH)
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    head, payload, _ = good.split(".")

    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."
    refused(auth, unsigned, "only HS256")

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(auth, jwt.encode(claims(), key, algorithm="RS256"), "only HS256")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The confusion attack: an RS256 header over an HMAC made with the public key.
    rs_head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    mac = hmac.new(public_pem, f"{rs_head}.{payload}".encode(), hashlib.sha256).digest()
    refused(auth, f"{rs_head}.{payload}.{b64(mac)}", "only HS256")

    forged = b64(json.dumps(claims(perms="*", role="admin")).encode())
    refused(auth, f"{head}.{forged}.{good.split('.')[2]}", "invalid token")
    refused(auth, jwt.encode(claims(), "another secret" * 3, algorithm="HS256"), "invalid token")

    refused(auth, jwt.encode(claims(exp=None), SECRET, algorithm="HS256"), "missing claim exp")
    past = int(time.time()) - 120
    refused(auth, jwt.encode(claims(exp=past), SECRET, algorithm="HS256"), "expired")
    future = int(time.time()) + 600
    refused(auth, jwt.encode(claims(nbf=future), SECRET, algorithm="HS256"), "nbf")
    refused(auth, jwt.encode(claims(iss="https://evil"), SECRET, algorithm="HS256"), "issuer")
    refused(auth, jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256"), "audience")
    refused(auth, "not.a.jwt", "invalid token")


def test_the_clock_skew_is_allowed() -> None:
    auth = authenticator(JWT_AUTH)
    late = int(time.time()) - 30  # expired 30 s ago, inside the 60 s skew
    assert auth.authenticate({}, jwt.encode(claims(exp=late), SECRET, algorithm="HS256"))


def test_tokens_expired_revoked_and_unknown_are_refused_with_distinct_messages() -> None:
    now = int(time.time() * 1000)
    auth = authenticator(
        {
            "mode": "token",
            "tokens": {
                "live": {"role": "operator", "scopes": ["run:read"], "userId": "bo"},
                "old": {"role": "operator", "scopes": ["*"], "expiresAtMs": now - 1},
                "gone": {"role": "operator", "scopes": ["*"], "revokedAtMs": now - 1},
            },
        }
    )
    principal = auth.authenticate({"x-smithers-key": "live"})
    assert (principal.user_id, principal.scopes) == ("bo", {"run:read"})
    refused(auth, "old", "token expired")
    refused(auth, "gone", "token revoked")
    refused(auth, "livE", "invalid token")
    with pytest.raises(SmithersError, match="token is required"):
        auth.authenticate({})


def test_the_trusted_proxy_fails_closed_without_scopes() -> None:
    strict = authenticator(
        {"mode": "trusted-proxy", "trustedHeaders": ["X-User-Id", "X-User-Scopes", "X-User-Role"]}
    )
    who = strict.authenticate({"x-user-id": "cy", "x-user-scopes": "run:read,signal:submit"})
    assert (who.user_id, who.role, who.scopes) == ("cy", "operator", {"run:read", "signal:submit"})
    with pytest.raises(SmithersError, match="x-user-scopes"):
        strict.authenticate({"x-user-id": "cy"})
    with pytest.raises(SmithersError, match="x-user-id"):
        strict.authenticate({"x-user-scopes": "*"})
    lenient = authenticator({"mode": "trusted-proxy", "defaultScopes": ["run:read"]})
    assert lenient.authenticate({"x-user-id": "cy"}).scopes == {"run:read"}


def test_allowed_origins_refuse_other_present_origins() -> None:
    auth = authenticator({"mode": "token", "tokens": {"t": {}}, "allowedOrigins": ["https://a"]})
    assert auth.origin_allowed(None) and auth.origin_allowed("https://a")
    assert not auth.origin_allowed("https://b")


@pytest.mark.parametrize(
    "config",
    [
        "token",
        {"mode": "token", "tokens": {}},
        {"mode": "jwt"},
        {"mode": "magic"},
        {"mode": "trusted-proxy", "trustedHeaders": ["x-user-id"]},
        {"mode": "token", "tokens": {"t": {"expiresAtMs": "soon"}}},
    ],
)
def test_bad_auth_settings_are_refused_when_built(config: Any) -> None:
    with pytest.raises(SmithersError) as caught:
        authenticator(config)
    assert caught.value.code == "INVALID_REQUEST"
