"""Owner ids say where their PID means something: host, PID namespace, PID, start time."""

from __future__ import annotations

import os
import subprocess
import sys

from smithers.ownership import (
    HOST,
    PID_NAMESPACE,
    new_owner_id,
    owner_is_dead,
    process_start,
    release_owner_id,
)
from tests.helpers import ROOT

PRINT_OWNER = "from smithers.ownership import new_owner_id; print(new_owner_id())"


def owner_of_a_finished_process(*prefix: str) -> str:
    done = subprocess.run(
        [*prefix, sys.executable, "-c", PRINT_OWNER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_an_owner_id_names_host_pid_namespace_pid_and_start() -> None:
    owner = new_owner_id()
    host, namespace, pid, start, nonce = owner.rsplit(":", 4)
    assert (host, namespace) == (HOST, PID_NAMESPACE) and namespace.isdigit()
    assert start == process_start(int(pid)) and len(nonce) == 12
    assert not owner_is_dead(owner)
    release_owner_id(owner)
    assert owner_is_dead(owner)  # a runtime closed in this very process


def test_a_dead_process_in_this_namespace_is_a_dead_owner() -> None:
    assert owner_is_dead(owner_of_a_finished_process())


def test_an_owner_in_another_pid_namespace_is_never_judged_by_its_pid() -> None:
    owner = owner_of_a_finished_process("unshare", "--pid", "--fork", "--mount-proc")
    host, namespace, pid, _start, _nonce = owner.rsplit(":", 4)
    assert host == HOST and namespace != PID_NAMESPACE
    assert int(pid) < 10  # a PID of that namespace, meaningless here
    assert not owner_is_dead(owner)  # its heartbeat decides


def test_a_reused_pid_is_not_the_owner() -> None:
    """The owner's PID now belongs to another process: a different start time."""
    assert owner_is_dead(f"{HOST}:{PID_NAMESPACE}:{os.getpid()}:1:feedfacecafe")
    init_start = process_start(1)
    assert init_start is not None
    assert owner_is_dead(f"{HOST}:{PID_NAMESPACE}:1:{int(init_start) + 1}:feedfacecafe")
    assert not owner_is_dead(f"{HOST}:{PID_NAMESPACE}:1:{init_start}:feedfacecafe")


def test_ids_of_unknown_form_are_left_to_the_heartbeat() -> None:
    for owner in ("", "x", f"{HOST}:1234:abc", f"other-host:{PID_NAMESPACE}:1:1:ab"):
        assert not owner_is_dead(owner)
