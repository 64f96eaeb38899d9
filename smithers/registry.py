"""WorkflowRegistry: workflows a host serves by key (the Gateway's `register`), not by file.

A run of a registered workflow records its key (the run's `workflowName`, and
`config.workflowKey`), so a resume or an adoption, in this process or the next one to
start with the same registrations, finds its workflow by key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .definition import SmithersWorkflow
from .errors import SmithersError
from .store.records import RunRecord

KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
CONFIG_KEY = "workflowKey"


@dataclass(frozen=True)
class Registered:
    """One registered workflow: its key, the workflow (named by the key), what a listing
    shows, and the options plugins read (schedule, webhook, ui)."""

    key: str
    workflow: SmithersWorkflow
    readable_name: str
    description: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class WorkflowRegistry:
    """Workflows by key, in registration order; `entries()` lists them sorted by key."""

    def __init__(self) -> None:
        self._entries: dict[str, Registered] = {}

    def add(
        self,
        key: str,
        workflow: SmithersWorkflow,
        *,
        readable_name: str | None = None,
        description: str | None = None,
        **options: Any,
    ) -> Registered:
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise SmithersError(
                "INVALID_REQUEST",
                f"workflow key {key!r} must match {KEY_PATTERN.pattern}",
            )
        if not isinstance(workflow, SmithersWorkflow):
            raise SmithersError(
                "INVALID_REQUEST", f"register({key!r}, ...) needs a workflow made by @smithers"
            )
        if key in self._entries:
            raise SmithersError("INVALID_REQUEST", f"workflow key {key!r} is registered already")
        # Runs record the workflow's name: named by its key, a run says which entry it is.
        named = dataclasses.replace(workflow, name=key)
        entry = Registered(key, named, readable_name or key, description, dict(options))
        self._entries[key] = entry
        return entry

    def get(self, key: str) -> Registered | None:
        return self._entries.get(key)

    def require(self, key: str, not_found: str = "NOT_FOUND") -> Registered:
        """The entry registered under `key`; `not_found` is the code when there is none
        (NOT_FOUND to launch; WORKFLOW_LOAD_FAILED to resume a run that records it)."""
        entry = self._entries.get(key)
        if entry is None:
            raise SmithersError(
                not_found,
                f"no workflow registered as {key!r}",
                {"workflow": key, "reason": "not registered"},
            )
        return entry

    def entries(self) -> list[Registered]:
        return [self._entries[key] for key in sorted(self._entries)]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


def recorded_key(run: RunRecord) -> str | None:
    """The key a run of a registered workflow recorded, else None (a run of a file)."""
    key = run.config.get(CONFIG_KEY)
    return key if isinstance(key, str) else None
