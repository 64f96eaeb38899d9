"""Five tasks in order; each appends its id to a side-effect file (counts executions).

Task `three` sleeps so that a process killed after `two` finishes dies during it.
"""

import time
from pathlib import Path

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Step(BaseModel):
    step: str


smithers, outputs = create_smithers(step=Step)


@smithers
def workflow(ctx):
    log = Path(ctx.input["log"])

    def step(name: str, pause: float = 0.0):
        def run() -> dict[str, str]:
            with log.open("a") as f:
                f.write(name + "\n")
            time.sleep(pause)
            return {"step": name}

        return run

    return Workflow(
        "five",
        [
            Task("one", output=outputs.step, run=step("one")),
            Task("two", output=outputs.step, run=step("two")),
            Task("three", output=outputs.step, run=step("three", float(ctx.input["pause"]))),
            Task("four", output=outputs.step, run=step("four")),
            Task("five", output=outputs.step, run=step("five")),
        ],
    )
