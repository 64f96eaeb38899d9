"""Long labels, a loop of two rounds with an approval in each, then a last task: what the
terminal view of `smithers up` is checked on in a narrow terminal."""

from pydantic import BaseModel

from smithers import Approval, Loop, Task, Workflow, create_smithers


class Text(BaseModel):
    text: str


smithers, outputs = create_smithers(text=Text)

LONG = "Gather every input this workflow needs before the rounds of review begin"


@smithers
def workflow(ctx):
    approved = sum(1 for i in range(3) if ctx.approval("check", i) is not None)
    return Workflow(
        "narrow",
        [
            Task("gather", output=outputs.text, label=LONG, run={"text": "gathered"}),
            Loop(
                "rounds",
                until=approved >= 2,
                max_iterations=3,
                children=[
                    Task("draft", output=outputs.text, run={"text": f"draft {approved}"}),
                    Approval("check", request={"title": "Is this round good enough to keep?"}),
                ],
            ),
            Task("publish", output=outputs.text, run={"text": "published"}),
        ],
    )
