"""Approval nodes: request a decision, wait for it, then walk the children."""

from __future__ import annotations

from ...nodes import Approval
from ..actions import ApprovalOutput, RequestApproval
from .walk import Frame, Walk, Walked, element, props


def walk_approval(w: Walk, node: Approval, iteration: int, reachable: bool) -> Walked:
    key = w.enter(node.id, iteration, "approvals")
    output = w.workflow.resolve_output(node.output)
    node_props = props(
        id=node.id,
        label=node.label,
        mode=node.mode,
        onDeny=node.on_deny,
        title=node.request.get("title"),
        summary=node.request.get("summary"),
        options=node.options or None,
        output=output.key if output else None,
        allowedScopes=node.allowed_scopes or None,
        allowedUsers=node.allowed_users or None,
    )
    state = w.state(key)
    approval = w.tables.approvals.get(key)
    children: list[Frame] = []
    if state == "finished" and approval is not None and approval.status == "approved":
        if output is not None and key not in w.outputs.get(output.key, {}):
            w.plan.actions.append(ApprovalOutput(*key, output))
            return False, element(node, node_props, children)
        done, children = w.sequence(node.child_nodes(), iteration, reachable)
        return done, element(node, node_props, children)
    frame = element(node, node_props, children)
    settled = w.settled(key, state, reachable)
    if settled is not None:
        return settled, frame
    if approval is None:
        auto = node.auto_approve() if callable(node.auto_approve) else bool(node.auto_approve)
        request = {
            **node.request,
            "mode": node.mode,
            "options": node.options,
            "allowedScopes": node.allowed_scopes,
            "allowedUsers": node.allowed_users,
        }
        w.plan.actions.append(
            RequestApproval(
                *key, request, gate=False, on_deny=node.on_deny, auto=auto, label=node.label
            )
        )
        return False, frame
    w.plan.wait_on("approval", *key)
    return False, frame
