"""A task that runs a program. Run it: smithers up examples/bash_echo.py --input '{"msg": "hi"}'"""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers
from smithers.tools import bash


class Result(BaseModel):
    stdout: str


smithers, outputs = create_smithers(result=Result)


@smithers
def workflow(ctx):
    return Workflow(
        "echo",
        [
            Task(
                "run",
                output=outputs.result,
                run=lambda: {"stdout": bash("echo", [ctx.input.get("msg", "hello")])},
            ),
        ],
    )
