"""The bubblewrap confinement every `bash` command runs in.

The command gets a fresh user namespace (uid/gid 65534, no capability anywhere), its own
PID, IPC, UTS and (unless `allow_network`) network namespaces, and a mount namespace that
holds only: the run's root read-write at its own absolute path, `/usr` and the `/bin`,
`/sbin`, `/lib*` links read-only, a few files of `/etc` read-only, a private `/tmp`, a
read-only `/proc` of its own PID namespace and a minimal `/dev`. The environment is
replaced, so the server's tokens and database URLs do not reach it.

When the server runs as root, bwrap maps the sandbox uid onto host uid 0 (that is what
lets the command write the root's files). It holds no capability outside its namespace,
but the kernel grants a few things to host uid 0 by ownership alone: writing sysctls under
`/proc/sys`, for one. Hence `/proc` is read-only, `/` is read-only, and `/etc` is built
from a list rather than bound whole (no `/etc/shadow`, no `/etc/ssl/private`).

bwrap's own init is PID 1 of the namespace: when the command exits, or when we kill the
bwrap process we spawned, the kernel kills everything left in the namespace, including
children that left the process group with `setsid`.

Nothing ever runs unconfined: if bwrap is missing or the probe fails, callers get
`TOOL_SANDBOX_UNAVAILABLE`. The probe costs a process spawn, so its answer is cached for
the life of the process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SmithersError
from .seccomp import keyring_filter

SANDBOX_UID = 65534
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOME = "/tmp"

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What dynamic linking, user lookups, `alternatives` links, TLS and time zones need; all
# of it is readable by any host user anyway.
_ETC_FILES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "os-release",
    "protocols",
    "services",
    "ssl/certs",
    "ssl/openssl.cnf",
    "timezone",
)
_ETC_NETWORK_FILES = ("gai.conf", "host.conf", "hosts", "resolv.conf")
_GENERATED_ETC = {
    "passwd": f"nobody:x:{SANDBOX_UID}:{SANDBOX_UID}:nobody:{HOME}:/usr/sbin/nologin\n",
    "group": f"nogroup:x:{SANDBOX_UID}:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}
_LOOPBACK_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
# bwrap exits 1 when it cannot exec the command, like a command that failed; going
# through `sh`'s `exec` gives the usual 127 (not found) / 126 (not executable). The
# arguments are passed as "$@", never parsed by the shell.
_EXEC = ("/bin/sh", "-c", 'exec "$@"', "sh")
_FIX = (
    "install bubblewrap (Debian: apt-get install bubblewrap) and allow user namespaces "
    "(sysctl user.max_user_namespaces=15000); see docs/sandbox.md"
)


def sandbox_unavailable(reason: str) -> SmithersError:
    return SmithersError(
        "TOOL_SANDBOX_UNAVAILABLE",
        f"bash: cannot confine the command ({reason}); {_FIX}",
        {"reason": reason},
    )


@dataclass(frozen=True)
class Confinement:
    """What one command may touch."""

    root: Path
    workdir: Path
    allow_network: bool


def _system_args() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _etc_args(allow_network: bool) -> list[str]:
    args = ["--dir", "/etc"]
    for name in _ETC_FILES + (_ETC_NETWORK_FILES if allow_network else ()):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


@contextlib.contextmanager
def _pipes(payloads: Sequence[bytes]) -> Iterator[list[int]]:
    """Read ends of pipes already holding `payloads`, for bwrap to inherit and read."""
    fds: list[int] = []
    try:
        for payload in payloads:
            read_fd, write_fd = os.pipe()
            fds.append(read_fd)
            with open(write_fd, "wb") as pipe:  # under a page each: fits the pipe buffer
                pipe.write(payload)
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def _bwrap_args(bwrap: str, box: Confinement, fed: Sequence[str]) -> list[str]:
    root = str(box.root)
    return [
        bwrap,
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *([] if box.allow_network else ["--unshare-net"]),
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        *_system_args(),
        *_etc_args(box.allow_network),
        *fed,
        "--tmpfs",
        "/tmp",
        "--proc",
        "/proc",
        "--remount-ro",
        "/proc",
        # Descriptions of the host's keys, root's included (see seccomp.py).
        "--ro-bind",
        "/dev/null",
        "/proc/keys",
        "--ro-bind",
        "/dev/null",
        "/proc/key-users",
        "--dev",
        "/dev",
        # Last, so a root under /tmp or /usr is not hidden by the mounts above.
        "--bind",
        root,
        root,
        "--remount-ro",
        "/",
        "--chdir",
        str(box.workdir),
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        "--setenv",
        "HOME",
        HOME,
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--",
        *_EXEC,
    ]


@contextlib.contextmanager
def confined(
    bwrap: str, box: Confinement, argv: Sequence[str]
) -> Iterator[tuple[list[str], tuple[int, ...]]]:
    """The argv that runs `argv` inside `box`, and the fds the spawn must pass on."""
    if box.root == Path(box.root.anchor):
        raise sandbox_unavailable("the run's root is the host's /")
    generated = {f"/etc/{name}": text for name, text in _GENERATED_ETC.items()}
    if not box.allow_network:
        generated["/etc/hosts"] = _LOOPBACK_HOSTS
    payloads = [keyring_filter(), *(text.encode() for text in generated.values())]
    with _pipes(payloads) as fds:
        fed = ["--seccomp", str(fds[0])]
        for dest, fd in zip(generated, fds[1:], strict=True):
            fed += ["--ro-bind-data", str(fd), dest]
        yield [*_bwrap_args(bwrap, box, fed), *argv], tuple(fds)


@functools.cache
def _probe() -> tuple[str | None, str]:
    """(bwrap's path, "") if a strict sandbox can be set up here, else (None, why not)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, "bwrap not found on PATH"
    with tempfile.TemporaryDirectory(prefix="smithers-sandbox-probe-") as tmp:
        box = Confinement(Path(tmp).resolve(), Path(tmp).resolve(), allow_network=False)
        try:
            with confined(bwrap, box, ["true"]) as (argv, fds):
                probe = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    pass_fds=fds,
                    timeout=10,
                    check=False,
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"bwrap did not start: {exc}"
    if probe.returncode != 0:
        lines = probe.stderr.decode(errors="replace").strip().splitlines()
        return None, lines[-1] if lines else f"bwrap exited with status {probe.returncode}"
    return bwrap, ""


def require_bwrap() -> str:
    """bwrap's path, once a probe has shown the sandbox works; else TOOL_SANDBOX_UNAVAILABLE."""
    bwrap, reason = _probe()
    if bwrap is None:
        raise sandbox_unavailable(reason)
    return bwrap


def forget_probe() -> None:
    """Probe again on the next call (after installing bwrap, or in tests)."""
    _probe.cache_clear()
