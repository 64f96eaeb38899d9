"""A workflow with an input model: bad input is refused before the run starts."""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Order(BaseModel):
    item: str
    qty: int


class Total(BaseModel):
    text: str


smithers, outputs = create_smithers(input=Order, srv_total=Total)


@smithers
def workflow(ctx):
    return Workflow(
        "typed",
        [Task("total", output=outputs.srv_total, run={"text": "ok"})],
    )
