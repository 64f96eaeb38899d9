"""TASKS tasks in a row; the tests edit TASKS in a copy of this file to see a reload."""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers

TASKS = 1


class Mark(BaseModel):
    version: int


smithers, outputs = create_smithers(srv_mark=Mark)


@smithers
def workflow(ctx):
    return Workflow(
        "versioned",
        [Task(f"mark{i}", output=outputs.srv_mark, run={"version": TASKS}) for i in range(TASKS)],
    )
