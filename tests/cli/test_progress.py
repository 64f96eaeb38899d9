"""What the views of `smithers up` and `runs watch` say about events: lines, times, loops."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from smithers_cli.lines import describe, duration, open_asks
from smithers_cli.live import _Run


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0, "0.0s"),
        (1_234, "1.2s"),
        (59_940, "59.9s"),
        (59_960, "1m 00s"),
        (184_000, "3m 04s"),
        (7_500_000, "2h 05m"),
        (273_600_000, "3d 04h"),
    ],
)
def test_durations_read_as_people_say_them(ms: int, shown: str) -> None:
    assert duration(ms) == shown


def test_a_failure_shows_its_traceback_beneath_its_line() -> None:
    traceback = (
        'Traceback (most recent call last):\n  File "job.py", line 3, in parse\nKeyError: 1\n'
    )
    error = {"code": "TASK_FAILED", "message": "KeyError: 1", "traceback": traceback}
    line = describe({"type": "NodeFailed", "nodeId": "parse", "error": error})
    assert line == (
        "parse: failed: KeyError: 1\n"
        "  Traceback (most recent call last):\n"
        '    File "job.py", line 3, in parse\n'
        "  KeyError: 1"
    )
    without = {"code": "TASK_FAILED", "message": "KeyError: 1"}
    assert describe({"type": "NodeFailed", "nodeId": "parse", "error": without}) == (
        "parse: failed: KeyError: 1"
    )


def test_a_resumed_run_still_waits_for_what_nobody_answered() -> None:
    history = [
        {"type": "ApprovalRequested", "nodeId": "a", "iteration": 0},
        {"type": "ApprovalGranted", "nodeId": "a", "iteration": 0},
        {"type": "ApprovalRequested", "nodeId": "a", "iteration": 1},
        {"type": "NodeWaitingEvent", "nodeId": "paid", "signalName": "paid"},
    ]
    assert [(p["nodeId"], p.get("iteration")) for p in open_asks(history)] == [
        ("a", 1),
        ("paid", None),
    ]


def _loop_frame(iteration: int, until: str) -> dict[str, object]:
    return {
        "tag": "workflow",
        "props": {"name": "w"},
        "children": [
            {
                "tag": "loop",
                "props": {"id": "rounds", "iteration": str(iteration), "maxIterations": "5"}
                | {"until": until},
                "children": [
                    {"tag": "task", "props": {"id": "draft", "iteration": str(iteration)}},
                    {"tag": "approval", "props": {"id": "check"}},  # no iteration of its own
                ],
            }
        ],
    }


def _render(run: _Run) -> str:
    out = io.StringIO()
    Console(file=out, width=60, color_system=None).print(run.picture())
    return out.getvalue()


def test_the_live_view_shows_a_loops_round_and_its_nodes_in_that_round() -> None:
    run = _Run("w r1")
    for p in [
        {"type": "RunStarted", "timestampMs": 1_000},
        {"type": "NodeFinished", "nodeId": "check", "iteration": 0, "timestampMs": 2_000},
        {"type": "NodeStarted", "nodeId": "draft", "iteration": 2, "timestampMs": 3_000},
        {"type": "NodeFinished", "nodeId": "draft", "iteration": 2, "timestampMs": 4_500},
        {"type": "NodeWaitingApproval", "nodeId": "check", "iteration": 2, "timestampMs": 4_600},
        {"type": "ApprovalRequested", "nodeId": "check", "iteration": 2, "timestampMs": 4_600},
    ]:
        run.apply(p, lambda p: "check: waiting" if p["type"] == "ApprovalRequested" else None)
    run.tree = _loop_frame(2, "false")
    lines = [line.rstrip() for line in _render(run).splitlines()]
    assert lines[1].split() == ["↻", "rounds", "loop", "(iteration", "3", "of", "5)"]
    assert lines[2].split() == ["✔", "draft", "finished", "1.5s"]
    assert lines[3].split()[:3] == ["⏸", "check", "waiting-approval"]
    assert lines[4] == "check: waiting"
    run.apply({"type": "ApprovalGranted", "nodeId": "check", "iteration": 2}, lambda p: None)
    run.apply({"type": "RunFinished", "timestampMs": 65_000}, lambda p: None)
    run.tree = _loop_frame(2, "true")
    lines = [line.rstrip() for line in _render(run).splitlines()]
    assert lines[0].split() == ["w", "r1", "finished", "1m", "04s"]
    assert "loop (done after 3 iterations)" in lines[1]
    assert "check: waiting" not in lines
