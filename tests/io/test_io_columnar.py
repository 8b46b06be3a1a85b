"""read_lines: the columnar input path equals read_csv's book, lines and errors alike."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import Money
from revcrm._ledger._columns import LineColumns, LineRow
from revcrm.errors import ValidationError
from revcrm.io import LinesReport, RowError, from_frame, read_csv, read_lines
from tests.io.test_csv import COLUMNS, EXPORT

Engine = Literal["arrow", "python"]
ENGINES: tuple[Engine, ...] = ("arrow", "python")
HEADER = [
    "invoice_id", "customer_id", "amount", "currency", "issued_at", "status", "period_start",
    "period_end", "kind", "discount", "tax", "due_date", "description", "quantity",
]  # fmt: skip
CELLS: dict[str, list[str]] = {
    "invoice_id": ["in_1", "in_2", "in_3", "in_4", " in_1", ""],
    "customer_id": ["cus_a", "cus_b", "cus c", " cus_a ", ""],
    "amount": ["10.00", "25.5", "-3.50", "-30", "0", "7", "1.005", "abc", "", "1E+2",
               "99999999999999999999.5", "-0.00"],
    "currency": ["usd", "EUR", "JPY", "xxx", ""],
    "issued_at": ["2024-01-01", "2024-01-01T10:00:00Z", "2024-01-01 01:00:00+01:00", "bad", ""],
    "status": ["paid", "open", "void", "draft", "PAID", "bogus", ""],
    "period_start": ["2024-01-01", "2024-01-15T00:00:00Z", "2024-03-01", "", "nope"],
    "period_end": ["2024-01-31", "2024-02-01", "2024-02-14T00:00:00Z", "2023-12-01", ""],
    "kind": ["", "", "recurring", "one_off", "bogus"],
    "discount": ["", "", "1.00", "-1", "200", "0.5"],
    "tax": ["", "", "1.00", "-0.5"],
    "due_date": ["", "", "2023-12-01", "2024-02-01", "soon"],
    "description": ["", "plan", "a\x00b"],
    "quantity": ["", "2", "0"],
}  # fmt: skip
# Mostly good cells: a few bad ones make errors without making every row bad.
GOOD = {field: [v for v in values if v in _good] for field, values, _good in (
    ("invoice_id", CELLS["invoice_id"], {"in_1", "in_2", "in_3", "in_4"}),
    ("customer_id", CELLS["customer_id"], {"cus_a", "cus_b", "cus c"}),
    ("amount", CELLS["amount"], {"10.00", "25.5", "7", "1.005", "-3.50", "-30"}),
    ("currency", CELLS["currency"], {"usd", "EUR"}),
    ("issued_at", CELLS["issued_at"], {"2024-01-01", "2024-01-01T10:00:00Z"}),
    ("status", CELLS["status"], {"paid", "open", "void"}),
    ("period_start", CELLS["period_start"], {"2024-01-01", "2024-01-15T00:00:00Z"}),
    ("period_end", CELLS["period_end"], {"2024-02-01", "2024-02-14T00:00:00Z"}),
    ("kind", CELLS["kind"], {""}),
    ("discount", CELLS["discount"], {"", "0.5"}),
    ("tax", CELLS["tax"], {"", "1.00"}),
    ("due_date", CELLS["due_date"], {"", "2024-02-01"}),
    ("description", CELLS["description"], {"", "plan"}),
    ("quantity", CELLS["quantity"], {"", "2"}),
)}  # fmt: skip


@st.composite
def _rows(draw: st.DrawFn) -> list[list[str]]:
    bad_share = draw(st.sampled_from([0.0, 0.05, 0.3]))
    out = []
    for _ in range(draw(st.integers(0, 12))):
        row = []
        for field in HEADER:
            pool = CELLS[field] if draw(st.floats(0, 1)) < bad_share else GOOD[field]
            row.append(draw(st.sampled_from(pool)))
        out.append(row)
    return out


def _csv(rows: list[list[str]], header: list[str] = HEADER) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _key(e: ValidationError) -> tuple[Any, ...]:
    return (type(e).__name__, getattr(e, "row", None), getattr(e, "column", None), e.field,
            repr(e.value), e.reason)  # fmt: skip


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ValidationError as e:
        return ("raised", _key(e))


def _rows_of(cols: LineColumns) -> list[LineRow]:
    return sorted(cols.rows())


def _reference(read: Callable[[], Any], collect: bool) -> Any:
    report = _outcome(read)
    if isinstance(report, tuple):
        return report
    lines = _outcome(lambda: LineColumns.from_book(report.book))
    if isinstance(lines, tuple):
        return ("raised", "net")  # a net beyond int64: both refuse it
    errors = [_key(e) for e in report.errors] if collect else []
    return (_rows_of(lines), errors, report.rows)


def _columnar(read: Callable[[], LinesReport], collect: bool) -> Any:
    report = _outcome(read)
    if isinstance(report, tuple):
        return ("raised", "net") if report[1][3].startswith("net") else report
    errors = [_key(e) for e in report.errors] if collect else []
    return (_rows_of(report.lines), errors, report.rows)


OPTIONS = st.fixed_dictionaries(
    {
        "timezone": st.sampled_from(["UTC", "Europe/Berlin", None]),
        "period_end_inclusive": st.booleans(),
        "amounts": st.sampled_from(["major", "major", "minor"]),
        "on_error": st.sampled_from(["raise", "collect"]),
    }
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows(), OPTIONS)
def test_read_lines_equals_read_csv_on_generated_files(
    rows: list[list[str]], options: dict[str, Any]
) -> None:
    text = _csv(rows)
    collect = options["on_error"] == "collect"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.csv"
        path.write_text(text, encoding="utf-8")
        expected = _reference(lambda: read_csv(path, kind="invoice_lines", **options), collect)
        for engine in ENGINES:
            got = _columnar(partial(read_lines, path, engine=engine, **options), collect)
            assert got == expected, engine
        got = _columnar(lambda: read_lines(io.StringIO(text), **options), collect)
        assert got == expected, "text file"


@settings(max_examples=25, deadline=None)
@given(_rows(), OPTIONS)
def test_read_lines_equals_from_frame_on_tables(
    rows: list[list[str]], options: dict[str, Any]
) -> None:
    frame = pd.DataFrame(rows, columns=HEADER, dtype=object)
    collect = options["on_error"] == "collect"
    expected = _reference(lambda: from_frame(frame, kind="invoice_lines", **options), collect)
    assert _columnar(lambda: read_lines(frame, **options), collect) == expected
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert _columnar(lambda: read_lines(table, **options), collect) == expected


def _export_path(tmp_path: Path, text: str = EXPORT) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_the_analysts_export(tmp_path: Path, engine: Engine) -> None:
    # Stripe-style: lowercase currency, inclusive end dates, a one-off credit on in_2 (it
    # lowers the invoice, not the run rate).
    text = EXPORT + "in_2,cus_a,-10.00,usd,2024-12-01,paid,,\n"
    path = _export_path(tmp_path, "\ufeff" + text)
    report = read_lines(
        path, columns=COLUMNS, timezone="UTC", period_end_inclusive=True, engine=engine
    )
    assert report.ok
    assert report.rows == 4
    assert report.engine == engine

    def day(m: int, d: int) -> datetime:
        return datetime(2024 + (m > 12), (m - 1) % 12 + 1, d, tzinfo=UTC)

    assert sorted(report.lines.rows()) == [
        ("cus_a", "in_1#0", "USD", day(11, 1), day(12, 1), Decimal("100.00")),
        ("cus_a", "in_2#0", "USD", day(12, 1), day(13, 1), Decimal("100.00")),
        ("cus_b", "in_3#0", "USD", day(12, 10), day(13, 10), Decimal("50.00")),
    ]
    assert report.lines.scale == 2
    assert report.lines.net.dtype.name == "int64"


CREDITS = """invoice_id,customer_id,amount,currency,issued_at,status,period_start,period_end,kind
in_1,c,10.00,eur,2024-01-01,paid,2024-01-01,2024-02-01,
in_1,c,-17.00,eur,2024-01-01,paid,,,
in_1,c,5.00,eur,2024-01-01,paid,,,one_off
in_1,c,20.00,eur,2024-01-01,paid,2024-01-01,2024-02-01,
in_1,c,-5.00,eur,2024-01-01,paid,2024-01-16,2024-02-01,
in_2,c,10.00,eur,2024-02-01,paid,2024-02-01,2024-03-01,
in_2,c,-30.00,eur,2024-02-01,paid,,,
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_credit_lines_are_lines_of_their_invoice(tmp_path: Path, engine: Engine) -> None:
    path = _export_path(tmp_path, CREDITS)
    report = read_lines(path, timezone="UTC", engine=engine)
    # A one-off credit lowers the invoice only; a recurring credit (a proration credit for
    # the second half of January) is a negative line of its stream.
    assert sorted((r[1], r[5]) for r in report.lines.rows()) == [
        ("in_1#0", Decimal("10.00")),
        ("in_1#3", Decimal("20.00")),
        ("in_1#4", Decimal("-5.00")),
        ("in_2#0", Decimal("10.00")),
    ]
    result = read_csv(path, kind="invoice_lines", timezone="UTC")
    book = result.book
    assert sorted(report.lines.rows()) == sorted(LineColumns.from_book(book).rows())
    totals = {i.id: i.total for i in book.invoices}
    assert totals == {"in_1": Money("13.00", "EUR"), "in_2": Money("0", "EUR")}
    # in_2's negative total (-20.00) goes to the customer's balance, as Stripe books it.
    assert [(c.id, c.amount) for c in book.credits] == [("in_2#balance", Money("20", "EUR"))]


