"""Many `NodeOutput` events over about a second: one async task logging in small steps.

Input: `lines` (default 60) and `delay` in seconds between two lines (default 0.02).
"""

import anyio
from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Said(BaseModel):
    lines: int


smithers, outputs = create_smithers(srv_said=Said)


@smithers
def workflow(ctx):
    count = int(ctx.input.get("lines", 60))
    delay = float(ctx.input.get("delay", 0.02))

    async def chatter(tctx) -> dict[str, int]:
        for i in range(count):
            tctx.log(f"line {i}")
            await anyio.sleep(delay)
        return {"lines": count}

    return Workflow("chatty", [Task("chatter", output=outputs.srv_said, run=chatter)])
