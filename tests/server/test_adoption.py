"""A run's owner dies (SIGKILL) or stalls (SIGSTOP) mid-run, on real server processes
sharing one PostgreSQL schema: a survivor adopts its runs within the staleness window,
no finished task runs again, each run's event seqs stay contiguous with one RunFinished,
and a stalled owner that wakes up appends nothing more to the runs it lost.

The workflow (`srv_relay.py`) is three tasks in a row; the second waits for a gate file,
so every run is mid-flight (one task finished, one running) when its owner goes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from .conftest import PID_NAMESPACE, ServerProcess, make_root, server_pid, start_run, until

pytestmark = pytest.mark.timeout(240)

STALE_AFTER_MS = 3000
SCAN_MS = 1000  # every process looks for runs to adopt once a second
CLAIMS_MS = 500  # the claims' own transactions, a third of 100 runs, on a shared machine
ADOPTED_WITHIN_MS = STALE_AFTER_MS + SCAN_MS + CLAIMS_MS  # of the owner's last sign of life
ENV = {"SMITHERS_STALE_AFTER_MS": str(STALE_AFTER_MS)}


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    payload: dict[str, Any]
    at_ms: int


@pytest.fixture
def db(pg_schema_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_schema_url)
    yield engine
    engine.dispose()


def column(db: sa.Engine, run_ids: list[str], name: str) -> dict[str, Any]:
    """One column of the runs' rows, by run id."""
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT run_id, {name} FROM _smithers_runs WHERE run_id = ANY(:ids)"),
            {"ids": run_ids},
        )
        return {run_id: value for run_id, value in rows}


def owners(db: sa.Engine, run_ids: list[str]) -> dict[str, str | None]:
    return column(db, run_ids, "runtime_owner_id")


def statuses(db: sa.Engine, run_ids: list[str]) -> Counter[str]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT status FROM _smithers_runs WHERE run_id = ANY(:ids)"), {"ids": run_ids}
        )
        return Counter(status for (status,) in rows)


def events(db: sa.Engine, run_ids: list[str]) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = {run_id: [] for run_id in run_ids}
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT run_id, seq, type, payload_json, timestamp_ms FROM _smithers_events "
                "WHERE run_id = ANY(:ids) ORDER BY run_id, seq"
            ),
            {"ids": run_ids},
        )
        for run_id, seq, type_, payload, at in rows:
            found[run_id].append(Event(int(seq), type_, json.loads(payload), int(at)))
    return found


def ledger(folder: Path) -> list[tuple[str, str, int]]:
    """`(run id, node, pid)` of every execution the tasks recorded, in order."""
    path = folder / "ledger"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(run, node, int(pid)) for run, node, _, pid in map(str.split, lines)]


def waiting_at_gate(folder: Path) -> int:
    return sum(1 for _, node, _ in ledger(folder) if node == "second")


def adopted_at(log: list[Event]) -> int | None:
    """When another process resumed the run (its `RunStarted` with `resumed`)."""
    resumed = [e.at_ms for e in log if e.type == "RunStarted" and e.payload.get("resumed")]
    return resumed[0] if resumed else None


def assert_each_run_whole(log: list[Event]) -> None:
    """Seqs 0..n-1, one RunFinished last, and no node started again once it finished."""
    assert [e.seq for e in log] == list(range(len(log)))
    assert [e.type for e in log].count("RunFinished") == 1 and log[-1].type == "RunFinished"
    finished: set[str] = set()
    for event in log:
        node = event.payload.get("nodeId", "")
        if event.type == "NodeFinished":
            finished.add(node)
            finished.add(node)
        assert not (event.type == "NodeStarted" and node in finished), f"{node} ran again"
    assert finished == {"first", "second", "third"}


def relay(tmp_path: Path) -> tuple[Path, Path]:
    """The servers' root, and the folder of the runs' gate and ledger."""
    folder = tmp_path / "relay"
    folder.mkdir()
    return make_root(tmp_path / "root"), folder


def finish_all(db: sa.Engine, folder: Path, run_ids: list[str]) -> dict[str, list[Event]]:
    """Open the gate, wait for every run to end, and return the runs' events."""
    (folder / "gate").touch()
    until(lambda: statuses(db, run_ids)["finished"] == len(run_ids), timeout=90)
    return events(db, run_ids)


