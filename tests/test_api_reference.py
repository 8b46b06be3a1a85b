"""The API reference builds from the docstrings with warnings as errors (mkdocs --strict),
and shows every public type with its fields."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "revcrm": "revcrm",
    "metrics": "revcrm.metrics",
    "storage": "revcrm.storage",
    "crm": "revcrm.crm",
    "segments": "revcrm.segments",
    "leads": "revcrm.leads",
    "sync": "revcrm.sync",
    "io": "revcrm.io",
    "export": "revcrm.export",
    "web": "revcrm.web",
    "testing-strategies": "revcrm.testing.strategies",
}


def _mkdocs() -> list[str]:
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise  # in CI a missing part is a failure, never a skip
        pytest.skip("mkdocs and mkdocstrings-python are not installed (pip install 'revcrm[test]')")
    return [sys.executable, "-m", "mkdocs"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once per run: xdist workers share it (the first to get here builds
    it under a lock, the others wait for it), as the tests of this module may run on
    either worker and a build costs seconds of a core."""
    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        shared = shared.parent  # the run's directory, common to its workers
    out = shared / "api-reference-site"
    with (shared / "api-reference-site.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_dir():
            building = shared / f"api-reference-site.{os.getpid()}"
            shutil.rmtree(building, ignore_errors=True)
            done = subprocess.run(
                [
                    *_mkdocs(),
                    "build",
                    "--strict",
                    "-f",
                    str(ROOT / "mkdocs.yml"),
                    "-d",
                    str(building),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            # A failed build leaves no site: the next worker builds (and fails) again.
            assert done.returncode == 0, done.stdout + done.stderr
            building.rename(out)
    return out


def test_every_reference_page_documents_its_package(site: Path) -> None:
    for page, module in PAGES.items():
        text = (ROOT / "docs" / "reference" / f"{page}.md").read_text(encoding="utf-8")
        assert f"::: {module}\n" in text, page
        html = (site / "reference" / page / "index.html").read_text(encoding="utf-8")
        assert f'id="{module}"' in html, page


def test_fields_of_public_types_are_shown(site: Path) -> None:
    # The trial guessed ``p.invoices[i].invoice.id``; the reference names the field.
    crm = (site / "reference" / "crm" / "index.html").read_text(encoding="utf-8")
    assert 'id="revcrm.crm.InvoiceSummary.invoice_id"' in crm
    core = (site / "reference" / "revcrm" / "index.html").read_text(encoding="utf-8")
    assert 'id="revcrm.Money"' in core
    assert 'id="revcrm.Money.amount"' in core
    metrics = (site / "reference" / "metrics" / "index.html").read_text(encoding="utf-8")
    for name in ("arr", "Rate", "Rate.value", "MrrChurn.churn", "Waterfall.contraction"):
        assert f'id="revcrm.metrics.{name}"' in metrics, name
    export = (site / "reference" / "export" / "index.html").read_text(encoding="utf-8")
    assert 'id="revcrm.export.to_jsonable"' in export


def test_the_guides_are_in_the_navigation(site: Path) -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for guide in sorted((ROOT / "docs").glob("*.md")):
        assert f": {guide.name}\n" in config, f"{guide.name} is missing from mkdocs.yml nav"
        assert (site / guide.stem / "index.html").exists(), guide.name
