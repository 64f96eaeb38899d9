"""RPC methods for human input: pending approvals, decisions (one, or several at once) and
signals. A decision or a signal releases the parked run, which resumes at once."""

from __future__ import annotations

from typing import Any

from smithers import scopes
from smithers.decisions import Wanted

from .params import ListApprovals, SubmitApproval, SubmitApprovals, SubmitSignal
from .rpc import Call, Method, typed


async def list_approvals(call: Call, p: ListApprovals) -> list[dict[str, Any]]:
    f = p.filter or p
    return await call.service.approval_requests(run_id=f.runId, workflow=f.workflow, limit=f.limit)


def _wanted(call: Call, p: SubmitApproval) -> Wanted:
    return Wanted(
        run_id=p.runId,
        node_id=p.nodeId,
        approved=p.approved,
        iteration=p.iteration,
        note=p.note,
        decided_by=call.user_id,
        decision=p.decision,
    )


async def submit_approval(call: Call, p: SubmitApproval) -> dict[str, Any]:
    decided = await call.service.decide(
        p.runId,
        p.nodeId,
        approved=p.approved,
        iteration=p.iteration,
        note=p.note,
        decided_by=call.user_id,
        decision=p.decision,
        principal=call.caller,
    )
    return decided.to_json()


async def submit_approvals(call: Call, p: SubmitApprovals) -> dict[str, Any]:
    wanted = [_wanted(call, one) for one in p.decisions]
    decided = await call.service.decide_all(wanted, principal=call.caller)
    return {"decisions": [one.to_json() for one in decided]}


async def submit_signal(call: Call, p: SubmitSignal) -> dict[str, Any]:
    return await call.service.signal(
        p.runId,
        p.signalName,
        p.payload,
        correlation_id=p.correlationId,
        received_by=call.user_id,
    )


METHODS: list[Method] = [
    typed("listApprovals", scopes.RUN_READ, ListApprovals, list_approvals, "approvals.list"),
    typed(
        "submitApproval",
        scopes.APPROVAL_SUBMIT,
        SubmitApproval,
        submit_approval,
        "approvals.decide",
    ),
    typed("submitApprovals", scopes.APPROVAL_SUBMIT, SubmitApprovals, submit_approvals),
    typed("submitSignal", scopes.SIGNAL_SUBMIT, SubmitSignal, submit_signal, "signals.send"),
]
