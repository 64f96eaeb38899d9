"""Followers: one reader of a run's log for all of its subscribers in this process.

Events committed by this process reach subscribers through the bus as they commit. Events
of a run driven by another process only arrive through the database, so someone has to
look: a follower does it once per run (per store and event loop), however many streams
watch that run, and forwards what it finds to the run's subscribers on the bus. It starts
with the run's first subscriber and stops with its last.

The follower is the one place that decides when to look; a PostgreSQL notifier wakes it
(`wake`) instead of letting it wait out the poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from .events import Subscription
from .queries import events_page
from .store.base import Store
from .store.postgres import ASK, WATCH_RENEW_S, Notice

logger = logging.getLogger("smithers.followers")

PAGE = 500
# How often a follower looks at the table when no notifier wakes it and no local driver
# pushes: the delay of an event of another process on its way to a subscriber here.
POLL_INTERVAL_S = 0.25

IsLocal = Callable[[], bool]


class Follower:
    """Polls one run's log after the highest seq it knows of and forwards what is new.

    `seen` starts at a seq the first subscriber knows was committed when it read the table,
    so nothing after it is skipped: an event that subscriber did not read committed later,
    and the follower finds it. Local commits (seen on the follower's own subscription) move
    `seen` on, so a run this process drove is not read again once it parks.
    """

    def __init__(self, store: Store, run_id: str, seen: int, poll_interval: float) -> None:
        self.store = store
        self.run_id = run_id
        self.seen = seen
        self.poll_interval = poll_interval
        self.users = 0
        self._is_local: list[IsLocal] = []
        self._pushed: Subscription = store.bus.subscribe(run_id, PAGE)
        self._wake = asyncio.Event()
        self._announced = -WATCH_RENEW_S  # when it last said it watches the run
        self._task = asyncio.get_running_loop().create_task(self._follow())

    def wake(self) -> None:
        """Look at the table now (call on the follower's event loop)."""
        self._wake.set()

    def wake_for(self, seq: int) -> None:
        """Look now if `seq` (committed somewhere) is past what this follower has seen."""
        if seq > self.seen:
            self._wake.set()

    def is_local(self) -> bool:
        """Whether a subscriber says this process drives the run (so its events are pushed)."""
        return any(fn() for fn in self._is_local)

    def reannounce(self) -> None:
        """Say at once that this process watches the run (a writer asked)."""
        self._announced = -WATCH_RENEW_S
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            if not self.is_local() and time.monotonic() - self._announced >= WATCH_RENEW_S:
                self._announced = time.monotonic()
                await self._announce()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            self._note_pushed()
            if self.is_local():
                continue
            try:
                await self.poll()
            except Exception:
                logger.warning("following run %s failed", self.run_id, exc_info=True)

    async def _announce(self) -> None:
        """Ask whoever drives the run to announce its events (PostgreSQL)."""
        if self.store.is_sqlite:
            return
        try:
            await self.store.run(self.store.announce_watch, self.run_id)
        except Exception:
            logger.warning("watching run %s failed", self.run_id, exc_info=True)

    def _note_pushed(self) -> None:
        pushed = sorted(event.seq for event in self._pushed.buffer)
        self._pushed.buffer.clear()
        self._pushed.behind = False
        for seq in pushed:
            if seq == self.seen + 1:  # past a gap, the table has what this process did not commit
                self.seen = seq

    async def poll(self) -> None:
        """Read what was committed after `seen` and forward it to the run's subscribers."""
        while True:
            events = await self.store.run(events_page, self.store, self.run_id, self.seen, PAGE)
            if events:
                self.seen = events[-1].seq
                self.store.bus.forward(events)
            if len(events) < PAGE:
                return

    def _stop(self) -> None:
        self._task.cancel()
        self.store.bus.unsubscribe(self._pushed)


# Followers by store and run, then by loop: changed on their loops, read by the
# listening thread too, hence the lock.
_followers: dict[tuple[Store, str], dict[asyncio.AbstractEventLoop, Follower]] = {}
_lock = threading.Lock()
# Each store with followers listens for other processes' commits (PostgreSQL).
_listening: dict[Store, object | None] = {}


def follow(
    store: Store,
    run_id: str,
    seen: int,
    *,
    poll_interval: float = POLL_INTERVAL_S,
    is_local: IsLocal | None = None,
) -> Follower:
    """The run's follower, started if it is the first user: `seen` is a seq every event up
    to which the caller has read or does not want. Pair with `unfollow`."""
    loop = asyncio.get_running_loop()
    with _lock:
        by_loop = _followers.setdefault((store, run_id), {})
        follower = by_loop.get(loop)
        if follower is None:
            follower = by_loop[loop] = Follower(store, run_id, seen, poll_interval)
        listen = store not in _listening
        if listen:
            _listening[store] = None
    if listen:
        token = store.listen(partial(_on_notice, store))
        with _lock:
            _listening[store] = token
    follower.users += 1
    if is_local is not None:
        follower._is_local.append(is_local)
    return follower


def unfollow(follower: Follower, is_local: IsLocal | None = None) -> None:
    """Drop one user; the last one stops the follower."""
    if is_local is not None:
        follower._is_local.remove(is_local)
    follower.users -= 1
    if follower.users:
        return
    store, token = follower.store, None
    with _lock:
        key = (store, follower.run_id)
        by_loop = _followers.get(key, {})
        by_loop.pop(follower._task.get_loop(), None)
        if not by_loop:
            _followers.pop(key, None)
        if store in _listening and not any(s is store for s, _ in _followers):
            token = _listening.pop(store)
    follower._stop()
    store.unlisten(token)


def _on_notice(store: Store, notice: Notice) -> None:
    """In the listening thread: wake the run's followers (all of the store's after a
    reconnect, since what was sent meanwhile is lost) on their loops."""
    with _lock:
        found: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]]
        if notice.kind == "event":
            by_loop = _followers.get((store, notice.run_id), {})
            found = [(loop, partial(f.wake_for, notice.seq)) for loop, f in by_loop.items()]
        elif notice.kind == "reconnected" or (notice.kind == "watch" and notice.run_id == ASK):
            found = [
                (loop, f.wake if notice.kind == "reconnected" else f.reannounce)
                for (s, _), by_loop in _followers.items()
                if s is store
                for loop, f in by_loop.items()
            ]
        else:
            return
    for loop, wake in found:
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(wake)


def followers(store: Store) -> list[Follower]:
    """The followers running for `store` (on any loop)."""
    with _lock:
        return [f for (s, _), fs in _followers.items() if s is store for f in fs.values()]
