"""What `smithers server` prints once it listens: where, on what, and a curl line that
starts a run of a workflow of its root."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

from smithers.host import default_db_path
from smithers.store.engines import shown_db_url

# Folders that hold no workflow of the user's, and may hold very many files.
SKIPPED = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "env"})
# How many `.py` files are looked into before giving up (a root may be a large tree).
MAX_LOOKS = 200
# How deep under the root a workflow is looked for (0: the root itself).
MAX_DEPTH = 2


def _python_files(root: Path) -> Iterator[Path]:
    """`.py` files under `root`, shallowest first, by name, skipping hidden and tool
    folders."""
    level = [root]
    for _ in range(MAX_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith((".", "_")):
                    continue
                if entry.is_file() and entry.name.endswith(".py"):
                    yield Path(entry.path)
                elif entry.is_dir(follow_symlinks=False) and entry.name not in SKIPPED:
                    below.append(Path(entry.path))
        level = below


def example_workflow(root: Path) -> str | None:
    """The first workflow file of the root (a `.py` file that builds one with
    `create_smithers`), relative to it; None when there is none. Read, never imported."""
    for looked, path in enumerate(_python_files(root)):
        if looked >= MAX_LOOKS:
            return None
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "create_smithers" in text:
            return path.relative_to(root).as_posix()
    return None


def banner(url: str, root: Path, db: str | None, token_env: str | None) -> list[str]:
    """The lines `smithers server` prints once it listens. `token_env` names the variable
    holding the token when auth is on: the curl line refers to it, never to the token."""
    where = (
        shown_db_url(db)
        if db
        else f"none; runs of workflows without a db go to {default_db_path(root)}"
    )
    auth = "on" if token_env else "off"
    lines = [f"smithers server on {url} (root {root}, db {where}, auth {auth})"]
    header = f' -H "Authorization: Bearer ${token_env}"' if token_env else ""
    lines.append(f"its workflows and their input: curl {url}/v1/workflows{header}")
    workflow = example_workflow(root)
    if workflow is not None:
        body = shlex.quote(json.dumps({"workflowPath": workflow, "input": {}}))
        lines.append(
            f"start a run: curl -X POST {url}/v1/runs{header} "
            f"-H 'content-type: application/json' -d {body}"
        )
    return lines
