"""Cron schedules: patterns in a time zone, rows in `_smithers_cron`, and claiming fires.

A pattern has five fields (minute hour day month weekday) or six with seconds first
(`*/5 * * * * *`: every five seconds). The next time is croniter's, in the row's zone,
so 08:00 in Europe/Paris stays 08:00 across the DST changes. A due row is claimed with a
compare-and-set on `next_run_at_ms`: of all the processes sharing the database, one moves
it on and fires. The next time is computed from now, so fires missed while no process
ran collapse into one.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from sqlalchemy.exc import IntegrityError

from .clock import now_ms
from .errors import SmithersError
from .registry import KEY_PATTERN
from .store import cron as cron_q
from .store.base import Store
from .store.cron import CronRecord
from .store.records import dumps, loads

# What a run started by a schedule finds in `ctx.auth`.
SYSTEM_AUTH: dict[str, Any] = {"role": "system", "triggeredBy": "cron:gateway", "scopes": ["*"]}
RETRY_AFTER_MS = 60_000  # a fire that failed to start its run is tried again this much later
MAX_PATTERN_CHARS = 256
MAX_ZONE_CHARS = 64


def _zone(timezone: str) -> ZoneInfo:
    if not isinstance(timezone, str) or not 0 < len(timezone) <= MAX_ZONE_CHARS:
        raise SmithersError("INVALID_REQUEST", "timezone must be an IANA zone name")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SmithersError(
            "INVALID_REQUEST", f"unknown time zone {timezone!r}", {"timezone": timezone}
        ) from None


def next_fire_ms(pattern: str, timezone: str, after_ms: int) -> int:
    """The first time after `after_ms` that `pattern` names in `timezone` (croniter's
    answer, as epoch milliseconds); INVALID_REQUEST for a bad pattern or zone, or a
    pattern that names no date (`0 0 31 2 *`)."""
    zone = _zone(timezone)
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN_CHARS:
        raise SmithersError("INVALID_REQUEST", "pattern must be a cron expression")
    bad = SmithersError(
        "INVALID_REQUEST", f"invalid cron pattern {pattern!r}", {"pattern": pattern}
    )
    if len(pattern.split()) not in (1, 5, 6) or not croniter.is_valid(
        pattern, second_at_beginning=True
    ):
        raise bad
    start = datetime.fromtimestamp(after_ms / 1000, zone)
    try:
        found: float = croniter(pattern, start, second_at_beginning=True).get_next(float)
    except (CroniterBadDateError, ValueError, KeyError):
        raise bad from None
    return round(found * 1000)


def check_schedule(pattern: str, timezone: str) -> None:
    next_fire_ms(pattern, timezone, now_ms())


def check_cron_id(cron_id: str) -> None:
    if not isinstance(cron_id, str) or not KEY_PATTERN.fullmatch(cron_id):
        raise SmithersError("INVALID_REQUEST", f"cronId must match {KEY_PATTERN.pattern}")


def row_json(record: CronRecord) -> dict[str, Any]:
    """A row as `cronList` shows it (`errorJson`: the last failure to start a run, or null)."""
    return {
        "cronId": record.cron_id,
        "pattern": record.pattern,
        "timezone": record.timezone,
        "workflow": record.workflow,
        "enabled": record.enabled,
        "createdAtMs": record.created_at_ms,
        "lastRunAtMs": record.last_run_at_ms,
        "nextRunAtMs": record.next_run_at_ms,
        "errorJson": loads(record.error_json),
    }


# -- rows ----------------------------------------------------------------------------------


def save(
    store: Store,
    *,
    workflow: str,
    pattern: str,
    timezone: str = "UTC",
    cron_id: str | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """Create or replace a schedule. A row whose schedule is unchanged keeps its next fire
    (one missed while every process was down still fires, once); a changed or re-enabled
    one fires next at the pattern's next time from now."""
    cron_id = cron_id or "cron_" + secrets.token_hex(8)
    check_cron_id(cron_id)
    check_schedule(pattern, timezone)
    try:
        return _save(store, cron_id, workflow, pattern, timezone, enabled)
    except IntegrityError:  # another process inserted the row meanwhile: update it
        return _save(store, cron_id, workflow, pattern, timezone, enabled)


