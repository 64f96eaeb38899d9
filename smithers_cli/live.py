"""The terminal view of a run: its tree of nodes redrawn in place, on `rich`.

Rich measures and wraps every line to the terminal's width itself and moves the cursor by
the lines it drew, so a narrow terminal or a long line never leaves stale copies behind.
Events update `_Run` (on the event loop); each update hands `rich.live.Live` an immutable
`_Picture`, which its refresh thread may draw at any time (times tick between events).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .lines import ANSWERS, ASKS, NODE_STATES, RUN_ENDS, Hint, Payload, duration, failure_text
from .lines import where as where_of

GLYPHS = {
    "pending": "·",
    "in-progress": "▶",
    "finished": "✔",
    "failed": "✘",
    "cancelled": "⊘",
    "skipped": "↷",
    "waiting-approval": "⏸",
    "waiting-event": "⏸",
    "waiting-timer": "⏲",
}
STYLES = {
    "pending": "dim",
    "in-progress": "bold cyan",
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "skipped": "dim",
    "paused": "bold yellow",
}
KEYED_TAGS = frozenset({"task", "approval", "signal", "wait-for-event", "timer"})
ENDED_STATES = frozenset({"finished", "failed", "cancelled", "skipped"})
OUTPUT_LINES = 6

Key = tuple[str, int]


def _style(state: str) -> str:
    return "bold yellow" if state.startswith("waiting") else STYLES.get(state, "")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class _Node:
    state: str = "pending"
    since_ms: int | None = None  # started, or began to wait
    until_ms: int | None = None  # ended


@dataclass(frozen=True)
class _Row:
    depth: int
    label: str
    state: str
    style: str
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True)
class _Picture:
    """One state of the view; draws its times against the clock when rich draws it."""

    title: str
    status: str
    since_ms: int
    until_ms: int | None
    rows: tuple[_Row, ...]
    output: tuple[str, ...]
    failure: str | None
    asks: tuple[str, ...]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        now = _now_ms()
        header = Text.assemble(
            (self.title, "bold"),
            "  ",
            (self.status, _style(self.status)),
            "  ",
            (duration((self.until_ms or now) - self.since_ms), "dim"),
        )
        header.overflow = "fold"
        tree = Table.grid(padding=(0, 1))
        tree.add_column(overflow="fold")
        tree.add_column(no_wrap=True)
        tree.add_column(no_wrap=True, justify="right")
        for row in self.rows:
            glyph = GLYPHS.get(row.state, "")
            label = Text("  " * row.depth + (f"{glyph} " if glyph else "") + row.label)
            label.stylize(row.style, 2 * row.depth)
            took = "" if row.since_ms is None else duration((row.until_ms or now) - row.since_ms)
            tree.add_row(label, Text(row.state, row.style), Text(took, "dim"))
        parts: list[Any] = [header, tree]
        parts += [Text(line, "dim", overflow="fold") for line in self.output]
        if self.failure:
            parts.append(Text(self.failure, "red", overflow="fold"))
        parts += [Text(ask, "yellow", overflow="fold") for ask in self.asks]
        yield Group(*parts)


@dataclass
class _Run:
    """What the view knows of the run, built from its events."""

    title: str
    started_ms: int | None = None
    ended_ms: int | None = None
    status: str = "running"
    tree: dict[str, Any] | None = None
    nodes: dict[Key, _Node] = field(default_factory=dict)
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))
    failure: str | None = None
    asks: dict[Key, str] = field(default_factory=dict)

    def apply(self, p: Payload, hint: Hint) -> None:
        kind = str(p.get("type"))
        at = int(p.get("timestampMs") or _now_ms())
        key: Key = (str(p.get("nodeId")), int(p.get("iteration") or 0))
        if kind == "RunStarted":
            self.started_ms = self.started_ms or at
            self.status, self.ended_ms = "running", None
        elif kind in RUN_ENDS:
            self.status, self.ended_ms = RUN_ENDS[kind], at
        elif kind == "RunStatusChanged":
            self.status = str(p.get("status"))
        elif kind == "NodeOutput":
            self.output.append(f"{where_of(p)} | {p.get('text', '')}")
        if kind in NODE_STATES and p.get("nodeId") is not None:
            self._node(key, NODE_STATES[kind], at)
        if kind == "NodeFailed":
            attempt = f" (attempt {p['attempt']})" if p.get("attempt") else ""
            self.failure = f"{where_of(p)} failed{attempt}:\n{failure_text(p.get('error') or {})}"
        if kind in ANSWERS:
            self.asks.pop(key, None)
        if kind in ASKS and (text := hint(p)):
            self.asks[key] = text

    def _node(self, key: Key, state: str, at: int) -> None:
        node = self.nodes.get(key, _Node())
        if state == "pending":
            node = _Node()
        elif state in ENDED_STATES:
            node = replace(node, state=state, since_ms=node.since_ms or at, until_ms=at)
        else:
            since = at if node.since_ms is None or node.until_ms is not None else node.since_ms
            node = _Node(state, since, None)
        self.nodes[key] = node

    def rows(self) -> list[_Row]:
        rows: list[_Row] = []

        def walk(element: dict[str, Any], depth: int, iteration: int) -> None:
            tag = str(element.get("tag"))
            props = element.get("props") or {}
            # Inside a loop a node is keyed by the loop's iteration (not every node's
            # frame says it).
            iteration = int(props.get("iteration") or iteration)
            if tag == "workflow":
                depth -= 1
            elif tag == "loop":
                label = f"↻ {props.get('id', '')}"
                rows.append(_Row(depth, label, _loop(props), "cyan"))
            elif tag in KEYED_TAGS and "id" in props:
                key = (str(props["id"]), iteration)
                rows.append(self._row(depth, key, str(props.get("label") or props["id"])))
            else:
                rows.append(_Row(depth, tag, "", "dim"))
            for child in element.get("children") or []:
                walk(child, depth + 1, iteration)

        if self.tree is not None:
            walk(self.tree, 0, 0)
        else:
            rows += [self._row(0, key, key[0]) for key in self.nodes]
        return rows

    def _row(self, depth: int, key: Key, label: str) -> _Row:
        node = self.nodes.get(key, _Node())
        return _Row(depth, label, node.state, _style(node.state), node.since_ms, node.until_ms)

    def picture(self) -> _Picture:
        return _Picture(
            title=self.title,
            status=self.status,
            since_ms=self.started_ms or _now_ms(),
            until_ms=self.ended_ms,
            rows=tuple(self.rows()),
            output=tuple(self.output),
            failure=self.failure,
            asks=tuple(self.asks.values()),
        )


def _loop(props: dict[str, Any]) -> str:
    """A loop's state, counted from one: `loop (iteration 3 of 5)`, then
    `loop (done after 3 iterations)`."""
    count = int(props.get("iteration") or 0) + 1
    if props.get("until") == "true":
        return f"loop (done after {count} iteration{'s' if count > 1 else ''})"
    most = props.get("maxIterations")
    return f"loop (iteration {count}" + (f" of {most})" if most else ")")


class LiveView:
    """Redraws the run's tree in place; `frame()` returns the latest frame tree, if any."""

    def __init__(
        self,
        out: TextIO,
        hint: Hint,
        frame: Callable[[], dict[str, Any] | None],
        title: str,
        *,
        refresh_per_second: float = 2,
    ) -> None:
        self.hint = hint
        self.frame = frame
        self.run = _Run(title)
        self.console = Console(file=out, highlight=False)
        self.live = Live(
            console=self.console, refresh_per_second=refresh_per_second, transient=False
        )
        self.started = False

    def replay(self, history: Iterable[Payload]) -> None:
        """Take in what happened before the view was attached (a resumed run)."""
        for payload in history:
            self.run.apply(payload, self.hint)
        self.run.tree = self.frame() or self.run.tree
        self._draw()

    def on_event(self, payload: Payload) -> None:
        if payload.get("type") == "FrameCommitted" or self.run.tree is None:
            self.run.tree = self.frame() or self.run.tree
        self.run.apply(payload, self.hint)
        self._draw()

    def _draw(self) -> None:
        self.live.update(self.run.picture(), refresh=self.started)
        if not self.started:
            self.live.start(refresh=True)
            self.started = True

    def close(self, status: str | None = None) -> None:
        """The last picture stays on the screen; `status`: how the run was left (paused)."""
        if status is not None:
            self.run.status = status
            self.run.ended_ms = self.run.ended_ms or _now_ms()
        self._draw()
        self.live.stop()
