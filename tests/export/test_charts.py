"""revcrm.export charts: each renders to PNG and SVG and draws the result's figures."""

from __future__ import annotations

import io
from typing import Any

import pytest
from matplotlib.figure import Figure

from revcrm.errors import ValidationError
from revcrm.export import (
    churn_chart,
    cohort_heatmap,
    revenue_by_billing_cycle_chart,
    revenue_by_payment_method_chart,
    revenue_by_product_chart,
    revenue_trend_chart,
    waterfall_chart,
)
from tests.export._catalogue import catalogue


def _r(name: str) -> Any:
    return catalogue().results[name]


def _renders(fig: Figure) -> None:
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        assert buf.getvalue().startswith(magic)


def _ax(fig: Figure) -> Any:
    return fig.axes[0]


def _amount(m: Any) -> float:
    return float(m.rounded().amount)


def test_revenue_trend() -> None:
    d = _r("dashboard")
    fig = revenue_trend_chart(d, locale="en_US")
    _renders(fig)
    ax = _ax(fig)
    assert [p.get_height() for p in ax.patches] == [_amount(m.cash.net) for m in d.trend]
    assert list(ax.lines[0].get_ydata()) == [_amount(m.mrr) for m in d.trend]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == f"{d.trend[-1].start:%b %Y}"
    assert ax.yaxis.get_major_formatter()(1234.0, 0) == "$1,234"
    store = revenue_trend_chart(_r("store_dashboard"), locale="de_DE")
    assert _ax(store).yaxis.get_major_formatter()(1234.0, 0) == "1.234\xa0$"


def test_waterfall() -> None:
    w = _r("waterfall")
    fig = waterfall_chart(w, locale="en_US")
    _renders(fig)
    bars = _ax(fig).patches
    steps = [w.new, w.expansion, w.reactivation, w.contraction, w.churn, w.fx_impact]
    heights = [_amount(w.start_mrr), *(_amount(s) for s in steps), _amount(w.end_mrr)]
    assert [b.get_height() for b in bars] == pytest.approx(heights)
    # Each movement floats on the running total, so the last one ends at the end MRR.
    last = bars[-2]
    assert last.get_y() + last.get_height() == pytest.approx(_amount(w.end_mrr), abs=0.05)
    labels = [t.get_text() for t in _ax(fig).texts]
    assert labels[0] == "$1,896.96"
    assert "-$17.37" in labels
    # Gains and losses differ in hatching as well as colour (greyscale prints).
    assert bars[1].get_hatch() != bars[4].get_hatch()


def test_cohort_heatmap() -> None:
    rows = _r("cohorts")
    fig = cohort_heatmap(rows, locale="en_US")
    _renders(fig)
    grid = _ax(fig).images[0].get_array()
    assert grid.shape == (len(rows), max(len(c.cells) for c in rows))
    assert grid[0, 0] == float(rows[0].cells[0].customer_rate)
    assert bool(grid.mask[-1, 1])  # no cell beyond the newest cohort's first period
    ticks = [t.get_text() for t in _ax(fig).get_yticklabels()]
    assert ticks[0] == f"{rows[0].start:%b %Y} ({rows[0].size})"


def test_churn_over_time() -> None:
    points = _r("churn_series")
    fig = churn_chart(points, locale="en_US")
    _renders(fig)
    lines: Any = _ax(fig).lines[:3]
    want = [
        None if p.customer_churn.rate is None else float(p.customer_churn.rate * 100)
        for p in points
    ]
    got = [None if v != v else v for v in lines[0].get_ydata()]
    assert got == want
    assert len({line.get_marker() for line in lines}) == 3
    assert len({line.get_linestyle() for line in lines}) == 3


@pytest.mark.parametrize(
    ("chart", "name"),
    [
        (revenue_by_product_chart, "cash_by_product"),
        (revenue_by_product_chart, "mrr_by_product"),
        (revenue_by_billing_cycle_chart, "cash_by_cycle"),
        (revenue_by_payment_method_chart, "cash_by_method"),
    ],
)
def test_breakdowns(chart: Any, name: str) -> None:
    b = _r(name)
    fig = chart(b, locale="en_US")
    _renders(fig)
    ax = _ax(fig)
    assert [p.get_width() for p in ax.patches] == [_amount(r.amount) for r in b.rows]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r.label for r in b.rows]


def test_wrong_breakdown_or_locale_is_refused() -> None:
    with pytest.raises(ValidationError):
        revenue_by_payment_method_chart(_r("cash_by_product"), locale="en_US")
    with pytest.raises(ValidationError):
        waterfall_chart(_r("waterfall"), locale="xx_NOWHERE")
