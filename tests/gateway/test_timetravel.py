"""Time travel over the Gateway: `rewindRun` re-runs only what followed the frame, keeps
the run's event seq whole and is pushed as `run.time_travel_jumped`; who may rewind (role
admin or the run's starter, with `confirm: true`); `forkRun` starts a child that finishes
while its parent stays as it was."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from smithers import Task, Workflow

from .conftest import TERMINAL, Rpc, serve_gateway
from .sockets import connected
from .workflows import outputs, smithers

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

ADMIN = ["run:admin"]
TOKENS: dict[str, dict[str, Any]] = {
    "op-token": {"role": "operator", "scopes": ["*"], "userId": "ops"},
    "carol-token": {"role": "operator", "scopes": ADMIN, "userId": "carol"},
    "dave-token": {"role": "operator", "scopes": ADMIN, "userId": "dave"},
    "root-token": {"role": "admin", "scopes": ADMIN, "userId": "root"},
    "writer-token": {"role": "operator", "scopes": ["run:write"], "userId": "carol"},
}
AUTH = {"mode": "token", "tokens": TOKENS}

RAN: Counter[str] = Counter()  # how many times each task of `steps` ran, in this process


def _step(name: str) -> Any:
    def run() -> dict[str, str]:
        RAN[name] += 1
        return {"message": name}

    return run


@smithers
def steps(ctx: Any) -> Workflow:
    """One frame per step: each task appears once the one before it has an output."""
    nodes = [Task("one", output=outputs.gw_greeting, run=_step("one"))]
    for before, name in (("one", "two"), ("two", "three")):
        if ctx.output_maybe(outputs.gw_greeting, before) is not None:
            nodes.append(Task(name, output=outputs.gw_greeting, run=_step(name)))
    return Workflow("steps", nodes)


def stored_events(db: sqlite3.Connection, run_id: str) -> list[tuple[int, str]]:
    rows = db.execute(
        "SELECT seq, type FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,)
    )
    return [(int(seq), kind) for seq, kind in rows]


def started(db: sqlite3.Connection, run_id: str) -> Counter[str]:
    """NodeStarted events per node (the log keeps those of forgotten attempts)."""
    rows = db.execute(
        "SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = 'NodeStarted'",
        (run_id,),
    )
    return Counter(json.loads(payload)["nodeId"] for (payload,) in rows)


async def finished_steps(rpc: Rpc) -> str:
    RAN.clear()
    run_id: str = (await rpc("launchRun", workflow="steps"))["runId"]
    view = await rpc.wait_status(run_id, TERMINAL)
    assert view["status"] == "finished"
    frames = await rpc("listFrames", runId=run_id)
    assert sorted(f["frameNo"] for f in frames) == [0, 1, 2]
    return run_id


async def test_a_rewind_reruns_only_what_followed_the_frame(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=AUTH) as gw, gw.client() as client:
        gw.gateway.register("steps", steps)
        rpc = Rpc(client)
        run_id = await finished_steps(rpc)
        assert RAN == {"one": 1, "two": 1, "three": 1}

        async with connected(gw.url, subscribe=[run_id]) as socket:
            answer = await socket.call("rewindRun", runId=run_id, frameNo=1, confirm=True)
            assert answer["ok"] is True and answer["newFrameNo"] == 1
            assert answer["deletedFrames"] == 1 and answer["deletedAttempts"] == 1
            assert isinstance(answer["durationMs"], int) and answer["durationMs"] >= 0
            jumped = await socket.event("run.time_travel_jumped", run_id)
            payload = jumped["payload"]
            assert payload["type"] == "TimeTravelJumped" and payload["caller"] == "ops"
            assert (payload["fromFrameNo"], payload["toFrameNo"]) == (2, 1)
            completed = await socket.event("run.completed", run_id)
            assert completed["payload"]["status"] == "finished"

        view = await rpc.wait_status(run_id, TERMINAL)
        assert view["status"] == "finished" and view["summary"] == {"finished": 3}
        assert RAN == {"one": 1, "two": 1, "three": 2}  # only the node after frame 1 ran again
        attempts = await rpc("listAttempts", runId=run_id)
        assert Counter(a["nodeId"] for a in attempts) == {"one": 1, "two": 1, "three": 1}
        assert sorted(f["frameNo"] for f in await rpc("listFrames", runId=run_id)) == [0, 1, 2]

        with gw.db() as db:
            events = stored_events(db, run_id)
            assert started(db, run_id) == {"one": 1, "two": 1, "three": 2}
        assert [seq for seq, _ in events] == list(range(len(events)))
        kinds = [kind for _, kind in events]
        assert kinds.count("RunFinished") == 2 and kinds[-1] == "RunFinished"
        assert kinds.index("RunFinished") < kinds.index("TimeTravelJumped")

        # A replay of the whole log goes past the first end to the last, seq by seq.
        async with connected(gw.url) as socket:
            await socket.call("streamRunEvents", runId=run_id, afterSeq=-1)
            seqs = []
            while not seqs or seqs[-1] < len(events) - 1:
                frame = await socket.event("run.event", run_id)
                seqs.append(frame["payload"]["seq"])
            assert seqs == list(range(len(events)))


async def test_who_may_rewind(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=AUTH) as gw, gw.client("carol-token") as carol:
        gw.gateway.register("steps", steps)
        rpc = Rpc(carol)
        run_id = await finished_steps(rpc)  # started by carol

        for confirm in (None, False, "true", 1):
            params = {"runId": run_id, "frameNo": 0}
            if confirm is not None:
                params["confirm"] = confirm
            await rpc.refused("rewindRun", 400, "ConfirmationRequired", **params)
        async with gw.client("dave-token") as dave:
            refusal = await Rpc(dave).refused(
                "rewindRun", 403, "FORBIDDEN", runId=run_id, frameNo=0, confirm=True
            )
            assert refusal["runId"] == run_id
            # The legacy name is the same method, refused the same way.
            await Rpc(dave).refused(
                "jumpToFrame", 403, "FORBIDDEN", runId=run_id, frameNo=0, confirm=True
            )
        async with gw.client("writer-token") as writer:
            refusal = await Rpc(writer).refused(
                "rewindRun", 403, "FORBIDDEN", runId=run_id, frameNo=0, confirm=True
            )
            assert refusal["requiredScope"] == "run:admin"
        await rpc.refused(
            "rewindRun", 400, "INVALID_REQUEST", runId=run_id, frameNo=7, confirm=True
        )
        await rpc.refused(
            "rewindRun", 400, "INVALID_REQUEST", runId=run_id, frameNo=-1, confirm=True
        )
        await rpc.refused(
            "rewindRun", 404, "NOT_FOUND", runId="smi_missing", frameNo=0, confirm=True
        )
        assert RAN == {"one": 1, "two": 1, "three": 1}  # nothing of it ran again

        # The starter may: from frame 0 the two later tasks run again.
        answer = await rpc("rewindRun", runId=run_id, frameNo=0, confirm=True)
        assert (answer["deletedFrames"], answer["deletedAttempts"]) == (2, 2)
        await rpc.wait_status(run_id, "finished")
        assert RAN == {"one": 1, "two": 2, "three": 2}

        # So may an admin who did not start it.
        async with gw.client("root-token") as root:
            await Rpc(root)("rewindRun", runId=run_id, frameNo=1, confirm=True)
        await rpc.wait_status(run_id, "finished")
        assert RAN == {"one": 1, "two": 2, "three": 3}

        # A run a live process drives is not rewound under it: pause it first.
        async with gw.client() as ops:
            slow = (await Rpc(ops)("launchRun", workflow="slow", input={"seconds": 1.5}))["runId"]
            await Rpc(ops).wait_status(slow, "running")
            states: set[str] = set()
            while "in-progress" not in states:
                states = {s["state"] for s in await Rpc(ops)("listNodeStates", runId=slow)}
                await anyio.sleep(0.02)
            await Rpc(ops).refused(
                "rewindRun", 409, "CONFLICT", runId=slow, frameNo=0, confirm=True
            )
            await Rpc(ops)("cancelRun", runId=slow)


async def test_a_fork_finishes_and_leaves_its_parent_alone(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path, auth=AUTH) as gw, gw.client("carol-token") as carol:
        gw.gateway.register("steps", steps)
        rpc = Rpc(carol)
        parent = await finished_steps(rpc)
        with gw.db() as db:
            before = stored_events(db, parent)
        attempts_before = await rpc("listAttempts", runId=parent)

        async with gw.client("writer-token") as writer:
            child = (await Rpc(writer)("forkRun", runId=parent, frameNo=1, newRunId="child-1"))[
                "runId"
            ]
        assert child == "child-1"
        view = await rpc.wait_status(child, TERMINAL)
        assert view["status"] == "finished" and view["summary"] == {"finished": 3}
        assert RAN == {"one": 1, "two": 1, "three": 2}  # the child ran only `three`
        output = await rpc("getNodeOutput", runId=child, nodeId="two")
        assert output["output"] == {"message": "two"}  # copied from the parent

        with gw.db() as db:
            assert stored_events(db, parent) == before
            kinds = [kind for _, kind in stored_events(db, child)]
        assert await rpc("listAttempts", runId=parent) == attempts_before
        assert (await rpc("getRun", runId=parent))["status"] == "finished"
        assert kinds[:2] == ["RunStarted", "RunForked"] and kinds[-1] == "RunFinished"
        assert kinds.count("NodeStarted") == 1

        # Without newRunId the child gets an id of its own.
        other = await rpc("forkRun", runId=parent, frameNo=0)
        assert other["runId"] not in (parent, child)
        await rpc.wait_status(other["runId"], "finished")
        await rpc.refused("forkRun", 409, "CONFLICT", runId=parent, frameNo=0, newRunId=child)
        await rpc.refused("forkRun", 400, "INVALID_REQUEST", runId=parent, frameNo=9)
        await rpc.refused("forkRun", 404, "NOT_FOUND", runId="smi_missing", frameNo=0)
