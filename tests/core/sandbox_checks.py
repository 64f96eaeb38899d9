"""One table of ways out of the bash sandbox, and of ordinary work that must still succeed.

Used in-process by tests/core/test_sandbox.py (as whoever runs pytest, root in CI) and,
through `python -m tests.core.sandbox_checks HOST_JSON ROOT`, by the same tests under an
unprivileged uid, so both run exactly the same checks.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smithers.errors import SmithersError
from smithers.tools import bash

SECRET_ENV = "SMITHERS_SANDBOX_TEST_SECRET"
PG_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"


@dataclass(frozen=True)
class Host:
    """What lives on the host, outside any sandbox: the things a task must not reach."""

    port: int  # an HTTP server on the host's 127.0.0.1 answering GET /health
    pid: int  # a host process (the one serving `port`)
    outside: str  # a directory outside every root, writable by the sandbox's host uid
    unix_socket: str  # a listening UNIX socket in `outside`
    marker: str  # a string in the argv of processes that must not outlive a call


@dataclass(frozen=True)
class Check:
    name: str
    argv: Callable[[Host, Path], list[str]]
    expect: str  # "fails" (an escape), "ok" (ordinary work) or "timeout"
    network: bool = False
    stdout: str | None = None
    # Extra condition checked on the host after the call: None if it holds, else why not.
    after: Callable[[Host, Path], str | None] | None = None
    # Whether the same argv, run unconfined as root, does get out (so the check is real).
    real_as_root: bool = False


def _py(code: str) -> list[str]:
    return ["python3", "-c", code]


def _connect_tcp(host: Host, _root: Path) -> list[str]:
    return _py(f"import socket; socket.create_connection(('127.0.0.1', {host.port}), timeout=2)")


def _connect_unix(path: str) -> list[str]:
    return _py(f"import socket; socket.socket(socket.AF_UNIX).connect({path!r})")


def _curl(host: Host) -> list[str]:
    return ["curl", "-sf", "--max-time", "3", f"http://127.0.0.1:{host.port}/health"]


def _setns(host: Host, _root: Path) -> list[str]:
    # Debian's python3 (3.11) has no os.setns, so go through libc.
    return _py(
        "import ctypes, os, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"fd = os.open('/proc/{host.pid}/ns/net', os.O_RDONLY)\n"
        "if libc.setns(fd, 0x40000000) != 0:\n"
        "    raise OSError(ctypes.get_errno(), 'setns')\n"
        f"socket.create_connection(('127.0.0.1', {host.port}), timeout=2)\n"
    )


def _keyctl(_host: Host, _root: Path) -> list[str]:
    """Look up the user keyring: the first step to linking it and reading its keys."""
    return _py(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "nr = {'x86_64': 250, 'aarch64': 219}[os.uname().machine]\n"
        "if libc.syscall(nr, 0, ctypes.c_long(-4), 0) < 0:\n"
        "    raise OSError(ctypes.get_errno(), 'keyctl')\n"
    )


def _setsid_child(host: Host, root: Path) -> str:
    return f"sleep 30; touch {root}/late; : {host.marker}"


def wait_gone(marker: str, within_s: float = 5.0) -> list[int]:
    """Host pids still running with `marker` in their argv after up to `within_s`: the
    kernel reaps a killed PID namespace asynchronously, so give it a moment."""
    deadline = time.monotonic() + within_s
    while (alive := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _marker_gone(host: Host, root: Path) -> str | None:
    if alive := wait_gone(host.marker):
        return f"processes outlived the call: {alive}"
    if (root / "late").exists():
        return "a child that left the group wrote after the call"
    return None


def _absent(name: str) -> Callable[[Host, Path], str | None]:
    def check(host: Host, _root: Path) -> str | None:
        path = Path(host.outside) / name
        return f"{path} appeared on the host" if path.exists() else None

    return check


def _root_file_is(name: str, text: str) -> Callable[[Host, Path], str | None]:
    def check(_host: Host, root: Path) -> str | None:
        found = (root / name).read_text() if (root / name).exists() else None
        return None if found == text else f"{name} holds {found!r} on the host"

    return check


CHECKS: tuple[Check, ...] = (
    # Network: no route to the host by any path.
    Check("tcp-connect-to-host", _connect_tcp, "fails", real_as_root=True),
    Check(
        "nsenter-host-netns",
        lambda h, r: ["nsenter", f"--net=/proc/{h.pid}/ns/net", *_curl(h)],
        "fails",
        real_as_root=True,
    ),
    Check("setns-host-netns", _setns, "fails", real_as_root=True),
    Check(
        "host-unix-socket", lambda h, r: _connect_unix(h.unix_socket), "fails", real_as_root=True
    ),
    Check("postgres-unix-socket", lambda h, r: _connect_unix(PG_SOCKET), "fails"),
    # Files: nothing of the host outside the root and the system.
    Check(
        "write-outside-root",
        lambda h, r: ["sh", "-c", f"echo x > {h.outside}/escaped"],
        "fails",
        after=_absent("escaped"),
        real_as_root=True,
    ),
    Check("read-etc-shadow", lambda h, r: ["cat", "/etc/shadow"], "fails", real_as_root=True),
    Check("list-root-home", lambda h, r: ["ls", "/root"], "fails", real_as_root=True),
    Check(
        "write-a-sysctl",  # writes back the value it reads: harmless wherever it works
        lambda h, r: [
            "sh",
            "-c",
            "h=$(cat /proc/sys/kernel/domainname); echo $h > $0",
            "/proc/sys/kernel/domainname",
        ],
        "fails",
    ),
    Check("use-kernel-keyrings", _keyctl, "fails", real_as_root=True),
    Check("list-host-keys", lambda h, r: ["cat", "/proc/keys"], "fails", real_as_root=True),
    Check(
        "read-server-env",
        lambda h, r: ["sh", "-c", f'test -n "${SECRET_ENV}"'],
        "fails",
        real_as_root=True,
    ),
    # Processes: host processes can be neither seen nor signalled; children die with us.
    Check(
        "see-host-process",
        lambda h, r: ["test", "-e", f"/proc/{h.pid}"],
        "fails",
        real_as_root=True,
    ),
    Check(
        "signal-host-process", lambda h, r: ["kill", "-0", str(h.pid)], "fails", real_as_root=True
    ),
    Check(
        "setsid-child-after-exit",
        lambda h, r: ["sh", "-c", f"setsid sh -c '{_setsid_child(h, r)}' >/dev/null 2>&1 &"],
        "ok",
        after=_marker_gone,
    ),
    Check(
        "setsid-child-after-timeout",
        lambda h, r: ["sh", "-c", f"setsid sh -c '{_setsid_child(h, r)}' & sleep 30"],
        "timeout",
        after=_marker_gone,
    ),
    # Ordinary work still succeeds.
    Check("python3", lambda h, r: _py("print(6 * 7)"), "ok", stdout="42\n"),
    Check(
        "sh-reads-and-writes-the-root",
        lambda h, r: ["sh", "-c", "cat given.txt && echo made > made.txt"],
        "ok",
        stdout="given\n",
        after=_root_file_is("made.txt", "made\n"),
    ),
    Check(
        "git-commit-in-the-root",
        lambda h, r: [
            "sh",
            "-c",
            "git init -q . && git add given.txt && "
            "git -c user.name=t -c user.email=t@example.com commit -qm first && "
            "git log --format=%s",
        ],
        "ok",
        stdout="first\n",
    ),
    Check(
        "loopback-inside",
        lambda h, r: _py(
            "import socket; s = socket.create_server(('127.0.0.1', 0)); "
            "socket.create_connection(s.getsockname(), timeout=2); print('ok')"
        ),
        "ok",
        stdout="ok\n",
    ),
    Check("allow-network-reaches-host", lambda h, r: _curl(h), "ok", network=True, stdout="ok"),
)


def processes_with(marker: str) -> list[int]:
    """Host pids, zombies excluded, whose argv contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def run_check(check: Check, host: Host, root: Path) -> str | None:
    """Run one check in a fresh `root`: None if it behaved as expected, else what happened."""
    root.mkdir()
    (root / "given.txt").write_text("given\n")
    argv = check.argv(host, root)
    os.environ[SECRET_ENV] = "hunter2"
    try:
        out = bash(
            argv[0],
            argv[1:],
            root_dir=str(root),
            allow_network=check.network,
            timeout_ms=500 if check.expect == "timeout" else 10_000,
        )
        outcome, seen = "ok", f"stdout {out!r}"
    except SmithersError as exc:
        out = ""
        outcome = "timeout" if exc.code == "TOOL_TIMEOUT" else "fails"
        seen = f"{exc.code}: {exc.details.get('stderrTail', exc.message)!r}"
    finally:
        del os.environ[SECRET_ENV]
    if outcome != check.expect:
        return f"expected {check.expect}, got {outcome} ({seen})"
    if check.stdout is not None and out != check.stdout:
        return f"stdout {out!r}, expected {check.stdout!r}"
    return check.after(host, root) if check.after is not None else None


def run_all(host: Host, roots: Path) -> dict[str, str | None]:
    return {check.name: run_check(check, host, roots / check.name) for check in CHECKS}


if __name__ == "__main__":
    # argv: Host as JSON, then a directory to create the roots in.
    results = run_all(Host(**json.loads(sys.argv[1])), Path(sys.argv[2]))
    print(json.dumps({"uid": os.geteuid(), "results": results}))
