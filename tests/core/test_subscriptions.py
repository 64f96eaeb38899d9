"""subscribe(): stored events then live ones, in order, once each, for any number of readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.abc
import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from smithers import Event, Runtime, Store, Task, Workflow, create_smithers, open_store, subscribe
from smithers.followers import followers
from smithers.store import log as log_q
from smithers.store import runs as runs_q
from tests.helpers import assert_contiguous, eventually

pytestmark = pytest.mark.anyio


class Tick(BaseModel):
    n: int


smithers, outputs = create_smithers(tick=Tick)


def ticking(count: int, gate: anyio.Event | None = None) -> object:
    async def tick(tctx: object) -> dict[str, int]:
        if gate is not None:
            await gate.wait()
        for i in range(count):
            tctx.log(f"line {i}")  # type: ignore[attr-defined]
            await anyio.sleep(0)
        return {"n": count}

    @smithers
    def wf(ctx):
        return Workflow("ticking", [Task("tick", output=outputs.tick, run=tick)])

    return wf


def stored(store: Store, run_id: str) -> list[Event]:
    with store.read() as conn:
        return log_q.events_after(conn, run_id, -1, limit=100_000)


async def collect(store: Store, run_id: str, after_seq: int = -1) -> list[int]:
    seqs = []
    with anyio.fail_after(20):
        async for event in subscribe(store, run_id, after_seq):
            seqs.append(event.seq)
    return seqs


async def test_a_subscriber_joining_midway_sees_every_event_once(store: Store) -> None:
    gate = anyio.Event()
    wf = ticking(50, gate)
    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        while not stored(store, run_id) or stored(store, run_id)[-1].type != "NodeStarted":
            await anyio.sleep(0.01)
        seen: list[int] = []
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                seen.extend(await collect(store, run_id))

            tg.start_soon(follow)
            await anyio.sleep(0.05)
            gate.set()
        await rt.wait(run_id)
    all_events = stored(store, run_id)
    assert seen == [e.seq for e in all_events]
    assert all_events[-1].type == "RunFinished"
    assert_contiguous(store, run_id)


async def test_after_seq_skips_what_the_client_has(store: Store) -> None:
    wf = ticking(5)
    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        await rt.wait(run_id)
    total = len(stored(store, run_id))
    assert await collect(store, run_id, 3) == list(range(4, total))
    assert await collect(store, run_id, total - 1) == []


async def test_two_hundred_subscribers_see_the_same_sequence(store: Store) -> None:
    gate = anyio.Event()
    wf = ticking(100, gate)
    results: list[list[int]] = []
    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                results.append(await collect(store, run_id))

            for _ in range(200):
                tg.start_soon(follow)
            await anyio.sleep(0.2)
            gate.set()
        await rt.wait(run_id)
    expected = [e.seq for e in stored(store, run_id)]
    assert len(expected) > 100
    assert len(results) == 200
    assert all(r == expected for r in results)
    assert store.bus.subscriber_count() == 0


async def test_a_slow_subscriber_falls_back_to_the_table(store: Store) -> None:
    """A buffer of 8 overflows at once; the reader still gets everything, in order."""
    gate = anyio.Event()
    wf = ticking(200, gate)
    async with Runtime(store) as rt:
        run_id = await rt.start(wf)
        seqs: list[int] = []
        async with anyio.create_task_group() as tg:

            async def slow() -> None:
                with anyio.fail_after(20):
                    async for event in subscribe(store, run_id, max_buffer=8):
                        seqs.append(event.seq)
                        await anyio.sleep(0.001)

            tg.start_soon(slow)
            await anyio.sleep(0.05)
            gate.set()
        await rt.wait(run_id)
    assert seqs == [e.seq for e in stored(store, run_id)]


def add_run(store: Store, run_id: str, status: str = "running") -> None:
    """A run row and its `RunStarted`, as another process that drives the run leaves them."""
    with store.write() as tx:
        runs_q.insert_run(
            tx.conn,
            run_id=run_id,
            workflow_name="w",
            workflow_path=None,
            workflow_hash=None,
            owner_id=None,
            now=tx.now,
            input={},
            config={},
            auth=None,
        )
        runs_q.update_run(tx.conn, run_id, status=status)
        tx.emit(run_id, "RunStarted")


def test_concurrent_writers_keep_seqs_contiguous(store: Store) -> None:
    """Eight threads append to one run at once: seqs stay 0..N without hole or duplicate."""
    add_run(store, "busy")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                with store.write() as tx:
                    tx.emit("busy", "NodeOutput", nodeId=f"w{n}", iteration=0, text=str(i))
                    tx.emit("busy", "NodeOutput", nodeId=f"w{n}", iteration=0, text="again")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [e.seq for e in stored(store, "busy")] == list(range(1 + 8 * 40 * 2))


# -- runs driven by another process: one follower per run, not one poll per subscriber --

POLL_S = 0.05


@contextmanager
def counting_reads(store: Store) -> Iterator[list[object]]:
    """The transactions this store opens on its database while the block runs (the store's
    queries run on the raw driver cursor, out of SQLAlchemy's statement events' sight)."""
    opened: list[object] = []

    def count(conn: object) -> None:
        opened.append(conn)

    sa.event.listen(store.engine, "begin", count)
    try:
        yield opened
    finally:
        sa.event.remove(store.engine, "begin", count)


async def watch(
    tg: anyio.abc.TaskGroup,
    store: Store,
    run_id: str,
    n: int,
    *,
    max_buffer: int = 1024,
) -> list[list[int]]:
    """Start `n` subscribers in `tg` (each appends the seqs it gets to its own list) and
    wait until each has read the stored log, so they are idle from then on."""
    before = len(stored(store, run_id))
    seen: list[list[int]] = [[] for _ in range(n)]

    async def follow_run(mine: list[int]) -> None:
        async for event in subscribe(store, run_id, poll_interval=POLL_S, max_buffer=max_buffer):
            mine.append(event.seq)

    for mine in seen:
        tg.start_soon(follow_run, mine)
    await eventually(lambda: all(len(mine) >= before for mine in seen))
    return seen


@pytest.mark.parametrize("subscribers", [1, 200])
async def test_idle_subscribers_of_another_process_run_cost_one_read_per_interval(
    store: Store, subscribers: int
) -> None:
    """A parked run driven elsewhere: the table is read once per poll interval (one
    transaction holding one query), whether one or two hundred subscribers watch it, and
    not at all once they have gone."""
    run_id = f"parked-{subscribers}"  # the PostgreSQL schema is shared by the module
    add_run(store, run_id, status="waiting-approval")
    async with anyio.create_task_group() as tg:
        seen = await watch(tg, store, run_id, subscribers)
        with counting_reads(store) as sent:
            started = time.monotonic()
            await anyio.sleep(10 * POLL_S)
            intervals = (time.monotonic() - started) / POLL_S
            idle_reads = len(sent)
        tg.cancel_scope.cancel()
    assert 0 < idle_reads <= intervals + 2, (idle_reads, intervals)
    assert followers(store) == [] and store.bus.subscriber_count() == 0
    with counting_reads(store) as sent:
        await anyio.sleep(3 * POLL_S)
    assert sent == []
    assert seen == [[0]] * subscribers


async def test_events_of_another_process_reach_every_subscriber_once_in_order(
    db_url: str, store: Store
) -> None:
    """Another Store on the database stands for another process appending to its run;
    200 subscribers here (four with a tiny buffer that overflows, two joining midway) get
    every event, in order, once each, and close after the terminal event. Nothing reaches the bus's
    listeners (the runtime, metrics): they only see what this process commits."""
    other = open_store(db_url)
    heard: list[Event] = []
    token = store.bus.add_listener(heard.append)
    try:
        add_run(other, "elsewhere")
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                seen = await watch(tg, store, "elsewhere", 194)
                seen += await watch(tg, store, "elsewhere", 4, max_buffer=4)
                for batch in range(6):
                    with other.write() as tx:
                        for i in range(batch * 10):
                            tx.emit("elsewhere", "NodeOutput", nodeId="a", iteration=0, text=f"{i}")
                    await anyio.sleep(POLL_S * (batch % 3))
                    if batch == 3:  # late joiners share the running follower
                        seen += await watch(tg, store, "elsewhere", 2)
                with other.write() as tx:
                    runs_q.update_run(tx.conn, "elsewhere", status="finished")
                    tx.emit("elsewhere", "RunFinished")
    finally:
        store.bus.remove_listener(token)
        other.close()
    expected = [e.seq for e in stored(store, "elsewhere")]
    assert len(expected) == 1 + 150 + 1
    assert len(seen) == 200 and all(mine == expected for mine in seen)
    assert heard == []
    assert followers(store) == [] and store.bus.subscriber_count() == 0


async def test_a_stream_closes_when_its_run_ends_between_reading_the_run_and_its_events(
    pg_schema_url: str,
) -> None:
    """PostgreSQL gives each statement of a read its own snapshot: the run ends (another
    process commits `RunFinished`) after the stream has read the run's row and before it
    reads the events. The stream still gets every event and closes; it used to wait for
    an event after the terminal one, forever."""
    store, other = open_store(pg_schema_url), open_store(pg_schema_url)
    add_run(other, "racing")
    holding, release = threading.Event(), threading.Event()

    def finish() -> None:
        with other.write() as tx:  # readers of the events queue behind this transaction
            tx.conn.exec_driver_sql("LOCK TABLE _smithers_events IN ACCESS EXCLUSIVE MODE")
            holding.set()
            release.wait(20)
            runs_q.update_run(tx.conn, "racing", status="finished")
            tx.emit("racing", "RunFinished")

    def reader_waits_for_the_lock() -> bool:
        with other.read() as conn:
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks "
                "WHERE NOT granted AND relation = '_smithers_events'::regclass"
            ).scalar()
        return bool(found)

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        assert holding.wait(20)
        async with anyio.create_task_group() as tg:
            seqs: list[int] = []

            async def read() -> None:
                seqs.extend(await collect(store, "racing"))

            tg.start_soon(read)
            await eventually(reader_waits_for_the_lock)
            release.set()
    finally:
        release.set()
        finisher.join()
        store.close()
        other.close()
    assert seqs == [0, 1]
