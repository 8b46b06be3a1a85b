"""Derived values of records: line and invoice totals, overdue invoices, signed payments."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given

from revcrm import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._money import money_sum
from revcrm.testing import strategies as S
from tests._builders import usd

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_line_net_and_total() -> None:
    line = InvoiceLine(kind="one_off", amount=usd("100"), discount=usd("15.50"), tax=usd("17.54"))
    assert line.net == usd("84.50")
    assert line.total == usd("102.04")
    plain = InvoiceLine(kind="one_off", amount=usd("10"))
    assert plain.net == plain.total == usd("10")


def test_invoice_totals() -> None:
    inv = Invoice(
        id="i1",
        customer_id="c1",
        currency="USD",
        issued_at=T0,
        due_date=date(2024, 1, 15),
        status="open",
        lines=[
            InvoiceLine(kind="one_off", amount=usd("100"), discount=usd("10"), tax=usd("18")),
            InvoiceLine(kind="one_off", amount=usd("5.25")),
        ],
    )
    assert inv.subtotal == usd("95.25")
    assert inv.tax == usd("18")
    assert inv.total == usd("113.25")
    assert not inv.is_overdue(date(2024, 1, 15))
    assert inv.is_overdue(date(2024, 1, 16))
    empty = Invoice(
        id="i2",
        customer_id="c1",
        currency="JPY",
        issued_at=T0,
        due_date=date(2024, 1, 1),
        status="draft",
    )
    assert empty.total == Money.zero("JPY")


@given(S.invoices())
def test_invoice_total_is_the_sum_of_line_totals(inv: Invoice) -> None:
    assert inv.total == money_sum((line.total for line in inv.lines), inv.currency)
    if inv.status is not InvoiceStatus.OPEN:
        assert not inv.is_overdue(date(2099, 1, 1))


def test_paid_invoices_are_never_overdue() -> None:
    inv = Invoice(
        id="i1",
        customer_id="c1",
        currency="USD",
        issued_at=T0,
        due_date=date(2024, 1, 1),
        status="paid",
        paid_at=T0,
    )
    assert not inv.is_overdue(date(2030, 1, 1))


@given(S.transactions())
def test_signed_amounts(t: Transaction) -> None:
    if t.kind is TransactionKind.PAYMENT:
        assert t.signed_amount == t.amount
    else:
        assert t.signed_amount == -t.amount
    assert t.succeeded == (t.status is TransactionStatus.SUCCEEDED)
