"""A task that raises: the run fails with the task's error."""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Never(BaseModel):
    value: int


smithers, outputs = create_smithers(never=Never)


def explode() -> dict[str, int]:
    raise ValueError("this task always fails")


@smithers
def workflow(ctx):
    return Workflow("failing", [Task("explode", output=outputs.never, run=explode)])
