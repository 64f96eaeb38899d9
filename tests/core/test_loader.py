"""load_workflow: root confinement, content-hashed shadow copies, reload on edit, bad modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smithers import SmithersError, Store, load_workflow, run_workflow

pytestmark = pytest.mark.anyio

GOOD = """
from pydantic import BaseModel
from smithers import Task, Workflow, create_smithers

class Out(BaseModel):
    value: str

smithers, outputs = create_smithers(out=Out)

@smithers
def workflow(ctx):
    return Workflow("w", [Task("t", output=outputs.out, run={{"value": "{value}"}})])
"""


def write(path: Path, value: str) -> Path:
    path.write_text(GOOD.format(value=value))
    return path


async def test_an_edited_file_is_a_new_version_without_restart(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "flow.py", "v1")
    first = load_workflow(path)
    assert (await run_workflow(first, store=store)).outputs["t"] == {"value": "v1"}
    assert load_workflow(path) is first  # same bytes, same module
    write(path, "v2")
    second = load_workflow(path)
    assert second is not first and second.content_hash != first.content_hash
    assert (await run_workflow(second, store=store)).outputs["t"] == {"value": "v2"}
    shadows = sorted(p.name for p in tmp_path.glob(".flow.smithers-*.py"))
    assert shadows == [f".flow.smithers-{second.content_hash[:12]}.py"]  # type: ignore[index]


def test_sibling_imports_work(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_flow.py").write_text("VALUE = 'from a sibling'\n")
    source = GOOD.format(value="x").replace('"x"', "VALUE")
    (tmp_path / "flow.py").write_text("from helpers_for_flow import VALUE\n" + source)
    assert load_workflow(tmp_path / "flow.py").name == "flow"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("def broken(:\n", "SyntaxError"),
        ("import no_such_module_here\n", "ModuleNotFoundError"),
        ("x = 1\n", "no workflow defined"),
    ],
)
def test_a_module_that_fails_to_load_is_a_clear_error(
    tmp_path: Path, source: str, reason: str
) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(SmithersError) as info:
        load_workflow(path)
    assert info.value.code == "WORKFLOW_LOAD_FAILED"
    assert reason in info.value.details["reason"]
    assert list(tmp_path.glob(".bad.smithers-*.py")) == []
    # the process lives on and loads good workflows
    assert load_workflow(write(tmp_path / "good.py", "ok")).name == "good"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for target in (tmp_path / "missing.py", tmp_path):
        with pytest.raises(SmithersError) as info:
            load_workflow(target)
        assert info.value.code == "WORKFLOW_LOAD_FAILED"


@pytest.mark.parametrize("path", ["../outside.py", "/etc/passwd", "a/../../outside.py"])
def test_paths_outside_the_root_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write(tmp_path / "outside.py", "x")
    with pytest.raises(SmithersError) as info:
        load_workflow(path, root_dir=root)
    assert info.value.code == "WORKFLOW_PATH_OUTSIDE_ROOT"


def test_symlinks_out_of_the_root_and_nul_bytes_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = write(tmp_path / "outside.py", "x")
    os.symlink(outside, root / "link.py")
    for path in ("link.py", "flow\x00.py"):
        with pytest.raises(SmithersError) as info:
            load_workflow(path, root_dir=root)
        assert info.value.code == "WORKFLOW_PATH_OUTSIDE_ROOT"
    write(root / "inside.py", "in")
    assert load_workflow("inside.py", root_dir=root).name == "inside"


def test_a_loaded_version_stays_reachable_by_its_hash(tmp_path: Path) -> None:
    from smithers.loader import loaded_version

    path = write(tmp_path / "flow.py", "v1")
    first = load_workflow(path)
    write(path, "v2")
    second = load_workflow(path)
    assert first.content_hash is not None and second.content_hash is not None
    assert loaded_version(path, first.content_hash) is first
    assert loaded_version(path, second.content_hash) is second
    assert loaded_version(path, "0" * 64) is None


def test_a_run_resumed_on_an_edited_file_notes_the_reload(tmp_path: Path) -> None:
    """Another process resumes a run whose recorded version it never loaded."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from smithers import open_store
    from smithers.queries import get_run
    from tests.helpers import ROOT, event_types

    source = """
import time
from pydantic import BaseModel
from smithers import Task, Workflow, create_smithers

class Out(BaseModel):
    value: str

smithers, outputs = create_smithers(out=Out)

@smithers
def workflow(ctx):
    return Workflow("edited", [
        Task("slow", output=outputs.out, run=lambda: (time.sleep({pause}), {{"value": "{v}"}})[1]),
    ])
"""
    path = tmp_path / "edited.py"
    path.write_text(source.format(pause=30, v="v1"))
    db = f"sqlite:///{tmp_path / 'r.db'}"
    cmd = [sys.executable, "-m", "smithers.cli", "up", str(path), "--db", db, "--run-id", "ed"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_store(db)
    try:
        deadline = time.monotonic() + 20
        while "NodeStarted" not in (event_types(store, "ed") if get_run(store, "ed") else []):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(10)
    recorded = get_run(store, "ed")
    assert recorded is not None
    path.write_text(source.format(pause=0, v="v2"))
    done = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    types = event_types(store, "ed")
    assert "WorkflowReloaded" in types and types[-1] == "RunFinished"
    resumed = get_run(store, "ed")
    assert resumed is not None and resumed.workflow_hash != recorded.workflow_hash
    assert '"value": "v2"' in done.stdout
    store.close()
