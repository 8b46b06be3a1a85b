"""Credit lines and prorations in the invoice source, worked by hand.

A partial service period is a share of the billing cycle that holds it (counted back from
the line's end: a proration runs to the end of the current cycle), so a proration pair is
the run-rate change at the switch. Stripe's example: $10/month switched to $20 halfway
through the month gives MRR $20 from the switch and an expansion of $10 (365/12-day months
gave 20.14, then -0.14 at the cycle's end).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from revcrm import (
    BillingCycle,
    Book,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Subscription,
)
from revcrm._ledger._columns import DAY_CYCLE, UNKNOWN_CYCLE, LineColumns, micros
from revcrm._ledger._steps import line_values
from revcrm._money import EXACT_CONTEXT, divide
from revcrm.errors import ValidationError
from revcrm.metrics import MovementKind, analyse
from tests._builders import customer


def _t(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def _usd(x: str) -> Money:
    return Money(x, "USD")


def _line(amount: str, start: datetime, end: datetime, sub: str | None = "sub") -> InvoiceLine:
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=_usd(amount),
        period_start=start,
        period_end=end,
        subscription_id=sub,
    )


def _invoice(iid: str, at: datetime, *lines: InvoiceLine) -> Invoice:
    return Invoice(
        id=iid,
        customer_id="c",
        currency="USD",
        issued_at=at,
        due_date=at.date(),
        status=InvoiceStatus.PAID,
        lines=lines,
        paid_at=at,
    )


def _switch_book(sub: str | None) -> Book:
    # $10 for April (30 days), switched to $20 on 16 Apr: -5.00 unused time and +10.00
    # remaining time over [16 Apr, 1 May), then $20 for May.
    subs = []
    if sub is not None:
        s = Subscription.start(
            id=sub, customer_id="c", at=_t(2024, 4, 1), price=_usd("10"),
            cycle=BillingCycle.MONTHLY,
        ).change_plan(at=_t(2024, 4, 16), price=_usd("20"))  # fmt: skip
        subs.append(s)
    return Book.of(
        customers=[customer("c")],
        subscriptions=subs,
        invoices=[
            _invoice("in_1", _t(2024, 4, 1), _line("10", _t(2024, 4, 1), _t(2024, 5, 1), sub)),
            _invoice(
                "in_2",
                _t(2024, 4, 16),
                _line("-5", _t(2024, 4, 16), _t(2024, 5, 1), sub),
                _line("10", _t(2024, 4, 16), _t(2024, 5, 1), sub),
            ),
            _invoice("in_3", _t(2024, 5, 1), _line("20", _t(2024, 5, 1), _t(2024, 6, 1), sub)),
        ],
    )


@pytest.mark.parametrize("sub", ["sub", None])
def test_stripes_switch_halfway_is_an_expansion_of_ten(sub: str | None) -> None:
    # Half of the monthly cycle [1 Apr, 1 May): -5 -> -10 a month, +10 -> +20 a month.
    # 10 - 10 + 20 = 20 from 16 Apr; 20 again from 1 May: no movement then. Without a
    # subscription the cycle is not known: one month, the same figures.
    a = analyse(_switch_book(sub), currency="USD", source="invoices")
    assert a.mrr(_t(2024, 4, 15)) == _usd("10")
    assert a.mrr(_t(2024, 4, 16)) == _usd("20")
    assert a.mrr(_t(2024, 5, 20)) == _usd("20")
    moves = [(m.at.date(), m.kind, m.amount) for m in a.movements(_t(2024, 4, 1), _t(2024, 7, 1))]
    assert moves == [
        (date(2024, 4, 1), MovementKind.NEW, _usd("10")),
        (date(2024, 4, 16), MovementKind.EXPANSION, _usd("10")),
        (date(2024, 6, 1), MovementKind.CHURN, _usd("-20")),
    ]


def _columns(*lines: tuple[datetime, datetime, str, int]) -> LineColumns:
    n = len(lines)
    return LineColumns.from_arrays(
        customer_ids=["c"],
        stream_ids=["s"],
        currencies=["USD"],
        customer=[0] * n,
        stream=[0] * n,
        currency=[0] * n,
        start=[micros(a) for a, _, _, _ in lines],
        end=[micros(b) for _, b, _, _ in lines],
        net=[int(Decimal(x).scaleb(2)) for _, _, x, _ in lines],
        scale=2,
        cycle=[c for _, _, _, c in lines],
    )


def _monthly(columns: LineColumns) -> list[Decimal]:
    values, digits = line_values(columns)
    return [Decimal(int(v)).scaleb(-digits, EXACT_CONTEXT) for v in values.tolist()]


def test_a_partial_period_is_a_share_of_its_cycle() -> None:
    assert _monthly(
        _columns(
            # Half of a monthly cycle carrying $10: $20 a month.
            (_t(2024, 4, 16), _t(2024, 5, 1), "10", 1),
            # Half of the annual cycle [1 Jan 2024, 1 Jan 2025) (183 of 366 days) carrying
            # $600: $100 a month (365/12-day months gave 99.73).
            (_t(2024, 7, 2), _t(2025, 1, 1), "600", 12),
            # 15 Feb - 1 Apr: 46 of the 91 days of the quarter [1 Jan, 1 Apr) carrying $46:
            # 3 * 46 / 91 months, $91 / 3 a month.
            (_t(2024, 2, 15), _t(2024, 4, 1), "46", 3),
            # Two whole months back from 16 Mar, then 1-16 Jan: 15 of the 31 days of
            # [16 Dec, 16 Jan): $25 over 2 + 15/31 months = 25 * 31 / 77.
            (_t(2024, 1, 1), _t(2024, 3, 16), "25", 1),
            # Whole months stay whole months, whatever the cycle: 3 months of $300.
            (_t(2024, 1, 31), _t(2024, 4, 30), "300", 12),
        )
    ) == [
        Decimal("20"),
        Decimal("100"),
        divide(Decimal(91), Decimal(3)),
        divide(Decimal(775), Decimal(77)),
        Decimal("100"),
    ]


def test_an_unknown_cycle_is_a_month_and_day_cycles_keep_365_12_days() -> None:
    # [16 Apr, 1 May) of an unknown cycle: the month [1 Apr, 1 May) holds it: $20.
    # A 7-day line of a weekly cycle: 7 days at 365/12 days a month (the normalisation of
    # weekly and daily prices): $7 -> $7 * 365 / 84.
    assert _monthly(
        _columns(
            (_t(2024, 4, 16), _t(2024, 5, 1), "10", UNKNOWN_CYCLE),
            (_t(2024, 4, 1), _t(2024, 4, 8), "7", DAY_CYCLE),
        )
    ) == [Decimal("20"), divide(Decimal(2555), Decimal(84))]


def test_columns_take_the_cycle_of_the_lines_subscription() -> None:
    weekly = Subscription.start(
        id="w", customer_id="c", at=_t(2024, 1, 1), price=_usd("7"), cycle=BillingCycle.weeks(1)
    )
    annual = Subscription.start(
        id="a", customer_id="c", at=_t(2024, 1, 1), price=_usd("1200"), cycle=BillingCycle.ANNUAL
    )
    book = Book.of(
        customers=[customer("c")],
        subscriptions=[weekly, annual],
        invoices=[
            _invoice(
                "in_1",
                _t(2024, 1, 1),
                _line("7", _t(2024, 1, 1), _t(2024, 1, 8), "w"),
                _line("1200", _t(2024, 1, 1), _t(2025, 1, 1), "a"),
                _line("5", _t(2024, 1, 1), _t(2024, 1, 20), None),
            )
        ],
    )
    assert LineColumns.from_book(book).cycles.tolist() == [DAY_CYCLE, 12, UNKNOWN_CYCLE]
    with pytest.raises(ValidationError) as e:
        _columns((_t(2024, 1, 1), _t(2024, 2, 1), "1", -2))
    assert e.value.field == "cycle[0]"
    assert LineColumns.from_book(book).cycle is not None
    assert np.array_equal(LineColumns.from_book(Book()).cycles, np.zeros(0, dtype=np.int32))


def test_credit_lines_and_their_checks() -> None:
    credit = InvoiceLine(
        kind=LineKind.RECURRING,
        amount=_usd("-5"),
        discount=_usd("-1"),
        tax=_usd("-0.80"),
        period_start=_t(2024, 4, 16),
        period_end=_t(2024, 5, 1),
    )
    assert (credit.net, credit.total) == (_usd("-4"), _usd("-4.80"))
    assert InvoiceLine(kind=LineKind.ONE_OFF, amount=_usd("-3")).net == _usd("-3")
    bad = [
        ("discount", {"discount": _usd("1")}),
        ("tax", {"tax": _usd("0.80")}),
        ("discount", {"discount": _usd("-6")}),
    ]
    for field, kw in bad:
        with pytest.raises(ValidationError) as e:
            InvoiceLine(kind=LineKind.ONE_OFF, amount=_usd("-5"), **kw)  # type: ignore[arg-type]
        assert e.value.field == field
    charge = InvoiceLine(kind=LineKind.ONE_OFF, amount=_usd("4"))
    refund = InvoiceLine(kind=LineKind.ONE_OFF, amount=_usd("-5"))
    # An invoice's total is never negative: a credit beyond the charges is the customer's
    # credit balance (a CreditEntry), as Stripe books a negative total.
    with pytest.raises(ValidationError) as e:
        _invoice("in_x", _t(2024, 1, 1), charge, refund)
    assert e.value.field == "lines"
    balance = InvoiceLine(kind=LineKind.ONE_OFF, amount=_usd("1"))
    assert _invoice("in_x", _t(2024, 1, 1), charge, refund, balance).total == _usd("0")
