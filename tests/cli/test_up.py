"""`smithers up` driven end to end: `--serve`, Ctrl-C, and the terminal view under a pty."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import smithers
from smithers.queries import get_run, list_runs
from tests.helpers import EXAMPLES, ROOT

APPROVAL = str(EXAMPLES / "approval.py")
CLI = [sys.executable, "-m", "smithers_cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smithers_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Up:
    """`smithers up ...` with its stdout and stderr read by threads (never blocking the test)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "up", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def stdout(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)

    @property
    def stderr(self) -> str:
        return "".join(f"{line}\n" for line in self.errors)

    def line(self, predicate: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None:
                for reader in self.readers:
                    reader.join(5)
            match = next((line for line in list(self.lines) if predicate(line)), None)
            if match is None and self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} before {what}:\n{self.output}")
            return match

        line: str = wait_for(found, what, timeout)
        return line

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(5)
        return code

    @property
    def output(self) -> str:
        return f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def first_line(up: Up) -> re.Match[str]:
    line = up.line(lambda text: text.startswith("run "), "the first line")
    assert up.lines[0] == line, up.output
    match = re.fullmatch(r"run (\S+) \((\w+)\) in (\S+?)(?:, serving (http://\S+))?", line)
    assert match, line
    return match


def outputs_of(stdout: str) -> Any:
    """The final outputs: the indented JSON object printed when the run finished."""
    start = stdout.index("\n{\n") + 1
    end = stdout.index("\n}\n", start) + 2
    return json.loads(stdout[start:end])


def get_view(url: str) -> dict[str, Any] | None:
    try:
        res = httpx.get(f"{url}/", timeout=5)
    except httpx.TransportError:
        return None
    assert res.status_code == 200, res.text
    view: dict[str, Any] = res.json()
    return view


def status_is(url: str, status: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        view = get_view(url)
        return view if view is not None and view["status"] == status else None

    return check


def db_status(db: str, run_id: str) -> str | None:
    store = smithers.open_store(db)
    try:
        run = get_run(store, run_id)
        return None if run is None else run.status
    finally:
        store.close()


# -- --serve ----------------------------------------------------------------------------------


def test_serve_approve_over_http_then_keep_serving_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    up = Up(APPROVAL, "--serve", "--port", str(port), "--db", db, "--input", '{"msg": "hi"}')
    try:
        match = first_line(up)
        run_id, url = match[1], match[4]
        assert match[2] == "approval" and match[3] == db
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=5).json() == {"ok": True}

        view = wait_for(status_is(url, "waiting-approval"), "waiting-approval")
        assert view["runId"] == run_id and view["workflowName"] == "approval"
        assert view["runState"]["blocked"]["nodeId"] == "review"
        up.line(lambda text: text == f"  or:      curl -X POST {url}/approve/review", "hint")

        res = httpx.post(f"{url}/approve/review", json={"decidedBy": "tester"}, timeout=10)
        assert res.status_code == 200, res.text
        assert res.json() == {"runId": run_id, "nodeId": "review", "iteration": 0, "approved": True}

        wait_for(status_is(url, "finished"), "finished")
        up.line(lambda text: text.startswith("run finished; still serving"), "still serving")
        # The run is over but the app keeps serving it until Ctrl-C.
        time.sleep(0.3)
        assert up.proc.poll() is None, up.output
        view = get_view(url)
        assert view is not None and view["status"] == "finished"
        assert view["finishedAtMs"] is not None
        again = httpx.post(f"{url}/approve/review", json={}, timeout=10)
        assert again.status_code == 409, again.text

        up.proc.send_signal(signal.SIGINT)
        assert up.wait() == 0, up.output
    finally:
        up.kill()
    assert "review: approved by tester" in up.lines
    assert "run finished" in up.lines
    assert '"approved_by": "tester"' in up.stdout
    assert outputs_of(up.stdout)["ship"] == {"text": "HI", "approved_by": "tester"}
    assert "Traceback" not in up.stderr
    assert get_view(url) is None  # no longer serving
    assert db_status(db, run_id) == "finished"


