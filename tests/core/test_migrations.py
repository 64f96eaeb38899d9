"""Schema migrations: databases made by older code are upgraded at open, newer ones refused.

The version-1 databases are SQL dumps made by the code of schema version 1 (commit
41e16a5) with fixtures/make_v1_fixture.py: a run of examples/approval.py parked on its
approval.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from smithers import Runtime, SmithersError, Store, approve, load_workflow, open_store
from smithers.store import schema
from smithers.store.engines import create_db_engine
from smithers.store.migrations import MIGRATIONS, SCHEMA_VERSION, schema_version
from tests.helpers import EXAMPLES, assert_contiguous

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures"
V1_RUN = "run-v1-approval"
V1_OUTPUT_TABLES = {"draft", "shipped"}
GATEWAY_TABLES = {"_smithers_idempotency_keys", "_smithers_webhook_deliveries"}


def load_v1(url: str) -> str:
    """Fill the empty database at `url` with the version-1 dump of its backend."""
    engine = create_db_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            conn = sqlite3.connect(engine.url.database or "")
            conn.executescript((FIXTURES / "v1_sqlite.sql").read_text())
            conn.close()
        else:
            raw = engine.raw_connection()
            with raw.cursor() as cur:
                cur.execute((FIXTURES / "v1_postgres.sql").read_text())
            raw.commit()
            raw.close()
    finally:
        engine.dispose()
    return url


def version_of(url: str) -> int:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return schema_version(conn)
    finally:
        engine.dispose()


def shape(url: str) -> dict[str, Any]:
    """Tables with their columns, primary keys and indexes, as the database reports them."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return _shape(conn)
    finally:
        engine.dispose()


def _shape(conn: Connection) -> dict[str, Any]:
    inspector = sa.inspect(conn)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
        }
        for table in sorted(inspector.get_table_names())
    }


def opened_with(url: str, migrations: list[Callable[[Connection], None]]) -> None:
    store = Store(create_db_engine(url))
    try:
        store.ensure_tables(migrations)
    finally:
        store.close()


async def test_a_version_1_database_is_migrated_and_its_parked_run_finishes(
    new_db_url: Callable[[], str],
) -> None:
    url = load_v1(new_db_url())
    assert version_of(url) == 1
    store = open_store(url)
    try:
        assert version_of(url) == SCHEMA_VERSION
        assert set(shape(url)) >= GATEWAY_TABLES
        await approve(store, V1_RUN, "review", decided_by="alice", note="ok")
        async with Runtime(store, adopt=False) as rt:
            await rt.resume(V1_RUN, load_workflow(EXAMPLES / "approval.py"))
            result = await rt.wait(V1_RUN)
        assert result.status == "finished"
        assert result.outputs["draft"] == {"text": "SHIP"}
        assert result.outputs["ship"] == {"text": "SHIP", "approved_by": "alice"}
        assert_contiguous(store, V1_RUN)
    finally:
        store.close()


def test_migration_1_makes_the_schema_of_version_1(new_db_url: Callable[[], str]) -> None:
    """Version 1 is what the code before numbered migrations created, table by table."""
    made_by_old_code = shape(load_v1(new_db_url()))
    for output_table in V1_OUTPUT_TABLES:
        del made_by_old_code[output_table]
    migrated = new_db_url()
    opened_with(migrated, list(MIGRATIONS[:1]))
    assert shape(migrated) == made_by_old_code


def test_the_latest_version_is_what_schema_describes(new_db_url: Callable[[], str]) -> None:
    """Queries are written against `schema`: every migration applied must give exactly it."""
    migrated = new_db_url()
    open_store(migrated).close()
    described = new_db_url()
    engine = create_db_engine(described)
    schema.metadata.create_all(engine)
    engine.dispose()
    assert shape(migrated) == shape(described)


def test_a_newer_database_is_refused(new_db_url: Callable[[], str]) -> None:
    url = new_db_url()
    open_store(url).close()
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.update(schema.meta).values(value=str(SCHEMA_VERSION + 1)))
    engine.dispose()
    with pytest.raises(SmithersError) as refused:
        open_store(url)
    assert refused.value.code == "SCHEMA_TOO_NEW"
    message = refused.value.message
    assert f"version {SCHEMA_VERSION + 1}" in message and f"version {SCHEMA_VERSION}" in message
    assert "upgrade smithers-asgi" in message and "\n" not in message
    assert version_of(url) == SCHEMA_VERSION + 1


def test_opening_twice_migrates_once(new_db_url: Callable[[], str]) -> None:
    url = load_v1(new_db_url())
    applied: list[int] = []

    def counted(conn: Connection) -> None:
        applied.append(schema_version(conn))

    opened_with(url, [*MIGRATIONS, counted])
    opened_with(url, [*MIGRATIONS, counted])
    assert applied == [1]
    assert version_of(url) == SCHEMA_VERSION + 1


def test_a_failed_migration_leaves_the_database_at_its_version(
    new_db_url: Callable[[], str],
) -> None:
    """Migrations 2.. and the failing one run in one transaction: none of them stays."""
    url = load_v1(new_db_url())
    before = shape(url)

    def failing(conn: Connection) -> None:
        sa.Table("half_done", sa.MetaData(), sa.Column("x", sa.Integer)).create(conn)
        raise RuntimeError("disk on fire")

    with pytest.raises(SmithersError) as failed:
        opened_with(url, [*MIGRATIONS, failing])
    assert failed.value.code == "SCHEMA_MIGRATION_FAILED"
    assert "disk on fire" in failed.value.message
    assert version_of(url) == 1
    assert shape(url) == before
    open_store(url).close()
    assert version_of(url) == SCHEMA_VERSION


def test_a_webhook_delivery_and_an_idempotency_key_are_recorded_once(
    store: Store,
) -> None:
    """What lets two Gateways on one database refuse the same replay or launch."""
    delivery = {"webhook_key": "deploy", "delivery_id": "d-1", "received_at_ms": 1}
    key = {"scope": "alice", "idempotency_key": "k-1", "run_id": "r-1", "created_at_ms": 1}
    with store.write() as tx:
        tx.conn.execute(sa.insert(schema.webhook_deliveries).values(delivery))
        tx.conn.execute(sa.insert(schema.idempotency_keys).values(key))
        # The same key of another caller is another key.
        tx.conn.execute(sa.insert(schema.idempotency_keys).values({**key, "scope": "bob"}))
    for table, row in ((schema.webhook_deliveries, delivery), (schema.idempotency_keys, key)):
        with pytest.raises(sa.exc.IntegrityError), store.write() as tx:
            tx.conn.execute(sa.insert(table).values(row))
