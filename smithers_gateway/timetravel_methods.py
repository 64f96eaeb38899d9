"""RPC methods of time travel: `rewindRun` (forget what followed a frame; the run goes on
from there) and `forkRun` (a new run from a run's frame; the parent is only read).

A rewind deletes work, so it asks for `confirm: true` (else `ConfirmationRequired`) and,
beyond the `run:admin` scope, is allowed to role `admin` or the user who started the run
(`ctx.auth.triggeredBy`); an open gateway knows no one, so its callers may. A run a live
process drives is refused (`CONFLICT`: pause it first). Both runs are driven on by this
gateway's host, which adopts them at once.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import Field

from smithers import scopes
from smithers.errors import SmithersError
from smithers.web.models import Body, RunId

from .rpc import Call, Method, typed
from .run_methods import run_auth

FrameNo = Annotated[int, Field(ge=0, le=2**31 - 1)]


class RewindRun(Body):
    runId: RunId
    frameNo: FrameNo
    confirm: Any = None  # anything but `true` is ConfirmationRequired, not a bad request


class ForkRun(Body):
    runId: RunId
    frameNo: FrameNo
    newRunId: RunId | None = None


async def rewind_run(call: Call, p: RewindRun) -> dict[str, Any]:
    if p.confirm is not True:
        raise SmithersError(
            "ConfirmationRequired",
            "rewindRun deletes the work done after the frame: send confirm: true",
            {"field": "confirm"},
        )
    started = time.perf_counter()
    principal = call.caller
    rewound = await call.service.rewind(
        p.runId,
        p.frameNo,
        caller=call.user_id or "gateway",
        principal=principal,
    )
    return {
        "ok": True,
        "newFrameNo": rewound.frame_no,
        "deletedFrames": rewound.deleted_frames,
        "deletedAttempts": rewound.deleted_attempts,
        "durationMs": round((time.perf_counter() - started) * 1000),
    }


async def fork_run(call: Call, p: ForkRun) -> dict[str, Any]:
    child = await call.service.fork(p.runId, p.frameNo, p.newRunId, auth=run_auth(call.principal))
    return {"runId": child}


METHODS: list[Method] = [
    typed("rewindRun", scopes.RUN_ADMIN, RewindRun, rewind_run, "jumpToFrame"),
    typed("forkRun", scopes.RUN_WRITE, ForkRun, fork_run),
]
