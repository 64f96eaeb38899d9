"""Principal: who makes a request, for the checks that depend on the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import now_ms


@dataclass(frozen=True)
class Principal:
    """A caller: a user id (when known), a role and the scopes granted (`*` grants all)."""

    user_id: str | None = None
    role: str = "operator"
    scopes: frozenset[str] = frozenset()

    def has_any_scope(self, wanted: list[str] | tuple[str, ...] | frozenset[str]) -> bool:
        return "*" in self.scopes or not self.scopes.isdisjoint(wanted)

    def to_auth(self) -> dict[str, Any]:
        """`ctx.auth` of a run this caller starts: `{triggeredBy, role, scopes, createdAt}`."""
        return {
            "triggeredBy": self.user_id,
            "role": self.role,
            "scopes": sorted(self.scopes),
            "createdAt": now_ms(),
        }
