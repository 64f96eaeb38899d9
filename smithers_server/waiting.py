"""`wait`, shared by both clients: the statuses that end it, the events after which the
run is worth a fresh look, and (for the blocking client) its deadline."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from .calls import Json

TERMINAL = frozenset({"finished", "failed", "cancelled"})
PARKED = frozenset({"waiting-approval", "waiting-event", "waiting-timer", "paused"})
STATUSES = TERMINAL | PARKED | {"running"}
# The status a run event leaves the run in, for the events that do not say it.
STATUS_AFTER = {
    "RunStarted": "running",
    "RunFinished": "finished",
    "RunFailed": "failed",
    "RunCancelled": "cancelled",
}
# A read of the stream may end this much past a deadline before the stream is reopened
# with a shorter read timeout (httpx fixes a stream's read timeout when it opens).
DEADLINE_SLACK_S = 1.0
WAIT_RECONNECTS = 10
WAIT_IDLE_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Until:
    """The run statuses a wait ends on; a terminal run always ends it (nothing follows)."""

    statuses: frozenset[str]

    @classmethod
    def of(cls, until: str | Iterable[str] | None) -> Until:
        if until is None:
            return cls(TERMINAL | PARKED)
        wanted = {until} if isinstance(until, str) else set(until)
        unknown = wanted - STATUSES
        if unknown:
            raise ValueError(
                f"unknown run status {', '.join(sorted(unknown))}: "
                f"wait for any of {', '.join(sorted(STATUSES))}"
            )
        return cls(frozenset(wanted) | TERMINAL)

    def reached(self, view: Json) -> bool:
        return view.get("status") in self.statuses

    def worth_a_look(self, event: Json) -> bool:
        """After this event the run may be in a wanted status: read its view again.
        (Replayed events may be stale: the view, read now, decides.)"""
        kind = str(event.get("type", ""))
        if not kind.startswith("Run"):
            return False
        status = STATUS_AFTER.get(kind, event.get("status"))
        return status is None or status in self.statuses

    def timed_out(self, run_id: str, timeout: float | None) -> TimeoutError:
        within = "" if timeout is None else f" within {timeout:g} s"
        return TimeoutError(
            f"run {run_id!r} reached none of {', '.join(sorted(self.statuses))}{within}"
        )


@dataclass(frozen=True)
class Deadline:
    """When a blocking wait gives up (`time.monotonic()`), or never."""

    at: float | None
    error: TimeoutError

    @classmethod
    def after(cls, timeout: float | None, error: TimeoutError) -> Deadline:
        return cls(None if timeout is None else time.monotonic() + timeout, error)

    def check(self) -> None:
        if self.at is not None and time.monotonic() >= self.at:
            raise self.error

    def bound(self, read_s: float) -> float:
        """A read timeout that ends with the deadline at the latest."""
        if self.at is None:
            return read_s
        return max(0.01, min(read_s, self.at - time.monotonic()))

    def overrun_by(self, read_s: float) -> bool:
        """A read with this timeout, started now, could end well past the deadline."""
        return self.at is not None and time.monotonic() + read_s > self.at + DEADLINE_SLACK_S

    def sleep_s(self, delay: float) -> float:
        return delay if self.at is None else max(0.0, min(delay, self.at - time.monotonic()))
