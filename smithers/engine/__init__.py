"""The engine: renders a run's tree into a typed plan, commits it, runs its tasks.

- `render/`: the pure walk of a tree against persisted state -> frame JSON and a `Plan`;
- `actions`, `plan`: the plan as typed values; `apply`: what each action writes;
- `driver`: the loop of one run; `attempts`: a task's attempts, retries and timeouts;
- `ending`: the one place a run ends; `outputs`: output models and tables.
"""

from ..errors import SmithersError
from .actions import Action
from .attempts import RunLost
from .driver import RunDriver, decide
from .ending import ACTIVE_NODES, RUNNING_NODES, end_run
from .outputs import ensure_output_tables, validate_output
from .plan import Failure, Plan, ReadyTask, Wait
from .render import Rendered
from .threads import in_thread

__all__ = [
    "ACTIVE_NODES",
    "RUNNING_NODES",
    "Action",
    "Failure",
    "Plan",
    "ReadyTask",
    "Rendered",
    "RunDriver",
    "RunLost",
    "SmithersError",
    "Wait",
    "decide",
    "end_run",
    "ensure_output_tables",
    "in_thread",
    "validate_output",
]
