"""A workflow with its own database (a file beside it), mirrored into the server's."""

from pathlib import Path

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(
    db=f"sqlite:///{Path(__file__).with_name('srv_own.db')}", srv_note=Note
)


@smithers
def workflow(ctx):
    return Workflow("owndb", [Task("note", output=outputs.srv_note, run={"text": "mine"})])
