"""The params of each RPC method, as pydantic models (the shared `Body` rules: exact types,
null reads as absent, unknown fields ignored); a failure is INVALID_REQUEST naming the field."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from smithers.web.models import Body, Limit, RunId, RunStatusName, Text
from smithers.web.params import INT64_MAX

NodeId = Annotated[Text, Field(min_length=1, max_length=256)]
Iteration = Annotated[int, Field(ge=0, le=2**31 - 1)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


class RunParams(Body):
    runId: RunId


class LaunchOptions(Body):
    idempotencyKey: Annotated[Text, Field(min_length=1, max_length=256)] | None = None
    maxConcurrency: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None


class LaunchRun(Body):
    workflow: Annotated[Text, Field(min_length=1, max_length=128)]
    input: dict[str, Any] | None = None
    runId: RunId | None = None
    options: LaunchOptions | None = None


class RunFilter(Body):
    status: RunStatusName | None = None
    limit: Limit = 50
    offset: Count = 0
    workflow: Text | None = None


class ListRuns(RunFilter):
    """`{filter: {...}}`, or the filter's fields at the top level."""

    filter: RunFilter | None = None


class ApprovalFilter(Body):
    runId: RunId | None = None
    workflow: Text | None = None
    limit: Limit = 1000


class ListApprovals(ApprovalFilter):
    filter: ApprovalFilter | None = None


class SubmitApproval(Body):
    runId: RunId
    nodeId: NodeId
    iteration: Iteration = 0
    approved: bool = Field(description="strictly a JSON boolean")
    note: Text | None = None
    decision: dict[str, Any] | None = None


class SubmitApprovals(Body):
    decisions: Annotated[list[SubmitApproval], Field(min_length=1, max_length=256)]


class SubmitSignal(Body):
    runId: RunId
    signalName: Annotated[Text, Field(min_length=1, max_length=256)]
    payload: Any = None
    correlationId: Text | None = None


class ListFrames(RunParams):
    limit: Limit = 50
    afterFrameNo: Annotated[int, Field(ge=-1, le=INT64_MAX)] | None = None


class GetFrame(RunParams):
    frameNo: Count


class ListAttempts(RunParams):
    nodeId: NodeId | None = None
    iteration: Iteration | None = None


class NodeParams(RunParams):
    nodeId: NodeId
    iteration: Iteration = 0


class GetAttempt(NodeParams):
    attempt: Annotated[int, Field(ge=0, le=2**31 - 1)]


class NoParams(Body):
    pass


class StreamRunEvents(Body):
    runId: RunId
    afterSeq: Annotated[int, Field(ge=-1, le=INT64_MAX)] | None = None


class ClientInfo(Body):
    id: Text | None = None
    version: Text | None = None
    platform: Text | None = None


class ConnectAuth(Body):
    token: Annotated[Text, Field(max_length=8192)] | None = None


class Connect(Body):
    minProtocol: Annotated[int, Field(ge=0, le=2**31 - 1)]
    maxProtocol: Annotated[int, Field(ge=0, le=2**31 - 1)]
    client: ClientInfo | None = None
    auth: ConnectAuth | None = None
    subscribe: Annotated[list[RunId], Field(max_length=256)] | None = None
