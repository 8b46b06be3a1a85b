"""read_csv and from_frame: the analyst's export from the issue, row errors, streaming options."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from revcrm import Money, TransactionKind
from revcrm.errors import ValidationError
from revcrm.io import ImportReport, RowError, from_frame, read_csv
from revcrm.metrics import MovementKind, analyse

COLUMNS = {
    "invoice_id": "Invoice",
    "customer_id": "Customer",
    "amount": "Amount",
    "currency": "Currency",
    "issued_at": "Date",
    "status": "Status",
    "period_start": "Service Start",
    "period_end": "Service End",
}
# Stripe-style export: lowercase currency, the last day of service, paid invoices and no
# payment table.
EXPORT = """Invoice,Customer,Amount,Currency,Date,Status,Service Start,Service End
in_1,cus_a,100.00,usd,2024-11-01,paid,2024-11-01,2024-11-30
in_2,cus_a,100.00,usd,2024-12-01,paid,2024-12-01,2024-12-31
in_3,cus_b,50.00,usd,2024-12-10,open,2024-12-10,2025-01-09
"""


def _read(text: str = EXPORT, **kw: object) -> ImportReport:
    options: dict[str, object] = {"kind": "invoice_lines", "columns": COLUMNS, "timezone": "UTC"}
    options.update(kw)
    return read_csv(io.StringIO(text), **options)  # type: ignore[arg-type]


def _usd(amount: str) -> Money:
    return Money(amount, "USD")


def test_inclusive_end_dates_give_a_whole_month() -> None:
    report = read_csv(
        io.StringIO(EXPORT),
        kind="invoice_lines",
        columns=COLUMNS,
        timezone="UTC",
        period_end_inclusive=True,
    )
    a = analyse(report.book, currency="USD", source="invoices")
    # December closes at 100 + 50 and nothing churns on 31 Dec.
    assert a.mrr_before(date(2025, 1, 1)) == _usd("150")
    assert not [
        m for m in a.movements(date(2024, 11, 1), date(2025, 1, 1)) if m.kind is MovementKind.CHURN
    ]
    line = report.book.invoices[1].lines[0]
    assert line.period_end == datetime(2025, 1, 1, tzinfo=UTC)


def test_exclusive_reading_is_the_default() -> None:
    report = read_csv(io.StringIO(EXPORT), kind="invoice_lines", columns=COLUMNS, timezone="UTC")
    assert report.book.invoices[1].lines[0].period_end == datetime(2024, 12, 31, tzinfo=UTC)


def test_payments_from_paid_invoices() -> None:
    without = read_csv(io.StringIO(EXPORT), kind="invoice_lines", columns=COLUMNS, timezone="UTC")
    assert without.book.transactions == ()
    report = read_csv(
        io.StringIO(EXPORT),
        kind="invoice_lines",
        columns=COLUMNS,
        timezone="UTC",
        payments_from_paid_invoices=True,
    )
    paid = {(t.invoice_id, t.amount, t.at) for t in report.book.transactions}
    assert paid == {
        ("in_1", _usd("100"), datetime(2024, 11, 1, tzinfo=UTC)),
        ("in_2", _usd("100"), datetime(2024, 12, 1, tzinfo=UTC)),
    }


def test_a_business_time_zone_reads_local_days() -> None:
    text = "Invoice,Customer,Amount,Currency,Date,Status\nin_1,c,10,eur,2024-01-31 23:30,paid\n"
    report = read_csv(
        io.StringIO(text), kind="invoice_lines", columns=COLUMNS, timezone="Europe/Berlin"
    )
    assert report.book.invoices[0].issued_at == datetime(2024, 1, 31, 22, 30, tzinfo=UTC)
    with pytest.raises(RowError) as info:
        read_csv(io.StringIO(text), kind="invoice_lines", columns=COLUMNS)
    assert (info.value.row, info.value.column) == (2, "Date")
    aware = text.replace("2024-01-31 23:30", "2024-01-31T23:30:00+01:00")
    assert read_csv(io.StringIO(aware), kind="invoice_lines", columns=COLUMNS).book.invoices[
        0
    ].issued_at == datetime(2024, 1, 31, 22, 30, tzinfo=UTC)


BAD = EXPORT + "in_4,cus_c,12.x,usd,2024-12-11,paid,,\nin_5,cus_c,5,usd,2024-12-11,sent,,\n"


def test_a_bad_row_names_row_and_column() -> None:
    with pytest.raises(RowError) as info:
        _read(BAD)
    assert isinstance(info.value, ValidationError)
    assert (info.value.row, info.value.column, info.value.value) == (5, "Amount", "12.x")


def test_collect_leaves_bad_rows_out_and_reports_them() -> None:
    text = BAD + "in_1,cus_a,oops,usd,2024-11-01,paid,,\n"
    report = _read(text, on_error="collect")
    assert [(e.row, e.column) for e in report.errors] == [
        (5, "Amount"),
        (6, "Status"),
        (7, "Amount"),
    ]
    # in_1 had a bad line: left out whole, never half imported.
    assert [i.id for i in report.book.invoices] == ["in_2", "in_3"]
    assert report.rows == 6


def test_missing_column_and_unknown_field() -> None:
    with pytest.raises(ValidationError, match="Currency"):
        _read(EXPORT.replace("Currency", "Curr"))
    with pytest.raises(ValidationError) as info:
        read_csv(io.StringIO(EXPORT), kind="invoice_lines", columns={"colour": "x"})
    assert info.value.field == "columns"


def test_credit_lines_are_negative_lines_of_their_invoice() -> None:
    text = EXPORT + "in_3,cus_b,-20.00,usd,2024-12-10,open,,\n"
    inv = next(i for i in _read(text).book.invoices if i.id == "in_3")
    assert inv.total == _usd("30")
    assert [line.amount for line in inv.lines] == [_usd("50"), _usd("-20")]


def test_a_recurring_credit_with_its_discount_lowers_the_run_rate() -> None:
    # A proration credit over the second half of December (16 of 31 days, no cycle
    # known: December holds it) with a 2.00 discount on the credit: -8.00 net.
    text = (
        "Invoice,Customer,Amount,Discount,Currency,Date,Status,Service Start,Service End\n"
        "in_1,cus_a,31.00,,usd,2024-12-01,paid,2024-12-01,2024-12-31\n"
        "in_2,cus_a,-10.00,2.00,usd,2024-12-16,paid,2024-12-16,2024-12-31\n"
        "in_2,cus_a,12.00,,usd,2024-12-16,paid,,\n"
    )
    book = _read(text, columns={**COLUMNS, "discount": "Discount"}, period_end_inclusive=True).book
    credit = next(i for i in book.invoices if i.id == "in_2").lines[0]
    assert (credit.amount, credit.discount, credit.net) == (_usd("-10"), _usd("-2"), _usd("-8"))
    a = analyse(book, currency="USD", source="invoices")
    # 31 - 8 * 31 / 16 = 15.50 from 16 December.
    assert a.mrr(datetime(2024, 12, 20, tzinfo=UTC)) == _usd("15.5")
    with pytest.raises(RowError) as info:
        _read(text.replace("2.00", "11.00"), columns={**COLUMNS, "discount": "Discount"})
    assert info.value.column == "Discount"


def test_payments_customers_and_a_second_import(tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "id,registered_at,email,name\ncus_a,2024-10-01,a@example.com,A\n", encoding="utf-8"
    )
    payments = tmp_path / "payments.csv"
    payments.write_text(
        "id,customer_id,amount,currency,at,invoice_id\n"
        "p1,cus_a,10000,usd,2024-11-02T10:00:00Z,in_1\n"
        "p2,cus_a,-2500,usd,2024-11-20T10:00:00Z,in_1\n",
        encoding="utf-8",
    )
    book = read_csv(customers, kind="customers", timezone="UTC").book
    book = _read(book=book).book
    book = read_csv(payments, kind="payments", amounts="minor", book=book).book
    again = read_csv(payments, kind="payments", amounts="minor", book=book).book
    assert again.transactions == book.transactions
    assert book.customer("cus_a").email == "a@example.com"
    assert [(t.kind, t.amount) for t in book.transactions] == [
        (TransactionKind.PAYMENT, _usd("100")),
        (TransactionKind.REFUND, _usd("25")),
    ]
    with pytest.raises(RowError) as info:
        read_csv(
            io.StringIO(
                "id,customer_id,amount,currency,at,invoice_id\np,c,1,usd,2024-01-01T00:00Z,in_9\n"
            ),
            kind="payments",
        )
    assert info.value.column == "invoice_id"


def test_frames_pandas_and_arrow() -> None:
    frame = pd.read_csv(io.StringIO(EXPORT), dtype=str)
    expected = _read(period_end_inclusive=True).book.invoices
    from_pandas = from_frame(
        frame, kind="invoice_lines", columns=COLUMNS, timezone="UTC", period_end_inclusive=True
    )
    assert from_pandas.book.invoices == expected
    table = pa.Table.from_pandas(frame)
    from_arrow = from_frame(
        table, kind="invoice_lines", columns=COLUMNS, timezone="UTC", period_end_inclusive=True
    )
    assert from_arrow.book.invoices == expected
    typed = frame.assign(
        Amount=pd.Series([Decimal("100.00"), Decimal("100.00"), Decimal("50.00")], dtype=object),
        Date=pd.to_datetime(frame["Date"]).dt.tz_localize("UTC"),
    )
    assert (
        from_frame(
            typed, kind="invoice_lines", columns=COLUMNS, timezone="UTC", period_end_inclusive=True
        ).book.invoices
        == expected
    )


def test_float_money_is_refused() -> None:
    frame = pd.read_csv(io.StringIO(EXPORT))  # Amount read as float64
    with pytest.raises(RowError) as info:
        from_frame(frame, kind="invoice_lines", columns=COLUMNS, timezone="UTC")
    assert (info.value.row, info.value.column) == (0, "Amount")
