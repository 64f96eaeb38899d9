"""One task. Run it: smithers up examples/hello.py --input '{"name": "world"}'"""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Greeting(BaseModel):
    message: str


smithers, outputs = create_smithers(greeting=Greeting)


@smithers
def workflow(ctx):
    name = ctx.input.get("name", "world")
    return Workflow(
        "hello",
        [
            Task("greet", output=outputs.greeting, run=lambda: {"message": f"Hello, {name}!"}),
        ],
    )
