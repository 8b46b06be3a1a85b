"""``read_csv`` and ``from_frame``: invoice lines, payments and customers from tables.

Rows are read one at a time (the ``csv`` module over the open file, a data frame by
row tuples, an Arrow stream batch by batch); only the records they make are kept.
"""

from __future__ import annotations

import csv
import importlib
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import IO, Any, Literal

import attrs

from revcrm._book import Book
from revcrm._money import Money
from revcrm._records import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceStatus,
    LineKind,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm.errors import ValidationError
from revcrm.io._columns import FIELDS, REQUIRED, Cells, Kind, RowError, Zone, check_zone
from revcrm.io._lines import DraftLine, build_lines, settle_credits

__all__ = ["ImportReport", "from_frame", "read_csv"]

OnError = Literal["raise", "collect"]


@attrs.frozen(kw_only=True)
class ImportReport:
    """What an import made: the book, the rows left out (``on_error="collect"``) and counts."""

    book: Book
    errors: tuple[RowError, ...] = ()
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


@attrs.define
class _Invoice:
    row: int
    customer_id: str
    currency: str
    issued_at: datetime
    status: InvoiceStatus
    due: Any
    paid_at: datetime | None
    number: str | None
    lines: list[DraftLine] = attrs.field(factory=list)
    bad: bool = False


class _Options:
    def __init__(
        self,
        kind: Kind,
        columns: Mapping[str, str] | None,
        defaults: Mapping[str, Any] | None,
        timezone: Zone,
        amounts: str,
        period_end_inclusive: bool,
    ) -> None:
        if kind not in FIELDS:
            raise ValidationError("kind", kind, f"expected one of {', '.join(FIELDS)}")
        self.kind = kind
        cols = dict(columns or {})
        for field, column in cols.items():
            if field not in FIELDS[kind]:
                raise ValidationError("columns", field, f"not a field of {kind}")
            if not isinstance(column, str):
                raise ValidationError(f"columns[{field}]", column, "expected a column name")
        self.columns = {f: cols.get(f, f) for f in FIELDS[kind]}
        self.defaults = dict(defaults or {})
        for field in self.defaults:
            if field not in FIELDS[kind]:
                raise ValidationError("defaults", field, f"not a field of {kind}")
        self.zone = check_zone(timezone)
        if amounts not in ("major", "minor"):
            raise ValidationError("amounts", amounts, "expected 'major' or 'minor'")
        self.minor = amounts == "minor"
        self.inclusive = period_end_inclusive

    def check_header(self, header: Iterable[str]) -> None:
        present = set(header)
        for field in sorted(REQUIRED[self.kind]):
            column = self.columns[field]
            if column not in present and field not in self.defaults:
                raise ValidationError(
                    "columns", column, f"the export has no column {column!r} for {field}"
                )

    def cells(self, row: int, values: Mapping[str, Any]) -> Cells:
        if self.defaults:
            merged = dict(values)
            for field, default in self.defaults.items():
                column = self.columns[field]
                cell = merged.get(column)
                if cell is None or (isinstance(cell, str) and not cell.strip()):
                    merged[column] = default
            values = merged
        return Cells(
            row, values, self.columns, self.zone, minor=self.minor, inclusive=self.inclusive
        )


def _status(c: Cells, field: str, enum: Any, default: Any = None) -> Any:
    value = c.text(field)
    if value is None:
        if default is None:
            raise c.error(field, value, "required")
        return default
    try:
        return enum(value.strip().lower())
    except ValueError:
        raise c.error(field, value, f"expected one of {', '.join(m.value for m in enum)}") from None


