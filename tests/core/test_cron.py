"""Cron schedules in time zones (croniter's answers, across the DST changes), the
compare-and-set claim of a due time, and fires missed while down collapsing into one."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from smithers import Store, cron
from smithers.errors import SmithersError
from smithers.store import cron as cron_q

ZONES = {
    # zone: (a day before the spring change, a day before the autumn one), 2026
    "Europe/Paris": ((2026, 3, 28), (2026, 10, 24)),
    "America/New_York": ((2026, 3, 7), (2026, 10, 31)),
}
PATTERNS = ["0 8 * * *", "30 2 * * *", "0 * * * *", "*/20 1-3 * * *", "15 0 2 * * *"]


def ms(*args: int, zone: str = "UTC") -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(zone)).timestamp() * 1000)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_next_times_across_dst_changes_are_croniters(zone: str, pattern: str) -> None:
    for day in ZONES[zone]:
        start = datetime(*day, 12, tzinfo=ZoneInfo(zone))
        expected = croniter(pattern, start, second_at_beginning=True)
        at = int(start.timestamp() * 1000)
        for _ in range(40):  # past the change, one fire after another
            at = cron.next_fire_ms(pattern, zone, at)
            assert at == round(expected.get_next(float) * 1000)


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # 08:00 local on each side of a change is a different hour in UTC
        ("Europe/Paris", (2026, 3, 28, 7), (2026, 3, 29, 6)),
        ("Europe/Paris", (2026, 10, 24, 6), (2026, 10, 25, 7)),
        ("America/New_York", (2026, 3, 7, 13), (2026, 3, 8, 12)),
        ("America/New_York", (2026, 10, 31, 12), (2026, 11, 1, 13)),
    ],
)
def test_a_local_hour_stays_local_across_dst(
    zone: str, before: tuple[int, ...], after: tuple[int, ...]
) -> None:
    first = cron.next_fire_ms("0 8 * * *", zone, ms(*before[:3], 0, zone=zone))
    assert first == ms(*before)
    assert cron.next_fire_ms("0 8 * * *", zone, first) == ms(*after)


def test_seconds_come_first_in_six_fields() -> None:
    at = ms(2026, 1, 1, 0)
    assert cron.next_fire_ms("*/5 * * * * *", "UTC", at) == at + 5_000
    assert cron.next_fire_ms("* * * * * *", "UTC", at) == at + 1_000


@pytest.mark.parametrize(
    ("pattern", "zone"),
    [
        ("61 * * * *", "UTC"),
        ("* * * *", "UTC"),
        ("not a pattern", "UTC"),
        ("0 0 31 2 *", "UTC"),  # names no date
        ("* * * * * * * *", "UTC"),
        ("0 8 * * *", "Mars/Olympus"),
        ("0 8 * * *", "../../etc/passwd"),
        ("0 8 * * *", ""),
    ],
)
def test_an_invalid_pattern_or_zone_is_refused(pattern: str, zone: str) -> None:
    with pytest.raises(SmithersError) as caught:
        cron.check_schedule(pattern, zone)
    assert caught.value.code == "INVALID_REQUEST"


def _due(store: Store, cron_id: str, at: int) -> None:
    with store.write() as tx:
        cron_q.set_fields(tx.conn, cron_id, next_run_at_ms=at)


def test_one_claim_wins_each_due_time(store: Store) -> None:
    cron.save(store, workflow="hello", pattern="* * * * * *", cron_id="every-second")
    now = ms(2030, 1, 1, 0)
    _due(store, "every-second", now - 1_000)
    fires, soonest = cron.claim_due(store, now)
    assert [(f.cron_id, f.due_at_ms, f.next_at_ms) for f in fires] == [
        ("every-second", now - 1_000, now + 1_000)
    ]
    assert soonest == now + 1_000
    assert cron.claim_due(store, now)[0] == []  # claimed already: nobody fires it again
    with store.write() as tx:  # a second process that saw the same due time
        assert not cron_q.move_next(tx.conn, "every-second", now - 1_000, next_run_at_ms=now)


def test_fires_missed_while_down_collapse_into_one(store: Store) -> None:
    cron.save(store, workflow="hello", pattern="* * * * * *", cron_id="missed")
    now = ms(2030, 1, 1, 0)
    _due(store, "missed", now - 60_000)  # a minute of fires missed
    fires, _ = cron.claim_due(store, now)
    assert len(fires) == 1 and fires[0].next_at_ms == now + 1_000
    row = cron.find(store, "missed")
    assert row is not None and row["lastRunAtMs"] == now and row["nextRunAtMs"] == now + 1_000


def test_saving_an_unchanged_schedule_keeps_its_next_fire(store: Store) -> None:
    cron.save(store, workflow="hello", pattern="0 8 * * *", cron_id="daily")
    _due(store, "daily", 1_000)
    cron.save(store, workflow="hello", pattern="0 8 * * *", cron_id="daily")  # a restart
    assert (cron.find(store, "daily") or {})["nextRunAtMs"] == 1_000
    row = cron.save(store, workflow="hello", pattern="0 9 * * *", cron_id="daily")
    assert row["nextRunAtMs"] > 1_000 and row["pattern"] == "0 9 * * *"
    row = cron.save(store, workflow="hello", pattern="0 9 * * *", cron_id="daily", enabled=False)
    assert row["enabled"] is False and row["nextRunAtMs"] is None


def test_a_failed_fire_keeps_its_error_and_is_retried_a_minute_later(store: Store) -> None:
    cron.save(store, workflow="hello", pattern="0 0 1 1 *", cron_id="yearly")
    _due(store, "yearly", 1_000)
    [fire], _ = cron.claim_due(store)
    cron.failed(store, fire, {"code": "NOT_FOUND", "message": "gone"})
    row = cron.find(store, "yearly")
    assert row is not None and row["errorJson"] == {"code": "NOT_FOUND", "message": "gone"}
    assert row["lastRunAtMs"] + cron.RETRY_AFTER_MS <= row["nextRunAtMs"] < fire.next_at_ms
    _due(store, "yearly", 1_000)
    [again], _ = cron.claim_due(store)
    cron.fired(store, again)
    assert (cron.find(store, "yearly") or {})["errorJson"] is None
