"""smithers: durable, human-in-the-loop workflow runs."""

from .commands import cancel, pause, resume
from .context import ApprovalDecision, Ctx
from .decisions import approve, deny
from .definition import OutputRef, Outputs, SmithersWorkflow, create_smithers
from .errors import SmithersError
from .events import Event, EventBus
from .loader import load_workflow, load_workflow_async
from .nodes import (
    Approval,
    Branch,
    Loop,
    Parallel,
    Sequence,
    Signal,
    Task,
    Timer,
    WaitForEvent,
    Workflow,
)
from .retries import retry_task
from .run import run_workflow
from .runtime import RunResult, Runtime
from .signals import signal
from .store.base import Store, open_store
from .subscriptions import subscribe
from .tasks import TaskContext
from .timetravel import fork, rewind

__version__ = "0.1.0"

__all__ = [
    "Approval",
    "ApprovalDecision",
    "Branch",
    "Ctx",
    "Event",
    "EventBus",
    "Loop",
    "OutputRef",
    "Outputs",
    "Parallel",
    "RunResult",
    "Runtime",
    "Sequence",
    "Signal",
    "SmithersError",
    "SmithersWorkflow",
    "Store",
    "Task",
    "TaskContext",
    "Timer",
    "WaitForEvent",
    "Workflow",
    "approve",
    "cancel",
    "create_smithers",
    "deny",
    "fork",
    "load_workflow",
    "load_workflow_async",
    "open_store",
    "pause",
    "resume",
    "retry_task",
    "rewind",
    "run_workflow",
    "signal",
    "subscribe",
]
