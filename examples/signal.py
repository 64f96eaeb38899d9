"""Waits for the signal `payment` and then uses its data.

smithers runs signal RUN_ID payment --data '{"amount": 42}' --db sqlite:///smithers.db
"""

from pydantic import BaseModel

from smithers import Signal, Task, Workflow, create_smithers


class Payment(BaseModel):
    amount: int


class Receipt(BaseModel):
    text: str


smithers, outputs = create_smithers(payment=Payment, receipt=Receipt)


@smithers
def workflow(ctx):
    return Workflow(
        "signal",
        [
            Task("invoice", output=outputs.receipt, run={"text": "invoice sent"}),
            Signal("payment", output=outputs.payment),
            Task(
                "receipt",
                output=outputs.receipt,
                run=lambda: {"text": f"paid {ctx.output(outputs.payment, 'payment').amount}"},
            ),
        ],
    )
