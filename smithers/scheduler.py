"""The cron scheduler of a process: claim due fires, start their runs, sleep until the
next one (or the poll interval, when sooner: rows other processes add are seen then).

`launch(fire)` starts the run and returns its id; whatever it raises is stored on the row
(`error_json`) and the fire is tried again a minute later (`cron.failed`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from . import cron
from .clock import now_ms
from .errors import error_json
from .store.base import Store

logger = logging.getLogger("smithers.cron")

Launch = Callable[[cron.Fire], Awaitable[str]]
MIN_SLEEP_S = 0.01


def poll_interval_s(heartbeat_ms: int) -> float:
    """clamp(heartbeat, 1 s, 15 s)."""
    return min(15.0, max(1.0, heartbeat_ms / 1000))


class Scheduler:
    """`await scheduler.run(store)` in a task; `stop()` ends it (a later `run` starts afresh)."""

    def __init__(self, launch: Launch, *, poll_s: float) -> None:
        self.launch = launch
        self.poll_s = poll_s
        self._scope: anyio.CancelScope | None = None

    async def tick(self, store: Store) -> int | None:
        """Fire what is due; returns the soonest next fire of any row (ms), or None."""
        fires, soonest = await store.run(cron.claim_due, store)
        for fire in fires:
            try:
                run_id = await self.launch(fire)
            except Exception as exc:
                logger.warning("cron %s: the run of %s did not start: %s", fire.cron_id,
                               fire.workflow, exc)  # fmt: skip
                await store.run(cron.failed, store, fire, error_json(exc))
                soonest = None  # the row's next time moved: look again soon
            else:
                logger.debug("cron %s started run %s", fire.cron_id, run_id)
                await store.run(cron.fired, store, fire)
        return soonest

    async def run(self, store: Store) -> None:
        """Until cancelled or stopped."""
        with anyio.CancelScope() as self._scope:
            while True:
                soonest: int | None = None
                try:
                    soonest = await self.tick(store)
                except Exception:
                    logger.exception("the cron scheduler failed; trying again")
                wait = self.poll_s
                if soonest is not None:
                    wait = min(wait, max(MIN_SLEEP_S, (soonest - now_ms()) / 1000))
                await anyio.sleep(wait)

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
