"""Across processes: `chat` waits for the file `input.dir/go`, then logs `input.lines` lines;
then `long` (async) sleeps until cancelled, writing `time.time_ns()` to `input.dir/cancelled`
as it stops, beside an approval `ok` whose follower `after` writes it to `input.dir/after`."""

import asyncio
import time
from pathlib import Path

from pydantic import BaseModel

from smithers import Approval, Parallel, Sequence, Task, Workflow, create_smithers


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(srv_scale=Note)


@smithers
def workflow(ctx):
    folder = Path(ctx.input["dir"])
    lines = int(ctx.input.get("lines", 50))

    async def chat(tctx) -> dict[str, str]:
        while not (folder / "go").exists():
            await asyncio.sleep(0.02)
        for i in range(lines):
            tctx.log(f"line {i}")
            await asyncio.sleep(0.002)
        return {"text": "chatted"}

    async def long() -> dict[str, str]:
        try:
            await asyncio.sleep(120)
        finally:
            (folder / "cancelled").write_text(str(time.time_ns()))
        return {"text": "slept"}

    def after() -> dict[str, str]:
        (folder / "after").write_text(str(time.time_ns()))
        return {"text": "after"}

    return Workflow(
        "scale",
        [
            Task("chat", output=outputs.srv_scale, run=chat),
            Parallel(
                [
                    Task("long", output=outputs.srv_scale, run=long),
                    Sequence(
                        [
                            Approval("ok", request={"title": "go on?"}),
                            Task("after", output=outputs.srv_scale, run=after),
                        ]
                    ),
                ]
            ),
        ],
    )
