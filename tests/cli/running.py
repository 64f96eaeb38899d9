"""Driving `smithers` as a user does: a subprocess on pipes, or in a pseudo-terminal whose
screen is read back through a terminal emulator (pyte)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shlex
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pyte

import smithers
from smithers.queries import get_run
from tests.helpers import EXAMPLES, ROOT

WORKFLOWS = ROOT / "tests" / "cli" / "workflows"
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


def resume_command(output: str) -> list[str]:
    """The command `up` printed to resume a paused run, as arguments for `Up`."""
    match = re.search(r"^run paused \((?:Ctrl-C|SIGTERM)\); resume it with:\n  (.+)$", output, re.M)
    assert match, output
    words = shlex.split(match[1])
    assert words[:2] == ["smithers", "up"], words
    return words[2:]


class Terminal:
    """A child whose stdin, stdout and stderr are a pseudo-terminal of `columns` x `rows`
    (TERM=xterm-256color); all it writes goes through pyte, whose screen `lines` reads."""

    def __init__(self, args: list[str], columns: int = 50, rows: int = 60) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        self.master = master
        self.data = b""
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        try:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
            )
        finally:
            os.close(slave)

    @property
    def lines(self) -> list[str]:
        """The screen's lines, without trailing blanks."""
        return [line.rstrip() for line in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(line for line in self.lines if line)

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
            self.stream.feed(chunk)
        return True

    def until(self, check: Callable[[str], bool], what: str, timeout: float = 20.0) -> None:
        """Read until the screen's text passes `check`."""
        deadline = time.monotonic() + timeout
        while not check(self.text):
            assert time.monotonic() < deadline, f"no {what} on the screen:\n{self.text}"
            if not self.pump(0.1) and not check(self.text):
                raise AssertionError(f"closed before {what}:\n{self.text}")

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
