"""Every code block of README.md and docs/ runs as its reader would run it (tests/snippets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import snippets

PYTHON_DOCS = [
    doc for doc in snippets.documents() if any(b.lang == "python" for b in snippets.blocks(doc))
]
SHELL_BLOCKS = [
    b for doc in snippets.documents() for b in snippets.blocks(doc) if b.lang in ("sh", "console")
]


def test_every_code_block_is_runnable_or_says_it_is_output() -> None:
    labels = {b.lang for doc in snippets.documents() for b in snippets.blocks(doc)}
    assert labels <= snippets.RUNNABLE | {"text", "json"}, labels


@pytest.mark.parametrize("doc", PYTHON_DOCS, ids=lambda d: d.name)
def test_python_blocks(doc: Path, tmp_path: Path) -> None:
    result = snippets.run_python([b for b in snippets.blocks(doc) if b.lang == "python"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "skipped" not in result.stdout and "xfail" not in result.stdout, output


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.name)
def test_shell_blocks(block: snippets.Block, tmp_path: Path) -> None:
    snippets.run_shell(block, tmp_path)
