"""One render: the tree a render function returned -> frame JSON and a plan of what to do.

The walk reads the run's persisted node state and decides, without touching the store,
which tasks are ready, which decisions are awaited and which bookkeeping the engine must
commit (pending rows, approval requests, consumed signals, timers, loop iterations).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .context import OutputCache
from .definition import OutputRef, SmithersWorkflow
from .errors import SmithersError
from .nodes import (
    Approval,
    Branch,
    Loop,
    Node,
    Parallel,
    Sequence,
    Signal,
    Task,
    Timer,
    Workflow,
    flatten,
)
from .store.nodes import NodeKey, NodeTables
from .store.records import SignalRecord

DONE_STATES = frozenset({"finished", "skipped"})


@dataclass(frozen=True)
class ReadyTask:
    task: Task
    iteration: int
    output: OutputRef | None
    attempt: int


@dataclass(frozen=True)
class Action:
    """Bookkeeping the engine commits before it renders again."""

    kind: str  # pending|skip|request-approval|approval-output|wait-event|consume-signal|
    #            signal-timeout|start-timer|fire-timer|advance-loop
    node_id: str
    iteration: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    ready: list[ReadyTask] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    waiting: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, node, iteration)
    running: int = 0
    failed: list[tuple[str, int, Any]] = field(default_factory=list)
    next_fire_ms: int | None = None
    done: bool = False

    def wait_on(self, kind: str, key: NodeKey, fires_at: int | None = None) -> None:
        self.waiting.append((kind, key[0], key[1]))
        if fires_at is not None:
            self.next_fire_ms = (
                fires_at if self.next_fire_ms is None else min(self.next_fire_ms, fires_at)
            )


@dataclass
class Rendered:
    frame: dict[str, Any]
    frame_text: str
    frame_hash: str
    mounted_task_ids: list[str]
    task_index: list[dict[str, Any]]
    plan: Plan
    name: str | None
    uses: frozenset[str]


def _props(**values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or callable(value):
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return out


class _Walk:
    def __init__(
        self,
        workflow: SmithersWorkflow,
        tables: NodeTables,
        outputs: OutputCache,
        now: int,
    ) -> None:
        self.workflow = workflow
        self.tables = tables
        self.outputs = outputs
        self.now = now
        self.plan = Plan()
        self.seen: set[str] = set()
        self.mounted: list[str] = []
        self.task_index: list[dict[str, Any]] = []
        self.claimed_signals: set[int] = set()
        self.in_loop = False
        self.uses: set[str] = set()

    # -- helpers -------------------------------------------------------------------------

    def claim_id(self, node_id: str) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise SmithersError("WORKFLOW_INVALID", "every keyed node needs a non-empty string id")
        if node_id in self.seen:
            raise SmithersError("WORKFLOW_INVALID", f"duplicate node id {node_id!r}")
        self.seen.add(node_id)

    def state(self, key: NodeKey) -> str | None:
        rec = self.tables.nodes.get(key)
        return None if rec is None else rec.state

    def pending(self, key: NodeKey, label: str | None, output: OutputRef | None) -> None:
        if key not in self.tables.nodes:
            self.plan.actions.append(
                Action(
                    "pending",
                    *key,
                    {"label": label, "output_table": output.key if output else None},
                )
            )

    def failed(self, key: NodeKey, continue_on_fail: bool = False) -> bool:
        """A failed node: done when its failure is tolerated, else the run fails."""
        if continue_on_fail:
            return True
        rec = self.tables.nodes[key]
        self.plan.failed.append((key[0], key[1], rec.error))
        return False

    def element(
        self, node: Node, props: dict[str, str], children: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {"kind": "element", "tag": node.tag, "props": props, "children": children}

    # -- the walk ------------------------------------------------------------------------

    def walk_sequence(
        self, nodes: list[Node], iteration: int, reachable: bool
    ) -> tuple[bool, list[dict[str, Any]]]:
        """Children one after another: each is reached once those before it are done."""
        done = True
        frames = []
        for child in nodes:
            child_done, frame = self.walk(child, iteration, reachable and done)
            done = done and child_done
            frames.append(frame)
        return done, frames

    def walk(self, node: Node, iteration: int, reachable: bool) -> tuple[bool, dict[str, Any]]:
        if isinstance(node, (Workflow, Sequence, Branch)):
            done, children = self.walk_sequence(node.child_nodes(), iteration, reachable)
            if isinstance(node, Workflow):
                props = _props(name=node.name)
            elif isinstance(node, Branch):
                props = _props(cond=bool(node.cond))
            else:
                props = {}
            return done, self.element(node, props, children)
        if isinstance(node, Parallel):
            return self.walk_parallel(node, iteration, reachable)
        if isinstance(node, Task):
            if node.needs_approval:
                self.uses.add("approvals")
            return self.walk_task(node, iteration, reachable)
        if isinstance(node, Approval):
            self.uses.add("approvals")
            return self.walk_approval(node, iteration, reachable)
        if isinstance(node, Signal):
            self.uses.add("signals")
            return self.walk_signal(node, iteration, reachable)
        if isinstance(node, Timer):
            return self.walk_timer(node, iteration, reachable)
        if isinstance(node, Loop):
            self.uses.add("loops")
            return self.walk_loop(node, reachable)
        raise SmithersError(
            "WORKFLOW_INVALID", f"render returned {type(node).__name__}, which is not a node"
        )

    def walk_parallel(
        self, node: Parallel, iteration: int, reachable: bool
    ) -> tuple[bool, dict[str, Any]]:
        ready_before = len(self.plan.ready)
        running_before = self.plan.running
        done = True
        children = []
        for child in node.child_nodes():
            child_done, frame = self.walk(child, iteration, reachable)
            done = done and child_done
            children.append(frame)
        if node.max_concurrency is not None and node.max_concurrency > 0:
            running_inside = self.plan.running - running_before
            allowed = max(0, node.max_concurrency - running_inside)
            del self.plan.ready[ready_before + allowed :]
        return done, self.element(node, _props(maxConcurrency=node.max_concurrency), children)

    def walk_task(self, node: Task, iteration: int, reachable: bool) -> tuple[bool, dict[str, Any]]:
        self.claim_id(node.id)
        key = (node.id, iteration)
        output = self.workflow.resolve_output(node.output)
        frame = self.element(
            node,
            _props(
                id=node.id,
                label=node.label,
                output=output.key if output else None,
                retries=node.retries or None,
                timeoutMs=node.timeout_ms,
                skipIf=node.skip_if or None,
                continueOnFail=node.continue_on_fail or None,
                needsApproval=node.needs_approval or None,
                iteration=iteration if self.in_loop else None,
                meta=node.meta,
            ),
            [],
        )
        self.task_index.append(
            {
                "nodeId": node.id,
                "iteration": iteration,
                "ordinal": len(self.task_index),
                "outputTable": output.key if output else None,
            }
        )
        state = self.state(key)
        if state in DONE_STATES:
            return True, frame
        if state == "failed":
            return self.failed(key, node.continue_on_fail), frame
        if not reachable or state == "cancelled":
            return False, frame
        self.mounted.append(node.id)
        if state == "in-progress":
            self.plan.running += 1
            return False, frame
        if state == "waiting-approval":
            self.plan.wait_on("approval", key)
            return False, frame
        if node.skip_if:
            self.plan.actions.append(Action("skip", *key))
            return False, frame
        if node.needs_approval:
            approval = self.tables.approvals.get(key)
            if approval is None:
                request = {"title": f"Approve {node.label or node.id}?"}
                self.plan.actions.append(
                    Action(
                        "request-approval",
                        *key,
                        {
                            "request": request,
                            "gate": True,
                            "label": node.label,
                            "on_deny": "fail",
                            "auto": False,
                        },
                    )
                )
                return False, frame
        self.pending(key, node.label, output)
        rec = self.tables.nodes.get(key)
        attempt = (rec.last_attempt if rec else 0) + 1
        self.plan.ready.append(ReadyTask(node, iteration, output, attempt))
        return False, frame

    def walk_approval(
        self, node: Approval, iteration: int, reachable: bool
    ) -> tuple[bool, dict[str, Any]]:
        self.claim_id(node.id)
        key = (node.id, iteration)
        output = self.workflow.resolve_output(node.output)
        props = _props(
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
        state = self.state(key)
        approval = self.tables.approvals.get(key)
        children: list[dict[str, Any]] = []
        if state == "finished" and approval is not None and approval.status == "approved":
            if output is not None and key not in self.outputs.get(output.key, {}):
                self.plan.actions.append(Action("approval-output", *key, {"output": output}))
                return False, self.element(node, props, children)
            done, children = self.walk_sequence(node.child_nodes(), iteration, reachable)
            return done, self.element(node, props, children)
        frame = self.element(node, props, children)
        if state in DONE_STATES:
            return True, frame
        if state == "failed":
            return self.failed(key), frame
        if not reachable or state == "cancelled":
            return False, frame
        if approval is None:
            auto = node.auto_approve() if callable(node.auto_approve) else bool(node.auto_approve)
            self.plan.actions.append(
                Action(
                    "request-approval",
                    *key,
                    {
                        "request": {
                            **node.request,
                            "mode": node.mode,
                            "options": node.options,
                            "allowedScopes": node.allowed_scopes,
                            "allowedUsers": node.allowed_users,
                        },
                        "gate": False,
                        "label": node.label,
                        "on_deny": node.on_deny,
                        "auto": auto,
                    },
                )
            )
            return False, frame
        self.plan.wait_on("approval", key)
        return False, frame

    def signal_children(self, node: Signal, data: Any) -> list[Node]:
        children = node.children
        if callable(children) and not isinstance(children, Node):
            children = children(data)
        return flatten(children)

    def walk_signal(
        self, node: Signal, iteration: int, reachable: bool
    ) -> tuple[bool, dict[str, Any]]:
        self.claim_id(node.id)
        key = (node.id, iteration)
        output = self.workflow.resolve_output(node.output)
        props = _props(
            id=node.id,
            label=node.label,
            signal=node.signal_name,
            correlationId=node.correlation_id,
            timeoutMs=node.timeout_ms,
            onTimeout=node.on_timeout,
            output=output.key if output else None,
        )
        rec = self.tables.nodes.get(key)
        state = None if rec is None else rec.state
        children: list[dict[str, Any]] = []
        if state == "finished" and rec is not None:
            done = True
            if not (rec.wait or {}).get("timedOut"):
                data = (rec.wait or {}).get("data")
                if output is not None:
                    data = self.outputs.get(output.key, {}).get(key, data)
                done, children = self.walk_sequence(
                    self.signal_children(node, data), iteration, reachable
                )
            return done, self.element(node, props, children)
        frame = self.element(node, props, children)
        if state in DONE_STATES:
            return True, frame
        if state == "failed":
            return self.failed(key), frame
        if not reachable or state == "cancelled":
            return False, frame
        match = self.find_signal(node)
        if match is not None:
            self.claimed_signals.add(match.seq)
            self.plan.actions.append(
                Action("consume-signal", *key, {"signal": match, "output": output})
            )
            return False, frame
        if state != "waiting-event":
            fires_at = None if node.timeout_ms is None else self.now + node.timeout_ms
            self.plan.actions.append(
                Action(
                    "wait-event",
                    *key,
                    {
                        "signal": node.signal_name,
                        "correlation_id": node.correlation_id,
                        "fires_at": fires_at,
                        "label": node.label,
                    },
                )
            )
            return False, frame
        assert rec is not None
        if rec.fires_at_ms is not None and rec.fires_at_ms <= self.now:
            self.plan.actions.append(
                Action("signal-timeout", *key, {"on_timeout": node.on_timeout})
            )
            return False, frame
        self.plan.wait_on("event", key, rec.fires_at_ms)
        return False, frame

    def find_signal(self, node: Signal) -> SignalRecord | None:
        for signal in self.tables.open_signals:
            if signal.seq in self.claimed_signals or signal.signal_name != node.signal_name:
                continue
            if node.correlation_id is not None and signal.correlation_id != node.correlation_id:
                continue
            return signal
        return None

    def walk_timer(
        self, node: Timer, iteration: int, reachable: bool
    ) -> tuple[bool, dict[str, Any]]:
        self.claim_id(node.id)
        key = (node.id, iteration)
        frame = self.element(
            node,
            _props(
                id=node.id, label=node.label, durationMs=node.duration_ms, untilMs=node.until_ms
            ),
            [],
        )
        rec = self.tables.nodes.get(key)
        state = None if rec is None else rec.state
        if state in DONE_STATES:
            return True, frame
        if not reachable or state in ("cancelled", "failed"):
            return False, frame
        if state != "waiting-timer" or rec is None or rec.fires_at_ms is None:
            if node.until_ms is not None:
                fires_at = node.until_ms
            elif node.duration_ms is not None:
                fires_at = self.now + node.duration_ms
            else:
                raise SmithersError(
                    "WORKFLOW_INVALID", f"timer {node.id!r} needs duration_ms or until_ms"
                )
            self.plan.actions.append(
                Action("start-timer", *key, {"fires_at": fires_at, "label": node.label})
            )
            return False, frame
        if rec.fires_at_ms <= self.now:
            self.plan.actions.append(Action("fire-timer", *key, {"fires_at": rec.fires_at_ms}))
            return False, frame
        self.plan.wait_on("timer", key, rec.fires_at_ms)
        return False, frame

    def walk_loop(self, node: Loop, reachable: bool) -> tuple[bool, dict[str, Any]]:
        self.claim_id(node.id)
        if self.in_loop:
            raise SmithersError("WORKFLOW_INVALID", f"loop {node.id!r} is nested in another loop")
        iteration = self.tables.loop_iterations.get(node.id, 0)
        self.in_loop = True
        try:
            done, children = self.walk_sequence(node.child_nodes(), iteration, reachable)
        finally:
            self.in_loop = False
        frame = self.element(
            node,
            _props(
                id=node.id,
                iteration=iteration,
                maxIterations=node.max_iterations,
                onMaxReached=node.on_max_reached,
                until=bool(node.until),
            ),
            children,
        )
        if not done or not reachable:
            return False, frame
        if node.until:
            return True, frame
        if iteration + 1 >= node.max_iterations:
            if node.on_max_reached == "fail":
                self.plan.failed.append(
                    (
                        node.id,
                        iteration,
                        {
                            "code": "LOOP_MAX_ITERATIONS",
                            "message": f"loop {node.id!r} reached {node.max_iterations} iterations",
                        },
                    )
                )
                return False, frame
            return True, frame
        self.plan.actions.append(Action("advance-loop", node.id, iteration + 1))
        return False, frame


def render(
    workflow: SmithersWorkflow,
    render_fn: Callable[[], Any],
    tables: NodeTables,
    outputs: OutputCache,
    now: int,
) -> Rendered:
    """Call the render function and walk its tree against the persisted state."""
    root = render_fn()
    if not isinstance(root, Node):
        raise SmithersError(
            "WORKFLOW_INVALID", f"render returned {type(root).__name__}, expected a Workflow node"
        )
    walker = _Walk(workflow, tables, outputs, now)
    done, frame = walker.walk(root, 0, True)
    walker.plan.done = done and not walker.plan.failed
    text = json.dumps(frame, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return Rendered(
        frame=frame,
        frame_text=text,
        frame_hash=hashlib.sha256(text.encode()).hexdigest(),
        mounted_task_ids=walker.mounted,
        task_index=walker.task_index,
        plan=walker.plan,
        name=root.name if isinstance(root, Workflow) else None,
        uses=frozenset(walker.uses),
    )


def validate_output(output: OutputRef | None, value: Any) -> BaseModel | None:
    """A task's return value as its output model (None for tasks without an output)."""
    if output is None:
        return None
    if isinstance(value, output.model):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return output.model.model_validate(value)
