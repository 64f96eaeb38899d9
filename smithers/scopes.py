"""Scopes: what a grant implies, and whether a set of grants allows a method.

Named scopes form ranks (`run:read < run:write < run:admin`, `cron:read < cron:write`); a
grant may also be a legacy rank (`read`, `execute`, `approve`, `admin`), a method name
(`getRun`) or a method prefix (`runs.*`); `*` allows everything.
"""

from __future__ import annotations

from collections.abc import Iterable

ALL = "*"
RUN_READ, RUN_WRITE, RUN_ADMIN = "run:read", "run:write", "run:admin"
APPROVAL_SUBMIT, SIGNAL_SUBMIT = "approval:submit", "signal:submit"
CRON_READ, CRON_WRITE = "cron:read", "cron:write"
OBSERVABILITY_READ = "observability:read"

KNOWN = frozenset(
    {
        RUN_READ,
        RUN_WRITE,
        RUN_ADMIN,
        APPROVAL_SUBMIT,
        SIGNAL_SUBMIT,
        CRON_READ,
        CRON_WRITE,
        OBSERVABILITY_READ,
    }
)

_RANKS: dict[str, frozenset[str]] = {
    RUN_ADMIN: frozenset({RUN_ADMIN, RUN_WRITE, RUN_READ}),
    RUN_WRITE: frozenset({RUN_WRITE, RUN_READ}),
    CRON_WRITE: frozenset({CRON_WRITE, CRON_READ}),
}
_READ = frozenset({RUN_READ, CRON_READ, OBSERVABILITY_READ})
_EXECUTE = _READ | {RUN_WRITE, SIGNAL_SUBMIT, CRON_WRITE}
_LEGACY: dict[str, frozenset[str]] = {
    "read": _READ,
    "execute": _EXECUTE,
    "approve": _EXECUTE | {APPROVAL_SUBMIT},
    "admin": frozenset({ALL}),
}


def parse_scopes(value: object) -> frozenset[str]:
    """Scopes from a list, or from a string separated by spaces or commas (JWT claims,
    proxy headers); anything else grants nothing."""
    if isinstance(value, str):
        parts: Iterable[object] = value.replace(",", " ").split()
    elif isinstance(value, list | tuple | set | frozenset):
        parts = value
    else:
        return frozenset()
    return frozenset(p.strip() for p in parts if isinstance(p, str) and p.strip())


def expand(grants: Iterable[str]) -> frozenset[str]:
    """The grants with everything they imply (ranks below them, legacy ranks unfolded)."""
    out: set[str] = set()
    for grant in grants:
        out.add(grant)
        out |= _RANKS.get(grant, frozenset())
        out |= _LEGACY.get(grant, frozenset())
    return frozenset(out)


def allows(grants: Iterable[str], required: str | None, method: str | None = None) -> bool:
    """Whether `grants` allow a call of `method` that needs scope `required`."""
    granted = expand(grants)
    if ALL in granted:
        return True
    if required is not None and required in granted:
        return True
    if method is None:
        return False
    if method in granted:
        return True
    return any(g.endswith(".*") and method.startswith(g[:-1]) for g in granted)
