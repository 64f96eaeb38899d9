"""Who owns a run: owner ids, and whether an owner is gone.

An owner id is `host:pidns:pid:start:nonce`. A PID only means something inside its PID
namespace (two containers may share a host name and reuse each other's PIDs), so the
dead-owner shortcut applies only to owners on this host *and* in this PID namespace; any
other owner is judged by its heartbeat alone. `start` (the process's start time in clock
ticks since boot) tells a live owner from another process that reused its PID.
"""

from __future__ import annotations

import os
import secrets
import socket

HOST = socket.gethostname()

# Nonces of the runtimes alive in this process: an owner id of this PID whose nonce is
# not here belonged to a runtime that was closed (or crashed) in this same process.
_live_nonces: set[str] = set()


def pid_namespace() -> str:
    """This process's PID namespace (the inode of /proc/self/ns/pid), or `-` if unknown."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return "-"
    return link.partition("[")[2].rstrip("]") or "-"


def process_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot), or None when no such process is seen."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


PID_NAMESPACE = pid_namespace()
_starts: dict[int, str] = {}


def _me() -> tuple[int, str]:
    """This process's PID and start time (looked up again after a fork)."""
    pid = os.getpid()
    if pid not in _starts:
        _starts[pid] = process_start(pid) or "-"
    return pid, _starts[pid]


def new_owner_id() -> str:
    nonce = secrets.token_hex(6)
    _live_nonces.add(nonce)
    pid, start = _me()
    return f"{HOST}:{PID_NAMESPACE}:{pid}:{start}:{nonce}"


def release_owner_id(owner_id: str) -> None:
    _live_nonces.discard(owner_id.rsplit(":", 1)[-1])


def _pid_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    seen = process_start(pid)
    return seen is None or start == "-" or seen == start


def owner_is_dead(owner_id: str | None) -> bool:
    """True when the owner ran on this host, in this PID namespace, and its process (or
    its runtime, in this process) is gone. Unknown or foreign owners are never dead here:
    their heartbeat decides."""
    if not owner_id:
        return False
    parts = owner_id.rsplit(":", 4)
    if len(parts) != 5 or parts[0] != HOST or parts[1] != PID_NAMESPACE or PID_NAMESPACE == "-":
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    mine, start = _me()
    if pid == mine:
        return parts[3] != start or parts[4] not in _live_nonces
    return not _pid_alive(pid, parts[3])
