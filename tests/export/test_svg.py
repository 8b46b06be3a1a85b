"""Inline SVG charts: well-formed, labelled, escaped, self-contained."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from revcrm import BillingCycle, Book, Customer, Money, Subscription
from revcrm.errors import ValidationError
from revcrm.export import (
    svg_bar_chart,
    svg_heatmap,
    svg_line_chart,
    svg_lines_chart,
    svg_waterfall_chart,
)
from revcrm.metrics import analyse, cohorts

NS = "{http://www.w3.org/2000/svg}"


def at(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    labelled = (root.get("aria-labelledby") or "").split()
    ids = {e.get("id") for e in root.iter()}
    assert labelled
    assert set(labelled) <= ids
    return root


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def self_contained(svg: str) -> None:
    assert "<script" not in svg.lower()
    assert "href" not in svg
    body = svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http" not in body
    assert "url(" not in body.replace("url(#", "")


def test_line_chart_labels_and_money_from_babel() -> None:
    points = [("Jan 2026", Decimal("1234.5")), ("Feb 2026", Decimal("1500.005"))]
    svg = svg_line_chart(points, title="MRR", currency="USD", locale="en_US")
    root = parse(svg)
    self_contained(svg)
    shown = texts(root)
    assert "Jan 2026" in shown
    assert "Feb 2026" in shown
    assert "$1,500.00" in shown  # the last point, rounded half-even once, by babel
    assert "$0" in shown  # axis from zero, whole units
    desc = root.find(f"{NS}desc")
    assert desc is not None
    assert desc.text == "MRR: Jan 2026 $1,234.50, Feb 2026 $1,500.00"
    tips = [t.text for t in root.iter(f"{NS}title")][1:]
    assert "MRR, Jan 2026: $1,234.50" in tips


def test_line_chart_in_german_and_as_percent() -> None:
    svg = svg_line_chart([("a", Decimal("1234.5"))], title="MRR", currency="EUR", locale="de_DE")
    assert "1.234,50\xa0€" in texts(parse(svg))
    rates = svg_line_chart(
        [("Jan", Decimal("0.05")), ("Feb", Decimal("0.031"))],
        title="Churn",
        currency=None,
        locale="en_US",
        percent=True,
    )
    assert "3.1%" in texts(parse(rates))


def test_text_is_escaped_never_markup() -> None:
    evil = '<script>alert("x")</script> & co'
    svg = svg_bar_chart(
        [(evil, Decimal(3)), ("b", Decimal(1))], title=evil, currency=None, locale="en_US"
    )
    self_contained(svg)
    root = parse(svg)
    title = root.find(f"{NS}title")
    assert title is not None
    assert title.text == evil
    assert evil in texts(root)  # the bar's label, as text
    assert root.find(f".//{NS}script") is None


def test_several_series_have_a_legend_and_distinct_styles() -> None:
    labels = ["Jan", "Feb", "Mar"]
    svg = svg_lines_chart(
        [
            (
                "Customer churn",
                list(zip(labels, [Decimal("0.02"), None, Decimal("0.03")], strict=True)),
            ),
            (
                "Net MRR churn",
                list(zip(labels, [Decimal("0.01"), Decimal(0), Decimal("-0.01")], strict=True)),
            ),
        ],
        title="Churn",
        currency=None,
        locale="en_US",
        percent=True,
    )
    root = parse(svg)
    assert {"Customer churn", "Net MRR churn"} <= set(texts(root))
    lines = root.findall(f"{NS}polyline")
    # A gap splits the first series: no line through the missing month.
    assert len(lines) == 1
    dashes = {e.get("stroke-dasharray") for e in root.iter(f"{NS}line") if e.get("stroke-width")}
    assert len(dashes) == 2  # legend swatches differ in dash, not only in colour
    with pytest.raises(ValidationError):
        svg_lines_chart(
            [("a", [("Jan", Decimal(1))]), ("b", [("Feb", Decimal(1))])],
            title="t",
            currency=None,
            locale="en_US",
        )


def test_bar_chart_values_shares_and_negative_bars() -> None:
    rows = [("Shared Hosting", Decimal("300")), ("VPS", Decimal("120")), ("Refunds", Decimal(-20))]
    svg = svg_bar_chart(rows, title="Net cash", currency="USD", locale="en_US", share=True)
    root = parse(svg)
    shown = texts(root)
    assert "$300.00 (75.0%)" in shown
    assert "-$20.00 (-5.0%)" in shown
    bars = root.findall(f"{NS}rect")
    widths = [float(b.get("width") or 0) for b in bars]
    assert widths[0] > widths[1] > widths[2] > 0
    assert all(b.get("fill", "").startswith("url(#") for b in bars)  # patterned


def test_waterfall_bars_and_labels() -> None:
    plan = Subscription.start(
        id="s1",
        customer_id="c1",
        at=at(2024, 1, 10),
        price=Money("120", "USD"),
        cycle=BillingCycle.ANNUAL,
    )
    book = Book.of(
        customers=[Customer(id="c1", registered_at=at(2024, 1, 1))], subscriptions=[plan]
    )
    w = analyse(book, currency="USD").waterfall(at(2024, 1, 1), at(2024, 2, 1))
    svg = svg_waterfall_chart(w, locale="en_US")
    self_contained(svg)
    root = parse(svg)
    shown = texts(root)
    for label in ("Start MRR", "New", "Churn", "FX", "End MRR"):
        assert label in shown
    assert shown.count("$10.00") == 2  # new, end
    kinds = [r.get("class") for r in root.iter(f"{NS}rect") if r.get("class")]
    assert kinds == ["total", "up", "up", "up", "up", "up", "up", "total"]
    with pytest.raises(ValidationError):
        svg_waterfall_chart("w", locale="en_US")  # type: ignore[arg-type]


def test_heatmap_cells_and_rows() -> None:
    subs = [
        Subscription.start(
            id=f"s{i}",
            customer_id=f"c{i}",
            at=at(2024, 1, 5),
            price=Money("10", "USD"),
            cycle=BillingCycle.MONTHLY,
        )
        for i in range(2)
    ]
    subs[1] = subs[1].cancel(at=at(2024, 2, 20))
    book = Book.of(
        customers=[Customer(id=f"c{i}", registered_at=at(2024, 1, 1)) for i in range(2)],
        subscriptions=subs,
    )
    rows = cohorts(analyse(book, currency="USD"), at(2024, 1, 1), at(2024, 4, 1))
    svg = svg_heatmap(rows, locale="en_US")
    root = parse(svg)
    shown = texts(root)
    assert "Jan 2024 (2)" in shown
    assert "100%" in shown
    assert "50%" in shown
    fills = {r.get("fill") for r in root.findall(f"{NS}rect")}
    assert len(fills) >= 2  # retention shades differ
    with pytest.raises(ValidationError):
        svg_heatmap(rows, locale="en_US", value="nope")


def test_bad_arguments_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        svg_line_chart([], title="t", currency=None, locale="en_US")
    with pytest.raises(ValidationError):
        svg_line_chart([("a", Decimal(1))], title="t", currency=None, locale="xx_NOPE")
    with pytest.raises(ValidationError):
        svg_line_chart([("a", Decimal(1))], title="t", currency="USD", locale="en_US", width=5)
    with pytest.raises(ValidationError):
        svg_bar_chart([("a", Decimal(1))], title="t", currency="USD", locale="", share=True)


def test_ids_differ_between_charts_of_one_page() -> None:
    one = parse(svg_line_chart([("a", Decimal(1))], title="one", currency=None, locale="en_US"))
    two = parse(svg_line_chart([("a", Decimal(2))], title="two", currency=None, locale="en_US"))

    def ids(root: ET.Element) -> set[str | None]:
        return {e.get("id") for e in root.iter() if e.get("id")}

    assert not ids(one) & ids(two)


def test_degenerate_inputs_still_draw() -> None:
    # Labels wider than the chart squeeze the bars but never turn them around.
    huge = [("x" * 200, Decimal("123456789012345.67")), ("y", Decimal(0))]
    svg = svg_bar_chart(huge, title="t", currency="USD", locale="en_US", share=True, width=200)
    root = parse(svg)
    bar = root.findall(f"{NS}rect")[0]
    axis = root.findall(f"{NS}line")[-1]
    assert float(bar.get("x") or 0) == pytest.approx(float(axis.get("x1") or 0))
    assert float(bar.get("width") or 0) >= 40
    gaps = svg_lines_chart(
        [("a", [("Jan", None), ("Feb", None)])], title="t", currency=None, locale="en_US"
    )
    assert parse(gaps).findall(f"{NS}polyline") == []
