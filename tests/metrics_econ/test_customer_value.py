"""Per-customer historical value: a worked example with every date rule, and properties
against the book's cash totals."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given

from revcrm import (
    Book,
    CreditEntry,
    FxRates,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    SubscriptionStatus,
    Transaction,
)
from revcrm.errors import MissingRateError, NotFoundError, ValidationError
from revcrm.metrics import cash_revenue
from revcrm.metrics._customer_value import customer_value, customer_values
from revcrm.testing import strategies as rs

from ._build import customer, eur, monthly, t, usd

FX = FxRates.from_rates(
    [(date(2024, 1, 1), "EUR", "USD", "1.10"), (date(2024, 3, 1), "EUR", "USD", "1.20")]
)


def _invoice(
    iid: str,
    issued: datetime,
    amount: Money,
    status: InvoiceStatus,
    *,
    tax: Money | None = None,
    paid_at: datetime | None = None,
) -> Invoice:
    line = InvoiceLine(kind=LineKind.ONE_OFF, amount=amount, tax=tax)
    return Invoice(
        id=iid,
        customer_id="c1",
        currency=amount.currency,
        issued_at=issued,
        due_date=issued.date() + timedelta(days=14),
        status=status,
        lines=(line,),
        paid_at=paid_at,
    )


def _txn(
    tid: str,
    amount: Money,
    at: datetime,
    *,
    kind: str = "payment",
    status: str = "succeeded",
    invoice_id: str | None = None,
    method: str = "stripe",
) -> Transaction:
    return Transaction(
        id=tid,
        customer_id="c1",
        kind=kind,
        status=status,
        amount=amount,
        method=method,
        at=at,
        invoice_id=invoice_id,
    )


def _book() -> Book:
    sub = monthly("s1", "c1", eur(100), at=t(2024, 1, 1), trial_end=t(2024, 1, 5))
    sub = sub.set_status(t(2024, 1, 5), SubscriptionStatus.ACTIVE)
    invoices = [
        _invoice("inv1", t(2024, 1, 5), eur(100), InvoiceStatus.PAID, paid_at=t(2024, 1, 6)),
        _invoice("inv2", t(2024, 3, 5), eur(50), InvoiceStatus.OPEN, tax=eur(10)),
        _invoice("inv3", t(2024, 2, 1), usd(70), InvoiceStatus.VOID),
        _invoice("inv4", t(2024, 2, 10), usd(30), InvoiceStatus.PAID, paid_at=t(2024, 5, 1)),
        _invoice("inv5", t(2024, 2, 15), usd(5), InvoiceStatus.UNCOLLECTIBLE),
        _invoice("inv6", t(2024, 4, 2), usd(1000), InvoiceStatus.OPEN),  # after as_of
    ]
    transactions = [
        _txn("t1", eur(100), t(2024, 1, 6), invoice_id="inv1"),
        _txn("t2", eur(10), t(2024, 3, 2), kind="refund"),
        _txn("t3", eur(20), t(2024, 3, 10), invoice_id="inv2", method="paypal"),
        _txn("t4", usd(99), t(2024, 3, 11), status="failed"),
        _txn("t5", usd(30), t(2024, 5, 1), invoice_id="inv4"),
    ]
    credits = [
        CreditEntry(id="k1", customer_id="c1", amount=usd(25), reason="goodwill", at=t(2024, 2, 1)),
        CreditEntry(id="k2", customer_id="c1", amount=usd(-5), reason="spent", at=t(2024, 3, 1)),
        CreditEntry(id="k3", customer_id="c1", amount=eur(10), reason="top-up", at=t(2024, 3, 15)),
        CreditEntry(id="k4", customer_id="c1", amount=usd(500), reason="later", at=t(2024, 4, 5)),
    ]
    return Book.of(
        customers=[customer("c1"), customer("c2")],
        subscriptions=[sub],
        invoices=invoices,
        transactions=transactions,
        credits=credits,
        fx=FX,
    )


def test_worked_example_in_usd() -> None:
    v = customer_value(_book(), "c1", as_of=date(2024, 4, 1), currency="USD")
    # Cash at the transaction date: 100 EUR x 1.10 + 20 EUR x 1.20; refund 10 EUR x 1.20.
    assert v.total_paid == usd(134)
    assert v.refunded == usd(12)
    assert v.net_payments == usd(122)
    assert v.payment_count == 2
    assert v.last_payment_at == t(2024, 3, 10)
    # Invoices at their issue date, void left out: 110, 72 (60 EUR x 1.20), 30 and 5.
    assert v.invoice_count == 4
    assert v.average_invoice_value == usd("54.25")
    # Outstanding at as_of: inv2 60 - 20 = 40 EUR at 1.20 = 48; inv4 is paid only in May: 30;
    # uncollectible inv5 is written off.
    assert v.outstanding_balance == usd(78)
    # Credit: 25 - 5 USD and 10 EUR at the as_of rate.
    assert v.credit_balance == usd(32)
    assert v.subscriber_since == t(2024, 1, 5)  # the trial does not count
    assert v.as_of == t(2024, 4, 1)


def test_worked_example_in_eur_and_later() -> None:
    v = customer_value(_book(), "c1", as_of=t(2024, 6, 1), currency="EUR")
    # 30 USD at the reciprocal of 1.20 on May 1st joins the payments; inv4 is no longer
    # outstanding; the 1,000 USD invoice of April 2nd is.
    assert v.total_paid == eur(120) + FX.convert(usd(30), "EUR", on=date(2024, 5, 1))
    assert v.refunded == eur(10)
    assert v.payment_count == 3
    assert v.outstanding_balance == eur(40) + FX.convert(usd(1000), "EUR", on=date(2024, 6, 1))
    assert v.last_payment_at == t(2024, 5, 1)


def test_before_anything_happened() -> None:
    v = customer_value(_book(), "c1", as_of=date(2023, 6, 1), currency="USD")
    assert v.total_paid == usd(0)
    assert v.average_invoice_value is None
    assert v.last_payment_at is None
    assert v.subscriber_since is None
    assert v.credit_balance == usd(0)


def test_customer_without_records() -> None:
    v = customer_value(_book(), "c2", as_of=date(2024, 4, 1), currency="USD")
    assert (v.total_paid, v.outstanding_balance, v.credit_balance) == (usd(0), usd(0), usd(0))
    assert v.invoice_count == 0


def test_errors() -> None:
    with pytest.raises(NotFoundError):
        customer_value(_book(), "nobody", as_of=date(2024, 4, 1), currency="USD")
    with pytest.raises(ValidationError):
        customer_value(_book(), "c1", as_of=date(2024, 4, 1), currency="usd")
    with pytest.raises(ValidationError):
        customer_value(_book(), "c1", as_of=datetime(2024, 4, 1), currency="USD")
    with pytest.raises(MissingRateError):
        customer_value(_book(), "c1", as_of=date(2024, 4, 1), currency="GBP")


def test_customer_values_lists_every_customer() -> None:
    values = customer_values(_book(), as_of=date(2024, 4, 1), currency="USD")
    assert [v.customer_id for v in values] == ["c1", "c2"]


@given(rs.books(currencies=["USD", "EUR"]), rs.moments())
def test_per_customer_cash_adds_up_to_the_book(book: Book, as_of: datetime) -> None:
    values = customer_values(book, as_of=as_of, currency="USD")
    # customer values read up to as_of inclusive; cash_revenue is half-open.
    totals = cash_revenue(
        book.transactions,
        rs.EARLIEST,
        as_of + timedelta(microseconds=1),
        currency="USD",
        book=book,
    )
    paid = sum((v.total_paid for v in values), usd(0))
    refunded = sum((v.refunded for v in values), usd(0))
    assert paid == totals.gross
    assert refunded == totals.refunds
    assert paid - refunded == totals.gross - totals.refunds
    assert sum(v.payment_count for v in values) == totals.payments
    for v in values:
        assert v.outstanding_balance.amount >= 0
        assert v.total_paid.amount >= 0
        if v.invoice_count == 0:
            assert v.average_invoice_value is None
        if v.last_payment_at is not None:
            assert v.last_payment_at <= as_of
        if v.subscriber_since is not None:
            assert v.subscriber_since <= as_of
