"""Day spreading (``MetricsPolicy(spreading="days")``): saas-metrics' ratable rule.

saas-metrics 0.2.1 (``saas_metrics.inputs.spread``) spreads a line with service dates over
the calendar months it touches by days, in whole cents: each month the floor of its exact
share, the cents left over to the largest remainders (the earlier month on a tie), so a
line's months sum to its amount. An undated line counts in its invoice's month. A month's
revenue per customer (credits netted) is that month's MRR. revcrm under day spreading, on
the same lines (an undated line given its invoice's calendar month), gives every
customer's month-close MRR, and the total, to the cent, as saas-metrics does.
"""

from __future__ import annotations

import calendar
import importlib
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from revcrm import Book, Money
from revcrm._ledger._columns import LineColumns, micros
from revcrm._ledger._steps import day_spread, steps_from_lines
from revcrm.io import from_frame
from revcrm.metrics import MetricsPolicy, MovementKind, Spreading, analyse

DAYS = MetricsPolicy(spreading=Spreading.DAYS)
_US = timedelta(microseconds=1)


def _saas_metrics() -> Any:
    """saas-metrics (untyped: imported by name), or a skip (a failure in CI)."""
    try:
        peer = importlib.import_module("saas_metrics")
        importlib.import_module("saas_metrics.sample")
    except ImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"saas-metrics 0.2.1 is required in CI (scripts/test.sh installs it): {e}")
        pytest.skip("saas-metrics agreement skipped: saas-metrics 0.2.1 is not installed")
    return peer


