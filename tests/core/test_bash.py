"""`smithers.tools.bash` against real processes: output, failures, sandbox, kill behaviour."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from smithers.errors import SmithersError
from smithers.tasks import TaskContext, current_task
from smithers.tools import ToolCommandFailed, bash, bash_async
from tests.core.conftest import Events
from tests.core.sandbox_checks import wait_gone


def of_type(events: Events, type_: str) -> list[dict[str, Any]]:
    return [fields for t, fields in events if t == type_]


def test_echo_returns_stdout_and_streams_events(tctx: TaskContext, events: Events) -> None:
    out = bash("sh", ["-c", "echo one; echo two >&2; printf three"])
    assert out == "one\nthree"
    lines = [(e["text"], e["stream"]) for e in of_type(events, "NodeOutput")]
    assert sorted(lines) == [("one", "stdout"), ("three", "stdout"), ("two", "stderr")]
    assert all(e["nodeId"] == "node-1" for e in of_type(events, "NodeOutput"))
    assert events[0][0] == "ToolCallStarted" and events[-1][0] == "ToolCallFinished"
    started, finished = events[0][1], events[-1][1]
    assert started["toolName"] == finished["toolName"] == "bash"
    assert started["nodeId"] == finished["nodeId"] == "node-1"
    assert started["toolCallId"] == finished["toolCallId"]
    assert finished["status"] == "ok"


def test_outside_a_task_uses_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert current_task.get() is None
    monkeypatch.chdir(tmp_path)
    assert bash("pwd") == f"{tmp_path.resolve()}\n"


def test_no_shell_interpretation(tctx: TaskContext) -> None:
    assert bash("echo", ["$HOME", "a;b", "*"]) == "$HOME a;b *\n"


def test_non_zero_exit_raises_with_exit_code(tctx: TaskContext, events: Events) -> None:
    with pytest.raises(ToolCommandFailed) as info:
        bash("sh", ["-c", "echo oops >&2; exit 3"])
    assert info.value.code == "TOOL_COMMAND_FAILED"
    assert info.value.exit_code == 3
    assert info.value.details["exitCode"] == 3
    assert "oops" in info.value.details["stderrTail"]
    assert of_type(events, "ToolCallFinished")[0]["status"] == "error"


def test_missing_program_is_a_command_failure(tctx: TaskContext) -> None:
    for network in (False, True):
        with pytest.raises(ToolCommandFailed) as info:
            bash("smithers-no-such-program", allow_network=network)
        assert info.value.exit_code == 127


def test_timeout_kills_every_process_of_the_command(tctx: TaskContext, events: Events) -> None:
    marker = f"smithers-bash-test-{secrets.token_hex(6)}"
    started = time.monotonic()
    with pytest.raises(SmithersError) as info:
        bash("sh", ["-c", f"sh -c 'sleep 30; : {marker}' & sleep 30"], timeout_ms=300)
    assert info.value.code == "TOOL_TIMEOUT"
    assert time.monotonic() - started < 5
    assert wait_gone(marker) == []
    assert of_type(events, "ToolCallFinished")[0]["status"] == "error"


def test_background_children_do_not_outlive_the_call(tctx: TaskContext) -> None:
    marker = f"smithers-bash-test-{secrets.token_hex(6)}"
    bash("sh", ["-c", f"sh -c 'sleep 30; : {marker}' >/dev/null 2>&1 &"])
    assert wait_gone(marker) == []


def test_cwd_inside_root(tctx: TaskContext, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert bash("pwd", cwd="sub") == f"{(tmp_path / 'sub').resolve()}\n"


def test_cwd_escape_is_refused(tctx: TaskContext, tmp_path: Path, events: Events) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    for cwd in ("../..", "link", str(tmp_path)):
        with pytest.raises(SmithersError) as info:
            bash("pwd", cwd=cwd, root_dir=str(root))
        assert info.value.code == "TOOL_PATH_ESCAPE"
        assert info.value.details == {"cwd": cwd}  # no host path beyond what the caller gave
    finished = of_type(events, "ToolCallFinished")
    assert [f["status"] for f in finished] == ["error"] * 3


def test_output_is_truncated(tctx: TaskContext, events: Events) -> None:
    code = "import sys; sys.stdout.write('x' * 1_000_000 + '\\n'); sys.stdout.flush()"
    out = bash("python3", ["-c", code], max_output_bytes=100)
    assert out == "x" * 100
    texts = [e["text"] for e in of_type(events, "NodeOutput")]
    assert texts == ["x" * 100, "[stdout truncated at 100 bytes]"]


def test_setting_cancelled_stops_the_command(tctx: TaskContext) -> None:
    timer = threading.Timer(0.3, tctx.cancelled.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(SmithersError) as info:
            bash("sleep", ["30"])
    finally:
        timer.cancel()
    assert info.value.code == "TOOL_CANCELLED"
    assert time.monotonic() - started < 3


@pytest.mark.anyio
async def test_bash_async_returns_stdout(tctx: TaskContext) -> None:
    assert await bash_async("echo", ["hi"]) == "hi\n"
    with pytest.raises(ToolCommandFailed):
        await bash_async("false")


@pytest.mark.anyio
async def test_cancelling_bash_async_kills_every_process(tctx: TaskContext, events: Events) -> None:
    marker = f"smithers-bash-test-{secrets.token_hex(6)}"
    started = time.monotonic()
    with anyio.move_on_after(0.5) as scope:
        await bash_async("sh", ["-c", f"setsid sh -c 'sleep 30; : {marker}' & sleep 30"])
    assert scope.cancelled_caught
    assert time.monotonic() - started < 3
    assert wait_gone(marker) == []
    assert of_type(events, "ToolCallFinished")[0]["status"] == "error"
