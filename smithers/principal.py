"""Principal: who makes a request, for the checks that depend on the caller."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """A caller: a user id (when known), a role and the scopes granted (`*` grants all)."""

    user_id: str | None = None
    role: str = "operator"
    scopes: frozenset[str] = frozenset()

    def has_any_scope(self, wanted: list[str] | tuple[str, ...] | frozenset[str]) -> bool:
        return "*" in self.scopes or not self.scopes.isdisjoint(wanted)