def _month_after(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def _revcrm_frame(frame: Any) -> Any:
    """saas-metrics' billing export with the columns revcrm reads: an invoice per customer
    and day (split lines and credit notes share it), ``usd``, ``paid``, and each line's
    service period, its own (inclusive end dates) or, undated, its invoice's month (credit
    notes too: a negative recurring line, netted in the month as saas-metrics nets it)."""
    day = [date.fromisoformat(d) for d in frame["Invoice Date"]]
    dated = frame["Service Start"].fillna("") != ""
    first = [d.replace(day=1).isoformat() for d in day]
    last = [(_month_after(d) - timedelta(days=1)).isoformat() for d in day]
    return frame.assign(
        invoice=frame["Customer"] + "/" + frame["Invoice Date"],
        currency="usd",
        status="paid",
        period_start=frame["Service Start"].where(dated, first),
        period_end=frame["Service End"].where(dated, last),
    )


_COLUMNS = {
    "invoice_id": "invoice",
    "customer_id": "Customer",
    "amount": "Amount",
    "issued_at": "Invoice Date",
}


def _book(frame: Any) -> Book:
    return from_frame(
        _revcrm_frame(frame),
        kind="invoice_lines",
        columns=_COLUMNS,
        timezone="UTC",
        period_end_inclusive=True,
    ).book


def _agree(frame: Any) -> int:
    """Assert revcrm equals saas-metrics per customer and month; the months compared."""
    sm = _saas_metrics()
    import pandas as pd

    report = sm.analyze(frame, mapping=sm.sample.MAPPING, today=date(2100, 1, 1))
    assert report.ok, [c.detail for c in report.blocking]
    theirs = report.customers.set_index("customer_id")
    a = analyse(_book(frame), currency="USD", policy=DAYS, source="invoices")
    totals = {
        pd.Timestamp(d).date(): v
        for d, v in zip(report.waterfall["period_end"], report.waterfall["ending"], strict=True)
    }
    for month_end in theirs.columns:
        close = datetime.combine(month_end + timedelta(days=1), datetime.min.time(), UTC)
        mine = {k: v.amount for k, v in a.customers_with_mrr(close - _US).items()}
        # The peer's figures are DECIMAL(18, 2) read back as floats: their shortest text.
        want = {
            cid: Decimal(repr(float(v))).quantize(Decimal("0.01"))
            for cid, v in theirs[month_end].items()
            if v != 0
        }
        assert mine == want, month_end
        total = totals[month_end]
        assert a.mrr_before(close).amount == Decimal(repr(float(total))).quantize(Decimal("0.01"))
    return len(theirs.columns)


_PEER_WARNING = pytest.mark.filterwarnings("ignore:Inferring datetime64:Warning")  # its pandas use


@_PEER_WARNING
def test_agrees_with_saas_metrics_on_its_sample() -> None:
    # 14 months: 2,310 lines, 80 annual lines (one renewed), split invoices, credit
    # notes, churn and returns; a leap February.
    frame = _saas_metrics().sample.generate(months=14)
    assert len(frame) == 2310
    assert _agree(frame) == 14


@_PEER_WARNING
def test_agrees_with_saas_metrics_on_edge_lines() -> None:
    # The cases its rule turns on: annual lines from mid-month over a leap February, a
    # quarter line over 90 days whose cents need the tie rule, a one-day line, a credit
    # line spread by days, monthly lines with a credit note and a split line.
    import pandas as pd

    rows = [
        ("c1", "2024-01-15", "1200.00", "2024-01-15", "2025-01-14"),
        ("c2", "2024-02-10", "100.00", "2024-02-10", "2024-05-09"),
        ("c3", "2024-03-31", "0.07", "2024-03-31", "2024-03-31"),
        ("c4", "2024-01-01", "999.99", "2024-01-01", "2024-12-31"),
        ("c4", "2024-06-01", "-100.01", "2024-06-01", "2024-12-31"),
        ("c5", "2024-01-05", "50.00", "", ""),
        ("c5", "2024-01-05", "-5.00", "", ""),
        ("c5", "2024-02-07", "30.00", "", ""),
        ("c5", "2024-02-07", "15.55", "", ""),
        ("c5", "2024-03-03", "45.55", "", ""),
        ("c6", "2024-01-01", "0.10", "2024-01-01", "2024-03-31"),
        ("c7", "2025-01-31", "10.00", "", ""),
    ]
    frame = pd.DataFrame(
        [(*r, "SMB", "Direct") for r in rows],
        columns=[
            "Customer", "Invoice Date", "Amount", "Service Start", "Service End",
            "Plan Tier", "Channel",
        ],
    )  # fmt: skip
    assert _agree(frame) == 13  # January 2024 to January 2025


# -- worked examples (no peer needed) -------------------------------------------------------


def _columns(*lines: tuple[datetime, datetime, str]) -> LineColumns:
    n = len(lines)
    return LineColumns.from_arrays(
        customer_ids=["c"],
        stream_ids=["s"],
        currencies=["USD"],
        customer=[0] * n,
        stream=[0] * n,
        currency=[0] * n,
        start=[micros(a) for a, _, _ in lines],
        end=[micros(b) for _, b, _ in lines],
        net=[int(Decimal(x).scaleb(2)) for _, _, x in lines],
        scale=2,
    )


def _utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def _month_values(columns: LineColumns) -> list[tuple[date, Decimal]]:
    _line, start, _end, value, digits = day_spread(columns)
    return [
        ((datetime(1970, 1, 1) + timedelta(microseconds=int(s))).date(), Decimal(int(v)).scaleb(-digits))
        for s, v in zip(start.tolist(), value.tolist(), strict=True)
    ]  # fmt: skip


def test_an_annual_line_by_days_in_whole_cents() -> None:
    # 1,200.00 over 2024 (366 days): January 31/366 = 101.639..., February 29/366 =
    # 95.081..., 30-day months 98.360..., each the floor in cents plus the leftover cents
    # to the largest remainders; the twelve sum to 1,200.00.
    values = _month_values(_columns((_utc(2024, 1, 1), _utc(2025, 1, 1), "1200")))
    assert [v for _, v in values] == [Decimal(x) for x in (
        "101.64", "95.08", "101.64", "98.36", "101.64", "98.36",
        "101.64", "101.64", "98.36", "101.64", "98.36", "101.64",
    )]  # fmt: skip
    assert sum(v for _, v in values) == Decimal("1200")
    assert [d for d, _ in values] == [date(2024, m, 1) for m in range(1, 13)]


def test_an_unchanged_annual_contract_moves_each_month() -> None:
    # The peers' day spreading: a February contraction and a March expansion of the same
    # contract; the billing-cycle default keeps it at 100.00 all year.
    book_cols = _columns((_utc(2024, 1, 1), _utc(2025, 1, 1), "1200"))
    steps = steps_from_lines(book_cols, [], spreading="days")
    assert steps.digits == 9
    values = [Decimal(int(v)).scaleb(-steps.digits) for v in steps.value.tolist()]
    assert values[:3] == [Decimal("101.64"), Decimal("95.08"), Decimal("101.64")]
    flat = steps_from_lines(book_cols, [])
    assert [Decimal(int(v)).scaleb(-flat.digits) for v in flat.value.tolist()] == [
        Decimal("100"),
        Decimal("0"),
    ]


def test_a_mid_month_line_counts_from_its_start_to_its_last_months_end() -> None:
    # 31.00 over 15 Jan - 15 Feb (31 days): January 17 days = 17.00 from 15 Jan, February
    # 14 days = 14.00 from 1 Feb to 1 Mar (the month's figure holds at its close).
    steps = steps_from_lines(
        _columns((_utc(2024, 1, 15), _utc(2024, 2, 15), "31")), [], spreading="days"
    )
    got = [
        (int(t), Decimal(int(v)).scaleb(-steps.digits))
        for t, v in zip(steps.at, steps.value, strict=True)
    ]
    assert got == [
        (micros(_utc(2024, 1, 15)), Decimal("17")),
        (micros(_utc(2024, 2, 1)), Decimal("14")),
        (micros(_utc(2024, 3, 1)), Decimal("0")),
    ]  # fmt: skip


def test_a_credit_splits_as_its_magnitude() -> None:
    pos = _month_values(_columns((_utc(2024, 1, 1), _utc(2024, 4, 1), "0.10")))
    neg = _month_values(_columns((_utc(2024, 1, 1), _utc(2024, 4, 1), "-0.10")))
    # 10 cents over 31, 29 and 31 of 91 days: 3.40.., 3.18.., 3.40.. -> 3, 3, 3 and the
    # leftover cent to the largest remainder, January's (the earlier of the tie).
    assert [v for _, v in pos] == [Decimal("0.04"), Decimal("0.03"), Decimal("0.03")]
    assert [v for _, v in neg] == [-v for _, v in pos]


def test_the_engine_reads_the_policy() -> None:
    book_cols = _columns((_utc(2024, 1, 1), _utc(2025, 1, 1), "1200"))
    from revcrm.metrics import analyse_lines

    a = analyse_lines(book_cols, currency="USD", policy=DAYS)
    assert a.mrr(date(2024, 2, 10)) == Money("95.08", "USD")
    moves = [(m.at.date(), m.kind) for m in a.movements(date(2024, 1, 1), date(2024, 4, 1))]
    assert moves == [
        (date(2024, 1, 1), MovementKind.NEW),
        (date(2024, 2, 1), MovementKind.CONTRACTION),
        (date(2024, 3, 1), MovementKind.EXPANSION),
    ]
    flat = analyse_lines(book_cols, currency="USD")
    assert flat.mrr(date(2024, 2, 10)) == Money("100", "USD")
    assert calendar.isleap(2024)


def test_day_spreading_follows_the_reporting_time_zone() -> None:
    # A Berlin business's annual line from Berlin's 1 January to its next 1 January: the
    # months and days are Berlin's (March has 31 calendar days, one of 23 hours), so the
    # shares are the UTC-calendar ones of the same dates, and each month's step comes at
    # Berlin's midnight (23:00 UTC in winter, 22:00 UTC in summer).
    berlin = ZoneInfo("Europe/Berlin")

    def local(y: int, m: int, d: int) -> datetime:
        return datetime(y, m, d, tzinfo=berlin)

    utc_steps = steps_from_lines(
        _columns((_utc(2024, 1, 1), _utc(2025, 1, 1), "1200")), [], spreading="days"
    )
    zoned = steps_from_lines(
        _columns((local(2024, 1, 1), local(2025, 1, 1), "1200")),
        [],
        spreading="days",
        zone=berlin,
    )
    assert zoned.value.tolist() == utc_steps.value.tolist()
    # Each step at the same wall-clock time as the UTC calendar's, in Berlin.
    epoch = datetime(1970, 1, 1)
    walls = [epoch + timedelta(microseconds=t) for t in utc_steps.at.tolist()]
    assert zoned.at.tolist() == [micros(w.replace(tzinfo=berlin)) for w in walls]
    assert len(walls) >= 10
    assert walls[-1] == datetime(2025, 1, 1)
    assert micros(local(2024, 4, 1)) == micros(_utc(2024, 3, 31)) + 22 * 3600 * 1_000_000
    # The same lines read in UTC put March's step an hour or two late for Berlin.
    unzoned = steps_from_lines(
        _columns((local(2024, 1, 1), local(2025, 1, 1), "1200")), [], spreading="days"
    )
    assert unzoned.at.tolist() != zoned.at.tolist()
