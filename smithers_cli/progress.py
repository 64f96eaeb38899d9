"""What `smithers up` and `smithers runs watch` show while a run moves.

Both views take event payloads (the wire JSON). `PlainView` prints one line per step
(for pipes, logs and CI); `LiveView` (`live.py`) redraws a tree of nodes with their states
in place (for a terminal), with the last output lines, the last failure and what the run
waits for beneath it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from .lines import Hint, Payload, describe, open_asks
from .live import LiveView

__all__ = ["LiveView", "PlainView", "describe"]


class PlainView:
    def __init__(self, out: TextIO, hint: Hint) -> None:
        self.out = out
        self.hint = hint
        self.held: list[Payload] = []

    def replay(self, history: Iterable[Payload]) -> None:
        """Of what happened before the view was attached, repeat what still waits (once
        the run says it resumed: a resumed run does not ask again)."""
        self.held = open_asks(history)

    def on_event(self, payload: Payload) -> None:
        for line in (describe(payload), self.hint(payload)):
            if line:
                print(line, file=self.out, flush=True)
        if payload.get("type") == "RunStarted":
            self._release()

    def _release(self) -> None:
        held, self.held = self.held, []
        for payload in held:
            self.on_event(payload)

    def close(self, status: str | None = None) -> None:
        self._release()
