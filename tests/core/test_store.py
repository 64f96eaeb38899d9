"""The store under concurrency: first runs of a workflow from several stores at once."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from smithers import Runtime, Store, load_workflow, open_store
from smithers.store import postgres
from smithers.store import runs as runs_q
from tests.helpers import EXAMPLES

pytestmark = pytest.mark.anyio


async def test_concurrent_first_runs_create_output_tables_once(db_url: str) -> None:
    """Four stores (as four processes would) start runs on an empty database together."""
    stores = [open_store(db_url) for _ in range(4)]
    wf = load_workflow(EXAMPLES / "sequence.py")
    statuses: list[str] = []
    try:
        async with anyio.create_task_group() as tg:
            for store in stores:

                async def drive(store: Store = store) -> None:
                    async with Runtime(store, adopt=False) as rt, anyio.create_task_group() as runs:
                        for _ in range(4):

                            async def one() -> None:
                                statuses.append((await rt.run(wf)).status)

                            runs.start_soon(one)

                tg.start_soon(drive)
    finally:
        for store in stores:
            store.close()
    assert statuses == ["finished"] * 16


async def test_outputs_named_with_reserved_words_and_mixed_case(store: Store) -> None:
    from pydantic import BaseModel, Field

    from smithers import Task, Workflow, create_smithers, run_workflow

    class Order(BaseModel):
        select: str
        fromWhere: int = Field(default=0)

    smithers, outputs = create_smithers(order=Order)

    @smithers
    def wf(ctx: object) -> Workflow:
        return Workflow(
            "reserved", [Task("group", output=outputs.order, run={"select": "*", "fromWhere": 2})]
        )

    result = await run_workflow(wf, store=store)
    assert result.status == "finished"
    assert result.outputs["group"] == {"select": "*", "fromWhere": 2}


def test_opening_a_new_database_from_many_places_at_once(db_url: str) -> None:
    """Stores opened together on an empty database (as processes starting together would)
    all find one complete schema; none fails on tables another created first."""
    import threading

    errors: list[BaseException] = []
    opened: list[Store] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        try:
            start.wait()
            opened.append(open_store(db_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in opened:
        store.close()
    assert errors == [] and len(opened) == 6


def test_shown_db_url_is_absolute_for_sqlite_and_hides_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smithers.store.engines import shown_db_url

    monkeypatch.chdir(tmp_path)
    assert shown_db_url("runs.db") == f"sqlite:///{tmp_path / 'runs.db'}"
    assert shown_db_url("sqlite:///sub/runs.db") == f"sqlite:///{tmp_path / 'sub' / 'runs.db'}"
    shown = shown_db_url("postgresql://alice:s3cret@db.example:5432/app")
    assert "s3cret" not in shown
    assert shown == "postgresql+psycopg://alice:***@db.example:5432/app"


def test_postgresql_without_its_driver_names_the_extra() -> None:
    """The driver made unimportable, as if `psycopg` were not installed."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from smithers import SmithersError, open_store\n"
        "try:\n"
        "    open_store('postgresql://alice:s3cret@127.0.0.1/app')\n"
        "except SmithersError as exc:\n"
        "    print(exc.code, exc.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "DB_DRIVER_MISSING cannot open the database: PostgreSQL needs the psycopg driver: "
        "pip install 'smithers-asgi[postgres]'\n"
    )


def test_a_transaction_a_stalled_process_left_open_is_ended_and_its_rows_freed(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that stops inside a transaction (SIGSTOP, a paused VM) keeps the rows it
    locked: the server ends its session once it idled as long as a heartbeat may (the
    staleness window, here 0.3 s), so that the adopter of its runs does not wait on it."""
    monkeypatch.setattr(postgres, "STALE_AFTER_MS", 300)
    stalled, adopter = open_store(pg_schema_url), open_store(pg_schema_url)
    try:
        with adopter.write() as tx:
            runs_q.insert_run(
                tx.conn,
                run_id="stalled",
                workflow_name="w",
                workflow_path=None,
                workflow_hash=None,
                owner_id="a-stalled-process",
                now=tx.now,
                input=None,
                config={},
                auth=None,
            )
        with stalled.engine.connect() as conn:
            conn.begin()
            runs_q.lock_ownership(conn, "stalled")  # ... and the process stops here
            with adopter.write() as tx:
                tx.conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # not forever
                assert runs_q.lock_ownership(tx.conn, "stalled") == (
                    "running",
                    "a-stalled-process",
                    0,
                )
            with pytest.raises(sa.exc.DBAPIError) as ended:
                conn.execute(sa.text("SELECT 1"))
            assert ended.value.connection_invalidated
    finally:
        stalled.close()
        adopter.close()
