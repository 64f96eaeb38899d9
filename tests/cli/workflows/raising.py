"""A task whose helper raises a KeyError: its traceback names this file and the helper."""

from pydantic import BaseModel

from smithers import Task, Workflow, create_smithers


class Settings(BaseModel):
    value: str


smithers, outputs = create_smithers(settings=Settings)


def read_the_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    return {"value": settings["missing"]}


@smithers
def workflow(ctx):
    return Workflow("raising", [Task("settings", output=outputs.settings, run=read_the_settings)])
