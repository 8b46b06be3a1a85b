"""LineColumns: the invoice lines the Decimal engine counts, as validated arrays."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from revcrm import Book, Customer, Invoice, InvoiceLine, Money
from revcrm._ledger._columns import MAX_MICROS, LineColumns, micros, moment
from revcrm.errors import ValidationError
from revcrm.testing.strategies import books

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)


def _expected(book: Book) -> list[tuple[str, str, str, datetime, datetime, Decimal]]:
    out = []
    for inv in book.invoices:
        if inv.status.value in ("void", "draft"):
            continue
        for idx, line in enumerate(inv.lines):
            if line.kind.value != "recurring":
                continue
            assert line.period_start is not None
            assert line.period_end is not None
            out.append(
                (
                    inv.customer_id,
                    line.subscription_id or f"{inv.id}#{idx}",
                    inv.currency,
                    line.period_start,
                    line.period_end,
                    line.net.amount,
                )
            )
    return out


@settings(max_examples=30, deadline=None)
@given(books(max_customers=3))
def test_from_book_holds_the_counted_recurring_lines(book: Book) -> None:
    cols = LineColumns.from_book(book)
    assert list(cols.rows()) == _expected(book)
    assert len(cols) == len(_expected(book))
    assert cols.net.dtype == np.int64
    assert not cols.net.flags.writeable


def _book(*invoices: Invoice) -> Book:
    return Book.of(customers=[Customer(id="c", registered_at=T0)], invoices=list(invoices))


def _invoice(iid: str, status: str, *lines: InvoiceLine, currency: str = "EUR") -> Invoice:
    return Invoice(
        id=iid,
        customer_id="c",
        currency=currency,
        issued_at=T0,
        due_date=T0.date(),
        status=status,
        lines=lines,
    )


def _line(amount: str, discount: str | None = None, *, kind: str = "recurring") -> InvoiceLine:
    recurring = kind == "recurring"
    return InvoiceLine(
        kind=kind,
        amount=Money(amount, "EUR"),
        discount=Money(discount, "EUR") if discount else None,
        tax=Money("1.00", "EUR"),
        period_start=T0 if recurring else None,
        period_end=T1 if recurring else None,
    )


def test_from_book_example_net_after_discount_and_skipped_invoices() -> None:
    book = _book(
        _invoice("i1", "paid", _line("10.00", "2.50"), _line("3.00", kind="one_off"), _line("5")),
        _invoice("i2", "void", _line("99.00")),
        _invoice("i3", "draft", _line("99.00")),
        _invoice("i4", "open", _line("0.125")),
    )
    cols = LineColumns.from_book(book)
    assert cols.scale == 3  # the finest amount, at least the currency's cents
    assert cols.net.tolist() == [7500, 5000, 125]
    assert cols.stream_ids == ("i1#0", "i1#2", "i4#0")
    assert cols.customer_ids == ("c",)
    assert cols.currencies == ("EUR",)
    assert cols.start.tolist() == [micros(T0)] * 3
    assert moment(int(cols.end[0])) == T1


def _arrays(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customer_ids": ("a", "b"),
        "stream_ids": ("s1", "s2"),
        "currencies": ("USD",),
        "customer": np.array([0, 1], dtype=np.int32),
        "stream": np.array([0, 1], dtype=np.int32),
        "currency": np.array([0, 0], dtype=np.int16),
        "start": np.array([0, 10], dtype=np.int64),
        "end": np.array([5, 20], dtype=np.int64),
        "net": np.array([100, -5], dtype=np.int64),
        "scale": 2,
    }
    base.update(over)
    return base


def test_from_arrays_keeps_arrays_of_the_right_dtype_without_copying() -> None:
    a = _arrays()
    cols = LineColumns.from_arrays(**a)
    assert np.shares_memory(cols.net, a["net"])
    assert a["net"].flags.writeable  # the caller's array is left as it was
    with pytest.raises(ValueError, match="read-only"):
        cols.net[0] = 1
    # Other integer dtypes are converted.
    cols = LineColumns.from_arrays(**_arrays(customer=[0, 1], start=np.array([0, 10], np.int32)))
    assert cols.customer.dtype == np.int32
    assert cols.start.dtype == np.int64


@pytest.mark.parametrize(
    ("over", "field", "reason"),
    [
        ({"end": np.array([5, 10])}, "end[1]", "must be after start"),
        ({"customer": np.array([0, 2])}, "customer[1]", "index into customers"),
        ({"stream": np.array([-1, 0])}, "stream[0]", "index into streams"),
        ({"currency": np.array([0, 1])}, "currency[1]", "index into currencys"),
        ({"customer": np.array([0, 2**40])}, "customer[1]", "does not fit int32"),
        ({"net": np.array([1.5, 2.0])}, "net", "expected an integer array"),
        ({"net": np.array([1, 2, 3])}, "customer", "length differs"),
        ({"start": np.array([[0, 1]])}, "start", "one-dimensional"),
        ({"end": np.array([5, MAX_MICROS + 1])}, "end[1]", "years 1..9999"),
        ({"currencies": ("usd",)}, "currencies[0]", "ISO 4217"),
        ({"currencies": "USD"}, "currencies", "not one string"),
        ({"customer_ids": ("a", "a")}, "customer_ids[1]", "repeats"),
        ({"stream_ids": ("s1", " ")}, "stream_ids[1]", "non-empty"),
        ({"scale": 19}, "scale", "0..18"),
        ({"scale": True}, "scale", "0..18"),
    ],
)
def test_from_arrays_names_the_field_and_first_bad_row(
    over: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        LineColumns.from_arrays(**_arrays(**over))
    assert info.value.field == field


def test_from_book_refuses_an_amount_beyond_int64() -> None:
    huge = "9" * 20 + ".00"
    book = _book(_invoice("i1", "paid", _line(huge)))
    with pytest.raises(ValidationError, match="int64") as info:
        LineColumns.from_book(book)
    assert info.value.field == "net[0]"


def test_empty_book() -> None:
    cols = LineColumns.from_book(Book.of())
    assert len(cols) == 0
    assert cols.scale == 2
