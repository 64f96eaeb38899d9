"""Feeding an app's metrics (and the Gateway's event window and broadcast) from the event
log: one listener on each store's bus, stores that open later included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from . import queries
from .events import Event
from .finders import OneRun, Runs
from .host import RunHost
from .metrics import Metrics
from .store.base import Store
from .window import EventWindow


@asynccontextmanager
async def feed(
    runs: Runs,
    host: RunHost | None,
    metrics: Metrics,
    *,
    window: EventWindow | None = None,
    then: Callable[[Event], None] | None = None,
) -> AsyncIterator[None]:
    """See `RunService.feeding`."""
    tokens: list[tuple[Store, object]] = []
    one = runs.located if isinstance(runs, OneRun) else None
    counted = -1
    held: list[Event] | None = [] if one is not None else None

    def observe(store: Store, event: Event) -> None:
        nonlocal counted
        if one is None:
            if window is not None and not window.add(store, event):
                return  # seen already
            metrics.observe_event(event)
            if then is not None:
                then(event)
        elif event.run_id != one.run_id:
            return
        elif held is not None:
            held.append(event)
        elif event.seq > counted:
            metrics.observe_event(event)
            counted = event.seq

    def watch(store: Store) -> None:
        tokens.append((store, store.bus.add_listener(partial(observe, store))))

    for store in runs.stores():
        watch(store)
    if host is not None:
        host.on_open_store = watch
    try:
        if one is not None:
            past = await one.store.run(queries.run_events, one.store, one.run_id)
            for event in [*past, *(held or [])]:
                if event.seq > counted:
                    metrics.observe_event(event)
                    counted = event.seq
            held = None
        yield
    finally:
        if host is not None:
            host.on_open_store = None
        for store, token in tokens:
            store.bus.remove_listener(token)
