"""The layer contracts of `make lint` (import-linter, in pyproject.toml) are live: a copy
of the packages passes, and the same copy with one forbidden import fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = ("smithers", "smithers_server", "smithers_serve", "smithers_gateway", "smithers_cli")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and the project's contracts."""
    path = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    return path


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_packages_keep_their_contracts(tree: Path) -> None:
    done = lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("smithers/runtime.py", "import smithers_server", "The core imports no app and no CLI"),
        ("smithers_server/runs.py", "import smithers.store.runs", "never the store"),
        ("smithers/engine/driver.py", "import starlette.requests", "Only smithers.web imports"),
        ("smithers/store/runs.py", "import smithers.runtime", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_make_lint(
    tree: Path, tmp_path: Path, module: str, line: str, contract: str
) -> None:
    broken = tmp_path / "tree"
    shutil.copytree(tree, broken)
    target = broken / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    done = lint(broken)
    assert done.returncode != 0
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout, done.stdout


def test_no_module_of_the_packages_is_over_400_lines() -> None:
    """A module over ~400 lines is usually two modules (docs/architecture.md)."""
    long = {
        str(path.relative_to(ROOT)): count
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (count := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
