"""The terminal view of `smithers up`: a real process in a 50-column pseudo-terminal, its
screen read back through a terminal emulator (pyte), as a person would see it."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from tests.cli.running import APPROVAL, CLI, WORKFLOWS, Terminal, db_status, smithers_cli

NARROW = str(WORKFLOWS / "narrow.py")
LONG_LABEL = "Gather every input this workflow needs before the rounds of review begin"


def tree_of(lines: list[str], header: str) -> list[str]:
    """The view's last picture: from its header to the outputs JSON (or the end)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = next((i for i, line in enumerate(lines) if line == "{"), len(lines))
    return lines[start:end]


def unwrapped(lines: list[str], columns: int) -> list[str]:
    """The screen's lines with the terminal's own wrapping undone (a full line goes on)."""
    out: list[str] = []
    going_on = False
    for line in lines:
        if going_on:
            out[-1] += line
        else:
            out.append(line)
        going_on = len(line) == columns
    return out


def waiting_in_round(count: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return all(
            shown in text
            for shown in (f"loop (iteration {count} of 3)", "tty-1  waiting-approval", "approve:")
        )

    return check


def approve(run_id: str, db: str, *more: str) -> None:
    decided = smithers_cli("runs", "approve", run_id, "check", *more, "--db", db)
    assert decided.returncode == 0, decided.stderr


def test_a_narrow_terminal_shows_each_node_once_with_its_state(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a-folder-with-a-long-name' / 'narrow.db'}"
    (tmp_path / "a-folder-with-a-long-name").mkdir()
    term = Terminal([*CLI, "up", NARROW, "--db", db, "--run-id", "tty-1"], columns=50)
    try:
        # Round one waits for `check`; the hint wraps in 50 columns and is drawn once.
        term.until(waiting_in_round(1), "round 1")
        assert term.text.count("waiting for approval: Is this round") == 1, term.text
        assert term.text.count("narrow tty-1  ") == 1, term.text
        approve("tty-1", db)
        term.until(waiting_in_round(2), "round 2")
        assert term.text.count("narrow tty-1  ") == 1, term.text
        assert "--iteration 1" in term.text, term.text  # what decides the second round
        approve("tty-1", db, "--iteration", "1")
        assert term.finish() == 0, term.text
    finally:
        term.close()
    tree = tree_of(term.lines, "narrow tty-1  ")
    assert tree[0].startswith("narrow tty-1  finished  "), term.text
    shown = "\n".join(tree)
    # The long label is wrapped inside its column, whole, beside its state.
    first = next(i for i, line in enumerate(tree) if "✔ Gather every" in line)
    width = tree[first].index("finished")
    rows = tree[first : next(i for i, line in enumerate(tree) if "↻ rounds" in line)]
    assert " ".join(" ".join(line[:width] for line in rows).split()) == f"✔ {LONG_LABEL}"
    labels = {
        "✔ Gather every": "finished",
        "↻ rounds": "loop (done after 2 iterations)",
        "✔ draft": "finished",
        "✔ check": "finished",
        "✔ publish": "finished",
    }
    for label, state in labels.items():
        rows = [line for line in tree if label in line]
        assert len(rows) == 1, f"{label!r} in:\n{shown}"
        assert state in rows[0], shown
    # Nothing left of earlier pictures anywhere on the screen.
    for stale in ("running", "pending", "waiting", "in-progress", "approve:"):
        assert stale not in term.text, term.text
    assert term.text.count("tty-1  ") == 1, term.text
    # States are coloured: `finished` in green.
    row = next(y for y, line in enumerate(term.lines) if "✔ publish" in line)
    x = term.lines[row].index("finished")
    assert term.screen.buffer[row][x].fg == "green", term.text
    assert "Traceback" not in term.text


def test_ctrl_c_in_the_terminal_leaves_the_view_paused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tty.db'}"
    args = [*CLI, "up", APPROVAL, "--db", db, "--run-id", "tty-2", "--input", '{"msg": "hi"}']
    term = Terminal(args, columns=50)
    try:
        term.until(lambda text: "approve:" in text, "the approve hint")
        term.proc.send_signal(signal.SIGINT)
        assert term.finish() == 130, term.text
    finally:
        term.close()
    tree = tree_of(term.lines, "approval tty-2  ")
    assert tree[0].startswith("approval tty-2  paused  "), term.text
    command = f"smithers up {APPROVAL} --run-id tty-2 --resume --db {db}"
    assert f"  {command}" in unwrapped(term.lines, 50), term.text
    assert db_status(db, "tty-2") == "paused"
    assert "Traceback" not in term.text
    hidden = term.data.rindex(b"\x1b[?25l")
    assert b"\x1b[?25h" in term.data[hidden:]  # the cursor is back


def test_a_failing_task_shows_its_traceback_in_the_terminal(tmp_path: Path) -> None:
    raising = str(WORKFLOWS / "raising.py")
    term = Terminal([*CLI, "up", raising, "--db", str(tmp_path / "raise.db")], columns=80)
    try:
        assert term.finish() == 1, term.text
    finally:
        term.close()
    words = " ".join(term.text.split())  # the view wraps long lines at spaces
    assert 'raising.py", line' in words, term.text  # the user's file, not a copy
    assert "in read_the_settings" in words, term.text
