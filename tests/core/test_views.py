"""The kept views of ended runs (`smithers.views`): served again only while the run is
unchanged, so a retry, rewind or resume, here or by another process, shows at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from smithers import Runtime, Store, Task, Workflow, create_smithers, open_store, retry_task, rewind
from smithers.queries import run_view, run_view_json
from smithers.views import ViewCache

pytestmark = pytest.mark.anyio


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(viewed_note=Note)
calls = {"flaky": 0}


def flaky() -> dict[str, str]:
    calls["flaky"] += 1
    if calls["flaky"] == 1:
        raise RuntimeError("first time")
    return {"text": "then good"}


@smithers
def fails_once(ctx):
    return Workflow("fails-once", [Task("flaky", output=outputs.viewed_note, run=flaky)])


@smithers
def hello(ctx):
    return Workflow("viewed", [Task("a", output=outputs.viewed_note, run={"text": "a"})])


def without_clock(view: dict[str, Any] | None) -> dict[str, Any]:
    assert view is not None
    return {**view, "runState": {k: v for k, v in view["runState"].items() if k != "computedAt"}}


async def test_a_kept_view_equals_the_fresh_one_with_the_time_of_the_read(store: Store) -> None:
    cache = ViewCache()
    async with Runtime(store) as rt:
        run_id = await rt.start(hello)
        await rt.wait(run_id)
    first = run_view(store, run_id, cache)
    kept = run_view(store, run_id, cache)
    fresh = run_view(store, run_id)
    assert kept is not first  # served from the cache, not rebuilt
    assert without_clock(kept) == without_clock(fresh) == without_clock(first)
    assert kept is not None and fresh is not None
    assert kept["runState"]["computedAt"] <= fresh["runState"]["computedAt"]
    assert run_view(store, "no-such-run", cache) is None


async def test_the_kept_json_is_the_fresh_view_with_the_time_of_the_read(store: Store) -> None:
    """An ended run's bytes come from the cache with `computedAt` set at each read, its
    error (after runState in the view) included, and are the view itself."""
    calls["flaky"] = 0
    cache = ViewCache()
    async with Runtime(store) as rt:
        finished = await rt.start(hello)
        failed = await rt.start(fails_once)
        await rt.wait(finished)
        await rt.wait(failed)
    for run_id in (finished, failed):
        first = run_view_json(store, run_id, cache)
        kept = run_view_json(store, run_id, cache)
        assert first is not None and kept is not None
        views = [json.loads(first), json.loads(kept), run_view(store, run_id)]
        assert [without_clock(view) for view in views[1:]] == [without_clock(views[0])] * 2
        clocks = [view["runState"]["computedAt"] for view in views]
        assert clocks == sorted(clocks)
    assert "first time" in json.loads(kept)["error"]["message"]
    assert run_view_json(store, "no-such-run", cache) is None


async def test_a_retried_failed_run_shows_at_once_then_its_end(store: Store) -> None:
    calls["flaky"] = 0
    cache = ViewCache()
    async with Runtime(store) as rt:
        run_id = await rt.start(fails_once)
        await rt.wait(run_id)
        assert without_clock(run_view(store, run_id, cache))["status"] == "failed"
        assert without_clock(run_view(store, run_id, cache))["status"] == "failed"  # kept
        await retry_task(store, run_id, "flaky")
        assert without_clock(run_view(store, run_id, cache)) == without_clock(
            run_view(store, run_id)
        )
        assert run_view(store, run_id, cache)["status"] == "running"  # type: ignore[index]
        await rt.resume(run_id, fails_once, adopt=True)
        await rt.wait(run_id)
    view = without_clock(run_view(store, run_id, cache))
    assert (view["status"], view["summary"], "error" in view) == (
        "finished",
        {"finished": 1},
        False,
    )


async def test_a_rewound_finished_run_shows_at_once(store: Store) -> None:
    cache = ViewCache()
    async with Runtime(store) as rt:
        run_id = await rt.start(hello)
        await rt.wait(run_id)
        assert without_clock(run_view(store, run_id, cache))["status"] == "finished"
        await rewind(store, run_id, 0)
        assert without_clock(run_view(store, run_id, cache)) == without_clock(
            run_view(store, run_id)
        )
        assert without_clock(run_view(store, run_id, cache))["status"] != "finished"


async def test_a_run_changed_through_another_connection_is_seen(db_url: str) -> None:
    """Another process is another store on the same database: the cache of this one sees
    what that one did, with no event reaching this process."""
    calls["flaky"] = 0
    cache = ViewCache()
    here, there = open_store(db_url), open_store(db_url)
    try:
        async with Runtime(there) as rt:
            run_id = await rt.start(fails_once)
            await rt.wait(run_id)
            assert without_clock(run_view(here, run_id, cache))["status"] == "failed"
            await retry_task(there, run_id, "flaky")
            await rt.resume(run_id, fails_once, adopt=True)
            await rt.wait(run_id)
        assert without_clock(run_view(here, run_id, cache)) == without_clock(
            run_view(there, run_id)
        )
        assert without_clock(run_view(here, run_id, cache))["status"] == "finished"
    finally:
        here.close()
        there.close()
