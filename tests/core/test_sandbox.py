"""The bash sandbox against real escapes, as whoever runs pytest (root in CI) and as uid 65534.

The checks themselves are one table, tests/core/sandbox_checks.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from secrets import token_hex

import pytest

from smithers.errors import SmithersError
from smithers.tasks import TaskContext
from smithers.tools import bash
from smithers.tools.sandbox import forget_probe
from tests.core.conftest import Events
from tests.core.sandbox_checks import CHECKS, SECRET_ENV, Check, Host, run_check
from tests.helpers import ROOT

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _scratch_dir(prefix: str) -> Path:
    """A directory uid 65534 can reach and write (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    path.chmod(0o777)
    return path


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    """A real HTTP server and UNIX socket on the host, and a directory outside every root."""
    outside = _scratch_dir("smithers-outside-")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(outside / "host.sock"))
    (outside / "host.sock").chmod(0o777)
    unix.listen(8)
    try:
        yield Host(
            port=server.server_address[1],
            pid=os.getpid(),
            outside=str(outside),
            unix_socket=str(outside / "host.sock"),
            marker=f"smithers-sandbox-test-{token_hex(6)}",
        )
    finally:
        unix.close()
        server.shutdown()
        server.server_close()
        shutil.rmtree(outside)


def _name(check: Check) -> str:
    return check.name


@pytest.mark.parametrize("check", CHECKS, ids=_name)
def test_sandbox(check: Check, host: Host, tmp_path: Path) -> None:
    assert run_check(check, host, tmp_path / "root") is None


def _stage_code(into: Path) -> str:
    """What the unprivileged process imports, in a folder it can reach: the checkout and
    the venv may sit in folders only root may enter (a CI clone in `mktemp -d`, `/root`).
    Hard links where the filesystem allows (instant), copies elsewhere."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    site = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "smithers", into / "smithers", copy_function=link, ignore=ignore)
    for name in ("tests/__init__.py", "tests/core/__init__.py", "tests/core/sandbox_checks.py"):
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        link(str(ROOT / name), str(into / name))
    shutil.copytree(site, into / "site", copy_function=link, ignore=ignore, symlinks=True)
    for path in into.rglob("*"):
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444)
    return f"{into}:{into / 'site'}"


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root to switch to uid 65534 (CI is root)")
def test_sandbox_as_an_unprivileged_user(host: Host) -> None:
    roots = _scratch_dir("smithers-unprivileged-")
    code = _scratch_dir("smithers-code-")
    report_to = [json.dumps(asdict(host)), str(roots)]
    try:
        python_path = _stage_code(code)
        proc = subprocess.run(
            [*AS_NOBODY, "/usr/bin/python3", "-B", "-m", "tests.core.sandbox_checks", *report_to],
            cwd=code,
            env={"PATH": os.environ["PATH"], "HOME": str(roots), "PYTHONPATH": python_path},
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        report = json.loads(proc.stdout)
    finally:
        shutil.rmtree(roots)
        shutil.rmtree(code)
    assert report["uid"] == NOBODY
    assert report["results"] == {check.name: None for check in CHECKS}


@pytest.mark.skipif(os.geteuid() != 0, reason="shows what root gets unconfined (CI is root)")
@pytest.mark.parametrize("check", [c for c in CHECKS if c.real_as_root], ids=_name)
def test_each_escape_works_unconfined_as_root(check: Check, host: Host, tmp_path: Path) -> None:
    """The escapes are real: the same argv, run without the sandbox, gets out."""
    (tmp_path / "given.txt").write_text("given\n")
    try:
        proc = subprocess.run(
            check.argv(host, tmp_path),
            cwd=tmp_path,
            env={**os.environ, SECRET_ENV: "hunter2"},
            capture_output=True,
            timeout=10,
            check=False,
        )
    finally:
        (Path(host.outside) / "escaped").unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.fixture
def fresh_probe() -> Iterator[None]:
    forget_probe()
    yield
    forget_probe()


def test_no_bwrap_means_no_run(
    tctx: TaskContext,
    events: Events,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_probe: None,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SmithersError) as info:
        bash("/usr/bin/touch", ["ran"])
    assert info.value.code == "TOOL_SANDBOX_UNAVAILABLE"
    assert info.value.status == 500
    assert "bubblewrap" in info.value.message and "\n" not in info.value.message
    assert not (tmp_path / "ran").exists()
    finished = [f for t, f in events if t == "ToolCallFinished"]
    assert finished == [{**finished[0], "status": "error", "error": info.value.to_json()}]


# A user namespace whose limit for nested ones is 0: the kernel refuses new ones in it.
_USERNS_OFF_PREFIX = [
    *("unshare", "--user", "--map-root-user", "sh", "-c"),
    *('echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"),
]
_USERNS_OFF = """
import json, sys
from smithers.errors import SmithersError
from smithers.tools import bash
try:
    bash("touch", ["ran"], root_dir=sys.argv[1])
except SmithersError as exc:
    print(json.dumps(exc.to_json()))
"""


def test_user_namespaces_off_means_no_run(tmp_path: Path) -> None:
    """A real host where user namespaces are off, as far as bwrap can tell."""
    proc = subprocess.run(
        [*_USERNS_OFF_PREFIX, sys.executable, "-c", _USERNS_OFF, str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    error = json.loads(proc.stdout)
    assert error["code"] == "TOOL_SANDBOX_UNAVAILABLE"
    assert "namespace" in error["details"]["reason"]
    assert not (tmp_path / "ran").exists()
