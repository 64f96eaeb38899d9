"""Two tasks; `second` fails until the file `open` exists in `input.dir`.

Each task appends its name to `input.dir/log` when it runs, so a test can count executions.
"""

from pathlib import Path

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Done(BaseModel):
    name: str


smithers, outputs = create_smithers(srv_done=Done)


@smithers
def workflow(ctx):
    folder = Path(ctx.input["dir"])

    def step(name: str, gated: bool):
        def run() -> dict[str, str]:
            if gated and not (folder / "open").exists():
                raise RuntimeError("the gate is closed")
            with (folder / "log").open("a") as f:
                f.write(name + "\n")
            return {"name": name}

        return run

    return Workflow(
        "flaky",
        [
            Task("first", output=outputs.srv_done, run=step("first", False)),
            Task("second", output=outputs.srv_done, run=step("second", True)),
        ],
    )
