"""run_workflow: start a run and drive it in this process until it finishes or parks."""

from __future__ import annotations

from typing import Any

from .definition import SmithersWorkflow
from .runtime import RunResult, Runtime
from .store.base import Store, open_store


async def run_workflow(
    workflow: SmithersWorkflow,
    *,
    input: Any = None,
    store: Store | str | None = None,
    run_id: str | None = None,
    config: dict[str, Any] | None = None,
    root_dir: str = ".",
    allow_network: bool = False,
) -> RunResult:
    """Run `workflow` until it finishes, fails or parks; the store defaults to its own db."""
    if store is None:
        store = workflow.db or "smithers.db"
    opened = open_store(store) if not isinstance(store, Store) else store
    async with Runtime(opened, adopt=False, root_dir=root_dir, allow_network=allow_network) as rt:
        return await rt.run(workflow, input=input, run_id=run_id, config=config)
