"""PostgreSQL LISTEN/NOTIFY: what one store commits wakes another store's followers and
runtime at once. Two stores with engines and buses of their own stand for two processes;
their polls are set far longer than the tests wait, so only a notice can be in time."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from smithers import (
    Approval,
    Parallel,
    Runtime,
    Sequence,
    Store,
    Task,
    Workflow,
    approve,
    cancel,
    create_smithers,
    open_store,
    subscribe,
)
from smithers.store import log as log_q
from smithers.store import postgres
from smithers.store.postgres import Notice, parse
from tests.conftest import POSTGRES_URL
from tests.helpers import assert_contiguous, event_types, eventually

pytestmark = pytest.mark.anyio

SLOW_POLL_S = 600.0


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(note=Note)


@pytest.fixture
def two(pg_schema_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one schema, as two processes would open them."""
    a, b = open_store(pg_schema_url), open_store(pg_schema_url)
    yield a, b
    a.close()
    b.close()


def logging_task(count: int, go: anyio.Event) -> object:
    async def chat(tctx: object) -> dict[str, str]:
        await go.wait()
        for i in range(count):
            tctx.log(f"line {i}")  # type: ignore[attr-defined]
            await anyio.sleep(0.005)
        return {"text": "done"}

    @smithers
    def wf(ctx):
        return Workflow("chat", [Task("chat", output=outputs.note, run=chat)])

    return wf


