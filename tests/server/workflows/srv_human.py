"""Human input of every kind at once: select, rank, restricted approval, signals."""

from pydantic import BaseModel

from smithers import Approval, Parallel, Signal, Task, Workflow, create_smithers


class Paid(BaseModel):
    amount: int


class Shipped(BaseModel):
    carrier: str


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(
    srv_human_paid=Paid, srv_human_shipped=Shipped, srv_human_note=Note
)
OPTIONS = [{"key": k, "label": k.upper()} for k in ("a", "b", "c")]


@smithers
def workflow(ctx):
    return Workflow(
        "human",
        [
            Parallel(
                [
                    Approval("pick", request={"title": "Which?"}, mode="select", options=OPTIONS),
                    Approval("order", request={"title": "Order?"}, mode="rank", options=OPTIONS),
                    Approval(
                        "owner",
                        request={"title": "Alice's call"},
                        allowed_users=["alice"],
                        allowed_scopes=["approval:submit"],
                    ),
                    Signal("paid", output=outputs.srv_human_paid),
                ]
            ),
            # Rendered but not reached while the approvals wait: a signal for it is early.
            Signal("shipped", output=outputs.srv_human_shipped),
            Task("done", output=outputs.srv_human_note, run={"text": "done"}),
        ],
    )
