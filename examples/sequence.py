"""Three tasks in order, each reading the one before it."""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Step(BaseModel):
    value: int


smithers, outputs = create_smithers(step=Step)


@smithers
def workflow(ctx):
    def after(node_id: str, add: int):
        def run() -> dict[str, int]:
            return {"value": ctx.output(outputs.step, node_id).value + add}

        return run

    return Workflow(
        "sequence",
        [
            Task("one", output=outputs.step, run={"value": int(ctx.input.get("start", 1))}),
            Task("two", output=outputs.step, run=after("one", 1)),
            Task("three", output=outputs.step, run=after("two", 1)),
        ],
    )
