"""`GET /v1/workflows` on a real server whose root holds workflows, broken and slow files,
helper modules, hidden folders, virtual environments and symlinks out of the root."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from smithers_server import SmithersClient

from .conftest import ServerProcess

pytestmark = pytest.mark.timeout(90)

# A slow import that counts its imports and finishes once `go` exists beside it.
COUNTED_SLOW = """
import time
from pathlib import Path

from smithers import Task, Workflow, create_smithers

here = Path(__file__).resolve().parent
with (here / "slow-imports.log").open("a") as log:
    log.write("import\\n")
while not (here / "go").exists():
    time.sleep(0.02)

smithers, outputs = create_smithers()


@smithers
def workflow(ctx):
    return Workflow("counted", [])
"""

# An import error that counts its imports.
BROKEN = """
from pathlib import Path

from smithers import create_smithers

with (Path(__file__).resolve().parent / "broken-imports.log").open("a") as log:
    log.write("import\\n")
raise RuntimeError("boom")
"""

# Importing this leaves a mark: it must never be imported by a listing.
MARKS = "from pathlib import Path\nPath(__file__).resolve().with_name('EXECUTED').touch()\n"


@pytest.fixture(scope="module")
def srv(spawn: Callable[..., ServerProcess], tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = spawn(args=("--load-timeout", "1500"))
    root = server.root
    hello = (root / "hello.py").read_text()
    (root / "slow_counted.py").write_text(COUNTED_SLOW)
    (root / "broken.py").write_text(BROKEN)
    (root / "helper.py").write_text("from smithers import Task\n\nSHARED = Task\n")
    (root / "script.py").write_text(MARKS)  # imports no smithers: never imported
    (root / ".hidden.py").write_text(hello)
    (root / "sub").mkdir()
    (root / "sub" / "nested.py").write_text(hello)
    for folder in (".hidden", ".venv/lib", "__pycache__", "node_modules/x", "env/lib"):
        (root / folder).mkdir(parents=True)
        (root / folder / "flow.py").write_text(hello)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "evil.py").write_text(MARKS + hello)
    (root / "escape.py").symlink_to(outside / "evil.py")
    (root / "escdir").symlink_to(outside, target_is_directory=True)
    (root / "hello_link.py").symlink_to(root / "hello.py")
    yield server
    for go in ("go", "slow-import.go"):
        (root / go).touch()


def listing(client: httpx.Client) -> dict[str, dict[str, Any]]:
    res = client.get("/v1/workflows")
    assert res.status_code == 200, res.text
    items = res.json()
    assert isinstance(items, list)
    paths = [item["path"] for item in items]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    return {item["path"]: item for item in items}


def test_the_workflows_under_the_root(srv: ServerProcess) -> None:
    with srv.client() as client:
        found = listing(client)
    assert found["hello.py"] == {"path": "hello.py", "name": "hello", "inputSchema": None}
    assert found["approval.py"]["name"] == "approval"
    assert found["sub/nested.py"]["name"] == "nested"
    assert found["hello_link.py"]["name"] == "hello"  # a symlink that stays in the root
    typed = found["srv_typed.py"]["inputSchema"]
    assert typed["type"] == "object" and set(typed["properties"]) == {"item", "qty"}
    assert set(typed["required"]) == {"item", "qty"}
    for left_out in ("helper.py", "script.py", ".hidden.py", "escape.py"):
        assert left_out not in found
    assert not any(
        path.startswith((".", "__pycache__", "node_modules", "env/", "escdir")) for path in found
    ), sorted(found)
    assert not (srv.root / "EXECUTED").exists()
    assert not (srv.root.parent / "outside" / "EXECUTED").exists()


def test_a_broken_file_is_listed_with_its_error_and_imported_again_after_a_change(
    srv: ServerProcess,
) -> None:
    with srv.client() as client:
        broken = listing(client)["broken.py"]
        assert broken["name"] is None and broken["inputSchema"] is None
        assert broken["error"]["code"] == "WORKFLOW_LOAD_FAILED"
        assert "RuntimeError: boom" in broken["error"]["message"]
        assert "broken.py, line" in broken["error"]["message"]
        assert str(srv.root) not in broken["error"]["message"]
        assert listing(client)["broken.py"] == broken
        log = srv.root / "broken-imports.log"
        assert log.read_text().count("import") == 1
        (srv.root / "broken.py").write_text(BROKEN.replace("boom", "bang"))
        again = listing(client)["broken.py"]
        assert "RuntimeError: bang" in again["error"]["message"]
        assert log.read_text().count("import") == 2
        # A failure may be a sibling's: once that is fixed, the file is imported again.
        (srv.root / "needs_sibling.py").write_text(
            "import sibling_dep\n" + (srv.root / "hello.py").read_text()
        )
        assert (
            "No module named 'sibling_dep'"
            in (listing(client)["needs_sibling.py"]["error"]["message"])
        )
        (srv.root / "sibling_dep.py").write_text("VALUE = 1\n")
        assert listing(client)["needs_sibling.py"]["name"] == "needs_sibling"
        assert "sibling_dep.py" not in listing(client)  # imports no smithers
        # A start still reports it as it always did.
        start = client.post("/v1/runs", json={"workflowPath": "broken.py"})
        assert start.status_code == 400
        assert start.json()["error"]["code"] == "WORKFLOW_LOAD_FAILED"


def test_a_slow_import_holds_up_no_listing_and_is_imported_once(srv: ServerProcess) -> None:
    with srv.client() as client:
        for _ in range(3):
            found = listing(client)
            slow = found["slow_counted.py"]
            assert slow["name"] is None and slow["error"]["code"] == "WORKFLOW_LOAD_FAILED"
            assert "did not finish within 1.5 s" in slow["error"]["message"]
            assert found["srv_slow_import.py"]["name"] is None
            assert found["hello.py"]["name"] == "hello"
        (srv.root / "go").touch()
        deadline = time.monotonic() + 30
        while (slow := listing(client)["slow_counted.py"])["name"] is None:
            assert time.monotonic() < deadline, slow
            time.sleep(0.05)
        assert slow == {"path": "slow_counted.py", "name": "slow_counted", "inputSchema": None}
    assert (srv.root / "slow-imports.log").read_text().count("import") == 1


def test_the_client_lists_workflows(srv: ServerProcess) -> None:
    with SmithersClient(srv.url) as client:
        listed = {item["path"]: item for item in client.workflows()}
    assert listed["signal.py"]["name"] == "signal"


def test_a_root_of_one_workflow(spawn: Callable[..., ServerProcess], tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    shutil.copy(Path(__file__).parent / "workflows" / "srv_typed.py", root / "only.py")
    server = spawn(root=root)
    with server.client() as client:
        assert [item["path"] for item in listing(client).values()] == ["only.py"]


def test_a_hung_listing_import_does_not_hold_up_the_server_stopping(
    spawn: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    root = tmp_path / "hung"
    root.mkdir()
    (root / "hung.py").write_text(COUNTED_SLOW)  # never told to go: it hangs for good
    server = spawn(root=root, args=("--load-timeout", "500"))
    with server.client() as client:
        assert listing(client)["hung.py"]["name"] is None
    server.proc.terminate()
    assert server.proc.wait(timeout=30) is not None  # the import is abandoned, not awaited
