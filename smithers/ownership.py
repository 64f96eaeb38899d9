"""Who owns a run: owner ids of the form `host:pid:nonce`, and whether an owner is gone."""

from __future__ import annotations

import os
import secrets
import socket

HOST = socket.gethostname()

# Nonces of the runtimes alive in this process: an owner id of this PID whose nonce is
# not here belonged to a runtime that was closed (or crashed) in this same process.
_live_nonces: set[str] = set()


def new_owner_id() -> str:
    nonce = secrets.token_hex(6)
    _live_nonces.add(nonce)
    return f"{HOST}:{os.getpid()}:{nonce}"


def release_owner_id(owner_id: str) -> None:
    _live_nonces.discard(owner_id.rsplit(":", 1)[-1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_dead(owner_id: str | None) -> bool:
    """True when the owner ran on this host and its process (or runtime) is gone."""
    if not owner_id:
        return False
    parts = owner_id.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != HOST:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return parts[2] not in _live_nonces
    return not _pid_alive(pid)
