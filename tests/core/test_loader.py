"""load_workflow: root confinement, .py files only, nothing written beside the source, reload
on edit, bad modules named by the user's own file, slow imports that hold up nothing else."""

from __future__ import annotations

import os
import time
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
    # nothing was written beside the user's source
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("smithers.db")) == [
        "flow.py"
    ]


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
    assert [p.name for p in tmp_path.iterdir()] == ["bad.py"]
    # the process lives on and loads good workflows
    assert load_workflow(write(tmp_path / "good.py", "ok")).name == "good"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.py").mkdir()
    for target in (tmp_path / "missing.py", tmp_path, tmp_path / "dir.py"):
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
    cmd = [sys.executable, "-m", "smithers_cli", "up", str(path), "--db", db, "--run-id", "ed"]
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


def test_errors_name_the_users_file_and_line_relative_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bad.py").write_text("x = 1\n\nraise KeyError('missing')\n")
    (tmp_path / "pkg" / "syntax.py").write_text("x = 1\ndef broken(:\n")
    for name, line in (("bad.py", 3), ("syntax.py", 2)):
        with pytest.raises(SmithersError) as info:
            load_workflow(f"pkg/{name}", root_dir=tmp_path)
        error = info.value
        assert error.details["workflowPath"] == f"pkg/{name}"
        assert f"(pkg/{name}, line {line})" in error.details["reason"]
        assert str(tmp_path) not in f"{error.message} {error.details}"


@pytest.mark.parametrize("name", ["s.db", "s.db-wal", "notes.txt", "link.py"])
def test_only_python_files_are_read(tmp_path: Path, name: str) -> None:
    """A database (or its WAL) named as a workflow is refused before it is opened: opening
    and closing it would drop SQLite's locks for the whole process."""
    (tmp_path / "s.db").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "s.db-wal").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    os.symlink(tmp_path / "s.db", tmp_path / "link.py")  # resolves to s.db: refused too
    with pytest.raises(SmithersError) as info:
        load_workflow(name, root_dir=tmp_path)
    assert info.value.code == "WORKFLOW_LOAD_FAILED"
    assert "not a Python file" in info.value.details["reason"]


SLOW = """
import os, time
open(os.path.join(os.path.dirname(__file__), "slow.started"), "w").close()
while not os.path.exists(os.path.join(os.path.dirname(__file__), "slow.go")):
    time.sleep(0.01)
""" + GOOD.format(value="slow")


async def test_a_slow_import_holds_up_no_other_load_and_has_a_time_limit(
    tmp_path: Path,
) -> None:
    from smithers.loader import load_workflow_async

    write(tmp_path / "fast.py", "fast")
    cached = load_workflow(tmp_path / "fast.py")
    (tmp_path / "slow.py").write_text(SLOW)
    with pytest.raises(SmithersError) as info:
        await load_workflow_async("slow.py", tmp_path, timeout_s=0.3)
    assert info.value.code == "WORKFLOW_LOAD_FAILED"
    assert "did not finish within" in info.value.details["reason"]
    assert (tmp_path / "slow.started").exists() and not (tmp_path / "slow.go").exists()
    # The import still runs in its thread; other files load, and cache hits answer, at once.
    assert await load_workflow_async("fast.py", tmp_path, timeout_s=5) is cached
    write(tmp_path / "other.py", "other")
    assert (await load_workflow_async("other.py", tmp_path, timeout_s=5)).name == "other"
    assert not (tmp_path / "slow.go").exists()  # all that while, slow.py was importing
    (tmp_path / "slow.go").touch()
    assert (await load_workflow_async("slow.py", tmp_path, timeout_s=10)).name == "slow"


async def test_a_file_loaded_again_unchanged_is_not_reloaded_and_every_kind_of_edit_is(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settled file is known by its stat, so edits that keep its size and modified time
    (editors, `rsync -t`), a file renamed over it, and a symlink turned elsewhere reload."""
    from smithers import loader

    monkeypatch.setattr(loader, "SETTLED_NS", 50_000_000)
    write(tmp_path / "flow.py", "v1")
    write(tmp_path / "other.py", "v3")
    (tmp_path / "link.py").symlink_to("flow.py")

    async def loads(name: str, value: str) -> None:
        time.sleep(0.06)  # settled: from now on its stat stands for its bytes
        workflow = load_workflow(name, root_dir=tmp_path)
        assert workflow is load_workflow(name, root_dir=tmp_path)
        assert workflow is await loader.load_workflow_async(name, tmp_path)
        assert (await run_workflow(workflow, store=store)).outputs["t"] == {"value": value}

    await loads("flow.py", "v1")
    await loads("link.py", "v1")
    before = (tmp_path / "flow.py").stat()
    write(tmp_path / "flow.py", "v2")  # same size, modified time put back
    os.utime(tmp_path / "flow.py", ns=(before.st_atime_ns, before.st_mtime_ns))
    await loads("flow.py", "v2")
    await loads("link.py", "v2")
    (tmp_path / "link.py").unlink()
    (tmp_path / "link.py").symlink_to("other.py")
    await loads("link.py", "v3")
    replacement = write(tmp_path / "new.py", "v4")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, tmp_path / "flow.py")
    await loads("flow.py", "v4")