@pytest.mark.parametrize(
    ("verb", "code", "status"), [("approve", 0, "finished"), ("deny", 1, "failed")]
)
def test_serve_exit_on_finish(tmp_path: Path, verb: str, code: int, status: str) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'exit.db'}"
    args = ("--serve", "--port", str(port), "--exit-on-finish", "--run-id", f"eof-{verb}")
    up = Up(APPROVAL, *args, "--db", db, "--input", '{"msg": "hi"}')
    try:
        url = first_line(up)[4]
        wait_for(status_is(url, "waiting-approval"), "waiting-approval")
        res = httpx.post(f"{url}/{verb}/review", json={"decidedBy": "tester"}, timeout=10)
        assert res.status_code == 200, res.text
        assert up.wait() == code, up.output  # by itself, no Ctrl-C
    finally:
        up.kill()
    assert db_status(db, f"eof-{verb}") == status
    assert not any("still serving" in line for line in up.lines), up.output
    assert "Traceback" not in up.stderr
    if verb == "approve":
        assert outputs_of(up.stdout)["ship"] == {"text": "HI", "approved_by": "tester"}
    else:
        assert "review: denied by tester" in up.lines
        assert any(line.startswith("run failed: ") for line in up.lines), up.output


# -- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.parametrize("serve", [False, True], ids=["foreground", "serve"])
def test_ctrl_c_cancels_the_run_and_exits_130(tmp_path: Path, serve: bool) -> None:
    db = f"sqlite:///{tmp_path / 'slow.db'}"
    extra = ("--serve", "--port", str(free_port())) if serve else ()
    up = Up(str(EXAMPLES / "slow.py"), "--db", db, "--run-id", "slow-1", *extra)
    try:
        url = first_line(up)[4]
        assert (url is not None) == serve
        up.line(lambda text: text == "wait | sleeping 60.0 s", "the task to start")
        assert db_status(db, "slow-1") == "running"
        up.proc.send_signal(signal.SIGINT)
        assert up.wait() == 130, up.output
    finally:
        up.kill()
    assert db_status(db, "slow-1") == "cancelled"
    assert up.lines[-2:] == ["wait: cancelled", "run cancelled"], up.output
    assert "Traceback" not in up.stderr
    if url is not None:
        assert get_view(url) is None


# -- the terminal view -------------------------------------------------------------------------


