"""Three tasks in a row for the adoption tests: `first` and `third` are quick, `second`
waits for the file `gate` in `dir`. Each execution appends `run node attempt pid` to
`dir/ledger` as it begins; with `tick` (seconds), `second` logs `waiting in pid N` that
often while it waits (events an owner that lost the run must not append)."""

import os
from pathlib import Path

import anyio
from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Relayed(BaseModel):
    pid: int


smithers, outputs = create_smithers(srv_relayed=Relayed)


@smithers
def workflow(ctx):
    folder = Path(ctx.input["dir"])
    tick = ctx.input.get("tick")

    def record(tctx) -> dict[str, int]:
        with (folder / "ledger").open("a") as out:
            out.write(f"{tctx.run_id} {tctx.node_id} {tctx.attempt} {os.getpid()}\n")
        return {"pid": os.getpid()}

    async def quick(tctx) -> dict[str, int]:
        return record(tctx)

    async def gated(tctx) -> dict[str, int]:
        done = record(tctx)
        while not (folder / "gate").exists():
            if tick:
                tctx.log(f"waiting in pid {os.getpid()}")
            await anyio.sleep(float(tick or 0.05))
        return done

    tasks = [("first", quick), ("second", gated), ("third", quick)]
    return Workflow("relay", [Task(i, output=outputs.srv_relayed, run=fn) for i, fn in tasks])
