"""create_smithers: a workflow's output models, input model and render function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from pydantic import BaseModel

from .errors import SmithersError
from .store.outputs import output_columns, validate_table_name

if TYPE_CHECKING:
    from .context import Ctx
    from .nodes import Node

RenderFn = Callable[["Ctx"], "Node"]


@dataclass(frozen=True)
class OutputRef:
    """`outputs.plan`: an output model and the table (named by its key) that stores it."""

    key: str
    model: type[BaseModel]


class Outputs:
    """The outputs of a workflow, by attribute (`outputs.plan`) or key (`outputs["plan"]`)."""

    def __init__(self, refs: dict[str, OutputRef]) -> None:
        self._refs = refs

    def __getattr__(self, key: str) -> OutputRef:
        try:
            return self._refs[key]
        except KeyError:
            raise AttributeError(f"no output named {key!r}") from None

    def __getitem__(self, key: str) -> OutputRef:
        return self._refs[key]

    def __iter__(self) -> Any:
        return iter(self._refs.values())

    def __len__(self) -> int:
        return len(self._refs)


@dataclass
class SmithersWorkflow:
    """A loadable workflow: its render function, outputs, input model and default db."""

    render: RenderFn
    outputs: Outputs
    name: str
    input_model: type[BaseModel] | None = None
    db: str | None = None
    path: str | None = None
    content_hash: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def resolve_output(self, spec: Any) -> OutputRef | None:
        """An output given as `outputs.x`, its model class, or its key."""
        if spec is None:
            return None
        if isinstance(spec, OutputRef):
            return spec
        if isinstance(spec, str):
            try:
                ref: OutputRef = self.outputs[spec]
                return ref
            except KeyError:
                raise SmithersError("WORKFLOW_INVALID", f"unknown output {spec!r}") from None
        for ref in self.outputs:
            if ref.model is spec:
                return ref
        raise SmithersError(
            "WORKFLOW_INVALID", f"output {spec!r} is not one of this workflow's outputs"
        )

    def validate_input(self, data: Any) -> Any:
        """The run input, validated by the input model when there is one (JSON-ready)."""
        if self.input_model is None:
            return {} if data is None else data
        value = self.input_model.model_validate({} if data is None else data)
        return value.model_dump(mode="json")


class _Decorator:
    def __init__(
        self, outputs: Outputs, input_model: type[BaseModel] | None, db: str | None
    ) -> None:
        self.outputs = outputs
        self.input_model = input_model
        self.db = db

    @overload
    def __call__(self, fn: RenderFn, /) -> SmithersWorkflow: ...

    @overload
    def __call__(
        self, fn: None = None, /, *, name: str | None = None
    ) -> Callable[[RenderFn], SmithersWorkflow]: ...

    def __call__(
        self, fn: RenderFn | None = None, /, *, name: str | None = None
    ) -> SmithersWorkflow | Callable[[RenderFn], SmithersWorkflow]:
        def wrap(render: RenderFn) -> SmithersWorkflow:
            if not callable(render) or inspect.iscoroutinefunction(render):
                raise SmithersError(
                    "WORKFLOW_INVALID", "a workflow render function must be a plain function"
                )
            return SmithersWorkflow(
                render=render,
                outputs=self.outputs,
                name=name or str(getattr(render, "__name__", "workflow")),
                input_model=self.input_model,
                db=self.db,
            )

        return wrap(fn) if fn is not None else wrap


def create_smithers(
    *, input: type[BaseModel] | None = None, db: str | None = None, **models: type[BaseModel]
) -> tuple[_Decorator, Outputs]:
    """Declare a workflow's outputs: `smithers, outputs = create_smithers(plan=Plan)`."""
    refs: dict[str, OutputRef] = {}
    for key, model in models.items():
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise SmithersError(
                "WORKFLOW_INVALID", f"output {key!r} must be a pydantic model class"
            )
        validate_table_name(key)
        output_columns(model)
        refs[key] = OutputRef(key, model)
    if input is not None and not (isinstance(input, type) and issubclass(input, BaseModel)):
        raise SmithersError("WORKFLOW_INVALID", "input must be a pydantic model class")
    outputs = Outputs(refs)
    return _Decorator(outputs, input, db), outputs
