"""`streamRunEvents` over a WebSocket: the run's stored events after `afterSeq`, then live
ones, as `run.event` frames on the durable seq, until the run's terminal event.

The events come from `RunService.events` (the database, then pushes or the run's follower:
no gap, no duplicate, across restarts and processes). A stream whose frames pile up in
the socket's queue (more than BEHIND) is told `BackpressureDisconnect` and the client
resumes it with `afterSeq`: what a slow socket holds stays bounded. Each event's frame is
encoded once for every stream that sends it (`RunEventFrames`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import anyio

from smithers.errors import SmithersError
from smithers.finders import Located

from .context import GatewayContext
from .frames import to_json
from .outbox import Backlog, Outbox
from .params import StreamRunEvents
from .sockets import Sockets

logger = logging.getLogger("smithers.gateway")

HEARTBEAT_S = 1.0
BEHIND = 1000  # queued frames of one stream


class RunStreams:
    """The streams of one connection."""

    def __init__(
        self,
        ctx: GatewayContext,
        sockets: Sockets,
        outbox: Outbox,
        tasks: anyio.abc.TaskGroup,
        user: str | None,
    ) -> None:
        self.ctx, self.sockets, self.outbox, self.tasks = ctx, sockets, outbox, tasks
        self.user = user
        self.count = 0

    async def open(self, p: StreamRunEvents) -> dict[str, Any]:
        """Answer for a new stream; its frames follow the answer (the pump starts once
        this task has queued it: nothing awaits between the two)."""
        at = await self.ctx.service.locate(p.runId, "RunNotFound")
        current = await self.ctx.service.last_seq(at)
        after = current if p.afterSeq is None else p.afterSeq
        if after > current:
            raise SmithersError(
                "SeqOutOfRange",
                f"afterSeq {after} is beyond the run's current seq {current}",
                {"afterSeq": after, "currentSeq": current},
            )
        self.sockets.open_stream(at.run_id, self.user, self.count)
        self.count += 1
        stream_id = "s-" + secrets.token_hex(8)
        self.ctx.metrics.streams.inc()
        self.tasks.start_soon(self._pump, stream_id, at, after)
        return {"streamId": stream_id, "runId": at.run_id, "afterSeq": after, "currentSeq": current}

    async def _pump(self, stream_id: str, at: Located, after: int) -> None:
        backlog = Backlog()
        head = {"streamId": stream_id, "runId": at.run_id}
        quoted_id = to_json(stream_id)
        frames, outbox = self.ctx.run_frames, self.outbox
        try:
            async for event in self.ctx.service.events(at, after, idle=HEARTBEAT_S):
                if not outbox.open:
                    return
                if event is None:
                    outbox.event("run.heartbeat", head)
                    continue
                if backlog.queued > BEHIND:
                    # The client resumes from lastSeq; waiting here instead would keep the
                    # stream's events piling up in memory behind a socket that cannot keep up.
                    error = {"code": "BackpressureDisconnect", "lastSeq": event.seq - 1}
                    outbox.event("run.error", {**head, **error})
                    return
                before, rest = frames.around_stream_id(event)
                outbox.encoded_event((before, quoted_id, rest), outbox.tail(), backlog)
        except SmithersError as exc:
            outbox.event("run.error", {**head, "code": exc.code, "message": exc.message})
        except Exception:
            logger.exception("run stream failed", extra={"run_id": at.run_id})
            outbox.event("run.error", {**head, "code": "SERVER_ERROR"})
        finally:
            self.count -= 1
            self.sockets.close_stream(at.run_id, self.user)
            self.ctx.metrics.streams.dec()
