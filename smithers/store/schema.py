"""The SQLAlchemy Core tables of the store (one schema for SQLite and PostgreSQL).

These describe the latest schema version, for queries; `migrations` creates and upgrades
the tables in a database.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

meta = sa.Table(
    "_smithers_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "_smithers_runs",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("parent_run_id", sa.String(128)),
    sa.Column("workflow_name", sa.Text, nullable=False),
    sa.Column("workflow_path", sa.Text),
    sa.Column("workflow_hash", sa.String(64)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at_ms", BigInt, nullable=False),
    sa.Column("started_at_ms", BigInt),
    sa.Column("finished_at_ms", BigInt),
    sa.Column("heartbeat_at_ms", BigInt),
    sa.Column("runtime_owner_id", sa.Text),
    sa.Column("cancel_requested_at_ms", BigInt),
    sa.Column("pause_requested_at_ms", BigInt),
    sa.Column("input_json", sa.Text),
    sa.Column("error_json", sa.Text),
    sa.Column("config_json", sa.Text),
    sa.Column("auth_json", sa.Text),
    # Highest event seq allocated; bumping it is what serialises writers of one run.
    sa.Column("last_seq", BigInt, nullable=False, server_default="-1"),
    # Bumped by every outside command (approve, signal, cancel, ...): the owner re-reads
    # its state when this moves, and a plan made before it moved is not committed.
    sa.Column("command_seq", BigInt, nullable=False, server_default="0"),
    sa.Index("ix_smithers_runs_status", "status"),
    sa.Index("ix_smithers_runs_created", "created_at_ms"),
)

nodes = sa.Table(
    "_smithers_nodes",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("node_id", sa.String(256), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("last_attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at_ms", BigInt, nullable=False),
    sa.Column("output_table", sa.Text),
    sa.Column("label", sa.Text),
    sa.Column("first_frame_no", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fires_at_ms", BigInt),
    sa.Column("wait_json", sa.Text),
    sa.Column("error_json", sa.Text),
)

attempts = sa.Table(
    "_smithers_attempts",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("node_id", sa.String(256), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("started_at_ms", BigInt, nullable=False),
    sa.Column("finished_at_ms", BigInt),
    sa.Column("error_json", sa.Text),
)

frames = sa.Table(
    "_smithers_frames",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("frame_no", sa.Integer, primary_key=True),
    sa.Column("created_at_ms", BigInt, nullable=False),
    sa.Column("xml_json", sa.Text, nullable=False),
    sa.Column("xml_hash", sa.String(64), nullable=False),
    sa.Column("encoding", sa.String(16), nullable=False, server_default="full"),
    sa.Column("mounted_task_ids_json", sa.Text, nullable=False),
    sa.Column("task_index_json", sa.Text, nullable=False),
    sa.Column("note", sa.Text),
)

events = sa.Table(
    "_smithers_events",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("seq", BigInt, primary_key=True),
    sa.Column("timestamp_ms", BigInt, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("payload_json", sa.Text, nullable=False),
)

approvals = sa.Table(
    "_smithers_approvals",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("node_id", sa.String(256), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requested_at_ms", BigInt, nullable=False),
    sa.Column("decided_at_ms", BigInt),
    sa.Column("note", sa.Text),
    sa.Column("decided_by", sa.Text),
    sa.Column("request_json", sa.Text),
    sa.Column("decision_json", sa.Text),
    sa.Column("auto_approved", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_smithers_approvals_status", "status", "requested_at_ms"),
)

signals = sa.Table(
    "_smithers_signals",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("signal_name", sa.Text, nullable=False),
    sa.Column("correlation_id", sa.Text),
    sa.Column("payload_json", sa.Text, nullable=False),
    sa.Column("received_at_ms", BigInt, nullable=False),
    sa.Column("received_by", sa.Text),
    sa.Column("consumed_by_node_id", sa.String(256)),
    sa.Column("consumed_iteration", sa.Integer),
)

loops = sa.Table(
    "_smithers_loops",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("loop_id", sa.String(256), primary_key=True),
    sa.Column("iteration", sa.Integer, primary_key=True),
    sa.Column("started_at_ms", BigInt, nullable=False),
    sa.Column("first_frame_no", sa.Integer, nullable=False, server_default="0"),
)

cron = sa.Table(
    "_smithers_cron",
    metadata,
    sa.Column("cron_id", sa.String(128), primary_key=True),
    sa.Column("pattern", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
    sa.Column("workflow_path", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at_ms", BigInt, nullable=False),
    sa.Column("last_run_at_ms", BigInt),
    sa.Column("next_run_at_ms", BigInt),
    sa.Column("error_json", sa.Text),
)

# Schema version 2. The Gateway's `launchRun` returns the first run for an idempotency key
# reused within 24 h: the key's row is inserted in the transaction that creates the run, so
# of two launches racing with one key, one inserts and the other finds the row. Keys are
# per scope (the caller), so one caller's key never answers another's launch.
idempotency_keys = sa.Table(
    "_smithers_idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(256), primary_key=True),
    sa.Column("idempotency_key", sa.String(256), primary_key=True),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("created_at_ms", BigInt, nullable=False),
    sa.Index("ix_smithers_idempotency_keys_created", "created_at_ms"),
)

# Schema version 3. A webhook delivery id is recorded when the delivery is first handled;
# a replay, to this Gateway or another on the same database, finds the row (or fails to
# insert it) and is answered `"duplicate": true` with nothing done.
webhook_deliveries = sa.Table(
    "_smithers_webhook_deliveries",
    metadata,
    sa.Column("webhook_key", sa.String(256), primary_key=True),
    sa.Column("delivery_id", sa.String(256), primary_key=True),
    sa.Column("received_at_ms", BigInt, nullable=False),
    sa.Index("ix_smithers_webhook_deliveries_received", "received_at_ms"),
)

RESERVED_COLUMNS = frozenset({"run_id", "node_id", "iteration"})
