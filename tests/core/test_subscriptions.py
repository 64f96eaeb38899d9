"""subscribe(): stored events then live ones, in order, once each, for any number of readers."""

from __future__ import annotations

import threading

import anyio
import pytest
from pydantic import BaseModel

from smithers import Event, Runtime, Store, Task, Workflow, create_smithers, subscribe
from smithers.store import log as log_q
from tests.helpers import assert_contiguous

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


def test_concurrent_writers_keep_seqs_contiguous(store: Store) -> None:
    """Eight threads append to one run at once: seqs stay 0..N without hole or duplicate."""
    from smithers.store import runs as runs_q

    with store.write() as tx:
        runs_q.insert_run(
            tx.conn,
            run_id="busy",
            workflow_name="w",
            workflow_path=None,
            workflow_hash=None,
            owner_id=None,
            now=tx.now,
            input={},
            config={},
            auth=None,
        )
        tx.emit("busy", "RunStarted")
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
