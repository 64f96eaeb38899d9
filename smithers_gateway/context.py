"""What every route and RPC method of one Gateway shares: its service, registry, auth,
metrics and limits, and who it is (`identity`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smithers.catalog import input_schema
from smithers.clock import now_ms
from smithers.errors import SmithersError
from smithers.principal import Principal
from smithers.registry import WorkflowRegistry
from smithers.service import RunService
from smithers.web.identity import Authenticator
from smithers.web.run_endpoints import Limits

from .frames import RunEventFrames
from .metrics import GatewayMetrics
from .pages import Pages

PROTOCOL = 1
FEATURES = ("runs", "approvals", "signals", "inspection", "http-rpc")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smithers-asgi")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class GatewayContext:
    service: RunService
    registry: WorkflowRegistry
    authenticator: Authenticator
    metrics: GatewayMetrics
    limits: Limits
    pages: Pages = field(default_factory=Pages)
    features: tuple[str, ...] = FEATURES
    version: str = field(default_factory=_version)
    started_at_ms: int = field(default_factory=now_ms)
    # Pushes a broadcast event that is no run event (`cron.triggered`): set by the app.
    publish: Callable[[str, dict[str, Any]], None] = lambda name, payload: None
    run_frames: RunEventFrames = field(default_factory=RunEventFrames)

    def authenticate(self, headers: Mapping[str, str], token: str | None = None) -> Principal:
        """The caller of a request (or WebSocket `connect`), or UNAUTHORIZED: a browser
        Origin outside `allowedOrigins`, a missing, unknown, expired or revoked token."""
        if not self.authenticator.origin_allowed(headers.get("origin")):
            raise SmithersError("UNAUTHORIZED", "origin not allowed")
        return self.authenticator.authenticate(headers, token)

    @property
    def is_open(self) -> bool:
        """No auth configured: every caller is an anonymous operator."""
        return self.authenticator.mode == "open"

    def identity(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "startedAtMs": self.started_at_ms, "version": self.version}

    def workflows(self) -> list[dict[str, Any]]:
        """The registered workflows sorted by key, as `/workflows` and `listWorkflows` show."""
        return [
            {
                "key": entry.key,
                "readableName": entry.readable_name,
                "description": entry.description,
                "hasUi": self.pages.path_of(entry.key) is not None,
                "uiPath": self.pages.path_of(entry.key),
                "inputSchema": input_schema(entry.workflow, entry.key),
            }
            for entry in self.registry.entries()
        ]
