"""The node kinds a render function returns: Workflow, Task, Sequence, Parallel, ..."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, Union

from pydantic import BaseModel

from .definition import OutputRef

Children: TypeAlias = Union["Node", Iterable["Node | bool | None"], bool, None]
OutputSpec: TypeAlias = OutputRef | type[BaseModel] | str | None


def flatten(children: Any) -> list[Node]:
    """Children as a list of nodes; `None` and `False` (from `cond and Task(...)`) drop out."""
    if children is None or children is False or children is True:
        return []
    if isinstance(children, Node):
        return [children]
    out: list[Node] = []
    for child in children:
        out.extend(flatten(child))
    return out


class Node:
    """Base of every node kind; `tag` is its name in frames."""

    tag: str = "node"

    def child_nodes(self) -> list[Node]:
        return []


@dataclass
class Workflow(Node):
    name: str
    children: Children = None
    tag = "workflow"

    def child_nodes(self) -> list[Node]:
        return flatten(self.children)


@dataclass
class Sequence(Node):
    children: Children = None
    tag = "sequence"

    def child_nodes(self) -> list[Node]:
        return flatten(self.children)


@dataclass
class Parallel(Node):
    children: Children = None
    max_concurrency: int | None = None
    tag = "parallel"

    def child_nodes(self) -> list[Node]:
        return flatten(self.children)


@dataclass
class Branch(Node):
    cond: bool
    then: Children = None
    else_: Children = None
    tag = "branch"

    def child_nodes(self) -> list[Node]:
        return flatten(self.then if self.cond else self.else_)


@dataclass
class Task(Node):
    id: str
    output: OutputSpec = None
    run: Any = None
    retries: int = 0
    timeout_ms: int | None = None
    skip_if: bool = False
    continue_on_fail: bool = False
    needs_approval: bool = False
    label: str | None = None
    meta: dict[str, Any] | None = None
    retry_backoff_ms: int = 100
    tag = "task"


@dataclass
class Loop(Node):
    id: str
    children: Children = None
    until: bool = False
    max_iterations: int = 5
    on_max_reached: Literal["return-last", "fail"] = "return-last"
    tag = "loop"

    def child_nodes(self) -> list[Node]:
        return flatten(self.children)


@dataclass
class Approval(Node):
    id: str
    request: dict[str, Any] = field(default_factory=dict)
    mode: Literal["approve", "select", "rank"] = "approve"
    options: list[dict[str, Any]] = field(default_factory=list)
    on_deny: Literal["fail", "continue", "skip"] = "fail"
    allowed_scopes: list[str] = field(default_factory=list)
    allowed_users: list[str] = field(default_factory=list)
    auto_approve: bool | Callable[[], bool] | None = None
    output: OutputSpec = None
    children: Children = None
    label: str | None = None
    tag = "approval"

    def child_nodes(self) -> list[Node]:
        return flatten(self.children)


@dataclass
class Signal(Node):
    id: str
    output: OutputSpec = None
    correlation_id: str | None = None
    timeout_ms: int | None = None
    on_timeout: Literal["fail", "skip", "continue"] = "fail"
    children: Children | Callable[[Any], Children] = None
    label: str | None = None
    tag = "signal"

    @property
    def signal_name(self) -> str:
        return self.id


@dataclass
class WaitForEvent(Signal):
    event: str = ""
    tag = "wait-for-event"

    @property
    def signal_name(self) -> str:
        return self.event or self.id


@dataclass
class Timer(Node):
    id: str
    duration_ms: int | None = None
    until_ms: int | None = None
    label: str | None = None
    tag = "timer"


KEYED_KINDS = (Task, Loop, Approval, Signal, Timer)