class _Builder:
    def __init__(self, opts: _Options, base: Book | None) -> None:
        self.opts = opts
        self.base = base
        self.invoices: dict[str, _Invoice] = {}
        self.transactions: dict[str, Transaction] = {}
        self.customers: dict[str, Customer] = {}
        self.first_seen: dict[str, datetime] = {}
        self.known_invoices = {i.id: i for i in base.invoices} if base is not None else {}
        self.known_subs = set(base.subscription_index) if base is not None else set()

    def seen(self, customer_id: str, at: datetime) -> None:
        first = self.first_seen.get(customer_id)
        self.first_seen[customer_id] = at if first is None else min(first, at)

    def add(self, c: Cells) -> None:
        match self.opts.kind:
            case "invoice_lines":
                self._line(c)
            case "payments":
                self._payment(c)
            case "customers":
                self._customer(c)

    def _line(self, c: Cells) -> None:
        invoice_id = c.required_text("invoice_id")
        customer = c.required_text("customer_id")
        currency = c.currency()
        issued = c.moment("issued_at", required=True)
        assert issued is not None
        status = _status(c, "status", InvoiceStatus)
        start = c.moment("period_start")
        end = c.moment("period_end", end=True)
        if (start is None) != (end is None):
            field = "period_end" if end is None else "period_start"
            raise c.error(field, None, "give both ends of the service period or neither")
        if start is not None and end is not None and end <= start:
            raise c.error("period_end", c.raw("period_end"), "must be after period_start")
        amount = c.decimal("amount", currency, required=True)
        assert amount is not None
        kind_text = c.text("kind")
        if kind_text is None:
            kind = LineKind.RECURRING if start is not None else LineKind.ONE_OFF
        else:
            kind = _status(c, "kind", LineKind)
            if kind is LineKind.RECURRING and start is None:
                raise c.error("period_start", None, "a recurring line needs its service period")
        discount = c.decimal("discount", currency) or Decimal(0)
        tax = c.decimal("tax", currency) or Decimal(0)
        if discount < 0 or (tax < 0 and amount >= 0):
            field = "discount" if discount < 0 else "tax"
            raise c.error(field, c.raw(field), "cannot be negative on a charge")
        if amount >= 0 and discount > amount:
            raise c.error("discount", c.raw("discount"), "exceeds the line amount")
        sub = c.text("subscription_id")
        draft = DraftLine(
            kind=kind,
            amount=amount,
            currency=currency,
            discount=discount,
            tax=tax,
            description=c.text("description") or "",
            quantity=c.count("quantity", 1),
            period_start=start,
            period_end=end,
            subscription_id=sub if sub in self.known_subs else None,
            product_id=None,
        )
        inv = self.invoices.get(invoice_id)
        if inv is None:
            paid_at = c.moment("paid_at")
            inv = _Invoice(
                row=c.row,
                customer_id=customer,
                currency=currency,
                issued_at=issued,
                status=status,
                due=c.day("due_date"),
                paid_at=paid_at if status is InvoiceStatus.PAID else None,
                number=c.text("number"),
            )
            self.invoices[invoice_id] = inv
        else:
            for field, mine, theirs in (
                ("customer_id", inv.customer_id, customer),
                ("currency", inv.currency, currency),
                ("issued_at", inv.issued_at, issued),
                ("status", inv.status, status),
            ):
                if mine != theirs:
                    raise c.error(field, c.raw(field), f"differs from row {inv.row} of the invoice")
        inv.lines.append(draft)
        self.seen(customer, issued)

    def _payment(self, c: Cells) -> None:
        tid = c.required_text("id")
        customer = c.required_text("customer_id")
        currency = c.currency()
        amount = c.decimal("amount", currency, required=True)
        assert amount is not None
        at = c.moment("at", required=True)
        assert at is not None
        kind = _status(c, "kind", TransactionKind, TransactionKind.PAYMENT)
        if amount < 0:
            # Exports often sign refunds instead of naming them.
            if c.text("kind") is not None and kind is TransactionKind.PAYMENT:
                raise c.error("amount", c.raw("amount"), "a payment cannot be negative")
            amount, kind = -amount, TransactionKind.REFUND
        if amount == 0:
            raise c.error("amount", c.raw("amount"), "must not be zero")
        invoice = c.text("invoice_id")
        if (
            invoice is not None
            and invoice not in self.invoices
            and invoice not in self.known_invoices
        ):
            raise c.error("invoice_id", invoice, "unknown invoice (import the invoices first)")
        try:
            t = Transaction(
                id=tid,
                customer_id=customer,
                kind=kind,
                status=_status(c, "status", TransactionStatus, TransactionStatus.SUCCEEDED),
                amount=Money(amount, currency),
                method=c.text("method") or "unknown",
                at=at,
                invoice_id=invoice,
            )
        except RowError:
            raise
        except ValidationError as e:
            raise c.error(e.field, e.value, e.reason) from None
        self.transactions[tid] = t
        self.seen(customer, at)

    def _customer(self, c: Cells) -> None:
        cid = c.required_text("id")
        registered = c.moment("registered_at", required=True)
        try:
            self.customers[cid] = Customer(
                id=cid,
                registered_at=registered,
                email=c.text("email"),
                name=c.text("name") or "",
                company=c.text("company"),
                phone=c.text("phone"),
                external_id=c.text("external_id"),
            )
        except ValidationError as e:
            raise c.error(e.field, e.value, e.reason) from None

    def book(
        self, errors: list[RowError], collect: bool, payments_from_paid_invoices: bool
    ) -> Book:
        invoices: dict[str, Invoice] = {}
        credits: list[CreditEntry] = []
        for invoice_id, inv in self.invoices.items():
            if inv.bad:
                continue
            try:
                charges, left = settle_credits(inv.lines)
                record = Invoice(
                    id=invoice_id,
                    customer_id=inv.customer_id,
                    currency=inv.currency,
                    issued_at=inv.issued_at,
                    due_date=inv.due or inv.issued_at.date(),
                    status=inv.status,
                    lines=tuple(build_lines(charges)),
                    number=inv.number,
                    paid_at=inv.paid_at,
                )
            except ValidationError as e:
                err = RowError(inv.row, self.opts.columns.get(e.field, e.field), e.value, e.reason)
                if not collect:
                    raise err from None
                errors.append(err)
                continue
            invoices[invoice_id] = record
            if left > 0 and inv.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
                credits.append(
                    CreditEntry(
                        id=f"{invoice_id}#balance",
                        customer_id=inv.customer_id,
                        amount=Money(left, inv.currency),
                        reason=f"negative total of invoice {inv.number or invoice_id}",
                        at=inv.issued_at,
                        invoice_id=invoice_id,
                    )
                )
        base = self.base
        transactions = dict(self.transactions)
        if payments_from_paid_invoices:
            settled = {t.invoice_id for t in transactions.values()}
            if base is not None:
                settled |= {t.invoice_id for t in base.transactions}
            for record in invoices.values():
                total = record.total
                if (
                    record.status is InvoiceStatus.PAID
                    and record.id not in settled
                    and total.amount > 0
                ):
                    tid = f"{record.id}#paid"
                    transactions[tid] = Transaction(
                        id=tid,
                        customer_id=record.customer_id,
                        kind=TransactionKind.PAYMENT,
                        status=TransactionStatus.SUCCEEDED,
                        amount=total,
                        method="invoice",
                        at=record.paid_at or record.issued_at,
                        invoice_id=record.id,
                    )
        customers = dict(self.customers)
        known = set(base.customer_index) if base is not None else set()
        for cid, first in self.first_seen.items():
            if cid not in customers and cid not in known:
                # A customer the export names without a customer table: known from its records.
                customers[cid] = Customer(id=cid, registered_at=first)

        def merged(old: Iterable[Any], new: Mapping[str, Any]) -> list[Any]:
            return [r for r in old if r.id not in new] + list(new.values())

        credit_map = {c.id: c for c in credits}
        return Book.of(
            customers=merged(base.customers if base else (), customers),
            products=base.products if base else (),
            plans=base.plans if base else (),
            subscriptions=base.subscriptions if base else (),
            invoices=merged(base.invoices if base else (), invoices),
            transactions=merged(base.transactions if base else (), transactions),
            credits=merged(base.credits if base else (), credit_map),
            fx=base.fx if base else None,
        )


