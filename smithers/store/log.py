"""Reads of the append-only logs: events and frames."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import Event
from . import statements
from .records import FrameRecord
from .schema import events, frames


def events_after(conn: Connection, run_id: str, after_seq: int, limit: int = 1000) -> list[Event]:
    cursor = statements.execute(
        conn,
        "SELECT seq, timestamp_ms, type, payload_json FROM _smithers_events "
        "WHERE run_id = :rid AND seq > :after ORDER BY seq LIMIT :lim",
        {"rid": run_id, "after": after_seq, "lim": limit},
    )
    rows = cursor.fetchall()
    cursor.close()
    return [Event(run_id, int(r[0]), int(r[1]), r[2], json.loads(r[3]), r[3]) for r in rows]


def list_frames(
    conn: Connection, run_id: str, *, limit: int = 50, after_frame_no: int | None = None
) -> list[FrameRecord]:
    query = sa.select(frames).where(frames.c.run_id == run_id)
    if after_frame_no is not None:
        query = query.where(frames.c.frame_no > after_frame_no)
    query = query.order_by(frames.c.frame_no.desc()).limit(limit)
    return [FrameRecord.from_row(r) for r in conn.execute(query)]


def get_frame(conn: Connection, run_id: str, frame_no: int) -> FrameRecord | None:
    row = conn.execute(
        sa.select(frames).where(frames.c.run_id == run_id, frames.c.frame_no == frame_no)
    ).first()
    return None if row is None else FrameRecord.from_row(row)


def last_frame(conn: Connection, run_id: str) -> tuple[int, str] | None:
    row = conn.execute(
        sa.select(frames.c.frame_no, frames.c.xml_hash)
        .where(frames.c.run_id == run_id)
        .order_by(frames.c.frame_no.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), row[1])


def last_frame_json(conn: Connection, run_id: str) -> str | None:
    """The tree of the run's latest frame, as stored (JSON text)."""
    text: str | None = conn.execute(
        sa.select(frames.c.xml_json)
        .where(frames.c.run_id == run_id)
        .order_by(frames.c.frame_no.desc())
        .limit(1)
    ).scalar_one_or_none()
    return text


def insert_frame(
    conn: Connection,
    run_id: str,
    frame_no: int,
    *,
    now: int,
    xml_json: str,
    xml_hash: str,
    mounted_task_ids_json: str,
    task_index_json: str,
    note: str | None = None,
) -> None:
    statements.insert(
        conn,
        "_smithers_frames",
        {
            "run_id": run_id,
            "frame_no": frame_no,
            "created_at_ms": now,
            "xml_json": xml_json,
            "xml_hash": xml_hash,
            "encoding": "full",
            "mounted_task_ids_json": mounted_task_ids_json,
            "task_index_json": task_index_json,
            "note": note,
        },
    )


def last_seq(conn: Connection, run_id: str) -> int:
    """The highest event seq stored for the run (-1 when none)."""
    return int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(events.c.seq), -1)).where(
                events.c.run_id == run_id
            )
        ).scalar_one()
    )


def insert_events(conn: Connection, batch: list[Event]) -> None:
    """Store events as they are (seqs included): a copy of another database's log."""
    if batch:
        conn.execute(
            sa.insert(events),
            [
                {
                    "run_id": e.run_id,
                    "seq": e.seq,
                    "timestamp_ms": e.timestamp_ms,
                    "type": e.type,
                    "payload_json": e.to_json_text(),
                }
                for e in batch
            ],
        )
