"""Human input over HTTP RPC: pending approvals with their metadata, who may decide them
(approval-level users and scopes), strict `approved`, several decisions all or none, and
signals; a decision or a signal resumes the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Rpc, Running, serve_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


def approval_rows(gw: Running, run_id: str) -> list[tuple[Any, ...]]:
    """The approval rows as stored: (node, status, decided at, decided by, note)."""
    with gw.db() as conn:
        return conn.execute(
            "SELECT node_id, status, decided_at_ms, decided_by, note FROM _smithers_approvals "
            "WHERE run_id = ? ORDER BY node_id",
            (run_id,),
        ).fetchall()


async def start_review(rpc: Rpc) -> str:
    run_id: str = (await rpc("launchRun", workflow="review"))["runId"]
    await rpc.wait_status(run_id, "waiting-approval")
    return run_id


async def test_pending_approvals_carry_rich_metadata(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client("reader-token") as reader:
        async with gw.client() as client:
            run_id = await start_review(Rpc(client))
        rpc = Rpc(reader)
        pending = await rpc("listApprovals")
        # Requested in one step: oldest first, then by run and node.
        assert [a["nodeId"] for a in pending] == ["colour", "owner", "release"]
        colour, owner, release = pending
        assert owner == {
            "runId": run_id,
            "workflowKey": "review",
            "nodeId": "owner",
            "iteration": 0,
            "label": None,
            "requestTitle": "Alice's call",
            "requestSummary": "only alice",
            "requestedAtMs": owner["requestedAtMs"],
            "approvalMode": "approve",
            "options": [],
            "allowedScopes": [],
            "allowedUsers": ["alice"],
        }
        assert release["allowedScopes"] == ["release:approve"] and release["allowedUsers"] == []
        assert colour["approvalMode"] == "select"
        assert [o["key"] for o in colour["options"]] == ["blue", "green"]
        times = [a["requestedAtMs"] for a in pending]
        assert times == sorted(times)
        assert await rpc("approvals.list", filter={"runId": run_id}) == pending
        assert await rpc("listApprovals", filter={"workflow": "review"}) == pending
        assert await rpc("listApprovals", filter={"workflow": "gate"}) == []
        assert len(await rpc("listApprovals", limit=1)) == 1


async def test_approval_level_users_and_scopes(tmp_path: Path) -> None:
    async with (
        serve_gateway(tmp_path) as gw,
        gw.client("alice-token") as a,
        gw.client("bob-token") as b,
    ):
        alice, bob = Rpc(a), Rpc(b)
        run_id = await start_review(alice)
        # Bob holds approval:submit but the node names alice alone.
        await bob.refused(
            "submitApproval", 403, "FORBIDDEN", runId=run_id, nodeId="owner", approved=True
        )
        # Alice is not granted the scope the release approval asks for.
        await alice.refused(
            "submitApproval", 403, "FORBIDDEN", runId=run_id, nodeId="release", approved=True
        )
        assert [row[1] for row in approval_rows(gw, run_id)] == ["requested"] * 3
        owner = await alice(
            "submitApproval", runId=run_id, nodeId="owner", approved=True, note="ok"
        )
        assert owner == {"runId": run_id, "nodeId": "owner", "iteration": 0, "approved": True}
        await bob("approvals.decide", runId=run_id, nodeId="release", approved=True)
        # A select approval needs one of its options.
        error = await bob.refused(
            "submitApproval",
            400,
            "INVALID_REQUEST",
            runId=run_id,
            nodeId="colour",
            approved=True,
            decision={"selected": "red"},
        )
        assert error["field"] == "decision.selected"
        await bob(
            "submitApproval",
            runId=run_id,
            nodeId="colour",
            approved=True,
            decision={"selected": "green"},
        )
        await bob.refused(
            "submitApproval", 409, "AlreadyDecided", runId=run_id, nodeId="owner", approved=True
        )
        # The decisions resume the run.
        view = await alice.wait_status(run_id, "finished")
        assert view["summary"] == {"finished": 4}
        rows = {row[0]: row for row in approval_rows(gw, run_id)}
        assert rows["owner"][1:2] == ("approved",) and rows["owner"][3:] == ("alice", "ok")
        assert rows["release"][3] == "bob"


async def test_a_non_boolean_approved_is_refused_and_the_row_untouched(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        run_id = (await rpc("launchRun", workflow="gate"))["runId"]
        await rpc.wait_status(run_id, "waiting-approval")
        before = approval_rows(gw, run_id)
        assert before == [("go", "requested", None, None, None)]
        for value in ("true", 1, 0, "yes", None, [True], {"v": True}):
            error = await rpc.refused(
                "submitApproval", 400, "INVALID_REQUEST", runId=run_id, nodeId="go", approved=value
            )
            assert error["field"] == "approved"
        await rpc.refused("submitApproval", 400, "INVALID_REQUEST", runId=run_id, nodeId="go")
        assert approval_rows(gw, run_id) == before
        assert (await rpc("getRun", runId=run_id))["status"] == "waiting-approval"
        await rpc("submitApproval", runId=run_id, nodeId="go", approved=False)
        view = await rpc.wait_status(run_id, "failed")
        assert view["error"]["code"] == "APPROVAL_DENIED"


async def test_submit_approvals_is_all_or_none(tmp_path: Path, db_url: str) -> None:
    async with serve_gateway(tmp_path, db=db_url) as gw, gw.client("bob-token") as client:
        rpc = Rpc(client)
        first = (await rpc("launchRun", workflow="gate"))["runId"]
        second = (await rpc("launchRun", workflow="gate"))["runId"]
        review = await start_review(rpc)
        await rpc.wait_status(first, "waiting-approval")
        await rpc.wait_status(second, "waiting-approval")
        # The last decision is refused (bob is not alice): none of them is recorded.
        error = await rpc.refused(
            "submitApprovals",
            403,
            "FORBIDDEN",
            decisions=[
                {"runId": first, "nodeId": "go", "approved": True},
                {"runId": second, "nodeId": "go", "approved": True},
                {"runId": review, "nodeId": "owner", "approved": True},
            ],
        )
        assert error["index"] == 2
        pending = {(a["runId"], a["nodeId"]) for a in await rpc("listApprovals")}
        assert {(first, "go"), (second, "go"), (review, "owner")} <= pending
        await rpc.refused(
            "submitApprovals",
            400,
            "INVALID_REQUEST",
            decisions=[
                {"runId": first, "nodeId": "go", "approved": True},
                {"runId": second, "nodeId": "go", "approved": "yes"},
            ],
        )
        await rpc.refused(
            "submitApprovals",
            404,
            "NOT_FOUND",
            decisions=[
                {"runId": first, "nodeId": "go", "approved": True},
                {"runId": "smi_missing", "nodeId": "go", "approved": True},
            ],
        )
        await rpc.refused("submitApprovals", 400, "INVALID_REQUEST", decisions=[])
        assert (await rpc("getRun", runId=first))["status"] == "waiting-approval"
        done = await rpc(
            "submitApprovals",
            decisions=[
                {"runId": first, "nodeId": "go", "approved": True},
                {"runId": second, "nodeId": "go", "approved": True, "note": "both"},
            ],
        )
        assert [(d["runId"], d["approved"]) for d in done["decisions"]] == [
            (first, True),
            (second, True),
        ]
        await rpc.wait_status(first, "finished")
        await rpc.wait_status(second, "finished")


async def test_a_signal_resumes_the_run(tmp_path: Path) -> None:
    async with serve_gateway(tmp_path) as gw, gw.client() as client:
        rpc = Rpc(client)
        run_id = (await rpc("launchRun", workflow="payment"))["runId"]
        await rpc.wait_status(run_id, "waiting-event")
        error = await rpc.refused(
            "submitSignal",
            400,
            "INVALID_REQUEST",
            runId=run_id,
            signalName="paid",
            payload={"amount": "lots"},
        )
        assert error["field"] == "data"
        receipt = await rpc("signals.send", runId=run_id, signalName="paid", payload={"amount": 5})
        assert receipt["runId"] == run_id and receipt["signalName"] == "paid"
        assert receipt["correlationId"] is None and isinstance(receipt["receivedAtMs"], int)
        await rpc.wait_status(run_id, "finished")
        paid = await rpc("getNodeOutput", runId=run_id, nodeId="paid")
        assert paid["output"] == {"amount": 5}
        await rpc.refused(
            "submitSignal", 409, "RUN_NOT_ACTIVE", runId=run_id, signalName="paid", payload={}
        )
        await rpc.refused("submitSignal", 404, "NOT_FOUND", runId="smi_none", signalName="x")
