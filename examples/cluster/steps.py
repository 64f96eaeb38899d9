"""Three tasks in a row that record every execution of theirs (the cluster example's load).

Input: `ledger`, a file each execution appends `run node attempt pid` to before it works
(so a task that runs twice shows twice), and `seconds`, how long each task works (0.3).
Each task also logs a line when it starts and one when it is done, with its process id.
"""

import os

import anyio
from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers

NODES = ("fetch", "build", "ship")


class Done(BaseModel):
    pid: int


smithers, outputs = create_smithers(cluster_step=Done)


@smithers
def workflow(ctx):
    ledger = ctx.input.get("ledger")
    seconds = float(ctx.input.get("seconds", 0.3))

    async def step(tctx) -> dict[str, int]:
        pid = os.getpid()
        if ledger:
            with open(ledger, "a") as out:  # one short append: lines never interleave
                out.write(f"{tctx.run_id} {tctx.node_id} {tctx.attempt} {pid}\n")
        tctx.log(f"{tctx.node_id} attempt {tctx.attempt} started in pid {pid}")
        await anyio.sleep(seconds)
        tctx.log(f"{tctx.node_id} attempt {tctx.attempt} done in pid {pid}")
        return {"pid": pid}

    return Workflow(
        "cluster-steps", [Task(n, output=outputs.cluster_step, run=step) for n in NODES]
    )