class Pty:
    """A child whose stdin, stdout and stderr are a pseudo-terminal; `text` is all it wrote."""

    def __init__(self, args: list[str]) -> None:
        master, slave = os.openpty()
        self.master = master
        self.data = b""
        try:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, close_fds=True
            )
        finally:
            os.close(slave)

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def pump(self, seconds: float) -> bool:
        """Read what arrives for up to `seconds`; False once the child closed the terminal."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every writer of the slave is gone
                return False
            if not chunk:
                return False
            self.data += chunk
        return True

    def until(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert time.monotonic() < deadline, f"no {needle!r} in:\n{self.text!r}"
            if not self.pump(0.1) and needle not in self.text:
                raise AssertionError(f"closed before {needle!r}:\n{self.text!r}")

    def finish(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.1)
        code = self.proc.wait(max(deadline - time.monotonic(), 0.1))
        while self.pump(0.1):
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


def test_terminal_view_redraws_in_place_and_ends_finished(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tty.db'}"
    term = Pty([*CLI, "up", APPROVAL, "--db", db, "--run-id", "tty-1", "--input", '{"msg": "hi"}'])
    try:
        approve = f"smithers runs approve tty-1 review --db {db}"
        term.until(approve)
        waiting = term.text
        assert waiting.startswith(f"run tty-1 (approval) in {db}\r\n"), waiting
        assert re.search(r"\x1b\[\d+F\x1b\[J", waiting), waiting
        for node in ("draft", "review", "ship"):
            assert node in waiting
        frame = waiting.rsplit("\x1b[J", 1)[-1]
        assert "approval tty-1  [" in frame
        assert re.search(r"✔ draft\s+finished", frame), frame
        assert re.search(r"⏸ review\s+waiting-approval", frame), frame
        assert re.search(r"· ship\s+pending", frame), frame
        assert "review: waiting for approval: Ship the draft?" in frame
        assert approve in frame

        decided = smithers_cli("runs", "approve", "tty-1", "review", "--db", db, "--by", "tester")
        assert decided.returncode == 0, decided.stderr
        assert json.loads(decided.stdout)["approved"] is True

        assert term.finish() == 0, term.text
    finally:
        term.close()
    text = term.text
    final = text.rsplit("\x1b[J", 1)[-1]
    assert final.startswith("approval tty-1  [finished]\r\n"), final
    for node in ("draft", "review", "ship"):
        assert re.search(rf"✔ {node}\s+finished", final), final
    assert "waiting for approval" not in final  # the hint is gone once decided
    assert '"approved_by": "tester"' in final
    assert "Traceback" not in text


def test_piped_output_is_plain_lines(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'pipe.db'}"
    up = Up(APPROVAL, "--db", db, "--run-id", "pipe-1", "--input", '{"msg": "hi"}')
    try:
        first_line(up)
        approve = f"  approve: smithers runs approve pipe-1 review --db {db}"
        up.line(lambda text: text == approve, "the approve hint")
        decided = smithers_cli("runs", "approve", "pipe-1", "review", "--db", db, "--by", "tester")
        assert decided.returncode == 0, decided.stderr
        assert up.wait() == 0, up.output
    finally:
        up.kill()
    assert "\x1b[" not in up.stdout
    lines = up.lines
    assert lines[1:5] == [
        "run started",
        "draft: started",
        "draft: finished",
        "review: waiting for approval: Ship the draft?",
    ]
    assert lines[5] == approve
    assert lines[6] == f"  deny:    smithers runs deny pipe-1 review --db {db}"
    assert "review: approved by tester" in lines and "run finished" in lines
    assert outputs_of(up.stdout)["ship"] == {"text": "HI", "approved_by": "tester"}


def test_input_file(tmp_path: Path) -> None:
    given = tmp_path / "input.json"
    given.write_text('{"name": "file"}')
    db = str(tmp_path / "in.db")
    done = smithers_cli("up", str(EXAMPLES / "hello.py"), "--db", db, "--input-file", str(given))
    assert done.returncode == 0, done.stderr
    assert outputs_of(done.stdout) == {"greet": {"message": "Hello, file!"}}


# -- bugs --------------------------------------------------------------------------------------


def _up_on_a_taken_port(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    db = f"sqlite:///{tmp_path / 'taken.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = smithers_cli("up", str(EXAMPLES / "hello.py"), "--db", db, "--serve", "--port", port)
    return done, db


def test_serve_on_a_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    done, _ = _up_on_a_taken_port(tmp_path)
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("smithers: ")


def test_serve_on_a_taken_port_leaves_no_running_run(tmp_path: Path) -> None:
    done, db = _up_on_a_taken_port(tmp_path)
    assert done.returncode != 0
    store = smithers.open_store(db)
    try:
        assert [r["status"] for r in list_runs(store) if r["status"] == "running"] == []
    finally:
        store.close()


def test_reusing_a_run_id_is_a_one_line_error(tmp_path: Path) -> None:
    db = str(tmp_path / "again.db")
    hello = str(EXAMPLES / "hello.py")
    first = smithers_cli("up", hello, "--db", db, "--run-id", "same")
    assert first.returncode == 0, first.stderr
    again = smithers_cli("up", hello, "--db", db, "--run-id", "same")
    assert again.returncode in (1, 2), again.stderr
    assert "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert again.stderr.startswith("smithers: ")