# Credit lines of both kinds, with discounts and tax, in invoices of every status; in_4's
# credits exceed its charges (its negative total goes to the customer's balance).
CREDIT_BOOK = """invoice_id,customer_id,amount,currency,issued_at,status,period_start,period_end,kind,discount,tax
in_1,c,30.00,eur,2024-01-01,paid,2024-01-01,2024-02-01,,5.00,6.00
in_1,c,-12.50,eur,2024-01-01,paid,2024-01-16,2024-02-01,recurring,2.50,-2.00
in_1,c,-4.00,eur,2024-01-01,paid,,,,,-0.80
in_2,c,-7.25,eur,2024-02-01,open,2024-02-01,2024-03-01,,,
in_2,c,20.00,eur,2024-02-01,open,2024-02-01,2024-03-01,,,
in_3,d,-5,usd,2024-02-01,void,2024-02-01,2024-03-01,,,
in_3,d,10,usd,2024-02-01,void,2024-02-01,2024-03-01,,,
in_4,d,8.00,usd,2024-03-01,paid,2024-03-01,2024-04-01,,,1.60
in_4,d,-9.00,usd,2024-03-01,paid,2024-03-16,2024-04-01,,,-1.80
in_4,d,-30.00,usd,2024-03-01,paid,,,one_off,1.00,
in_5,d,-0.00,usd,2024-03-01,paid,2024-03-01,2024-04-01,,,
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_credit_lines_read_in_columns_equal_read_csv(tmp_path: Path, engine: Engine) -> None:
    path = _export_path(tmp_path, CREDIT_BOOK)
    report = read_lines(path, timezone="UTC", engine=engine)
    result = read_csv(path, kind="invoice_lines", timezone="UTC")
    assert result.ok
    assert report.ok
    assert _rows_of(report.lines) == _rows_of(LineColumns.from_book(result.book))
    # A recurring credit's discount lowers the credit; one-off credits are no line here;
    # the void invoice counts nothing.
    assert sorted((r[1], r[5]) for r in report.lines.rows()) == [
        ("in_1#0", Decimal("25.00")),
        ("in_1#1", Decimal("-10.00")),
        ("in_2#0", Decimal("-7.25")),
        ("in_2#1", Decimal("20.00")),
        ("in_4#0", Decimal("8.00")),
        ("in_4#1", Decimal("-9.00")),
        ("in_5#0", Decimal("0.00")),
    ]
    assert [(c.id, c.amount) for c in result.book.credits] == [
        ("in_4#balance", Money("30.20", "USD"))
    ]


BAD_CREDITS = [
    # (row text, the row's number, the column read_csv names, its reason)
    ("in_9,c,-5.00,eur,2024-01-01,paid,,,,,1.00", "tax", "zero or negative on a credit line"),
    ("in_9,c,-5.00,eur,2024-01-01,paid,2024-01-01,2024-02-01,,6.00,", "discount",
     "exceeds the line amount"),
]  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("bad", "column", "reason"), BAD_CREDITS)
def test_a_credit_line_that_breaks_a_credits_rules(
    tmp_path: Path, engine: Engine, bad: str, column: str, reason: str
) -> None:
    # in_9's first row is a good charge: read_csv names the invoice's first row (row 13),
    # where it builds the invoice, and the column of the credit's bad cell.
    text = CREDIT_BOOK + "in_9,c,10.00,eur,2024-01-01,paid,2024-01-01,2024-02-01,,,\n" + bad + "\n"
    path = _export_path(tmp_path, text)
    for read in (
        partial(read_lines, path, timezone="UTC", engine=engine),
        partial(read_csv, path, kind="invoice_lines", timezone="UTC"),
    ):
        with pytest.raises(RowError) as info:
            read()
        assert (info.value.row, info.value.column, info.value.reason) == (13, column, reason)
    report = read_lines(path, timezone="UTC", engine=engine, on_error="collect")
    result = read_csv(path, kind="invoice_lines", timezone="UTC", on_error="collect")
    assert [_key(e) for e in report.errors] == [_key(e) for e in result.errors]
    assert [(e.row, e.column) for e in report.errors] == [(13, column)]
    assert _rows_of(report.lines) == _rows_of(LineColumns.from_book(result.book))
    assert not any(r[1].startswith("in_9") for r in report.lines.rows())


def test_credit_invoices_are_read_in_columns_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revcrm.io import _columnar

    def refuse(*_: object) -> None:
        raise AssertionError("an invoice was rebuilt through read_csv's builder")

    monkeypatch.setattr(_columnar._Reader, "rebuild", refuse)
    path = _export_path(tmp_path, CREDIT_BOOK)
    for engine in ENGINES:
        assert len(list(read_lines(path, timezone="UTC", engine=engine).lines.rows())) == 7


def test_row_errors_name_row_and_column(tmp_path: Path) -> None:
    text = EXPORT.replace("in_2,cus_a,100.00,usd", "in_2,cus_a,1OO.00,usd")
    path = _export_path(tmp_path, text)
    with pytest.raises(RowError) as info:
        read_lines(path, columns=COLUMNS, timezone="UTC")
    assert (info.value.row, info.value.column) == (3, "Amount")
    report = read_lines(path, columns=COLUMNS, timezone="UTC", on_error="collect")
    assert [(e.row, e.column, e.reason) for e in report.errors] == [
        (3, "Amount", "not a decimal number")
    ]
    assert {r[1] for r in report.lines.rows()} == {"in_1#0", "in_3#0"}


def test_a_later_line_that_disagrees_with_its_invoice(tmp_path: Path) -> None:
    text = EXPORT + "in_1,cus_b,5.00,usd,2024-11-01,paid,2024-11-01,2024-11-30\n"
    path = _export_path(tmp_path, text)
    with pytest.raises(RowError, match="differs from row 2") as info:
        read_lines(path, columns=COLUMNS, timezone="UTC")
    assert (info.value.row, info.value.column) == (5, "Customer")


def test_refusals(tmp_path: Path) -> None:
    path = _export_path(tmp_path)
    with pytest.raises(ValidationError, match="the export has no column"):
        read_lines(path, timezone="UTC", columns={"customer_id": "Customer"})
    with pytest.raises(ValidationError, match="on_error"):
        read_lines(path, on_error="skip")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="engine"):
        read_lines(path, engine="rust")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cannot open"):
        read_lines(tmp_path / "missing.csv")
    cells = {"invoice_id": "i", "customer_id": "c", "currency": "usd", "issued_at": "2024-01-01"}
    frame = pd.DataFrame(
        {"amount": [1.5], "status": ["paid"], **{k: [v] for k, v in cells.items()}}
    )
    with pytest.raises(RowError, match="float"):
        read_lines(frame, timezone="UTC")


def test_an_amount_beyond_int64_is_refused(tmp_path: Path) -> None:
    text = EXPORT.replace("50.00", "99999999999999999999.00")
    path = _export_path(tmp_path, text)
    assert read_csv(path, kind="invoice_lines", columns=COLUMNS, timezone="UTC").ok
    with pytest.raises(ValidationError, match="int64"):
        read_lines(path, columns=COLUMNS, timezone="UTC")


def test_a_typed_frame_reads_as_from_frame_reads_it() -> None:
    frame = pd.DataFrame(
        {
            "invoice_id": ["i1", "i1", "i2"],
            "customer_id": ["c", "c", "d"],
            "amount": [Decimal("10.00"), Decimal("-2.5"), Decimal("7")],
            "currency": ["eur", "eur", "usd"],
            "issued_at": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-03"]).tz_localize(
                "UTC"
            ),
            "status": ["paid", "paid", "open"],
            "period_start": [datetime(2024, 1, 1).date(), None, datetime(2024, 2, 3).date()],
            "period_end": [datetime(2024, 2, 1).date(), None, datetime(2024, 3, 3).date()],
            "quantity": [1, 1, 2],
        }
    )
    book = from_frame(frame, kind="invoice_lines", timezone="Europe/Berlin").book
    expected = sorted(LineColumns.from_book(book).rows())
    for table in (frame, pa.Table.from_pandas(frame, preserve_index=False)):
        report = read_lines(table, timezone="Europe/Berlin")
        assert report.engine == "arrow"
        assert sorted(report.lines.rows()) == expected
    # Berlin midnight is 23:00 UTC the day before; the one-off credit lowers the invoice,
    # not the run rate.
    assert expected[0][3:] == (
        datetime(2023, 12, 31, 23, tzinfo=UTC),
        datetime(2024, 1, 31, 23, tzinfo=UTC),
        Decimal("10.00"),
    )
    assert next(i for i in book.invoices if i.id == "i1").total == Money("7.50", "EUR")
