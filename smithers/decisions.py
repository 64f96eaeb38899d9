"""Approvals: approve and deny a node that waits, checked against who may decide and how.

Each decision is one transaction that records it, appends its events and releases a
parked run for any runtime to adopt.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from .errors import SmithersError
from .lifecycle import locked_run, release_parked
from .principal import Principal
from .store import nodes as nodes_q
from .store.base import Store, Tx


@dataclass(frozen=True)
class Decision:
    run_id: str
    node_id: str
    iteration: int
    approved: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "nodeId": self.node_id,
            "iteration": self.iteration,
            "approved": self.approved,
        }


def _check_caller(request: dict[str, Any], caller: Principal | None, key: dict[str, Any]) -> None:
    """`allowed_users` / `allowed_scopes` bind whoever the surface knows the caller to be."""
    if caller is None:
        return
    users = request.get("allowedUsers") or []
    scopes = request.get("allowedScopes") or []
    if users and caller.user_id not in users:
        raise SmithersError("FORBIDDEN", "this approval is restricted to other users", key)
    if scopes and not caller.has_any_scope(scopes):
        raise SmithersError("FORBIDDEN", "this approval needs a scope the caller lacks", key)


def _is_option(value: Any, keys: list[Any]) -> bool:
    # By type too: JSON `true` must not pass for an option keyed 1.
    return any(type(value) is type(k) and value == k for k in keys)


def _check_choice(request: dict[str, Any], decision: Any, approved: bool) -> None:
    """A `select` decision names one option, a `rank` decision orders a non-empty subset of
    them, each once. An approval of such a node needs one; a denial may carry one, checked
    the same way."""
    mode = request.get("mode", "approve")
    keys = [o.get("key") for o in request.get("options") or [] if isinstance(o, dict)]
    if mode not in ("select", "rank") or not keys or (decision is None and not approved):
        return
    choice = decision if isinstance(decision, dict) else {}
    if mode == "select" and not _is_option(choice.get("selected"), keys):
        raise SmithersError(
            "INVALID_REQUEST",
            "decision.selected must be one of the approval's options",
            {"field": "decision.selected", "options": keys},
        )
    ranked = choice.get("ranked")
    if mode == "rank" and not (
        isinstance(ranked, list)
        and ranked
        and len(ranked) <= len(keys)
        and all(_is_option(item, keys) for item in ranked)
        and all(ranked.index(item) == i for i, item in enumerate(ranked))
    ):
        raise SmithersError(
            "INVALID_REQUEST",
            "decision.ranked must order option keys of the approval, each at most once",
            {"field": "decision.ranked", "options": keys},
        )


def decide(
    store: Store,
    run_id: str,
    node_id: str,
    *,
    approved: bool,
    iteration: int = 0,
    note: str | None = None,
    decided_by: str | None = None,
    decision: Any = None,
    caller: Principal | None = None,
) -> Decision:
    """Record a decision on a waiting approval. Nothing is recorded when it is refused:
    `NODE_NOT_WAITING`, `ALREADY_DECIDED`, `FORBIDDEN` (`caller`, when given, is not among
    the approval's allowed users or scopes), `INVALID_REQUEST` (a bad select/rank choice)."""
    wanted = Wanted(run_id, node_id, approved, iteration, note, decided_by, decision)
    with store.write() as tx:
        return _record(tx, wanted, caller)


@dataclass(frozen=True)
class Wanted:
    """One decision to record (`decide_all` takes several)."""

    run_id: str
    node_id: str
    approved: bool
    iteration: int = 0
    note: str | None = None
    decided_by: str | None = None
    decision: Any = None


def decide_all(
    store: Store, wanted: list[Wanted], caller: Principal | None = None
) -> list[Decision]:
    """Record several decisions in one transaction: all of them, or none when any is
    refused (the first refusal is raised, with `details.index` naming it)."""
    with store.write() as tx:
        done: list[Decision] = []
        for index, one in enumerate(wanted):
            try:
                done.append(_record(tx, one, caller))
            except SmithersError as exc:
                raise SmithersError(exc.code, exc.message, {**exc.details, "index": index}) from exc
        return done


def _record(tx: Tx, wanted: Wanted, caller: Principal | None) -> Decision:
    run_id, node_id, iteration = wanted.run_id, wanted.node_id, wanted.iteration
    approved, note, decided_by, decision = (
        wanted.approved,
        wanted.note,
        wanted.decided_by,
        wanted.decision,
    )
    run = locked_run(tx, run_id)
    approval = nodes_q.get_approval(tx.conn, run_id, node_id, iteration)
    if approval is not None and approval.status != "requested":
        raise SmithersError(
            "ALREADY_DECIDED",
            f"approval {node_id!r} was already {approval.status}",
            {"nodeId": node_id, "iteration": iteration, "status": approval.status},
        )
    node = nodes_q.get_node(tx.conn, run_id, node_id, iteration)
    if approval is None or node is None or node.state != "waiting-approval" or run.is_terminal:
        raise SmithersError(
            "NODE_NOT_WAITING",
            f"node {node_id!r} is not waiting for approval",
            {"nodeId": node_id, "iteration": iteration},
        )
    _check_caller(approval.request, caller, {"nodeId": node_id, "iteration": iteration})
    _check_choice(approval.request, decision, approved)
    nodes_q.decide_approval(
        tx.conn,
        run_id,
        node_id,
        iteration,
        approved=approved,
        now=tx.now,
        note=note,
        decided_by=decided_by,
        decision=decision,
    )
    wait = node.wait or {}
    fields = {
        "nodeId": node_id,
        "iteration": iteration,
        "note": note,
        "decidedBy": decided_by,
        "decision": decision,
    }
    tx.emit(run_id, "ApprovalGranted" if approved else "ApprovalDenied", **fields)
    on_deny = "fail" if wait.get("gate") else wait.get("onDeny", "fail")
    error = None
    if approved:
        state = "pending" if wait.get("gate") else "finished"
    elif on_deny == "continue":
        state = "finished"
    elif on_deny == "skip":
        state = "skipped"
    else:
        state = "failed"
        error = {"code": "APPROVAL_DENIED", "message": f"approval {node_id!r} was denied"}
    nodes_q.upsert_node(tx.conn, run_id, node_id, iteration, now=tx.now, state=state, error=error)
    if state == "finished":
        tx.emit(run_id, "NodeFinished", nodeId=node_id, iteration=iteration, attempt=0)
    elif state == "skipped":
        tx.emit(run_id, "NodeSkipped", nodeId=node_id, iteration=iteration)
    elif state == "failed":
        tx.emit(run_id, "NodeFailed", nodeId=node_id, iteration=iteration, attempt=0, error=error)
    tx.touch(run_id)
    release_parked(tx, run)
    return Decision(run_id, node_id, iteration, approved)


async def approve(
    store: Store,
    run_id: str,
    node_id: str,
    iteration: int = 0,
    note: str | None = None,
    decided_by: str | None = None,
    decision: Any = None,
    *,
    caller: Principal | None = None,
) -> Decision:
    """Approve a node that waits for approval (`NODE_NOT_WAITING`, `ALREADY_DECIDED`)."""
    fields = {"note": note, "decided_by": decided_by, "decision": decision, "caller": caller}
    return await store.run(
        partial(decide, approved=True, iteration=iteration, **fields), store, run_id, node_id
    )


async def deny(
    store: Store,
    run_id: str,
    node_id: str,
    iteration: int = 0,
    note: str | None = None,
    decided_by: str | None = None,
    decision: Any = None,
    *,
    caller: Principal | None = None,
) -> Decision:
    """Deny a node that waits for approval; its `on_deny` decides what happens next."""
    fields = {"note": note, "decided_by": decided_by, "decision": decision, "caller": caller}
    return await store.run(
        partial(decide, approved=False, iteration=iteration, **fields), store, run_id, node_id
    )
