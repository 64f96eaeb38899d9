"""Output tables: one per output model, a column per top-level field, keyed by node."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from ..errors import SmithersError
from . import statements
from .schema import RESERVED_COLUMNS, BigInt

_SCALARS: dict[type, sa.types.TypeEngine[Any]] = {
    str: sa.Text(),
    int: BigInt,
    float: sa.Float(),
    bool: sa.Boolean(),
}


def _column_type(annotation: Any) -> sa.types.TypeEngine[Any] | None:
    """The SQL type for a field, or None when it is stored as JSON text."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _column_type(args[0])
        return None
    if isinstance(annotation, type):
        for py_type, sql_type in _SCALARS.items():
            if annotation is py_type:
                return sql_type
    return None


def output_columns(model: type[BaseModel]) -> dict[str, tuple[sa.types.TypeEngine[Any], bool]]:
    """Column name -> (SQL type, stored-as-JSON) for each field of the model."""
    columns: dict[str, tuple[sa.types.TypeEngine[Any], bool]] = {}
    for name, info in model.model_fields.items():
        if name in RESERVED_COLUMNS:
            raise SmithersError(
                "WORKFLOW_INVALID",
                f"output model {model.__name__} has a field named {name!r}, which is reserved",
            )
        sql_type = _column_type(info.annotation)
        columns[name] = (sql_type, False) if sql_type is not None else (sa.Text(), True)
    return columns


def validate_table_name(name: str) -> None:
    if not name.isidentifier() or name.startswith("_") or len(name) > 63:
        raise SmithersError(
            "WORKFLOW_INVALID",
            f"output name {name!r} must be an identifier of at most 63 characters "
            "not starting with '_'",
        )


def ensure_output_table(
    conn: Connection, metadata: sa.MetaData, name: str, model: type[BaseModel]
) -> sa.Table:
    """Create the table for `model`, or add the columns an earlier version lacked."""
    validate_table_name(name)
    columns = output_columns(model)
    inspector = sa.inspect(conn)
    if inspector.has_table(name):
        existing = {c["name"] for c in inspector.get_columns(name)}
        for col, (sql_type, _) in columns.items():
            if col not in existing:
                type_sql = sql_type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{name}" ADD COLUMN "{col}" {type_sql}')
        all_cols = {c["name"] for c in sa.inspect(conn).get_columns(name)}
    else:
        all_cols = set(RESERVED_COLUMNS) | set(columns)
    if name in metadata.tables:
        metadata.remove(metadata.tables[name])
    table = sa.Table(
        name,
        metadata,
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("node_id", sa.String(256), primary_key=True),
        sa.Column("iteration", sa.Integer, primary_key=True),
        *[
            sa.Column(col, columns[col][0] if col in columns else sa.Text(), nullable=True)
            for col in sorted(all_cols - RESERVED_COLUMNS)
        ],
    )
    table.create(conn, checkfirst=True)
    return table


def row_values(model: type[BaseModel], value: BaseModel) -> dict[str, Any]:
    data = value.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name, (_, as_json) in output_columns(model).items():
        field = data.get(name)
        as_text = as_json and field is not None
        out[name] = json.dumps(field, separators=(",", ":")) if as_text else field
    return out


def from_row(model: type[BaseModel], mapping: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, (_, as_json) in output_columns(model).items():
        raw = mapping.get(name)
        data[name] = json.loads(raw) if as_json and raw is not None else raw
    return data


def write_output(
    conn: Connection,
    table: sa.Table,
    model: type[BaseModel],
    *,
    run_id: str,
    node_id: str,
    iteration: int,
    value: BaseModel,
) -> None:
    key = {"run_id": run_id, "node_id": node_id, "iteration": iteration}
    statements.insert(conn, table.name, {**key, **row_values(model, value)})


def read_outputs(
    conn: Connection, table: sa.Table, model: type[BaseModel], run_id: str
) -> list[tuple[str, int, dict[str, Any]]]:
    rows = conn.execute(sa.select(table).where(table.c.run_id == run_id))
    return [
        (r._mapping["node_id"], int(r._mapping["iteration"]), from_row(model, r._mapping))
        for r in rows
    ]


_LAST = 1 << 62


def _finish_order(conn: Connection, run_id: str) -> dict[tuple[str, int], int]:
    from .schema import events

    order: dict[tuple[str, int], int] = {}
    query = (
        sa.select(events.c.seq, events.c.payload_json)
        .where(events.c.run_id == run_id, events.c.type == "NodeFinished")
        .order_by(events.c.seq)
    )
    for seq, payload in conn.execute(query):
        event = json.loads(payload)
        order[(event.get("nodeId"), int(event.get("iteration", 0)))] = int(seq)
    return order


def finished_outputs(
    conn: Connection, run_id: str, tables: dict[str, sa.Table], node_id: str | None = None
) -> list[tuple[str, int, str, int, dict[str, Any]]]:
    """`(node_id, iteration, output table, finished at, row)` of each finished node with an
    output (only `node_id`'s when given), in the order they finished. Tables this process
    has not opened are reflected from the database."""
    from .schema import nodes

    query = (
        sa.select(nodes.c.node_id, nodes.c.iteration, nodes.c.output_table, nodes.c.updated_at_ms)
        .where(
            nodes.c.run_id == run_id,
            nodes.c.state == "finished",
            nodes.c.output_table.is_not(None),
        )
        .order_by(nodes.c.updated_at_ms, nodes.c.iteration)
    )
    if node_id is not None:
        query = query.where(nodes.c.node_id == node_id)
    rows: list[tuple[str, int, str, int, dict[str, Any]]] = []
    found = list(conn.execute(query).all())
    # The durable order they finished in: the seq of each NodeFinished (a clock in ms ties).
    finished_seq = _finish_order(conn, run_id) if len(found) > 1 else {}
    found.sort(key=lambda r: finished_seq.get((r[0], r[1]), _LAST))
    for found_id, iteration, table_name, finished_at in found:
        table = tables.get(table_name)
        if table is None:
            table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
        row = conn.execute(
            sa.select(table).where(
                table.c.run_id == run_id,
                table.c.node_id == found_id,
                table.c.iteration == iteration,
            )
        ).first()
        if row is not None:
            rows.append(
                (found_id, int(iteration), table_name, int(finished_at), dict(row._mapping))
            )
    return rows
