"""Principal: who makes a request, for the checks that depend on the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import scopes as scopes_
from .clock import now_ms


@dataclass(frozen=True)
class Principal:
    """A caller: a user id (when known), a role and the scopes granted (`*` grants all)."""

    user_id: str | None = None
    role: str = "operator"
    scopes: frozenset[str] = frozenset()
    token_id: str | None = None

    def has_any_scope(self, wanted: list[str] | tuple[str, ...] | frozenset[str]) -> bool:
        """Whether the caller holds one of `wanted`, counting what its grants imply."""
        return any(scopes_.allows(self.scopes, scope) for scope in wanted)

    def allows(self, required: str | None, method: str | None = None) -> bool:
        """Whether the caller may call `method`, which needs scope `required`."""
        return scopes_.allows(self.scopes, required, method)

    def to_auth(self) -> dict[str, Any]:
        """`ctx.auth` of a run this caller starts: `{triggeredBy, role, scopes, createdAt}`."""
        return {
            "triggeredBy": self.user_id,
            "role": self.role,
            "scopes": sorted(self.scopes),
            "createdAt": now_ms(),
        }
