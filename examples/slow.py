"""A long task that honours cancellation (an async task sleeping in small steps)."""

import anyio
from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Done(BaseModel):
    seconds: float


smithers, outputs = create_smithers(done=Done)


@smithers
def workflow(ctx):
    seconds = float(ctx.input.get("seconds", 60))

    async def wait(tctx) -> dict[str, float]:
        tctx.log(f"sleeping {seconds} s")
        await anyio.sleep(seconds)
        return {"seconds": seconds}

    return Workflow("slow", [Task("wait", output=outputs.done, run=wait)])
