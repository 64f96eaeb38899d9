"""The bodies and query strings the apps read, and the bodies they answer, as pydantic models.

Request models check what a request carries after `body.parse_json` has refused what no store
keeps (NUL, lone surrogates, non-finite numbers, integers outside int64, deep nesting); a
failure is a 400 `INVALID_REQUEST` naming the first bad field (`details.field`). Unknown
fields are ignored. Response models describe each route's 200 body for `/openapi.json`;
objects the spec leaves open (input, output, decision, details) allow any key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from ..states import RunStatus
from .params import INT64_MAX, INT64_MIN

RUN_STATUSES = frozenset(str(status) for status in RunStatus)

# `check_json` refuses NUL in any string before a model sees it; the schema says so.
Text = Annotated[str, Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
RUN_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
Limit = Annotated[int, Field(ge=1, le=1000)]


def _known_status(value: str) -> str:
    if value not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(RUN_STATUSES))}")
    return value


RunStatusName = Annotated[
    str,
    AfterValidator(_known_status),
    WithJsonSchema({"type": "string", "enum": sorted(RUN_STATUSES)}),
]


class Body(BaseModel):
    """A JSON request body: types are exact (no "1" for 1, no true for 1), null reads as
    absent, unknown fields are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Query(BaseModel):
    """Query parameters: text converted to the field's type."""

    model_config = ConfigDict(extra="ignore")


class RunConfig(Body):
    maxConcurrency: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None


class StartRun(Body):
    workflowPath: Annotated[Text, Field(min_length=1)]
    input: dict[str, Any] | None = None
    runId: RunId | None = None
    resume: bool | None = None
    config: RunConfig | None = None


class ResumeRun(Body):
    workflowPath: Text | None = None


class Decide(Body):
    iteration: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    note: Text | None = None
    decidedBy: Text | None = None
    decision: dict[str, Any] | None = Field(
        None,
        description="mode select: {selected: an option key}; mode rank: {ranked: option "
        "keys, a non-empty subset, each once}; checked on arrival (400)",
    )


class SendSignal(Body):
    data: Any = Field(
        default_factory=dict,
        description="checked against the model the consuming node declares (400)",
    )
    correlationId: Text | None = None
    receivedBy: Text | None = None


class ListRunsQuery(Query):
    limit: Limit = 50
    status: RunStatusName | None = None
    workflow: Text | None = None


class FramesQuery(Query):
    limit: Limit = 50
    afterFrameNo: Int64 | None = None


class OutputsQuery(Query):
    nodeId: Text | None = None


class EventsQuery(Query):
    afterSeq: Int64 = -1


# -- responses ---------------------------------------------------------------------------------


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Ok(Answer):
    ok: Literal[True]


class RunIdAnswer(Answer):
    runId: str


class ResumeAnswer(RunIdAnswer):
    status: Literal["running"] | None = Field(
        None, description="present when the run was already live: nothing was started"
    )


class CancelAnswer(RunIdAnswer):
    status: Literal["cancelled"]


class RunState(Answer):
    state: str
    computedAt: int
    blocked: dict[str, Any] | None = Field(None, description="what a parked run waits for")
    unhealthy: dict[str, Any] | None = None


class RunView(Answer):
    runId: str
    workflowName: str
    status: str
    startedAtMs: int | None
    finishedAtMs: int | None
    summary: dict[str, int] = Field(description="node count by node state")
    runState: RunState
    error: dict[str, Any] | None = Field(
        None,
        description="a failed run's error: code, message; for a failed node nodeId, "
        "iteration and the traceback of the task's code (traceback, ours)",
    )


class RunListItem(Answer):
    runId: str
    workflowName: str
    workflowPath: str | None = Field(description="relative to the server's root")
    status: str
    createdAtMs: int
    startedAtMs: int | None
    finishedAtMs: int | None
    heartbeatAtMs: int | None
    runState: RunState


class Approval(Answer):
    runId: str
    nodeId: str
    iteration: int
    workflowName: str | None
    runStatus: str | None
    label: str | None
    requestTitle: Any
    requestSummary: Any
    requestedAtMs: int
    waitingMs: int
    note: str | None
    decidedBy: str | None


class ApprovalList(Answer):
    approvals: list[Approval]


class Frame(Answer):
    runId: str
    frameNo: int
    createdAtMs: int
    xmlJson: str
    xmlHash: str
    encoding: str
    mountedTaskIdsJson: str
    taskIndexJson: str
    note: str | None


class OutputItem(Answer):
    nodeId: str
    iteration: int
    outputKey: str
    output: dict[str, Any]
    finishedAtMs: int


class WorkflowItem(Answer):
    path: str = Field(description="relative to the server's root")
    name: str | None = Field(description="null when the file cannot be loaded")
    inputSchema: dict[str, Any] | None = Field(
        description="the JSON schema of the workflow's input model; null without one"
    )
    error: ErrorBody | None = Field(
        None, description="why the file cannot be loaded (WORKFLOW_LOAD_FAILED)"
    )


class Decision(Answer):
    runId: str
    nodeId: str
    iteration: int
    approved: bool


class SignalReceipt(Answer):
    runId: str
    seq: int
    signalName: str
    correlationId: str | None
    receivedAtMs: int


class OpenAPIDocument(Answer):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    """Every refusal, with the status its code maps to."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorBody
