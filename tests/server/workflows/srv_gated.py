"""One task that appends `input.name` to `input.dir/executions` each time it runs, then waits
until the file `input.dir/gate` exists, so a test can count executions of a live task."""

import time
from pathlib import Path

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Done(BaseModel):
    name: str


smithers, outputs = create_smithers(srv_gated=Done)


@smithers
def workflow(ctx):
    folder = Path(ctx.input["dir"])
    name = ctx.input.get("name", ctx.run_id)

    def run() -> dict[str, str]:
        with (folder / "executions").open("a") as f:
            f.write(name + "\n")
        deadline = time.monotonic() + 60
        while not (folder / "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"name": name}

    return Workflow("gated", [Task("work", output=outputs.srv_gated, run=run)])
