"""Run statuses and node states are the spec's strings, usable wherever a string is."""

from __future__ import annotations

import json

from smithers.states import (
    TERMINAL_STATUSES,
    WAITING_STATES,
    WAITING_STATUSES,
    NodeState,
    RunStatus,
)
from smithers.store import records


def test_the_values_are_the_spec_strings() -> None:
    assert [s.value for s in RunStatus] == [
        "running",
        "waiting-approval",
        "waiting-event",
        "waiting-timer",
        "paused",
        "finished",
        "failed",
        "cancelled",
    ]
    assert [s.value for s in NodeState] == [
        "pending",
        "in-progress",
        "finished",
        "failed",
        "cancelled",
        "skipped",
        "waiting-approval",
        "waiting-event",
        "waiting-timer",
    ]


def test_a_status_read_as_a_string_matches_its_member() -> None:
    assert RunStatus.WAITING_APPROVAL == "waiting-approval"
    assert "finished" in TERMINAL_STATUSES and "running" not in TERMINAL_STATUSES
    assert {"waiting-event": 1}[RunStatus.WAITING_EVENT] == 1
    assert json.dumps({"status": RunStatus.FAILED}) == '{"status": "failed"}'
    assert f"{NodeState.IN_PROGRESS}" == "in-progress"


def test_the_groupings() -> None:
    assert {"finished", "failed", "cancelled"} == TERMINAL_STATUSES
    assert {"waiting-approval", "waiting-event", "waiting-timer"} == WAITING_STATUSES
    assert WAITING_STATES == WAITING_STATUSES
    assert records.TERMINAL_STATUSES is TERMINAL_STATUSES
    assert records.WAITING_STATUSES is WAITING_STATUSES
