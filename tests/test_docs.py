"""Docs code runs as tests: every ```python block of README.md, docs/ and examples/."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_markdown_code_blocks_run(path: Path) -> None:
    blocks = BLOCK.findall(path.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    # Blocks of one page run in order in one namespace, as a reader would type them.
    for i, code in enumerate(blocks):
        exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(path: Path) -> None:
    runpy.run_path(str(path), run_name="__main__")


def test_docs_exist() -> None:
    assert any(BLOCK.findall(p.read_text(encoding="utf-8")) for p in DOCS)
