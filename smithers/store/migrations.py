"""Numbered schema migrations, applied when a store is opened.

Schema version N is what the first N migrations make; a database records its version in
`_smithers_meta` (key `schema_version`). Opening a store brings an older database up to
the latest version in one transaction, and refuses a newer one: this code would misread
it. Each migration is a function over a connection that works on SQLite and PostgreSQL;
both run DDL inside a transaction, so a migration that fails leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import SmithersError
from . import schema

Migration = Callable[[Connection], None]

_VERSION_KEY = "schema_version"


def _create(*tables: sa.Table) -> Migration:
    def create(conn: Connection) -> None:
        for table in tables:
            table.create(conn)

    return create


# A migration creates tables as `schema` describes them today. When a later migration
# alters one of them, freeze the older definition here first: the tests compare version 1
# with a database made by the code of version 1, and the latest version with `schema`.
MIGRATIONS: tuple[Migration, ...] = (
    # 1: the schema from before numbered migrations (its databases already say version 1).
    _create(
        schema.meta,
        schema.runs,
        schema.nodes,
        schema.attempts,
        schema.frames,
        schema.events,
        schema.approvals,
        schema.signals,
        schema.loops,
        schema.cron,
    ),
    # 2: the Gateway's `launchRun` idempotency keys.
    _create(schema.idempotency_keys),
    # 3: the Gateway's webhook delivery ids, so a replay is refused by every Gateway.
    _create(schema.webhook_deliveries),
)

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: Connection) -> int:
    """The database's schema version; 0 for a database without our tables."""
    if not sa.inspect(conn).has_table(schema.meta.name):
        return 0
    value = conn.execute(
        sa.select(schema.meta.c.value).where(schema.meta.c.key == _VERSION_KEY)
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


def migrate(conn: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations the database lacks, in the caller's transaction.

    Returns the version found. The caller holds the lock that keeps other processes out
    and rolls back if this raises, so the database stays at the version found.
    """
    found = schema_version(conn)
    latest = len(migrations)
    if found > latest:
        raise SmithersError(
            "SCHEMA_TOO_NEW",
            f"the database has schema version {found}, newer than version {latest} of this "
            "smithers-asgi: upgrade smithers-asgi to open it",
            {"databaseVersion": found, "supportedVersion": latest},
        )
    for version in range(found + 1, latest + 1):
        try:
            migrations[version - 1](conn)
        except Exception as exc:
            raise SmithersError(
                "SCHEMA_MIGRATION_FAILED",
                f"migrating the database from schema version {found} to {latest} failed "
                f"at version {version} ({exc}); it is still at version {found}",
                {"databaseVersion": found, "failedVersion": version},
            ) from exc
    if found == 0:
        conn.execute(sa.insert(schema.meta).values(key=_VERSION_KEY, value=str(latest)))
    elif found < latest:
        conn.execute(
            sa.update(schema.meta)
            .where(schema.meta.c.key == _VERSION_KEY)
            .values(value=str(latest))
        )
    return found
