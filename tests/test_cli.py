"""The ``revcrm demo`` command and the demo book it prints."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from revcrm import format_money
from revcrm._cli import main
from revcrm._demo import DEMO_AS_OF, demo_book, demo_leads
from revcrm.leads import LeadStage, funnel
from revcrm.metrics import analyse, dashboard


def test_demo_prints_every_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    assert main(["demo", "--customers", "80", "--seed", "3", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert db.exists()
    assert "MRR computed in SQL and in Python: equal" in out
    for heading in (
        "Dashboard as of",
        "MRR by billing cycle",
        "MRR waterfall, last 12 months",
        "Churn (completed months)",
        "Cohorts:",
        "Top products by net cash",
        "Lead funnel at",
        "Segments (",
        "At Risk customers with the most MRR",
        "Services (",
        "Intake: how did you hear about us?",
    ):
        assert heading in out
    # Segment counts come from SQL; the demo checks them against the Python segmentation.
    assert "computed by the store, Python agrees: equal" in out
    book = demo_book(80, seed=3)
    mrr = analyse(book, currency="USD").mrr(DEMO_AS_OF)
    assert f"MRR                 {format_money(mrr, locale='en_US')}" in out


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
