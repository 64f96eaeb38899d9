"""A registered workflow's webhook: its config, checked when the workflow is registered,
and the pure parts of a delivery: the signature check and the dot paths into the body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smithers.errors import SmithersError

Rejection = Literal["signature", "timestamp"]
HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9-]+$")]
DotPath = Annotated[str, Field(min_length=1, max_length=512)]


class _Config(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SignalConfig(_Config):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    correlationIdPath: DotPath | None = None
    runIdPath: DotPath | None = None
    payloadPath: DotPath | None = None


class RunConfig(_Config):
    enabled: bool = True
    inputPath: DotPath | None = None


class WebhookConfig(_Config):
    secret: Annotated[str, Field(min_length=1)]
    signatureHeader: HeaderName = "x-hub-signature-256"
    signaturePrefix: str = "sha256="
    timestampHeader: HeaderName | None = None
    toleranceSeconds: Annotated[int, Field(gt=0)] = 300
    signal: SignalConfig | None = None
    run: RunConfig | None = None
    deliveryIdHeader: HeaderName = "x-github-delivery"

    @property
    def starts_runs(self) -> bool:
        return self.run is not None and self.run.enabled


def parse_config(key: str, raw: Any) -> WebhookConfig:
    """The `webhook=` of `register(key, ...)`, or INVALID_REQUEST naming what is wrong."""
    if isinstance(raw, WebhookConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise SmithersError("INVALID_REQUEST", f"webhook of {key!r} must be a dict")
    try:
        config = WebhookConfig.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "webhook"
        raise SmithersError(
            "INVALID_REQUEST", f"webhook of {key!r}: {where}: {first['msg']}", {"field": where}
        ) from None
    if config.signal is None and not config.starts_runs:
        raise SmithersError(
            "INVALID_REQUEST", f"webhook of {key!r} needs a signal or run.enabled: it does nothing"
        )
    return config


def signature(config: WebhookConfig, body: bytes, timestamp: str | None = None) -> str:
    """What the signature header must say: prefix + hex HMAC-SHA256 of the raw body (of
    `timestamp + "." + body` when the webhook signs a timestamp)."""
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    digest = hmac.new(config.secret.encode(), signed, hashlib.sha256).hexdigest()
    return config.signaturePrefix + digest


def rejection(
    config: WebhookConfig, headers: Mapping[str, str], body: bytes, now_s: float
) -> Rejection | None:
    """Why a delivery is refused (401), or None when it is signed by the secret and, with a
    `timestampHeader`, sent within `toleranceSeconds` of `now_s` (seconds since the epoch)."""
    timestamp = None
    if config.timestampHeader is not None:
        timestamp = headers.get(config.timestampHeader)
        if timestamp is None or not timestamp.isascii() or not timestamp.isdigit():
            return "timestamp"
    presented = headers.get(config.signatureHeader, "")
    # Header text is Latin-1 (as the ASGI server decoded it): back to the bytes received.
    wanted = signature(config, body, timestamp).encode()
    if not hmac.compare_digest(wanted, presented.encode("latin-1", "replace")):
        return "signature"
    if timestamp is not None and abs(now_s - int(timestamp)) > config.toleranceSeconds:
        return "timestamp"
    return None


_MISSING = object()


def pick(value: Any, path: str | None) -> Any:
    """The value at a dot path (`pull_request.head.sha`, `commits.0.id`: a list by index);
    the whole `value` without a path; None where the path leads nowhere."""
    if path is None:
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isascii() and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else _MISSING
        else:
            value = _MISSING
        if value is _MISSING:
            return None
    return value
