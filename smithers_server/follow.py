"""Following a run's event stream, shared by both clients: where it resumes after a drop,
how long to wait before it does, and when to give up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from smithers.errors import SmithersError

from .calls import Json, as_object, run_path
from .client_errors import SmithersAPIError, SmithersConnectionError


def retryable(error: SmithersError) -> bool:
    if isinstance(error, SmithersConnectionError):
        return True
    return isinstance(error, SmithersAPIError) and (
        error.status >= 500 or error.status in (408, 429) or error.code == "EVENT_GAP"
    )


@dataclass
class Follow:
    """Where an event stream resumes, how long to wait before it does, and when to give up.

    An attempt that ends before delivering anything new (an event or a keep-alive) counts
    as failed; `max_reconnects` consecutive failed reconnects end the stream with
    `SmithersConnectionError`. The first connection is not retried: its error is raised.
    """

    run_id: str
    last: int
    max_reconnects: int
    reconnect_delay: float | None
    retry_ms: int = 1000
    failures: int = 0
    opened: bool = False
    data: list[str] = field(default_factory=list)
    seq: str | None = None

    def request(self) -> tuple[str, dict[str, str | int], dict[str, str]]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last >= 0:
            headers["Last-Event-ID"] = str(self.last)
        return run_path(self.run_id, "events"), {"afterSeq": self.last}, headers

    def connected(self) -> None:
        self.opened = True
        self.data, self.seq = [], None

    def line(self, line: str) -> Json | None:
        """Feed one line; the event it completes (new, next in order) or None."""
        if line.startswith(":"):
            self.failures = 0  # a keep-alive: the connection is alive
            return None
        if line:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self.data.append(value)
            elif name == "id":
                self.seq = value
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
            return None
        data, seq = self.data, self.seq
        self.data, self.seq = [], None
        if not data:
            return None
        try:
            number = int(seq or "")
            event = as_object(json.loads("\n".join(data)))
        except (ValueError, TypeError) as exc:
            raise SmithersAPIError(
                200, "INVALID_RESPONSE", f"malformed event (id {seq!r}) in the stream: {exc}"
            ) from exc
        if number <= self.last:
            return None  # already delivered
        if number != self.last + 1:
            raise SmithersAPIError(
                200,
                "EVENT_GAP",
                f"event stream jumped from seq {self.last} to {number}",
                {"expected": self.last + 1, "got": number},
            )
        event["seq"] = self.last = number
        self.failures = 0
        return event

    def dropped(self, error: SmithersError) -> float:
        """After a drop or failed attempt: the delay before the next one, or raise."""
        if not self.opened or not retryable(error):
            raise error
        self.failures += 1
        if self.failures > self.max_reconnects:
            raise SmithersConnectionError(
                f"gave up on the event stream of run {self.run_id!r} after "
                f"{self.max_reconnects} failed reconnects: {error}",
                {"runId": self.run_id, "afterSeq": self.last, "reason": str(error)},
            ) from error
        return self.retry_ms / 1000 if self.reconnect_delay is None else self.reconnect_delay
