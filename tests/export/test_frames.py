"""revcrm.export.to_frame: shapes, dtypes and values against the result objects."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from revcrm import Money
from revcrm.errors import ValidationError
from revcrm.export import minor_units, to_frame
from revcrm.leads import LeadStage
from revcrm.segments import Segment
from tests.export._catalogue import catalogue


def _r(name: str) -> object:
    return catalogue().results[name]


def test_minor_units_round_once() -> None:
    assert minor_units(Money("10.005", "USD")) == 1000  # half to even
    assert minor_units(Money("10.015", "USD")) == 1002
    assert minor_units(Money("1234.5", "JPY")) == 1234
    assert minor_units(Money("-1.2345", "KWD")) == -1234


def test_mrr_series() -> None:
    points = _r("series")
    assert isinstance(points, list)
    f = to_frame(points)
    assert list(f.columns) == ["start", "end", "mrr_minor", "currency"]
    assert str(f["start"].dtype) == "datetime64[us, UTC]"
    assert f["mrr_minor"].dtype == "Int64"
    assert f["mrr_minor"].tolist() == [minor_units(p.mrr) for p in points]
    assert [t.to_pydatetime() for t in f["end"]] == [p.end for p in points]
    assert set(f["currency"]) == {"USD"}


def test_waterfalls_and_movements() -> None:
    falls = _r("waterfalls")
    assert isinstance(falls, list)
    f = to_frame(falls)
    assert len(f) == len(falls)
    for col in ("new", "expansion", "reactivation", "contraction", "churn", "fx_impact"):
        assert f[f"{col}_minor"].tolist() == [minor_units(getattr(w, col)) for w in falls]
    moves = _r("movements")
    assert isinstance(moves, list)
    g = to_frame(moves)
    assert g["kind"].tolist() == [m.kind.value for m in moves]
    assert g["amount_minor"].sum() == sum(minor_units(m.amount) for m in moves)
    assert g["subscription_ids"].tolist() == [", ".join(m.subscription_ids) for m in moves]


def test_churn_series_rates_are_float_not_object() -> None:
    points = _r("churn_series")
    assert isinstance(points, list)
    f = to_frame(points)
    assert "customer_churn_start" not in f.columns  # the point's own period only
    assert f["customer_churn_rate"].dtype == "Float64"
    assert f["mrr_churn_gross"].dtype == "Float64"
    assert not any(f[c].dtype == object for c in f.columns)
    expected = [
        None if p.customer_churn.rate is None else float(p.customer_churn.rate) for p in points
    ]
    got = [None if pd.isna(v) else v for v in f["customer_churn_rate"]]
    assert got == expected


def test_cohort_triangle() -> None:
    rows = _r("cohorts")
    assert isinstance(rows, list)
    f = to_frame(rows)
    assert f.shape == (len(rows), max(len(c.cells) for c in rows))
    assert f.index.name == "cohort"
    assert f.columns.name == "age"
    assert [t.to_pydatetime() for t in f.index] == [c.start for c in rows]
    last = rows[-1]
    assert f.iloc[-1, 1:].isna().all()  # the newest cohort has one period
    for c, (_, line) in zip(rows, f.iterrows(), strict=True):
        for cell in c.cells:
            want = None if cell.customer_rate is None else float(cell.customer_rate)
            got = line[cell.age]
            assert (pd.isna(got) and want is None) or got == want
    counts = to_frame(rows, value="customers")
    assert counts.dtypes.unique().tolist() == ["Int64"]
    assert counts.iloc[-1, 0] == last.cells[0].customers
    mrr = to_frame(rows, value="mrr")
    assert mrr.iloc[0, 0] == minor_units(rows[0].cells[0].mrr)
    with pytest.raises(ValidationError):
        to_frame(rows, value="size")


def test_customer_pages() -> None:
    page = _r("customer_page")
    f = to_frame(page)
    items = page.items  # type: ignore[attr-defined]
    assert len(f) == len(items)
    assert f["customer_id"].tolist() == [r.row.customer.id for r in items]
    assert f["mrr_minor"].tolist() == [minor_units(r.row.mrr) for r in items]
    assert f["segments"].tolist() == [", ".join(sorted(s.value for s in r.segments)) for r in items]
    assert f.attrs["as_of"] == page.as_of  # type: ignore[attr-defined]
    store = to_frame(_r("store_page"))
    assert store["active_services"].dtype == "Int64"


@pytest.mark.parametrize(
    "name", ["mrr_by_product", "mrr_by_cycle", "cash_by_product", "cash_by_cycle", "cash_by_method"]
)
def test_breakdowns(name: str) -> None:
    b = _r(name)
    f = to_frame(b)
    rows = b.rows  # type: ignore[attr-defined]
    assert f["key"].tolist() == [r.key for r in rows]
    assert f["amount_minor"].tolist() == [minor_units(r.amount) for r in rows]
    assert f["share"].dtype == "Float64"
    assert f.attrs["dimension"] == b.dimension  # type: ignore[attr-defined]


def test_funnel_and_segment_counts() -> None:
    fun = _r("funnel")
    f = to_frame(fun)
    assert f["stage"].tolist() == [s.value for s in LeadStage]
    assert f["leads"].tolist() == [fun.counts[s] for s in LeadStage]  # type: ignore[attr-defined]
    counts = _r("segment_counts")
    g = to_frame(counts).set_index("segment")
    for s in Segment:
        assert g.loc[s.value, "members"] == counts.members.get(s, 0)  # type: ignore[attr-defined]
        assert g.loc[s.value, "primary"] == counts.primary.get(s, 0)  # type: ignore[attr-defined]
    assert g["primary"].sum() == counts.customers  # type: ignore[attr-defined]


def test_dashboard_trend_and_single_results() -> None:
    d = _r("dashboard")
    f = to_frame(d)
    assert f["cash_net_minor"].tolist() == [minor_units(m.cash.net) for m in d.trend]  # type: ignore[attr-defined]
    one = to_frame(_r("retention"))
    assert len(one) == 1
    assert one["net"].dtype == "Float64"


def test_mixed_or_unknown_input_is_refused() -> None:
    with pytest.raises(ValidationError):
        to_frame([_r("waterfall"), _r("mrr_churn")])
    with pytest.raises(ValidationError):
        to_frame(Decimal(1))
