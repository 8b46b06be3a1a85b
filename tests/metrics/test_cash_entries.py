"""Cash figures are aggregations of the ledger's cash entries (issue 13): the dashboard's
cash by period, the cash breakdowns and the memory store's cash by month equal, to the
last digit, a plain Decimal oracle over the transactions kept here (each successful
payment and refund converted at its own UTC date, a linked one split over its invoice's
lines in proportion to their totals, the last line taking the remainder).
"""

from __future__ import annotations

import decimal
import itertools
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book, Money
from revcrm._calendar import Frequency, period_bounds
from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm._ledger._cash import cash_columns
from revcrm._money import EXACT_CONTEXT
from revcrm._records import Invoice, InvoiceLine, TransactionKind
from revcrm.metrics import cash_by_period, customer_value, customer_values
from revcrm.metrics._revenue import (
    _line_cycle,
    _line_product,
    _plan_products,
    cash_revenue_by_billing_cycle,
    cash_revenue_by_payment_method,
    cash_revenue_by_product,
)
from revcrm.storage import InMemoryStore
from revcrm.testing import strategies as rs

_Oracle = dict[str | None, Decimal]


def _edges(start: datetime, months: int) -> list[datetime]:
    bounds = period_bounds(Frequency.MONTH, start, start + timedelta(days=31 * months), UTC)
    return [bounds[0][0], *(b for _, b in bounds)]


def _signed(book: Book, currency: str, a: datetime, b: datetime) -> list[tuple[str, Decimal]]:
    """(transaction id, signed amount converted at its own UTC date) of the cash in [a, b)."""
    out = []
    with decimal.localcontext(EXACT_CONTEXT):
        for t in book.transactions:
            if t.succeeded and a <= t.at < b:
                rate = book.fx.rate(t.amount.currency, currency, t.at.date())
                amount = t.amount.amount * rate
                out.append((t.id, amount if t.kind is TransactionKind.PAYMENT else -amount))
    return out


def _oracle_periods(
    book: Book, currency: str, edges: list[datetime]
) -> list[tuple[Decimal, Decimal, int]]:
    out = []
    for a, b in itertools.pairwise(edges):
        signed = _signed(book, currency, a, b)
        with decimal.localcontext(EXACT_CONTEXT):
            gross = sum((v for _, v in signed if v > 0), Decimal(0))
            refunds = -sum((v for _, v in signed if v < 0), Decimal(0))
        out.append((gross, refunds, sum(1 for _, v in signed if v > 0)))
    return out


def _oracle_split(
    book: Book,
    currency: str,
    a: datetime,
    b: datetime,
    key: Callable[[Invoice, InvoiceLine], str | None],
) -> _Oracle:
    txs = {t.id: t for t in book.transactions}
    invoices = {i.id: i for i in book.invoices}
    out: _Oracle = defaultdict(Decimal)
    exact = decimal.localcontext(EXACT_CONTEXT)
    for tid, amount in _signed(book, currency, a, b):
        inv = invoices.get(txs[tid].invoice_id or "")
        lines = [ln for ln in inv.lines if ln.total.amount > 0] if inv is not None else []
        if inv is None or not lines:
            with exact:
                out[None] += amount
            continue
        weight = sum((ln.total.amount for ln in lines), Decimal(0))
        money = Money(amount, currency)
        rest = money
        for ln in lines[:-1]:
            share = money * ln.total.amount / weight  # Money's own division, as documented
            with exact:
                out[key(inv, ln)] += share.amount
            rest -= share
        with exact:
            out[key(inv, lines[-1])] += rest.amount
    return dict(out)


@settings(max_examples=25, deadline=None)
@given(rs.books(currencies=["USD", "EUR", "JPY"]), rs.moments(), st.integers(1, 14))
def test_cash_by_period_equals_the_decimal_oracle(book: Book, start: datetime, months: int) -> None:
    edges = _edges(start, months)
    for currency in ("EUR", "JPY"):
        got = cash_by_period(book.transactions, edges, currency=currency, book=book)
        want = _oracle_periods(book, currency, edges)
        assert [(c.gross.amount, c.refunds.amount, c.payments) for c in got] == want
        assert all(c.net == c.gross - c.refunds for c in got)


