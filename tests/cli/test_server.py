"""`smithers server` in a subprocess: its banner, a port in use, Ctrl-C with streams open,
the environment's defaults, and databases it cannot open."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli.helpers import CLI, clean_env, one_line_error, smithers
from tests.conftest import pg_schema
from tests.helpers import EXAMPLES, ROOT

BANNER = re.compile(
    r"smithers server on (http://127\.0\.0\.1:\d+) \(root (.+), db (.+), auth (on|off)\)"
)
# Importing this makes PostgreSQL's driver unimportable, as if it were not installed.
NO_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; from smithers_cli import main; sys.exit(main())"
)


@dataclass
class Running:
    """A server and what it printed (read by a thread, so nothing blocks the test)."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    reader: threading.Thread = field(init=False)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def banner(self) -> list[str]:
        return [
            line for line in self.lines if line.startswith(("smithers server on ", "start a run: "))
        ]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> str:
        """Send `sig`, wait for the exit; everything the server printed."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        self.reader.join(5)
        return "\n".join(self.lines)


@contextmanager
def serving(*args: str, cwd: Path = ROOT, **env: str) -> Iterator[Running]:
    """`smithers server --port 0 ARGS`, serving: the port is read back from its banner."""
    proc = subprocess.Popen(
        [*CLI, "server", "--port", "0", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(**env),
    )
    running = Running(proc)
    running.reader = threading.Thread(target=running.read, daemon=True)
    running.reader.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            found = BANNER.match(running.lines[0]) if running.lines else None
            if found and not running.url:
                running.url = found.group(1)
            try:
                if running.url and httpx.get(f"{running.url}/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not start: " + "\n".join(running.lines))
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def curl(line: str, **env: str) -> str:
    """Run the banner's `start a run: curl ...` line in a shell; what it printed."""
    done = subprocess.run(
        line.removeprefix("start a run: "),
        shell=True,
        capture_output=True,
        text=True,
        timeout=15,
        env=clean_env(**env),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_root(path: Path, *names: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(EXAMPLES / name, path / name)
    return path


def test_a_port_in_use_is_one_line_and_no_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = smithers("server", "--port", port, "--root", str(EXAMPLES), cwd=tmp_path)
    assert done.stdout == ""
    said = one_line_error(done, 2)
    assert said.startswith(f"smithers: cannot listen on 127.0.0.1:{port}: ")


def test_ctrl_c_ends_open_event_streams_and_exits_at_once(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", "approval.py")
    db = f"sqlite:///{tmp_path / 'srv.db'}"
    with serving("--root", str(root), "--db", db) as server:
        started = httpx.post(
            f"{server.url}/v1/runs", json={"workflowPath": "approval.py", "input": {"msg": "hi"}}
        )
        run_id = started.json()["runId"]
        ended: list[str] = []
        opened = threading.Barrier(3)

        def follow() -> None:
            with httpx.stream("GET", f"{server.url}/v1/runs/{run_id}/events", timeout=30) as res:
                opened.wait()
                try:
                    lines = list(res.iter_lines())
                except httpx.HTTPError as exc:  # cut off mid-stream
                    ended.append(f"broken: {exc!r}")
                else:
                    ended.append("complete" if "event: smithers" in lines else "empty")

        streams = [threading.Thread(target=follow) for _ in range(2)]
        for stream in streams:
            stream.start()
        opened.wait(timeout=10)
        time.sleep(0.3)  # the run parks on `review`, the streams stay open
        sent = time.monotonic()
        output = server.stop(timeout=5)  # generous: it takes well under a second
        took = time.monotonic() - sent
        for stream in streams:
            stream.join(timeout=5)
    assert server.proc.returncode == 130, output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert output.strip().endswith("smithers: interrupted"), output
    assert ended == ["complete", "complete"], ended
    print(f"exited {took:.2f} s after SIGINT")  # shown with -s: about 0.3 s here


def test_the_banner_names_a_workflow_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "lib").mkdir(parents=True)
    (root / "aaa_notes.py").write_text("NOTES = 1\n")  # not a workflow
    (root / "_private.py").write_text("from smithers import create_smithers\n")
    shutil.copy(EXAMPLES / "hello.py", root / "lib" / "greet.py")
    with serving("--root", str(root)) as server:
        line = server.banner[1]
        started = curl(line)
        server.stop()
    assert line == (
        f"start a run: curl -X POST {server.url}/v1/runs -H 'content-type: application/json' "
        """-d '{"workflowPath": "lib/greet.py", "input": {}}'"""
    )
    assert '"runId"' in started  # the line works as printed
    (root / "lib" / "greet.py").unlink()
    with serving("--root", str(root)) as bare:
        assert len(bare.banner) == 1  # no workflow: no curl line
        bare.stop()


def test_the_banner_carries_the_token_header_not_the_token(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", "hello.py")
    token = "t0ken-never-shown"
    with serving("--root", str(root), "--token-env", "MY_TOKEN", MY_TOKEN=token) as server:
        banner = "\n".join(server.banner)
        started = curl(server.banner[1], MY_TOKEN=token)
        listing = next(line for line in server.lines if line.startswith("its workflows"))
        listed = curl(listing.removeprefix("its workflows and their input: "), MY_TOKEN=token)
        output = server.stop()
    assert [w["path"] for w in json.loads(listed)] == ["hello.py"]
    assert "auth on" in banner and token not in banner + output
    assert '-H "Authorization: Bearer $MY_TOKEN"' in server.banner[1]
    assert '"runId"' in started  # the line works as printed, the token from the environment


def test_passwords_never_appear_in_the_banner(tmp_path: Path) -> None:
    with pg_schema() as url:
        secret = url.replace("postgres@", "postgres:hunter2-secret@", 1)
        assert secret != url
        with serving("--root", str(EXAMPLES), "--db", secret) as server:
            output = server.stop()
    assert "hunter2" not in output
    assert "postgres:***@127.0.0.1" in server.banner[0]


def test_the_environment_names_the_database_and_the_root(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", "hello.py")
    db = tmp_path / "env.db"
    with serving(cwd=tmp_path, SMITHERS_DB="env.db", SMITHERS_ROOT="root") as server:
        assert server.banner[0].endswith(f"(root {root}, db sqlite:///{db}, auth off)")
        run_id = httpx.post(f"{server.url}/v1/runs", json={"workflowPath": "hello.py"}).json()
        listed = httpx.get(f"{server.url}/v1/runs").json()
        server.stop()
    assert run_id["runId"] in str(listed)
    flags = smithers("server", "--root", str(tmp_path / "none"), SMITHERS_ROOT=str(root))
    assert "--root" in one_line_error(flags, 2)  # a flag wins over the environment
    env_root = smithers("server", SMITHERS_ROOT=str(tmp_path / "none"))
    assert "SMITHERS_ROOT" in one_line_error(env_root, 2)


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list", "--db", "postgresql://me:hunter2@127.0.0.1/nowhere"),
        ("server", "--db", "postgres://me:hunter2@127.0.0.1/nowhere", "--root", str(EXAMPLES)),
        ("up", str(EXAMPLES / "hello.py"), "--db", "postgresql+psycopg://me:hunter2@h/x"),
    ],
)
def test_postgresql_without_its_driver_names_the_extra(args: tuple[str, ...]) -> None:
    done = subprocess.run(
        [CLI[0], "-c", NO_PSYCOPG, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    said = one_line_error(done, 1)
    assert "pip install 'smithers-asgi[postgres]'" in said
    assert "hunter2" not in done.stdout + done.stderr
