"""`streamRunEvents` over the WebSocket: every stored event after `afterSeq` once, in
order, then live ones to `run.completed`; the refusals; and a stream resumed after the
gateway process was stopped and started again on the same database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smithers_gateway import streams

from .conftest import Rpc, serve_gateway
from .processes import gateway_process
from .sockets import Socket, connected

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def run_events(socket: Socket, stream_id: str, until: str = "run.completed") -> list[Any]:
    """The stream's `run.event` payloads up to the one named `until`."""
    found: list[Any] = []
    pending = [f for f in socket.events if f.get("event") == "run.event"]
    socket.events.clear()
    while True:
        frame = pending.pop(0) if pending else await socket.frame()
        if frame.get("event") != "run.event" or frame["payload"]["streamId"] != stream_id:
            continue
        found.append(frame["payload"])
        if frame["payload"]["event"] == until:
            return found


async def wait_waiting(socket: Socket, run_id: str) -> None:
    for _ in range(1000):
        if (await socket.call("getRun", runId=run_id))["status"] == "waiting-approval":
            return
    raise AssertionError("the run did not wait for its approval")


async def test_a_stream_replays_every_seq_once_then_live(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        run_id = (await socket.call("launchRun", workflow="gate"))["runId"]
        await wait_waiting(socket, run_id)
        opened = await socket.call("streamRunEvents", runId=run_id, afterSeq=-1)
        assert opened["runId"] == run_id and opened["afterSeq"] == -1
        current = opened["currentSeq"]
        assert current >= 1
        stored = await run_events(socket, opened["streamId"], until="node.waiting_approval")
        assert [e["seq"] for e in stored] == list(range(len(stored)))
        assert stored[0]["payload"]["type"] == "RunStarted"
        await socket.call("submitApproval", runId=run_id, nodeId="go", approved=True)
        rest = await run_events(socket, opened["streamId"])
        seqs = [e["seq"] for e in stored + rest]
        assert seqs == list(range(len(seqs)))
        assert seqs[-1] > current
        last = rest[-1]
        assert last["event"] == "run.completed" and last["payload"]["type"] == "RunFinished"
        assert [e["event"] for e in stored + rest].count("run.completed") == 1
        assert "node.finished" in [e["event"] for e in rest]
        for event in stored + rest:
            assert event["payload"]["runId"] == run_id and "timestampMs" in event["payload"]

        # a finished run replays from any seq, and ends
        again = await socket.call("streamRunEvents", runId=run_id, afterSeq=2)
        replayed = await run_events(socket, again["streamId"])
        assert [e["seq"] for e in replayed] == seqs[3:]


async def test_stream_refusals(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        res = await socket.request("streamRunEvents", runId="no-such-run", afterSeq=-1)
        assert res["error"]["code"] == "RunNotFound"
        run_id = (await socket.call("launchRun", workflow="gate"))["runId"]
        await wait_waiting(socket, run_id)
        res = await socket.request("streamRunEvents", runId=run_id, afterSeq=10_000)
        assert res["error"]["code"] == "SeqOutOfRange"
        res = await socket.request("streamRunEvents", runId=run_id, afterSeq=-2)
        assert res["error"]["code"] == "INVALID_REQUEST"
        for _ in range(8):
            assert (await socket.request("streamRunEvents", runId=run_id))["ok"] is True
        res = await socket.request("streamRunEvents", runId=run_id)
        assert res["error"]["code"] == "RateLimited"
        async with gw.client() as client:
            await Rpc(client).refused("streamRunEvents", 400, "INVALID_REQUEST", runId=run_id)
        await socket.call("cancelRun", runId=run_id)


async def test_a_live_stream_without_after_seq(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        run_id = (await socket.call("launchRun", workflow="gate"))["runId"]
        await wait_waiting(socket, run_id)
        opened = await socket.call("streamRunEvents", runId=run_id)
        assert opened["afterSeq"] == opened["currentSeq"]
        await socket.call("submitApproval", runId=run_id, nodeId="go", approved=True)
        live = await run_events(socket, opened["streamId"])
        seqs = [e["seq"] for e in live]
        assert seqs == list(range(opened["currentSeq"] + 1, opened["currentSeq"] + 1 + len(seqs)))


async def test_a_stream_resumed_after_the_gateway_restarts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    async with gateway_process(tmp_path, db) as url, connected(url) as socket:
        run_id = (await socket.call("launchRun", workflow="gate"))["runId"]
        await wait_waiting(socket, run_id)
        opened = await socket.call("streamRunEvents", runId=run_id, afterSeq=-1)
        first = await run_events(socket, opened["streamId"], until="node.waiting_approval")
    last = first[-1]["seq"]
    async with gateway_process(tmp_path, db) as url, connected(url) as socket:
        opened = await socket.call("streamRunEvents", runId=run_id, afterSeq=last)
        assert opened["afterSeq"] == last
        await socket.call("submitApproval", runId=run_id, nodeId="go", approved=True)
        rest = await run_events(socket, opened["streamId"])
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(len(seqs)))
    assert rest[-1]["event"] == "run.completed"


async def test_a_stream_on_a_second_gateway_sharing_the_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        serve_gateway(tmp_path, db=db) as here,
        connected(here.url) as driver,
        gateway_process(tmp_path, db) as there,
        connected(there) as watcher,
    ):
        run_id = (await driver.call("launchRun", workflow="gate"))["runId"]
        await wait_waiting(driver, run_id)
        opened = await watcher.call("streamRunEvents", runId=run_id, afterSeq=0)
        await driver.call("submitApproval", runId=run_id, nodeId="go", approved=True)
        seen = await run_events(watcher, opened["streamId"])
        assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
        assert seen[-1]["event"] == "run.completed"


async def test_streams_resume_across_the_event_window_edge(tmp_path: Path) -> None:
    """The window holds the last 4 events: a stream resumed within it replays from memory,
    one resumed before it from the database; each sees the run's tail once, in order."""
    async with (
        serve_gateway(tmp_path, event_window_size=4) as gw,
        connected(gw.url) as socket,
    ):
        run_id = (await socket.call("launchRun", workflow="hello"))["runId"]
        await socket.event("run.completed", run_id)
        current = (await socket.call("streamRunEvents", runId=run_id, afterSeq=-1))["currentSeq"]
        assert current > 4
        for after in range(-1, current + 1):
            opened = await socket.call("streamRunEvents", runId=run_id, afterSeq=after)
            if after == current:
                continue  # nothing after the terminal event: the stream ends with no frame
            seen = await run_events(socket, opened["streamId"])
            assert [e["seq"] for e in seen] == list(range(after + 1, current + 1))


async def test_a_stream_far_behind_is_told_to_resume_and_misses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream with more than BEHIND frames queued on its socket ends with `run.error`
    `BackpressureDisconnect` and the last seq it queued (a replay queues its stored events
    at once); resumed from there, the client sees every seq once, in order."""
    monkeypatch.setattr(streams, "BEHIND", 2)
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        run_id = (await socket.call("launchRun", workflow="hello"))["runId"]
        await socket.event("run.completed", run_id)
        after, told, current = -1, 0, None
        seqs: list[int] = []
        while not seqs or seqs[-1] != current:
            opened = await socket.call("streamRunEvents", runId=run_id, afterSeq=after)
            current = opened["currentSeq"]
            pending = list(socket.events)
            socket.events.clear()
            while True:
                frame = pending.pop(0) if pending else await socket.frame()
                payload = frame.get("payload", {})
                if payload.get("streamId") != opened["streamId"]:
                    continue
                if frame["event"] == "run.error":
                    assert payload["code"] == "BackpressureDisconnect"
                    told += 1
                    after = payload["lastSeq"]
                    break
                if frame["event"] == "run.event":
                    seqs.append(payload["seq"])
                    if payload["event"] == "run.completed":
                        break
        assert told >= 1
        assert seqs == list(range(current + 1))