async def test_events_committed_by_one_process_reach_anothers_stream_without_a_poll(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    go = anyio.Event()
    async with Runtime(a, poll_interval=0.2) as rt:
        run_id = await rt.start(logging_task(30, go))
        seen: list[int] = []

        async def follow() -> None:
            async for event in subscribe(b, run_id, poll_interval=SLOW_POLL_S):
                seen.append(event.seq)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await eventually(lambda: b.bus.subscriber_count(run_id) > 0)
                await anyio.sleep(0.1)  # the stream has read the table and waits
                go.set()
    assert seen == list(range(len(event_types(a, run_id))))
    assert_contiguous(a, run_id)


def finished(store: Store, run_id: str) -> list[str]:
    with store.read() as conn:
        events = log_q.events_after(conn, run_id, -1, limit=10_000)
    return [e.payload["nodeId"] for e in events if e.type == "NodeFinished"]


@smithers
def gated(ctx):
    async def long() -> dict[str, str]:
        await anyio.sleep(60)
        return {"text": "long"}

    return Workflow(
        "gated",
        [
            Parallel(
                [
                    Task("long", output=outputs.note, run=long),
                    Sequence(
                        [
                            Approval("go", request={"title": "go?"}),
                            Task("after", output=outputs.note, run=lambda: {"text": "after"}),
                        ]
                    ),
                ]
            )
        ],
    )


async def test_an_approval_and_a_cancel_from_another_process_reach_the_owner_at_once(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    async with Runtime(a, poll_interval=SLOW_POLL_S) as rt:
        run_id = await rt.start(gated)
        await eventually(lambda: "NodeWaitingApproval" in event_types(a, run_id))
        await approve(b, run_id, "go")
        await eventually(lambda: "after" in finished(a, run_id))
        assert rt.is_live(run_id)  # still A's: `long` runs on
        assert await cancel(b, run_id) == "cancelled"
        with anyio.fail_after(10):
            result = await rt.wait(run_id)
    assert result.status == "cancelled"
    assert sorted(finished(a, run_id)) == ["after", "go"]
    assert_contiguous(a, run_id)


def own_pids(store: Store) -> set[int]:
    return postgres._pids[store.engine]


async def test_a_store_hears_only_what_others_commit(two: tuple[Store, Store]) -> None:
    a, b = two
    heard: dict[str, list[Notice]] = {"a": [], "b": []}
    tokens = [a.listen(heard["a"].append), b.listen(heard["b"].append)]
    try:
        await eventually(lambda: postgres.listener(a.engine).connected.is_set())
        go = anyio.Event()
        go.set()
        async with Runtime(a, poll_interval=0.2) as rt:
            result = await rt.run(logging_task(2, go))
        last = len(event_types(a, result.run_id)) - 1
        await eventually(
            lambda: (
                ("event", result.run_id, last) in [(n.kind, n.run_id, n.seq) for n in heard["b"]]
            )
        )
        assert not [n for n in heard["a"] if n.run_id == result.run_id]
    finally:
        for store, token in zip(two, tokens, strict=True):
            store.unlisten(token)


def test_notices_parse() -> None:
    assert parse(postgres.EVENTS, "run 1 42") == Notice("event", "run 1", 42)
    assert parse(postgres.COMMANDS, "run-1") == Notice("command", "run-1")
    assert parse(postgres.EVENTS, "garbage") is None
    assert parse("elsewhere", "run-1") is None


async def test_the_listener_reconnects_after_its_connection_is_killed(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    heard: list[Notice] = []
    token = b.listen(heard.append)
    try:
        listener = postgres.listener(b.engine)
        await eventually(lambda: listener.connected.is_set())
        before = listener.connections
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.pid})
        admin.dispose()
        await eventually(lambda: listener.connections > before)
        assert Notice("reconnected") in heard
        assert all(n.pid not in own_pids(b) for n in heard)
        go = anyio.Event()
        go.set()
        async with Runtime(a, poll_interval=0.2) as rt:
            result = await rt.run(logging_task(1, go))
        last = len(event_types(a, result.run_id)) - 1
        await eventually(
            lambda: ("event", result.run_id, last) in [(n.kind, n.run_id, n.seq) for n in heard]
        )
    finally:
        b.unlisten(token)


async def test_events_are_announced_only_for_runs_another_process_watches(
    two: tuple[Store, Store], pg_schema_url: str
) -> None:
    """A committing NOTIFY holds up every other: a writer announces a run's events only
    while someone elsewhere follows it (its follower says so on `smithers_watch`)."""
    a, b = two
    c = open_store(pg_schema_url)  # a third process, listening in
    heard: list[Notice] = []
    token = c.listen(heard.append)
    try:
        async with Runtime(a, poll_interval=0.2) as rt:
            go = anyio.Event()
            go.set()
            quiet = await rt.run(logging_task(3, go))
            assert a.watched is not None
            a.watched._all_until = 0.0  # past the start-up window, when it announces all
            unwatched = await rt.run(logging_task(3, go))
            go = anyio.Event()
            watched = await rt.start(logging_task(30, go))
            seen: list[int] = []

            async def follow() -> None:
                async for event in subscribe(b, watched, poll_interval=SLOW_POLL_S):
                    seen.append(event.seq)

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    await eventually(lambda: watched in a.watched)  # type: ignore[operator]
                    go.set()
        assert seen == list(range(len(event_types(a, watched))))
        announced = {n.run_id for n in heard if n.kind == "event"}
        assert quiet.run_id in announced and watched in announced
        assert unwatched.run_id not in announced
    finally:
        c.unlisten(token)
        c.close()


async def test_a_writer_listening_again_asks_the_watchers_to_say_so_at_once(
    two: tuple[Store, Store],
) -> None:
    """Watches sent while a writer's listener was away are lost: it asks, they answer."""
    a, b = two
    go = anyio.Event()
    async with Runtime(a, poll_interval=0.2) as rt:
        run_id = await rt.start(logging_task(1, go))
        assert a.watched is not None
        watched = a.watched

        async def follow() -> None:
            async for _ in subscribe(b, run_id, poll_interval=SLOW_POLL_S):
                pass

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                await eventually(lambda: run_id in watched._until)
                watched._until.clear()  # as if the watch was sent while a was away
                listener = postgres.listener(a.engine)
                before = listener.connections
                admin = sa.create_engine(POSTGRES_URL)
                with admin.begin() as conn:
                    conn.execute(
                        sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.pid}
                    )
                admin.dispose()
                await eventually(lambda: listener.connections > before)
                await eventually(lambda: run_id in watched._until)  # b answered the ask
                go.set()
