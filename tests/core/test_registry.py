"""WorkflowRegistry: keys a URL can carry, one workflow per key, the run's record of it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from smithers import SmithersError, Task, Workflow, create_smithers
from smithers.registry import WorkflowRegistry


class Note(BaseModel):
    text: str


smithers, outputs = create_smithers(registry_note=Note)


@smithers
def hello(ctx: Any) -> Workflow:
    return Workflow("hello", [Task("t", output=outputs.registry_note, run={"text": "hi"})])


@smithers
def review(ctx: Any) -> Workflow:
    return Workflow("review", [])


def test_a_workflow_is_registered_once_under_a_plain_key() -> None:
    registry = WorkflowRegistry()
    entry = registry.add("deploy.prod", hello, description="ship it")
    assert entry.workflow.name == "deploy.prod"  # runs record the key as their name
    assert entry.workflow.render is hello.render and hello.name == "hello"
    assert entry.readable_name == "deploy.prod" and entry.description == "ship it"
    registry.add("another", review, readable_name="Review", ui={"path": "/x"})
    assert [e.key for e in registry.entries()] == ["another", "deploy.prod"]
    assert "another" in registry and len(registry) == 2
    assert registry.get("missing") is None
    with pytest.raises(SmithersError, match="registered already"):
        registry.add("another", hello)


@pytest.mark.parametrize("key", ["", "../x", "a/b", "a b", "-lead", "x" * 129, 5])
def test_keys_that_no_url_should_carry_are_refused(key: object) -> None:
    with pytest.raises(SmithersError) as caught:
        WorkflowRegistry().add(key, hello)  # type: ignore[arg-type]
    assert caught.value.code == "INVALID_REQUEST"


def test_only_workflows_register() -> None:
    with pytest.raises(SmithersError, match="@smithers"):
        WorkflowRegistry().add("x", object())  # type: ignore[arg-type]
