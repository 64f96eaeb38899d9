"""A loop that refines a draft until it is long enough (at most five iterations)."""

from pydantic import BaseModel

from smithers import Loop, Task, Workflow, create_smithers


class Draft(BaseModel):
    text: str


smithers, outputs = create_smithers(draft=Draft)


@smithers
def workflow(ctx):
    target = int(ctx.input.get("length", 3))
    latest = ctx.latest(outputs.draft, "refine")
    text = latest.text if latest else ""
    return Workflow(
        "loop",
        [
            Loop(
                "improve",
                until=len(text) >= target,
                max_iterations=5,
                children=[
                    Task("refine", output=outputs.draft, run={"text": text + "x"}),
                ],
            ),
        ],
    )
