"""Background work that repeats: every interval, and at once when asked."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import anyio

logger = logging.getLogger("smithers.runtime")


async def every(
    interval: float,
    work: Callable[[], Awaitable[object]],
    what: str,
    now: asyncio.Event | None = None,
) -> None:
    """Do `work` every `interval` seconds, and at once when `now` is set; a failure is
    logged and the next round comes as usual."""
    while True:
        started = time.monotonic()
        if now is not None:
            now.clear()
        try:
            await work()
        except Exception:
            logger.exception("runtime %s failed", what)
        wait = max(0.0, interval - (time.monotonic() - started))
        if now is None:
            await anyio.sleep(wait)
        else:
            with anyio.move_on_after(wait):
                await now.wait()
