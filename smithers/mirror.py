"""Mirroring: a run that lives in a workflow's own database, copied into the server's."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from .events import Event
from .store.base import Store
from .store.records import dumps, loads
from .store.schema import events, runs
from .subscriptions import subscribe

logger = logging.getLogger("smithers.mirror")


def _copy(src: Store, dst: Store, run_id: str, batch: list[Event]) -> None:
    with src.read() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        return
    values = dict(row._mapping)
    # The copy is for reading: no runtime on the server's database may adopt and drive it.
    config = dict(loads(values.get("config_json")) or {})
    config["mirroredFrom"] = src.engine.url.render_as_string(hide_password=True)
    values["config_json"] = dumps(config)
    with dst.write() as tx:
        found = tx.conn.execute(
            sa.update(runs).where(runs.c.run_id == run_id).values(values)
        ).rowcount
        if not found:
            tx.conn.execute(sa.insert(runs).values(values))
        have = tx.conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(events.c.seq), -1)).where(
                events.c.run_id == run_id
            )
        ).scalar_one()
        rows = [
            {
                "run_id": run_id,
                "seq": e.seq,
                "timestamp_ms": e.timestamp_ms,
                "type": e.type,
                "payload_json": e.to_json_text(),
            }
            for e in batch
            if e.seq > have
        ]
        if rows:
            tx.conn.execute(sa.insert(events), rows)


async def mirror_run(src: Store, dst: Store, run_id: str) -> None:
    """Copy the run row and its events, in order, until the run ends (or parks)."""
    try:
        with dst.read() as conn:
            after = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(events.c.seq), -1)).where(
                    events.c.run_id == run_id
                )
            ).scalar_one()
        async for event in subscribe(src, run_id, int(after)):
            await dst.run(_copy, src, dst, run_id, [event])
    except Exception:
        logger.exception("mirroring run %s failed", run_id)
