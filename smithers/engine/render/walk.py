"""The state of one walk over a rendered tree, and what the walks of all node kinds share.

A walk reads the run's persisted node state and decides, without touching the store,
which tasks are ready, which decisions are awaited and which bookkeeping the engine must
commit. Each node kind's walk returns whether the node is done and its frame.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ...context import OutputCache
from ...definition import OutputRef, SmithersWorkflow
from ...errors import SmithersError
from ...nodes import Node
from ...store.nodes import NodeKey, NodeTables
from ..actions import Pending
from ..plan import Failure, Plan

DONE_STATES = frozenset({"finished", "skipped"})

Frame: TypeAlias = dict[str, Any]
Walked: TypeAlias = tuple[bool, Frame]  # whether the node is done, and its frame


def props(**values: Any) -> dict[str, str]:
    """A frame's props: strings as they are, other values as JSON; None and callables left out."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or callable(value):
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return out


def element(node: Node, node_props: dict[str, str], children: list[Frame]) -> Frame:
    return {"kind": "element", "tag": node.tag, "props": node_props, "children": children}


@dataclass
class Walk:
    """One walk: what it has planned and seen so far; `walk_node` walks one node by kind."""

    workflow: SmithersWorkflow
    tables: NodeTables
    outputs: OutputCache
    now: int
    walk_node: Callable[[Walk, Node, int, bool], Walked]
    plan: Plan = field(default_factory=Plan)
    seen: set[str] = field(default_factory=set)
    mounted: list[str] = field(default_factory=list)
    task_index: list[dict[str, Any]] = field(default_factory=list)
    claimed_signals: set[int] = field(default_factory=set)
    in_loop: bool = False
    uses: set[str] = field(default_factory=set)

    def walk(self, node: Node, iteration: int, reachable: bool) -> Walked:
        return self.walk_node(self, node, iteration, reachable)

    def sequence(
        self, nodes: list[Node], iteration: int, reachable: bool
    ) -> tuple[bool, list[Frame]]:
        """Children one after another: each is reached once those before it are done."""
        done = True
        frames = []
        for child in nodes:
            child_done, frame = self.walk_node(self, child, iteration, reachable and done)
            done = done and child_done
            frames.append(frame)
        return done, frames

    def enter(self, node_id: str, iteration: int, part: str | None = None) -> NodeKey:
        """A keyed node's key, its id claimed; `part`: the node table it needs loaded."""
        if part is not None:
            self.uses.add(part)
        self.claim_id(node_id)
        return (node_id, iteration)

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
            self.plan.actions.append(Pending(*key, label, output.key if output else None))

    def settled(
        self, key: NodeKey, state: str | None, reachable: bool, continue_on_fail: bool = False
    ) -> bool | None:
        """Whether a node this render has nothing to do for is done; None when it has."""
        if state in DONE_STATES:
            return True
        if state == "failed":
            return self.failed(key, continue_on_fail)
        if not reachable or state == "cancelled":
            return False
        return None

    def failed(self, key: NodeKey, continue_on_fail: bool = False) -> bool:
        """A failed node: done when its failure is tolerated, else the run fails."""
        if continue_on_fail:
            return True
        rec = self.tables.nodes[key]
        self.plan.failed.append(Failure(key[0], key[1], rec.error))
        return False
