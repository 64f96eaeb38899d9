"""The rows of time travel: forgetting what came after a frame, copying a run up to one."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema as t


def has_frame(conn: Connection, run_id: str, frame_no: int) -> bool:
    found = conn.execute(
        sa.select(t.frames.c.frame_no).where(
            t.frames.c.run_id == run_id, t.frames.c.frame_no == frame_no
        )
    ).first()
    return found is not None


def last_frame_no(conn: Connection, run_id: str) -> int | None:
    last: int | None = conn.execute(
        sa.select(sa.func.max(t.frames.c.frame_no)).where(t.frames.c.run_id == run_id)
    ).scalar_one()
    return last


def forget_after(
    conn: Connection, run_id: str, frame_no: int, output_tables: dict[str, sa.Table]
) -> tuple[int, int]:
    """Delete the nodes that first became ready after `frame_no` with their attempts,
    approvals and outputs, free the signals they consumed, and drop later loops and frames;
    returns how many frames and attempts went."""
    later = conn.execute(
        sa.select(t.nodes.c.node_id, t.nodes.c.iteration, t.nodes.c.output_table).where(
            t.nodes.c.run_id == run_id, t.nodes.c.first_frame_no > frame_no
        )
    ).all()
    attempts = 0
    for node_id, iteration, output_table in later:
        out = output_tables.get(output_table or "")
        for table in (t.nodes, t.attempts, t.approvals, *([out] if out is not None else [])):
            deleted = conn.execute(
                sa.delete(table).where(
                    table.c.run_id == run_id,
                    table.c.node_id == node_id,
                    table.c.iteration == iteration,
                )
            )
            attempts += deleted.rowcount if table is t.attempts else 0
        conn.execute(
            sa.update(t.signals)
            .where(
                t.signals.c.run_id == run_id,
                t.signals.c.consumed_by_node_id == node_id,
                t.signals.c.consumed_iteration == iteration,
            )
            .values(consumed_by_node_id=None, consumed_iteration=None)
        )
    conn.execute(
        sa.delete(t.loops).where(t.loops.c.run_id == run_id, t.loops.c.first_frame_no > frame_no)
    )
    frames = conn.execute(
        sa.delete(t.frames).where(t.frames.c.run_id == run_id, t.frames.c.frame_no > frame_no)
    )
    return frames.rowcount, attempts


def copy_until(
    conn: Connection,
    run_id: str,
    new_id: str,
    frame_no: int,
    output_tables: dict[str, sa.Table],
) -> None:
    """Copy a run's frames, settled nodes (with attempts, approvals, outputs) and loops up
    to `frame_no` into the run `new_id`."""

    def copy(table: sa.Table, *where: Any) -> list[Any]:
        rows = list(conn.execute(sa.select(table).where(table.c.run_id == run_id, *where)))
        for row in rows:
            conn.execute(sa.insert(table).values({**row._mapping, "run_id": new_id}))
        return rows

    copy(t.frames, t.frames.c.frame_no <= frame_no)
    kept = copy(
        t.nodes,
        t.nodes.c.first_frame_no <= frame_no,
        t.nodes.c.state.in_(["finished", "skipped", "failed"]),
    )
    copy(t.loops, t.loops.c.first_frame_no <= frame_no)
    for row in kept:
        node_id, iteration = row._mapping["node_id"], row._mapping["iteration"]
        out = output_tables.get(row._mapping["output_table"] or "")
        for table in (t.attempts, t.approvals, *([out] if out is not None else [])):
            copy(table, table.c.node_id == node_id, table.c.iteration == iteration)
