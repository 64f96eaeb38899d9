"""`examples/cluster/` as its docstring says to run it (smaller): three servers and a
gateway on PostgreSQL, one server SIGKILLed under load, and a report that every run
finished exactly once; its schema is gone afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL
from tests.helpers import EXAMPLES

RUNS = 40

pytestmark = pytest.mark.timeout(150)


def test_every_run_finishes_exactly_once_though_a_server_is_killed() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "cluster" / "run.py"), "--runs", str(RUNS)],
        env={**os.environ, "SMITHERS_DB": POSTGRES_URL},
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "SMITHERS_STALE_AFTER_MS=3000" in out
    assert f"runs finished                  {RUNS}/{RUNS}" in out
    assert f"RunFinished exactly once       {RUNS}/{RUNS}" in out
    lost = re.search(r"runs of the killed server +(\d+), adopted by a survivor: (\d+)", out)
    assert lost is not None and int(lost[1]) > 0 and lost[1] == lost[2], out
    for node in ("fetch", "build", "ship"):
        row = re.search(rf"^{node} +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$", out, re.M)
        assert row is not None, out
        started, finished, attempts, executions, _ = map(int, row.groups())
        assert finished == RUNS and started == attempts >= executions >= RUNS, row[0]
    assert "finished tasks run again       0" in out
    assert f"OK: all {RUNS} runs finished exactly once" in out
    schema = re.search(r"schema (cluster_\w+)", out)
    assert schema is not None
    admin = sa.create_engine(POSTGRES_URL)
    with admin.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = :name"),
            {"name": schema[1]},
        ).scalar_one()
    admin.dispose()
    assert left == 0