def _save(
    store: Store, cron_id: str, workflow: str, pattern: str, timezone: str, enabled: bool
) -> dict[str, Any]:
    with store.write() as tx:
        old = cron_q.get_cron(tx.conn, cron_id, lock=True)
        same = (
            old is not None
            and old.enabled
            and (old.pattern, old.timezone) == (pattern, timezone)
            and old.next_run_at_ms is not None
        )
        if not enabled:
            next_at = None
        elif same:
            assert old is not None
            next_at = old.next_run_at_ms
        else:
            next_at = next_fire_ms(pattern, timezone, tx.now)
        record = CronRecord(
            cron_id=cron_id,
            pattern=pattern,
            timezone=timezone,
            workflow=workflow,
            enabled=enabled,
            created_at_ms=tx.now if old is None else old.created_at_ms,
            last_run_at_ms=None if old is None else old.last_run_at_ms,
            next_run_at_ms=next_at,
            error_json=None if old is None else old.error_json,
        )
        if old is None:
            cron_q.insert_cron(tx.conn, record)
        else:
            cron_q.update_schedule(tx.conn, record)
    return row_json(record)


def listing(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [row_json(record) for record in cron_q.list_crons(conn)]


def find(store: Store, cron_id: str) -> dict[str, Any] | None:
    with store.read() as conn:
        record = cron_q.get_cron(conn, cron_id)
    return None if record is None else row_json(record)


def remove(store: Store, cron_id: str) -> bool:
    with store.write() as tx:
        return cron_q.delete_cron(tx.conn, cron_id)


def ran(store: Store, cron_id: str, at_ms: int) -> None:
    """A run was started by hand (`cronRun`): its time is the row's last run."""
    with store.write() as tx:
        cron_q.set_fields(tx.conn, cron_id, last_run_at_ms=at_ms)


# -- fires ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fire:
    """A due time this process claimed: start a run of `workflow` for it."""

    cron_id: str
    workflow: str
    due_at_ms: int
    next_at_ms: int
    had_error: bool


def claim_due(store: Store, now: int | None = None) -> tuple[list[Fire], int | None]:
    """Claim every due row (one compare-and-set each) and return the fires this process
    won, with the soonest next fire of any row afterwards."""
    fires: list[Fire] = []
    with store.write() as tx:
        now = tx.now if now is None else now
        for record in cron_q.due_crons(tx.conn, now):
            due = record.next_run_at_ms
            assert due is not None
            try:
                next_at = next_fire_ms(record.pattern, record.timezone, now)
            except SmithersError as exc:  # a row written by hand, or a zone gone
                error = dumps(exc.to_json())
                retry_at = now + RETRY_AFTER_MS
                cron_q.move_next(
                    tx.conn, record.cron_id, due, next_run_at_ms=retry_at, error_json=error
                )
                continue
            won = cron_q.move_next(
                tx.conn, record.cron_id, due, next_run_at_ms=next_at, last_run_at_ms=now
            )
            if won:
                fires.append(
                    Fire(
                        record.cron_id, record.workflow, due, next_at, record.error_json is not None
                    )
                )
        soonest = cron_q.earliest_next(tx.conn)
    return fires, soonest


def fired(store: Store, fire: Fire) -> None:
    """The fire's run started: a past failure is forgotten."""
    if fire.had_error:
        with store.write() as tx:
            cron_q.move_next(tx.conn, fire.cron_id, fire.next_at_ms, error_json=None)


def failed(store: Store, fire: Fire, error: dict[str, Any]) -> None:
    """The fire's run could not start: the error is kept and the row fires again a minute
    later (or at its next time, when sooner)."""
    with store.write() as tx:
        retry_at = min(fire.next_at_ms, tx.now + RETRY_AFTER_MS)
        cron_q.move_next(
            tx.conn,
            fire.cron_id,
            fire.next_at_ms,
            next_run_at_ms=retry_at,
            error_json=json.dumps(error, separators=(",", ":"), default=str),
        )
