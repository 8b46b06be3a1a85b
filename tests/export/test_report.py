"""``revcrm report``: the HTML page, the JSON and the CSV tables of a stored book, checked
against the facade's own figures."""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from revcrm import BillingCycle, Book, Customer, Money, Plan, Product, Subscription
from revcrm._cli import main
from revcrm._facade import CRM
from revcrm.errors import ValidationError
from revcrm.export import (
    Report,
    build_report,
    json_schema,
    money_text,
    render_html,
    to_jsonable,
)
from revcrm.leads import LeadStage, funnel
from revcrm.metrics import cash_revenue_by_payment_method
from revcrm.storage import InMemoryStore, SQLStore
from revcrm.storage._crm_sql import SQLCRMStore
from tests.export._validate import problems

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SECTIONS = ("cards", "trend", "waterfall", "churn", "cohorts", "revenue", "segments", "funnel")


class Page(HTMLParser):
    """The parts of the report a reader sees: sections by id, each card's value, the
    tables (rows of cell texts) under each section, the text of every element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.cards: dict[str, str] = {}
        self.tags: list[str] = []
        self.refs: list[str] = []
        self._section = ""
        self._card = ""
        self._in_value = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("href", "src", "xlink:href")]
        if tag == "section":
            self._section = a.get("id") or ""
            self.sections.append(self._section)
        elif tag == "li" and (a.get("id") or "").startswith("card-"):
            self._card = (a.get("id") or "")[5:]
        elif tag == "div" and a.get("class") == "value" and self._card:
            self._in_value = True
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._section][-1].append(self._row)
            self._row = None
        elif tag == "div":
            self._in_value = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_value:
            self.cards[self._card] = self.cards.get(self._card, "") + data.strip()


def parse(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    return text, page


def self_contained(text: str, page: Page) -> None:
    assert "<script" not in text.lower()
    assert "script" not in page.tags
    assert not [r for r in page.refs if not r.startswith("#")]
    rest = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in rest
    assert "https://" not in rest
    assert "url(" not in rest.replace("url(#", "")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "small.sqlite"
    assert main(["demo", "--customers", "40", "--seed", "3", "--db", str(db)]) == 0
    return db


def facade(db: Path) -> CRM:
    store = SQLStore(f"sqlite:///{db}")
    return CRM(store, SQLCRMStore.alongside(store), reporting_currency="USD", clock=lambda: AS_OF)


def test_report_of_a_demo_database(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, js, folder = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "csv"
    args = ["report", "--db", f"sqlite:///{demo_db}", "--as-of", "2026-11-20T12:00"]
    assert main([*args, "--html", str(html), "--json", str(js), "--csv", str(folder)]) == 0
    said = capsys.readouterr().out
    assert str(html.resolve()) in said
    text, page = parse(html)
    self_contained(text, page)
    assert page.sections == list(SECTIONS)

    crm = facade(demo_db)
    try:
        d = crm.metrics.dashboard(as_of=AS_OF)
        counts = crm.segments.counts(as_of=AS_OF)
        stages = funnel(crm.crm.leads.all(), at=AS_OF)
        book = crm.store.book()
    finally:
        crm.store.close()

    def fm(m: Money) -> str:
        from revcrm import format_money

        return format_money(m, locale="en_US")

    # The cards are the facade's (store-computed) dashboard.
    assert page.cards["mrr"] == fm(d.mrr)
    assert page.cards["arr"] == fm(d.arr)
    assert page.cards["paying_customers"] == str(d.paying_customers)
    assert page.cards["cash_this_month"] == fm(d.revenue_this_month.net)
    # The trend: one row per month, MRR at each close (the current month: at as_of).
    (trend,) = page.tables["trend"]
    assert [row[-1] for row in trend[1:]] == [fm(m.mrr) for m in d.trend]
    assert [row[3] for row in trend[1:]] == [fm(m.cash.net) for m in d.trend]
    # The waterfall's last month ends at as_of: its end MRR is the dashboard's MRR.
    (waterfall,) = page.tables["waterfall"]
    assert waterfall[-1][-1] == fm(d.mrr)
    assert len(waterfall) == 1 + len(d.trend)
    # Segments and the funnel as the facade counts them.
    (segments,) = page.tables["segments"]
    shown = {row[0]: (row[1], row[2]) for row in segments[1:]}
    for seg, n in counts.members.items():
        assert shown[seg.label] == (str(n), str(counts.primary.get(seg, 0)))
    stage_rows = {row[0]: row[1] for row in page.tables["funnel"][0][1:]}
    for stage in LeadStage:
        assert stage_rows[stage.value.title()] == str(stages.counts[stage])
    # A revenue breakdown: its total is the metric's.
    by_method = cash_revenue_by_payment_method(
        book, start=datetime(2025, 11, 20, 12, tzinfo=UTC), end=AS_OF, currency="USD"
    )
    revenue_tables = page.tables["revenue"]
    totals = [t[-1] for t in revenue_tables if t[-1][0] == "Total"]
    assert ["Total", fm(by_method.total), "", "100.0%"] in totals
    assert len(page.tables["churn"][0]) > 1
    assert "Customers retained by cohort" in "".join(page.text)

    # JSON: the same figures, through to_jsonable.
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["as_of"] == "2026-11-20T12:00:00+00:00"
    assert data["dashboard"]["mrr"] == to_jsonable(d.mrr)
    assert data["waterfalls"][-1]["end_mrr"] == to_jsonable(d.mrr)
    assert data["segments"]["customers"] == counts.customers
    assert {c["key"] for c in data["cards"]} >= {"mrr", "customer_churn", "open_pipeline"}
    schema = json_schema(Report)
    assert problems(data, schema, schema) == []

    # CSV: one file per table, each with a header row.
    files = {p.stem: p for p in folder.glob("*.csv")}
    assert {"cards", "trend", "waterfall", "churn", "cohorts", "segments", "funnel"} <= set(files)
    assert any(name.startswith("breakdown_payment_method") for name in files)
    for path in files.values():
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows
        assert rows[0]
        assert all(len(r) == len(rows[0]) for r in rows)
    with files["trend"].open(encoding="utf-8", newline="") as fh:
        trend_rows = list(csv.DictReader(fh))
    assert len(trend_rows) == len(d.trend)
    assert trend_rows[-1]["mrr"] == money_text(d.mrr)


def test_demo_writes_the_report_next_to_its_database(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = demo_db.with_name("small-report.html")
    assert report.is_file()
    text, page = parse(report)
    self_contained(text, page)
    assert page.sections == list(SECTIONS)


def test_report_of_the_demo_book_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert main(["report", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["source"].startswith("revcrm demo book")
    assert data["registered_customers"] == 300
    assert data["waterfalls"][-1]["end_mrr"] == data["dashboard"]["mrr"]


def test_a_billing_store_without_crm_tables(tmp_path: Path) -> None:
    db = tmp_path / "billing.sqlite"
    store = SQLStore(f"sqlite:///{db}")
    store.create_schema()
    store.import_book(_hostile_book())
    store.close()
    html = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "--as-of", "2026-11-20", "--html", str(html)]) == 0
    text, page = parse(html)
    self_contained(text, page)
    assert "No CRM tables in this database" in text
    assert page.sections == list(SECTIONS)


def test_every_text_is_escaped() -> None:
    store = InMemoryStore()
    store.import_book(_hostile_book())
    report = build_report(store, as_of=AS_OF, locale="en_US", currency="USD", label="<b>x</b>")
    text = render_html(report)
    page = Page()
    page.feed(text)
    self_contained(text, page)
    assert "&lt;script&gt;" in text  # the product's name, shown as text
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    assert "b" not in page.tags
    with pytest.raises(ValidationError):
        build_report(store, as_of=AS_OF, locale="en_US")  # a bare store needs a currency
    with pytest.raises(ValidationError):
        build_report(store, as_of=AS_OF, locale="xx_NOPE", currency="USD")


@pytest.mark.parametrize(
    "as_of",
    [AS_OF, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)],
    ids=["mid-month", "month-start", "first-day"],
)
def test_report_of_an_empty_or_young_store(as_of: datetime) -> None:
    for book in (Book.of(), _hostile_book()):
        store = InMemoryStore()
        store.import_book(book)
        report = build_report(store, as_of=as_of, locale="en_US", currency="USD")
        assert report.waterfalls[-1].end == as_of + timedelta(microseconds=1)
        assert report.waterfalls[-1].end_mrr == report.dashboard.mrr
        text = render_html(report)
        page = Page()
        page.feed(text)
        assert page.sections == list(SECTIONS)


def test_german_report_formats_every_amount_alike() -> None:
    store = InMemoryStore()
    store.import_book(_hostile_book())
    report = build_report(store, as_of=AS_OF, locale="de_DE", currency="USD")
    text = render_html(report)
    assert "1.200,00\xa0$" in text  # ARR of a $100 monthly plan
    assert "USD" not in text.replace("amounts in USD", "")


def test_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(tmp_path / "missing.sqlite"), "--html", "x"]) == 2
    assert "no SQLite file" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "give --html, --json or --csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--as-of", "yesterday", "--json", "x"])


@pytest.mark.postgres
def test_report_of_a_postgresql_store(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tag = uuid.uuid4().hex[:10]
    store = SQLStore(postgres_url, prefix=f"r{tag}_")
    store.create_schema()
    crm_store = SQLCRMStore.alongside(store, prefix=f"r{tag}_crm_")
    crm_store.create_schema()
    try:
        store.import_book(_hostile_book())
        html = tmp_path / "pg.html"
        args = ["report", "--db", postgres_url, "--prefix", f"r{tag}_", "--as-of", "2026-11-20"]
        assert main([*args, "--html", str(html)]) == 0
        text, page = parse(html)
        self_contained(text, page)
        assert page.cards["mrr"] == "$100.00"
        assert "***" in text or "postgresql+psycopg://" in text
        assert "No leads at" in text  # CRM tables, no leads yet
    finally:
        crm_store.drop_schema()
        store.drop_schema()
        store.close()


def _hostile_book() -> Book:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    product = Product(id="p1", name="<script>alert(1)</script> & Co")
    plan = Plan(
        id="pl1",
        product_id="p1",
        name="Pro",
        price=Money(Decimal(100), "USD"),
        cycle=BillingCycle.MONTHLY,
    )
    sub = Subscription.start(
        id="s1",
        customer_id="c1",
        at=at,
        price=Money(Decimal(100), "USD"),
        cycle=BillingCycle.MONTHLY,
        plan_id="pl1",
        product_id="p1",
    )
    return Book.of(
        customers=[Customer(id="c1", name="<i>Eve</i>", registered_at=at)],
        subscriptions=[sub],
        products=[product],
        plans=[plan],
    )


def test_a_long_breakdown_chart_sums_the_tail() -> None:
    from revcrm.export._report import CHART_BARS, _chart_rows
    from revcrm.metrics import Breakdown, BreakdownRow

    rows = tuple(
        BreakdownRow(
            key=f"p{i}",
            label=f"Product {i}",
            amount=Money(Decimal(100 - i), "USD"),
            customers=1,
            share=None,
        )
        for i in range(CHART_BARS + 3)
    )
    total = sum((r.amount for r in rows), Money.zero("USD"))
    bd = Breakdown(dimension="product", measure="mrr", currency="USD", total=total, rows=rows)
    bars = _chart_rows(bd)
    assert len(bars) == CHART_BARS
    assert bars[-1][0] == "4 others"
    assert sum(v for _, v in bars) == total.amount


def test_text_and_html_say_the_same_thing() -> None:
    from revcrm._demo import DEMO_AS_OF, demo_book
    from revcrm.export import render_text, report_tables

    store = InMemoryStore()
    store.import_book(demo_book(30, seed=5))
    report = build_report(store, as_of=DEMO_AS_OF, locale="fr_FR", currency="USD")
    text, html = render_text(report), render_html(report)
    page = Page()
    page.feed(html)
    for card in report.cards:
        shown = page.cards[card.key]
        assert f"  {shown}  ({card.note})" in text
    # Every money cell of the waterfall table is in both renderings, in one format.
    (waterfall,) = page.tables["waterfall"]
    for row in waterfall[1:]:
        assert all(cell in text for cell in row)
        assert all(cell.endswith("\xa0$US") for cell in row[1:]), row
    assert "USD" not in text.replace("(USD)", "")
    assert len(report_tables(report)["waterfall"][1]) == len(report.waterfalls)