def test_sigkill_of_the_owner_of_runs_in_flight_on_three_servers(
    servers: Callable[..., ServerProcess], pg_schema_url: str, db: sa.Engine, tmp_path: Path
) -> None:
    root, folder = relay(tmp_path)
    # The victim runs in a PID namespace of its own, as on another host: the survivors
    # cannot see its process end, only its heartbeat stop.
    victim = servers(pg_schema_url, root, env=ENV, prefix=PID_NAMESPACE)
    everyone = [victim, *(servers(pg_schema_url, root, env=ENV) for _ in range(2))]
    clients = [server.client() for server in everyone]
    body = {"dir": str(folder)}
    run_ids = [start_run(clients[i % 3], "srv_relay.py", input=body) for i in range(100)]
    until(lambda: waiting_at_gate(folder) == 100, timeout=60)  # 100 runs in flight
    theirs = run_ids[0::3]
    victim_owner = owners(db, theirs)[theirs[0]]
    assert set(owners(db, theirs).values()) == {victim_owner}
    pid = server_pid(victim)

    killed_ms = time.time() * 1000
    os.kill(victim.proc.pid, signal.SIGKILL)  # `unshare --kill-child` takes the server along
    victim.proc.wait()
    until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
    last_beats = column(db, theirs, "heartbeat_at_ms")
    until(lambda: victim_owner not in owners(db, theirs).values(), timeout=30)
    log = finish_all(db, folder, run_ids)

    for run_id in run_ids:
        assert_each_run_whole(log[run_id])
    # Only the victim's runs were adopted: once its heartbeat was stale (its PID was no
    # clue), and within the staleness window and a scan of the kill.
    adopted = {run_id: at for run_id in run_ids if (at := adopted_at(log[run_id])) is not None}
    assert set(adopted) == set(theirs)
    assert all(adopted[r] - last_beats[r] > STALE_AFTER_MS for r in theirs)
    late = max(adopted.values()) - killed_ms
    print(f"adopted {len(adopted)} runs, the last {late:.0f} ms after the kill")
    assert late <= ADOPTED_WITHIN_MS
    # Each task ran once, but the victim's in-flight `second` ran again (at least once).
    executions = Counter((run, node) for run, node, _ in ledger(folder))
    for run_id in run_ids:
        again = run_id in adopted
        assert [executions[(run_id, n)] for n in ("first", "second", "third")] == [1, 1 + again, 1]


def test_a_stalled_owner_loses_its_runs_and_appends_nothing_to_them_when_it_wakes(
    servers: Callable[..., ServerProcess], pg_schema_url: str, db: sa.Engine, tmp_path: Path
) -> None:
    root, folder = relay(tmp_path)
    owner, survivor = (servers(pg_schema_url, root, env=ENV) for _ in range(2))
    client = owner.client()
    # The gated task logs a line every 20 ms: the owner keeps appending, and a stop often
    # lands inside one of its transactions.
    body = {"dir": str(folder), "tick": 0.02}
    run_ids = [start_run(client, "srv_relay.py", input=body) for _ in range(6)]
    until(lambda: waiting_at_gate(folder) == 6)
    stalled_owner = owners(db, run_ids)[run_ids[0]]

    ran_before = ledger(folder)
    stopped_ms = time.time() * 1000
    owner.proc.send_signal(signal.SIGSTOP)
    try:
        until(lambda: stalled_owner not in owners(db, run_ids).values(), timeout=30)
    finally:
        owner.proc.send_signal(signal.SIGCONT)
    # Awake, the old owner's tasks tick on until it sees (within a second) it lost the runs.
    with owner.client() as awake:
        until(lambda: awake.get("/health").status_code == 200)
    time.sleep(2.5)
    log = finish_all(db, folder, run_ids)

    line = f"waiting in pid {owner.proc.pid}"
    for run_id in run_ids:
        at = adopted_at(log[run_id])
        assert at is not None and at - stopped_ms <= ADOPTED_WITHIN_MS
        resumed = next(e.seq for e in log[run_id] if e.payload.get("resumed"))
        from_owner = [e for e in log[run_id][resumed:] if e.payload.get("text") == line]
        assert from_owner == [], "the owner appended to a run it had lost"
        assert_each_run_whole(log[run_id])
    # The owner ran no task of them again; the survivor ran the rest (`second` again).
    after = ledger(folder)[len(ran_before) :]
    assert {pid for *_, pid in after} == {survivor.proc.pid}
    assert Counter(node for _, node, _ in after) == {"second": 6, "third": 6}
    assert owner.alive() and "Traceback" not in owner.log(), owner.log()
