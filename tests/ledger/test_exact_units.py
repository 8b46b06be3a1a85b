"""The ledger's integer units: overflow switches to Python ints, amounts are never rounded."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from revcrm import Book, Customer, Invoice, InvoiceLine, InvoiceStatus, LineKind, Money
from revcrm._ledger._columns import LineColumns, micros
from revcrm._ledger._fixed import LIMIT, convert, group_sums, muldiv, norm, prefix_sums, summable
from revcrm.metrics import Frequency, MrrSource, analyse
from revcrm.metrics._engine import analyse_lines
from tests.ledger import _oracle_engine as oracle

JAN, FEB, MAR = (datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3))


def _lines(nets: list[int], *, scale: int = 2, end: datetime = FEB) -> LineColumns:
    n = len(nets)
    return LineColumns.from_arrays(
        customer_ids=[f"c{i}" for i in range(n)],
        stream_ids=[f"s{i}" for i in range(n)],
        currencies=["USD"],
        customer=np.arange(n),
        stream=np.arange(n),
        currency=np.zeros(n, dtype=np.int16),
        start=np.full(n, micros(JAN)),
        end=np.full(n, micros(end)),
        net=np.array(nets, dtype=np.int64),
        scale=scale,
    )


def test_sums_beyond_int64_are_exact() -> None:
    big = 2**62
    a = np.array([big - 1, big - 1, big - 1], dtype=np.int64)
    s = summable(a)
    assert s.dtype == object  # int64 would wrap
    assert int(np.cumsum(s)[-1]) == 3 * (big - 1)
    assert norm(np.array([LIMIT], dtype=object)).dtype == object
    assert norm(np.array([5], dtype=object)).dtype == np.int64
    # Long arrays: a probe finds most big values at once, a full scan the others.
    many = np.array([1] * 10_000, dtype=object)
    assert norm(many).dtype == np.int64
    many[7] = LIMIT  # between two probed elements
    assert norm(many).dtype == object
    many[7], many[0] = 1, -LIMIT
    assert norm(many).dtype == object


def test_summable_bounds_sums_by_the_magnitudes_exactly() -> None:
    # One large element among many small ones: the largest times the count is beyond
    # LIMIT, the sum of the magnitudes is not, so int64 stays (every sum is exact in it).
    a = np.ones(1_000, dtype=np.int64)
    a[0] = LIMIT // 4
    a[1] = -(LIMIT // 4)
    assert summable(a).dtype == np.int64
    assert int(np.cumsum(summable(a))[-1]) == 1_000 - 2
    # Magnitudes summing to LIMIT exactly (each split over the 31-bit halves): Python ints.
    b = np.full(4, LIMIT // 4, dtype=np.int64)
    b[1] = -b[1]
    assert summable(b).dtype == object
    b[3] -= 1
    assert summable(b).dtype == np.int64


def test_prefix_and_group_sums_stay_int64_while_the_running_totals_fit() -> None:
    # Magnitudes summing far beyond LIMIT, running totals small: int64, and exact.
    step = LIMIT // 2 - 1
    a = np.array([step, -step] * 1_000 + [7], dtype=np.int64)
    sums = prefix_sums(a)
    assert sums.dtype == np.int64
    assert sums.tolist() == [int(x) for x in np.cumsum(a.astype(object))]
    starts = np.array([0, 3, 1_000], dtype=np.int64)
    groups = group_sums(a, starts)
    assert groups.dtype == np.int64
    assert groups.tolist() == [int(x) for x in np.add.reduceat(a.astype(object), starts)]
    # A running total beyond LIMIT (each element below it): Python ints, exact.
    b = np.array([step, step, step, -step], dtype=np.int64)
    assert prefix_sums(b).dtype == object
    assert prefix_sums(b).tolist() == [step, 2 * step, 3 * step, 2 * step]
    assert group_sums(b, np.array([0, 3])).tolist() == [3 * step, -step]
    # A total of exactly -LIMIT is out of range too (arrays hold magnitudes below it).
    c = np.array([-(LIMIT // 2), -(LIMIT // 2)], dtype=np.int64)
    assert prefix_sums(c).dtype == object
    # Elements beyond LIMIT themselves (not normalised): Python ints.
    d = np.array([2**63 - 1, 2**63 - 1, -(2**63 - 1)], dtype=np.int64)
    assert prefix_sums(d).tolist() == [2**63 - 1, 2**64 - 2, 2**63 - 1]
    assert group_sums(d, np.array([0])).tolist() == [2**63 - 1]


def test_convert_rounds_half_to_even_in_int64_and_python_ints_alike() -> None:
    rates = [Decimal("1.5"), Decimal("0.25"), Decimal("1.08765"), Decimal("3")]
    small = np.array([5, -5, 2, -6, 7, 123_456_789_012, -3, 1], dtype=np.int64)
    # Near LIMIT / rate: the products overflow an int64, the quotient-first path does not.
    large = np.array([10**18 + 12_345, -(10**18) - 7, 2 * 10**18 + 1, -5], dtype=np.int64)
    assert convert(large, [Decimal("1.08765")] * 4).dtype == np.int64
    for units in (small, large, small.astype(object) * 10**20):
        rs = [rates[i % len(rates)] for i in range(units.size)]
        want = [
            int((Decimal(int(u)) * r).to_integral_value(rounding=ROUND_HALF_EVEN))
            for u, r in zip(units.tolist(), rs, strict=True)
        ]
        got = convert(units, rs)
        assert [int(x) for x in got.tolist()] == want
    # 5 * 1.5 = 7.5 -> 8, -5 * 1.5 = -7.5 -> -8, 2 * 0.25 = 0.5 -> 0, -6 * 0.25 -> -2 (ties
    # to even), and the small ones stayed int64.
    assert convert(small, [rates[i % 4] for i in range(small.size)]).dtype == np.int64
    assert convert(small[:4], [Decimal("1.5")] * 2 + [Decimal("0.25")] * 2).tolist() == [
        8, -8, 0, -2,
    ]  # fmt: skip


def test_muldiv_rounds_half_to_even_and_never_wraps() -> None:
    x = np.array([5, 15, -5, 2**61], dtype=np.int64)
    out = muldiv(x, np.array([1, 1, 1, 10**6]), np.array([10, 10, 10, 1]))
    assert [int(v) for v in out] == [0, 2, 0, 2**61 * 10**6]


def test_huge_amounts_stay_exact() -> None:
    # Three lines of ~9.2e16 USD each: the units (1e-9) overflow int64 many times over.
    nets = [2**63 - 1, 2**63 - 1, 2**63 - 3]
    a = analyse_lines(_lines(nets), currency="USD")
    want = sum(Decimal(n).scaleb(-2) for n in nets)
    assert a.mrr(JAN) == Money(want, "USD")
    (w,) = a.waterfalls(JAN, FEB, Frequency.MONTH)
    assert w.new == Money(want, "USD")
    assert w.start_mrr + w.net_movements + w.fx_impact == w.end_mrr


def test_a_quotient_that_does_not_terminate_is_not_rounded_twice() -> None:
    # 100.00 over a quarter: 33.333... under revcrm's division rule, exactly.
    a = analyse_lines(_lines([10000]), currency="USD", horizon=MAR)
    b = analyse_lines(_lines([10000], end=datetime(2024, 4, 1, tzinfo=UTC)), currency="USD")
    assert a.mrr(JAN) == Money("100", "USD")
    assert b.mrr(JAN) == Money("100", "USD") / 3


def _invoice_book(amount: str) -> Book:
    line = InvoiceLine(
        kind=LineKind.RECURRING,
        amount=Money(amount, "USD"),
        period_start=JAN,
        period_end=datetime(2024, 4, 1, tzinfo=UTC),
    )
    inv = Invoice(
        id="i1",
        customer_id="c1",
        currency="USD",
        issued_at=JAN,
        due_date=date(2024, 1, 8),
        status=InvoiceStatus.PAID,
        lines=[line],
    )
    return Book.of(customers=[Customer(id="c1", registered_at=JAN)], invoices=[inv])


def test_a_book_line_beyond_int64_takes_the_exact_path() -> None:
    # 10**25 USD (or 25 decimal places) cannot be int64 columns: the engine still agrees
    # with the Decimal oracle exactly.
    for amount in ("10000000000000000000000000.01", "0.0000000000000000000000001"):
        book = _invoice_book(amount)
        new = analyse(book, currency="USD", source=MrrSource.INVOICES)
        old = oracle.analyse(book, currency="USD", source=MrrSource.INVOICES)
        assert new.mrr(FEB) == old.mrr(FEB) == Money(amount, "USD") / 3
        assert new.waterfall(JAN, MAR).new == old.waterfall(JAN, MAR).new
