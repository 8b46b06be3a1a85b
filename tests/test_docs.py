"""Docs code runs as tests: every ```python block of README.md, docs/ and examples/.

Each page runs in a fresh interpreter (``tests/_docs_runner.py``) where the modules of
revcrm's optional extras are hidden unless a block names them on the line before it
(``<!-- extras: sql, test -->``), so every example runs with only the extras it names.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests._docs_runner import BLOCK, EXTRAS_ENV, extra_modules, extras_json

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "_docs_runner.py"
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
_EXTRAS: list[str] = []  # worked out once per worker, handed to every page's interpreter


def _run_page(path: Path) -> subprocess.CompletedProcess[str]:
    if not _EXTRAS:
        _EXTRAS.append(extras_json())
    return subprocess.run(
        [sys.executable, str(RUNNER), str(path)],
        cwd=ROOT,
        env={**os.environ, EXTRAS_ENV: _EXTRAS[0]},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_markdown_code_blocks_run(path: Path) -> None:
    # Blocks of one page run in order in one namespace, as a reader would type them.
    done = _run_page(path)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(path: Path) -> None:
    runpy.run_path(str(path), run_name="__main__")


def test_docs_exist() -> None:
    assert any(BLOCK.findall(p.read_text(encoding="utf-8")) for p in DOCS)


def test_extras_lines_name_real_extras() -> None:
    extras, core = extra_modules()
    assert {"sql", "test", "pandas", "charts", "web"} <= set(extras)
    assert "sqlalchemy" in extras["sql"]
    assert "pytest" in extras["test"]
    assert "attrs" in core
    assert not core & set().union(*extras.values())
    for path in DOCS:
        for m in BLOCK.finditer(path.read_text(encoding="utf-8")):
            names = {n.strip() for n in (m["extras"] or "").split(",") if n.strip()}
            assert names <= set(extras), (path.name, names)


def test_a_block_using_an_extra_it_does_not_name_fails(tmp_path: Path) -> None:
    # The storage guide once imported revcrm.testing.contract (pytest) in a block a reader
    # with only revcrm[sql] ran: that must fail here, naming the extra.
    page = tmp_path / "page.md"
    block = "```python\nfrom revcrm.testing.contract import sample_book\nsample_book()\n```\n"
    page.write_text("# Page\n\n<!-- extras: sql -->\n" + block, encoding="utf-8")
    done = _run_page(page)
    assert done.returncode != 0
    assert "revcrm[test]" in done.stderr
    page.write_text("# Page\n\n<!-- extras: sql, test -->\n" + block, encoding="utf-8")
    assert _run_page(page).returncode == 0
    page.write_text("# Page\n\n" + block.replace("from revcrm.testing.contract", "from revcrm"))
    assert "ImportError" in _run_page(page).stderr  # an ordinary failure still fails
