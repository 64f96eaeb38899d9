"""What `smithers up` and `smithers runs watch` show while a run moves.

Both views take event payloads (the wire JSON). `PlainView` prints one line per step
(for pipes, logs and CI); `LiveView` redraws a tree of nodes with their states in place
(for a terminal), with the last output lines and what the run waits for beneath it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

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

NODE_STATES = {
    "NodePending": "pending",
    "NodeStarted": "in-progress",
    "NodeFinished": "finished",
    "NodeFailed": "failed",
    "NodeCancelled": "cancelled",
    "NodeSkipped": "skipped",
    "NodeWaitingApproval": "waiting-approval",
    "NodeWaitingEvent": "waiting-event",
    "NodeWaitingTimer": "waiting-timer",
    "NodeRetrying": "in-progress",
}

Hint = Callable[[dict[str, Any]], str | None]


def describe(p: dict[str, Any]) -> str | None:
    """One plain line for an event payload, or None for events not worth a line."""
    kind = p.get("type")
    node = p.get("nodeId")
    where = f"{node}" + (f"[{p['iteration']}]" if p.get("iteration") else "")
    err = p.get("error") or {}
    message = err.get("message", err) if isinstance(err, dict) else err
    by = f" by {p['decidedBy']}" if p.get("decidedBy") else ""
    lines: dict[str, str] = {
        "RunStarted": "run resumed" if p.get("resumed") else "run started",
        "NodeStarted": f"{where}: started"
        + (f" (attempt {p.get('attempt')})" if (p.get("attempt") or 1) > 1 else ""),
        "NodeFinished": f"{where}: finished",
        "NodeFailed": f"{where}: failed: {message}",
        "NodeRetrying": f"{where}: retrying (attempt {p.get('attempt')})",
        "NodeSkipped": f"{where}: skipped",
        "NodeCancelled": f"{where}: cancelled",
        "NodeOutput": f"{where} | {p.get('text', '')}",
        "ApprovalGranted": f"{where}: approved{by}",
        "ApprovalDenied": f"{where}: denied{by}",
        "ApprovalAutoApproved": f"{where}: approved automatically",
        "SignalReceived": f"signal {p.get('signalName')} received",
        "NodeWaitingTimer": f"{where}: waiting until {p.get('firesAtMs')}",
        "RunFinished": "run finished",
        "RunFailed": f"run failed: {message}",
        "RunCancelled": "run cancelled",
    }
    return lines.get(str(kind))


class PlainView:
    def __init__(self, out: TextIO, hint: Hint) -> None:
        self.out = out
        self.hint = hint

    def on_event(self, payload: dict[str, Any]) -> None:
        for line in (describe(payload), self.hint(payload)):
            if line:
                print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass


class LiveView:
    """Redraws the run's tree in place; `frame()` returns the latest frame tree, if any."""

    def __init__(
        self, out: TextIO, hint: Hint, frame: Callable[[], dict[str, Any] | None], title: str
    ) -> None:
        self.out = out
        self.hint = hint
        self.frame = frame
        self.title = title
        self.tree: dict[str, Any] | None = None
        self.states: dict[str, str] = {}
        self.output: deque[str] = deque(maxlen=6)
        self.waiting: dict[str, str] = {}
        self.status = "running"
        self.drawn = 0

    def on_event(self, payload: dict[str, Any]) -> None:
        kind = str(payload.get("type"))
        node = payload.get("nodeId")
        if kind == "FrameCommitted" or self.tree is None:
            self.tree = self.frame() or self.tree
        if kind in NODE_STATES and node is not None:
            self.states[str(node)] = NODE_STATES[kind]
            if NODE_STATES[kind] not in ("waiting-approval", "waiting-event"):
                self.waiting.pop(str(node), None)
        hint = self.hint(payload)
        if hint and node is not None:
            self.waiting[str(node)] = hint
        if kind == "NodeOutput":
            self.output.append(f"{node} | {payload.get('text', '')}")
        elif kind in ("RunFinished", "RunFailed", "RunCancelled", "RunStatusChanged"):
            self.status = {
                "RunFinished": "finished",
                "RunFailed": "failed",
                "RunCancelled": "cancelled",
            }.get(kind, str(payload.get("status")))
            if kind == "RunFailed":
                self.output.append(describe(payload) or "")
        self.draw()

    def lines(self) -> list[str]:
        lines = [f"{self.title}  [{self.status}]"]

        def walk(node: dict[str, Any], depth: int) -> None:
            props = node.get("props") or {}
            node_id = props.get("id")
            if node_id is not None:
                state = self.states.get(node_id, "pending")
                label = props.get("label") or node_id
                lines.append(f"{'  ' * depth}{GLYPHS.get(state, '?')} {label}  {state}")
            elif depth > 0 or node.get("tag") != "workflow":
                lines.append(f"{'  ' * depth}{node.get('tag')}")
            for child in node.get("children") or []:
                walk(child, depth + 1)

        if self.tree is not None:
            walk(self.tree, 0)
        else:
            lines += [f"  {GLYPHS.get(s, '?')} {n}  {s}" for n, s in self.states.items()]
        lines += [f"  {line}" for line in self.output]
        for hint in self.waiting.values():
            lines += hint.splitlines()
        return lines

    def draw(self) -> None:
        lines = self.lines()
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)

    def close(self) -> None:
        self.draw()