def _run(
    header: list[str],
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    opts: _Options,
    base: Book | None,
    on_error: OnError,
    payments_from_paid_invoices: bool,
) -> ImportReport:
    if on_error not in ("raise", "collect"):
        raise ValidationError("on_error", on_error, "expected 'raise' or 'collect'")
    if base is not None and not isinstance(base, Book):
        raise ValidationError("book", base, "expected a revcrm Book")
    collect = on_error == "collect"
    opts.check_header(header)
    builder = _Builder(opts, base)
    errors: list[RowError] = []
    count = 0
    for number, values in rows:
        count += 1
        try:
            builder.add(opts.cells(number, values))
        except RowError as e:
            if not collect:
                raise
            errors.append(e)
            if opts.kind == "invoice_lines":
                # An invoice with a bad line is left out whole, never half-imported.
                invoice_id = values.get(opts.columns["invoice_id"])
                if isinstance(invoice_id, str) and invoice_id.strip() in builder.invoices:
                    builder.invoices[invoice_id.strip()].bad = True
                elif isinstance(invoice_id, str) and invoice_id.strip():
                    builder.invoices[invoice_id.strip()] = _bad_invoice(number)
    book = builder.book(errors, collect, payments_from_paid_invoices)
    return ImportReport(book=book, errors=tuple(errors), rows=count)


def _bad_invoice(row: int) -> _Invoice:
    inv = _Invoice(row, "", "", datetime.min, InvoiceStatus.VOID, None, None, None)
    inv.bad = True
    return inv


