"""A gate before a task: the run parks until someone approves or denies `review`.

smithers up examples/approval.py --input '{"msg": "ship it"}'
smithers runs approve RUN_ID review --db sqlite:///smithers.db
"""

from pydantic import BaseModel, Field

from smithers import Approval, Task, Workflow, create_smithers


class Request(BaseModel):
    msg: str = Field("hello", min_length=1, description="the text to ship")


class Draft(BaseModel):
    text: str


class Shipped(BaseModel):
    text: str
    approved_by: str | None


smithers, outputs = create_smithers(input=Request, draft=Draft, shipped=Shipped)


@smithers
def workflow(ctx):
    msg = ctx.input.get("msg", "hello")

    def ship() -> dict[str, object]:
        decision = ctx.approval("review")
        return {
            "text": ctx.output(outputs.draft, "draft").text,
            "approved_by": decision.decided_by if decision else None,
        }

    return Workflow(
        "approval",
        [
            Task("draft", output=outputs.draft, run=lambda: {"text": msg.upper()}),
            Approval(
                "review", request={"title": "Ship the draft?", "summary": msg}, on_deny="fail"
            ),
            Task("ship", output=outputs.shipped, run=ship),
        ],
    )
