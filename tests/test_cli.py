"""The ``revcrm demo`` command and the demo book it prints."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import sys
import tempfile
from pathlib import Path

import pytest

from revcrm import format_money
from revcrm._cli import main
from revcrm._demo import DEMO_AS_OF, demo_book, demo_leads
from revcrm.leads import LeadStage, funnel
from revcrm.metrics import analyse, dashboard


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run (80 customers, seed 3) shared by the tests of its output."""
    db = tmp_path_factory.mktemp("cli") / "demo.sqlite"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["demo", "--customers", "80", "--seed", "3", "--db", str(db)]) == 0
    return db, buffer.getvalue()


def test_demo_prints_every_section(demo_run: tuple[Path, str]) -> None:
    db, out = demo_run
    assert db.exists()
    assert "MRR computed in SQL and in Python: equal" in out
    for heading in (
        "Dashboard as of",
        "12-month trend",
        "MRR waterfall (the last month ends at the report's moment)",
        "Churn by completed month",
        "Cohorts:",
        "MRR by billing cycle at",
        "Net cash by product,",
        "Lead funnel at",
        "Segments of the 80 registered customers",
        "At Risk customers with the most MRR",
        "Services (",
        "Intake: how did you hear about us?",
    ):
        assert heading in out
    # Segment counts come from SQL; the demo checks them against the Python segmentation.
    assert "Segment counts computed by the store, Python agrees: equal" in out
    book = demo_book(80, seed=3)
    mrr = analyse(book, currency="USD").mrr(DEMO_AS_OF)
    assert re.search(rf"\n  MRR +{re.escape(format_money(mrr, locale='en_US'))}  \(", out)
    # The database and the report next to it are named.
    report = db.with_name("demo-report.html")
    assert report.is_file()
    assert f"Database: {db.resolve()}" in out
    assert f"HTML report: {report.resolve()}" in out


def test_demo_says_one_thing(demo_run: tuple[Path, str]) -> None:
    """Issue 16 item 6: one moment, labelled counts, one money format, plain words."""
    _, out = demo_run
    book = demo_book(80, seed=3)
    mrr = format_money(analyse(book, currency="USD").mrr(DEMO_AS_OF), locale="en_US")
    # The waterfall's last month ends at as_of: its end MRR is the dashboard's MRR.
    waterfall = out.split("MRR waterfall")[1].split("\n\n")[0].splitlines()
    assert waterfall[-1].startswith("  Nov 2026")
    assert waterfall[-1].endswith(mrr)
    # Counts say what they count.
    assert re.search(r"Paying customers +\d+  \(customers with MRR now, of 80 registered\)", out)
    assert re.search(r"\d+ of the \d+ customers paying on 2026-11-01 stopped paying", out)
    assert "Paying at start" in out
    assert ", start)" not in out
    # One money format: no ISO-code amounts next to symbols.
    assert not re.search(r"\d USD\b", out), re.findall(r".*\d USD\b.*", out)
    assert "Open pipeline value" in out


def test_demo_database_defaults_to_a_temporary_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    tempfile.tempdir = None  # read TMPDIR again
    try:
        assert main(["demo", "--customers", "20", "--seed", "2"]) == 0
    finally:
        tempfile.tempdir = None
    out = capsys.readouterr().out
    (db,) = tmp_path.glob("revcrm-demo-*/revcrm-demo.sqlite")
    assert f"Database: {db.resolve()}" in out
    assert db.with_name("revcrm-demo-report.html").is_file()
    assert not (tmp_path / "revcrm-demo.sqlite").exists()  # not in the working directory


def test_every_option_has_help() -> None:
    from revcrm._cli import SUBCOMMANDS, build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(SUBCOMMANDS)
    for name, command in sub.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, f"revcrm {name} {action.option_strings}"


def test_demo_runs_as_a_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["revcrm", "demo", "--customers", "30", "--locale", "de_DE", "--db", "-"]
    )
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("revcrm", run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    # German formatting: decimal comma, the symbol after the amount.
    assert re.search(r"MRR\s+[\d.]+,\d\d\xa0\$", out), out[:400]


def test_demo_book_is_seeded_and_realistic() -> None:
    one, two = demo_book(120, seed=5), demo_book(120, seed=5)
    assert [s.history for s in one.subscriptions] == [s.history for s in two.subscriptions]
    assert len(one.customers) == 120
    cycles = {str(s.current.cycle) for s in one.subscriptions}
    assert {"monthly", "annual"} <= cycles
    assert {s.currency for s in one.subscriptions} >= {"USD", "EUR"}
    kinds = {c.kind.value for s in one.subscriptions for c in s.history}
    assert {"started", "plan_changed", "cancelled"} <= kinds
    d = dashboard(one, as_of=DEMO_AS_OF, currency="USD")
    assert d.mrr.amount > 0
    assert d.arr == d.mrr * 12


def test_demo_leads_convert_registered_prospects() -> None:
    book = demo_book(150, seed=2)
    leads = demo_leads(book)
    counts = funnel(leads, at=DEMO_AS_OF).counts
    assert counts[LeadStage.CONVERTED] > 0
    assert sum(counts.values()) == len(list(leads))
    converted = [lead for lead in leads if lead.stage is LeadStage.CONVERTED]
    ids = {c.id for c in book.customers}
    assert all(lead.customer_id in ids for lead in converted)
