"""Scope grants: ranks, legacy ranks, method and prefix grants."""

from __future__ import annotations

from smithers.principal import Principal
from smithers.scopes import allows, expand, parse_scopes


def test_ranks_imply_the_scopes_below_them() -> None:
    assert allows(["run:admin"], "run:read")
    assert allows(["run:write"], "run:read")
    assert not allows(["run:read"], "run:write")
    assert allows(["cron:write"], "cron:read")
    assert not allows(["cron:read"], "cron:write")
    assert not allows(["run:admin"], "approval:submit")


def test_legacy_ranks() -> None:
    assert expand(["read"]) >= {"run:read", "cron:read", "observability:read"}
    assert not allows(["read"], "run:write")
    assert allows(["execute"], "signal:submit") and allows(["execute"], "cron:write")
    assert not allows(["execute"], "approval:submit")
    assert allows(["approve"], "approval:submit") and allows(["approve"], "run:write")
    assert not allows(["approve"], "run:admin")
    assert allows(["admin"], "run:admin")


def test_method_and_prefix_grants() -> None:
    assert allows(["getRun"], "run:read", "getRun")
    assert not allows(["getRun"], "run:read", "listRuns")
    assert allows(["runs.*"], "run:write", "runs.create")
    assert not allows(["runs.*"], "run:write", "launchRun")
    assert allows(["*"], "run:admin", "anything")


def test_scopes_from_strings_and_lists() -> None:
    assert parse_scopes("run:read, signal:submit approval:submit") == {
        "run:read",
        "signal:submit",
        "approval:submit",
    }
    assert parse_scopes(["run:read", 3, ""]) == {"run:read"}
    assert parse_scopes(None) == frozenset()


def test_approval_scopes_count_what_a_grant_implies() -> None:
    assert Principal("ann", scopes=frozenset({"approve"})).has_any_scope(["approval:submit"])
    assert not Principal("bo", scopes=frozenset({"read"})).has_any_scope(["approval:submit"])
