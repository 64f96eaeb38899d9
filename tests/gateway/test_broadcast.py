"""Broadcast events: what runs do reaches every authenticated socket, or only those that
named the run in `connect`'s `subscribe`; `run.completed` comes once per run; launching or
deciding over a socket does not narrow what it receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Rpc, serve_gateway
from .sockets import connected

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


def named(frames: list[dict[str, Any]], name: str, run_id: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("event") == name and f["payload"]["runId"] == run_id]


async def test_events_reach_every_socket_or_the_subscribed_ones(tmp_path: Path) -> None:
    async with (
        serve_gateway(tmp_path) as gw,
        gw.client() as client,
        connected(gw.url) as everyone,
        connected(gw.url, "reader-token", subscribe=["run-a"]) as only_a,
        connected(gw.url, subscribe=["run-b"]) as only_b,
    ):
        rpc = Rpc(client)
        await rpc("launchRun", workflow="hello", runId="run-a")
        for socket in (everyone, only_a):
            done = await socket.event("run.completed", "run-a")
            assert done["type"] == "event" and done["apiVersion"] == "v1"
            assert done["payload"]["status"] == "finished" and done["payload"]["eventSeq"] > 0
            seen = [*socket.events, done]
            finished = named(seen, "node.finished", "run-a")
            assert {f["payload"]["nodeId"] for f in finished} == {"greet", "who"}
            assert named(seen, "node.started", "run-a")
            # seq counts this connection's event frames (the challenge was 1)
            seqs = [f["seq"] for f in seen]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 2
            versions = [f["stateVersion"] for f in seen]
            assert versions == sorted(versions) and versions[0] > 0
        await rpc("launchRun", workflow="hello", runId="run-b")
        for socket in (everyone, only_b):
            await socket.event("run.completed", "run-b")
        # only_a saw nothing of run-b, only_b nothing of run-a (run-b came after run-a)
        assert not [f for f in only_b.events if f["payload"].get("runId") == "run-a"]
        await only_a.call("health")  # the frames queued before this answer have arrived
        assert not [f for f in only_a.events if f["payload"].get("runId") == "run-b"]


async def test_run_completed_comes_once_per_run(tmp_path: Path) -> None:
    async with (
        serve_gateway(tmp_path) as gw,
        gw.client() as client,
        connected(gw.url) as socket,
    ):
        rpc = Rpc(client)
        first = (await rpc("launchRun", workflow="hello"))["runId"]
        done = [await socket.event("run.completed", first)]
        cancelled = (await rpc("launchRun", workflow="gate"))["runId"]
        await socket.event("approval.requested", cancelled)
        await rpc("cancelRun", runId=cancelled)
        done.append(await socket.event("run.completed", cancelled))
        last = (await rpc("launchRun", workflow="hello"))["runId"]
        done.append(await socket.event("run.completed", last))
        # events of one process arrive in commit order: a second run.completed of the
        # first two runs would have come before the last one's
        seen = [*socket.events, *done]
        assert len(named(seen, "run.completed", first)) == 1
        assert len(named(seen, "run.completed", cancelled)) == 1
        assert done[1]["payload"]["status"] == "cancelled"


async def test_launching_and_deciding_over_a_socket_do_not_narrow_it(tmp_path: Path) -> None:
    async with (
        serve_gateway(tmp_path) as gw,
        gw.client() as client,
        connected(gw.url) as socket,
    ):
        gated = (await socket.call("launchRun", workflow="gate"))["runId"]
        requested = await socket.event("approval.requested", gated)
        assert requested["payload"]["nodeId"] == "go"
        await socket.call("submitApproval", runId=gated, nodeId="go", approved=True)
        decided = await socket.event("approval.decided", gated)
        assert decided["payload"]["approved"] is True and decided["payload"]["nodeId"] == "go"
        await socket.event("run.completed", gated)
        other = (await Rpc(client)("launchRun", workflow="hello"))["runId"]
        assert (await socket.event("run.completed", other))["payload"]["status"] == "finished"


async def test_signals_are_broadcast(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, connected(gw.url) as socket:
        run_id = (await socket.call("launchRun", workflow="payment"))["runId"]
        await socket.event("node.waiting_event", run_id)
        await socket.call("submitSignal", runId=run_id, signalName="paid", payload={"amount": 3})
        received = (await socket.event("signal.received", run_id))["payload"]
        assert received["signalName"] == "paid" and received["seq"] >= 0
        assert received["eventSeq"] > 0
        await socket.event("run.completed", run_id)


async def test_a_socket_without_run_read_gets_no_run_events(tmp_path: Path) -> None:
    tokens = {
        "op-token": {"role": "operator", "scopes": ["*"]},
        "signal-token": {"role": "operator", "scopes": ["signal:submit"]},
    }
    auth = {"mode": "token", "tokens": tokens}
    async with (
        serve_gateway(tmp_path, auth=auth) as gw,
        connected(gw.url) as operator,
        connected(gw.url, "signal-token") as signaller,
    ):
        run_id = (await operator.call("launchRun", workflow="hello"))["runId"]
        await operator.event("run.completed", run_id)
        res: dict[str, Any] = await signaller.request("health")  # refused: no run:read
        assert res["ok"] is False
        assert not signaller.events