def _open(source: Any, encoding: str) -> tuple[IO[str], bool]:
    if isinstance(source, str | os.PathLike):
        try:
            return open(source, newline="", encoding=encoding), True
        except OSError as e:
            raise ValidationError("source", str(source), f"cannot open: {e.strerror}") from None
    if isinstance(source, io.TextIOBase) or hasattr(source, "read"):
        return source, False
    raise ValidationError("source", source, "expected a path or an open text file")


def read_csv(
    source: str | os.PathLike[str] | IO[str],
    *,
    kind: Kind,
    columns: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    timezone: Zone = None,
    amounts: Literal["major", "minor"] = "major",
    period_end_inclusive: bool = False,
    payments_from_paid_invoices: bool = False,
    on_error: OnError = "raise",
    book: Book | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> ImportReport:
    """Read invoice lines, payments or customers from a CSV file into a book.

    ``columns`` maps revcrm field names to the file's column names; ``defaults`` gives a
    field's value where the column is missing or empty (``{"status": "paid"}``).
    Currency codes may be lowercase. Dates and naive datetimes are read in ``timezone``
    (an IANA name; required when the file has any); ``amounts="minor"`` reads whole minor
    units (cents). ``period_end_inclusive=True`` reads a service period's end as its last
    day (the period ends when the next day starts). ``payments_from_paid_invoices=True``
    records a payment for every paid invoice no payment refers to. Records are added to
    ``book`` when given (a record with an id already there replaces it, so importing the
    same file twice changes nothing). A bad row raises :class:`RowError` (a
    ValidationError naming row and column); ``on_error="collect"`` leaves bad rows out
    (an invoice with a bad line whole) and returns them in the report.
    """
    opts = _Options(kind, columns, defaults, timezone, amounts, period_end_inclusive)
    handle, owned = _open(source, encoding)
    try:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            header = list(reader.fieldnames or [])
            rows = ((i + 2, row) for i, row in enumerate(reader))
            return _run(header, rows, opts, book, on_error, payments_from_paid_invoices)
        except (csv.Error, UnicodeDecodeError) as e:
            raise ValidationError(
                "source", f"line {reader.line_num}", f"not readable CSV: {e}"
            ) from None
    finally:
        if owned:
            handle.close()


def _frame_rows(frame: Any) -> tuple[list[str], Iterator[tuple[int, Mapping[str, Any]]]]:
    if hasattr(frame, "__arrow_c_stream__"):
        pa: Any
        try:
            pa = importlib.import_module("pyarrow")  # optional: only for Arrow tables
        except ImportError:
            pa = None
        if pa is not None:
            reader = pa.RecordBatchReader.from_stream(frame)
            names = list(reader.schema.names)

            def batches() -> Iterator[tuple[int, Mapping[str, Any]]]:
                i = 0
                for batch in reader:
                    for row in batch.to_pylist():
                        yield i, row
                        i += 1

            return names, batches()
    if hasattr(frame, "itertuples") and hasattr(frame, "columns"):
        names = [str(c) for c in frame.columns]

        def tuples() -> Iterator[tuple[int, Mapping[str, Any]]]:
            for i, values in enumerate(frame.itertuples(index=False, name=None)):
                yield i, dict(zip(names, (_scalar(v) for v in values), strict=True))

        return names, tuples()
    to_pandas = getattr(frame, "to_pandas", None)
    if callable(to_pandas):
        return _frame_rows(to_pandas())
    raise ValidationError(
        "frame", type(frame).__name__, "expected a pandas DataFrame or an Arrow table"
    )


def _scalar(value: Any) -> Any:
    """A pandas/numpy cell as a plain Python value (missing cells as None)."""
    if value is None or isinstance(value, str | Decimal | bool):
        return value
    try:
        if value != value:  # NaN, NaT
            return None
    except (TypeError, ValueError):
        return None  # pandas.NA refuses comparison
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


def from_frame(
    frame: Any,
    *,
    kind: Kind,
    columns: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    timezone: Zone = None,
    amounts: Literal["major", "minor"] = "major",
    period_end_inclusive: bool = False,
    payments_from_paid_invoices: bool = False,
    on_error: OnError = "raise",
    book: Book | None = None,
) -> ImportReport:
    """:func:`read_csv` over a pandas DataFrame or any Arrow table (``__arrow_c_stream__``:
    pyarrow, polars). Row numbers in errors are positions (0 for the first row). Money
    columns must be text, Decimal or integer (minor units), never float."""
    opts = _Options(kind, columns, defaults, timezone, amounts, period_end_inclusive)
    header, rows = _frame_rows(frame)
    return _run(header, rows, opts, book, on_error, payments_from_paid_invoices)
