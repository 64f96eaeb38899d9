"""Mirroring: a run that lives in a workflow's own database, copied into the server's."""

from __future__ import annotations

import logging

from .events import Event
from .store import log as log_q
from .store import runs as runs_q
from .store.base import Store
from .store.records import dumps, loads
from .subscriptions import subscribe

logger = logging.getLogger("smithers.mirror")


def _copy(src: Store, dst: Store, run_id: str, batch: list[Event]) -> None:
    with src.read() as conn:
        values = runs_q.run_row(conn, run_id)
    if values is None:
        return
    # The copy is for reading: no runtime on the server's database may adopt and drive it.
    config = dict(loads(values.get("config_json")) or {})
    config["mirroredFrom"] = src.engine.url.render_as_string(hide_password=True)
    values["config_json"] = dumps(config)
    with dst.write() as tx:
        runs_q.put_run_row(tx.conn, values)
        have = log_q.last_seq(tx.conn, run_id)
        log_q.insert_events(tx.conn, [e for e in batch if e.seq > have])


async def mirror_run(src: Store, dst: Store, run_id: str) -> None:
    """Copy the run row and its events, in order, until the run ends (or parks)."""
    try:
        with dst.read() as conn:
            after = log_q.last_seq(conn, run_id)
        async for event in subscribe(src, run_id, after):
            await dst.run(_copy, src, dst, run_id, [event])
    except Exception:
        logger.exception("mirroring run %s failed", run_id)