@settings(max_examples=25, deadline=None)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), st.integers(1, 900))
def test_cash_breakdowns_equal_the_decimal_oracle(book: Book, start: datetime, days: int) -> None:
    end = start + timedelta(days=days)
    plans = _plan_products(book)
    cases = [
        (cash_revenue_by_product, lambda i, ln: _line_product(book, plans, i, ln)),
        (cash_revenue_by_billing_cycle, lambda i, ln: _line_cycle(book, i, ln)),
    ]
    for fn, key in cases:
        got = fn(book, start=start, end=end, currency="EUR").amounts()
        want = _oracle_split(book, "EUR", start, end, key)
        assert {k: v.amount for k, v in got.items()} == want
    by_method: _Oracle = defaultdict(Decimal)
    txs = {t.id: t for t in book.transactions}
    for tid, amount in _signed(book, "EUR", start, end):
        with decimal.localcontext(EXACT_CONTEXT):
            by_method[txs[tid].method] += amount
    got_m = cash_revenue_by_payment_method(book, start=start, end=end, currency="EUR").amounts()
    assert {k: v.amount for k, v in got_m.items()} == dict(by_method)


@settings(max_examples=15, deadline=None)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), st.integers(1, 14))
def test_memory_store_cash_by_month_equals_the_decimal_oracle(
    book: Book, start: datetime, months: int
) -> None:
    store = InMemoryStore()
    store.import_book(book)
    edges = _edges(start, months)
    got = store.cash_by_month(start=edges[0], end=edges[-1], currency="USD")
    want = _oracle_periods(book, "USD", edges)
    assert [(c.gross.amount, c.refunds.amount, c.payments) for c in got] == want


def test_demo_book_cash_equals_the_decimal_oracle() -> None:
    # Daily rates in three currencies: a conversion at any other date than the entry's
    # own would show.
    book = demo_book(customers=40, seed=5, months=18)
    assert len({t.amount.currency for t in book.transactions}) > 1
    edges = _edges(DEMO_AS_OF - timedelta(days=540), 18)
    got = cash_by_period(book.transactions, edges, currency="USD", book=book)
    assert [(c.gross.amount, c.refunds.amount, c.payments) for c in got] == _oracle_periods(
        book, "USD", edges
    )
    store = InMemoryStore()
    store.import_book(book)
    months = store.cash_by_month(start=edges[0], end=edges[-1], currency="USD")
    assert [(c.gross, c.refunds, c.payments) for c in months] == [
        (c.gross, c.refunds, c.payments) for c in got
    ]
    plans = _plan_products(book)
    got_p = cash_revenue_by_product(book, start=edges[0], end=edges[-1], currency="USD")
    want = _oracle_split(
        book, "USD", edges[0], edges[-1], lambda i, ln: _line_product(book, plans, i, ln)
    )
    assert {k: v.amount for k, v in got_p.amounts().items()} == want


@settings(max_examples=25, deadline=None)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments())
def test_customer_values_cash_equals_the_decimal_oracle(book: Book, at: datetime) -> None:
    start = datetime(1, 1, 1, tzinfo=UTC)
    signed = dict(_signed(book, "EUR", start, at + timedelta(microseconds=1)))
    txs = {t.id: t for t in book.transactions}
    values = {v.customer_id: v for v in customer_values(book, as_of=at, currency="EUR")}
    for c in book.customers:
        mine = [(tid, v) for tid, v in signed.items() if txs[tid].customer_id == c.id]
        pays = [txs[tid].at for tid, v in mine if v > 0]
        with decimal.localcontext(EXACT_CONTEXT):
            paid = sum((v for _, v in mine if v > 0), Decimal(0))
            refunded = -sum((v for _, v in mine if v < 0), Decimal(0))
        v = values[c.id]
        assert (v.total_paid.amount, v.refunded.amount, v.payment_count) == (
            paid,
            refunded,
            len(pays),
        )
        assert v.last_payment_at == (max(pays) if pays else None)
        one = customer_value(book, c.id, as_of=at, currency="EUR")
        assert (one.total_paid, one.refunded, one.last_payment_at) == (
            v.total_paid,
            v.refunded,
            v.last_payment_at,
        )


def test_cash_entry_rows_carry_the_payment_method() -> None:
    book = demo_book(customers=12, seed=3, months=6)
    ids = tuple(c.id for c in book.customers)
    rows = list(cash_columns(book, "USD", customer_ids=ids).rows())
    txs = {t.id: t for t in book.transactions}
    assert rows
    for r in rows:
        if r.kind == "credit":
            assert r.method is None
        else:
            assert r.method == txs[r.entry_id].method
