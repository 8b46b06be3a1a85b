"""The ledger's invoice rows as columns: every invoice issued (by a moment), its status,
when it was paid, its total (native, and converted into the reporting currency at the
UTC day of its issue, in exact integer units) and the rules' answers the facts read
(when it ordered, where it was unpaid, where it was overdue).

The rules are evaluated here, never restated: ``ordered_at`` is
:func:`~revcrm._ledger._services.first_invoiced_at` of the invoice alone (the customer's
"ordered by invoice" moment is the least of its invoices'); ``unpaid_start``/``unpaid_end``
is the invoice's :func:`~revcrm._crm_services.invoice_unpaid_span` (where
:func:`~revcrm._crm_services.invoice_unpaid` holds), and the overdue table holds the
pieces of :func:`~revcrm._ledger._status.overdue_intervals` (its
:func:`~revcrm._crm_services.invoice_overdue_span` in UTC), so the number of a
customer's invoices overdue at a moment is the number of its pieces containing it.

The conversion follows :mod:`revcrm._ledger._cash`: one rate per distinct (currency,
day), ``digits`` = the most decimal places among the totals plus the most among the
rates used, so every converted total is an exact integer (nothing is rounded). An
invoice without a rate on its issue day is kept unconverted (``converted`` False,
``reporting`` 0): only a figure that needs its converted total raises the
:class:`~revcrm.errors.MissingRateError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._crm_services import invoice_unpaid_span
from revcrm._ledger._cash import _scaled, moment_us
from revcrm._ledger._fixed import Units, places
from revcrm._ledger._services import OPEN, first_invoiced_at
from revcrm._ledger._status import overdue_intervals
from revcrm._money import EXACT_CONTEXT, FxRates
from revcrm._records import Invoice, InvoiceStatus
from revcrm.errors import MissingRateError

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = [
    "STATUS_CODES",
    "InvoiceColumns",
    "InvoiceEntry",
    "InvoiceOverdue",
    "invoice_columns",
    "invoice_entries",
    "invoice_total",
]

#: The status column's integer codes (index into this tuple).
STATUS_CODES: Final = tuple(InvoiceStatus)
_DAY_US: Final = 86_400_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = _EPOCH.date().toordinal()


@attrs.frozen(kw_only=True)
class InvoiceEntry:
    """One invoice of the ledger: issued at ``issued_at``, ``status`` (its
    :class:`~revcrm._records.InvoiceStatus` value), paid at ``paid_at`` (None: no payment
    date); ``total`` (tax included, native) and ``total_reporting`` (converted at the
    issue day; None without a rate then) in units of ``10 ** -digits``; ``ordered_at``:
    from when it makes its customer one who ordered (None: never, a draft or void)."""

    invoice_id: str
    customer_id: str
    issued_at: int
    status: str
    paid_at: int | None
    currency: str
    total: int
    total_reporting: int | None
    digits: int
    ordered_at: int | None


@attrs.frozen(kw_only=True)
class InvoiceOverdue:
    """Invoice ``invoice_id`` of ``customer_id`` is overdue over ``[start, end)`` (``end``
    None: open)."""

    invoice_id: str
    customer_id: str
    start: int
    end: int | None


@attrs.frozen(kw_only=True, eq=False)
class InvoiceColumns:
    """Invoices as parallel arrays, ordered by (customer, issued_at, id).

    ``customer`` indexes ``customer_ids``; ``status`` indexes :data:`STATUS_CODES`;
    ``currency`` indexes ``currencies``; moments are microseconds, ``paid_at`` and
    ``ordered_at`` :data:`~revcrm._ledger._services.OPEN` for None. ``total`` (native)
    and ``reporting`` (converted at the issue day into ``reporting_currency``) are units
    of ``10 ** -digits``; ``converted`` is False for an invoice without a rate on its
    issue day, whose ``reporting`` is 0.

    ``unpaid_start``/``unpaid_end``: the invoice is unpaid over ``[unpaid_start,
    unpaid_end)`` (``unpaid_end`` ``OPEN``: no end); both ``OPEN`` when it never is.

    The overdue table: ``overdue_row[k]`` (a row of these columns) is overdue over
    ``[overdue_start[k], overdue_end[k])`` (``OPEN``: no end), ordered by row then start.
    """

    reporting_currency: str
    digits: int
    customer_ids: tuple[str, ...]
    currencies: tuple[str, ...]
    invoice_ids: tuple[str, ...]
    customer: npt.NDArray[np.int64]
    issued_at: npt.NDArray[np.int64]
    status: npt.NDArray[np.int64]
    paid_at: npt.NDArray[np.int64]
    currency: npt.NDArray[np.int64]
    total: Units
    reporting: Units
    converted: npt.NDArray[np.bool_]
    ordered_at: npt.NDArray[np.int64]
    unpaid_start: npt.NDArray[np.int64]
    unpaid_end: npt.NDArray[np.int64]
    overdue_row: npt.NDArray[np.int64]
    overdue_start: npt.NDArray[np.int64]
    overdue_end: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.invoice_ids)

    def bounds(self) -> list[int]:
        """``bounds[i]:bounds[i + 1]`` are the rows of ``customer_ids[i]``."""
        out: list[int] = np.searchsorted(
            self.customer, np.arange(len(self.customer_ids) + 1)
        ).tolist()
        return out

    def issue_day(self, row: int) -> date:
        """The UTC day of the invoice's issue (its conversion date)."""
        return date.fromordinal(_EPOCH_ORDINAL + int(self.issued_at[row]) // _DAY_US)

    def unpaid_at(self, t: int) -> npt.NDArray[np.bool_]:
        """Per row, whether the invoice is unpaid at ``t`` (microseconds)."""
        out: npt.NDArray[np.bool_] = (self.unpaid_start <= t) & (t < self.unpaid_end)
        return out

    def overdue_at(self, t: int) -> npt.NDArray[np.int64]:
        """Per customer, how many of its invoices are overdue at ``t`` (microseconds)."""
        inside = (self.overdue_start <= t) & (t < self.overdue_end)
        rows = self.overdue_row[inside]
        out: npt.NDArray[np.int64] = np.bincount(
            self.customer[rows], minlength=len(self.customer_ids)
        ).astype(np.int64)
        return out

    def ordered_by(self, t: int) -> npt.NDArray[np.bool_]:
        """Per customer, whether it ordered by invoice by ``t`` (microseconds)."""
        first = np.full(len(self.customer_ids), OPEN, dtype=np.int64)
        np.minimum.at(first, self.customer, self.ordered_at)
        out: npt.NDArray[np.bool_] = (first != OPEN) & (first <= t)
        return out

    def rows(self) -> Iterator[InvoiceEntry]:
        """The invoices as :class:`InvoiceEntry` rows (what a store keeps as a table)."""

        def opt(v: int) -> int | None:
            return None if v == OPEN else v

        for i in range(len(self)):
            yield InvoiceEntry(
                invoice_id=self.invoice_ids[i],
                customer_id=self.customer_ids[int(self.customer[i])],
                issued_at=int(self.issued_at[i]),
                status=STATUS_CODES[int(self.status[i])].value,
                paid_at=opt(int(self.paid_at[i])),
                currency=self.currencies[int(self.currency[i])],
                total=int(self.total[i]),
                total_reporting=int(self.reporting[i]) if self.converted[i] else None,
                digits=self.digits,
                ordered_at=opt(int(self.ordered_at[i])),
            )

    def overdue_rows(self) -> Iterator[InvoiceOverdue]:
        """The overdue table as :class:`InvoiceOverdue` rows."""
        for k in range(len(self.overdue_row)):
            i = int(self.overdue_row[k])
            end = int(self.overdue_end[k])
            yield InvoiceOverdue(
                invoice_id=self.invoice_ids[i],
                customer_id=self.customer_ids[int(self.customer[i])],
                start=int(self.overdue_start[k]),
                end=None if end == OPEN else end,
            )


def invoice_total(invoice: Invoice) -> Decimal:
    """``invoice.total``'s amount: the same exact sum of the lines' nets and taxes, added
    as Decimals rather than as one Money per line (the builder's main cost otherwise)."""
    total = Decimal(0)
    add, sub = EXACT_CONTEXT.add, EXACT_CONTEXT.subtract
    for line in invoice.lines:
        total = add(total, line.amount.amount)
        if line.discount is not None:
            total = sub(total, line.discount.amount)
        if line.tax is not None:
            total = add(total, line.tax.amount)
    return total


def _moments(values: list[int]) -> npt.NDArray[np.int64]:
    return np.array(values, dtype=np.int64)


def invoice_columns(
    book: Book, currency: str, *, customer_ids: tuple[str, ...], through: int | None = None
) -> InvoiceColumns:
    """The invoices of ``book`` (of the customers in ``customer_ids``) issued at or before
    ``through`` (microseconds; None: all), totals converted into ``currency``."""
    return invoice_entries(
        book.invoices, book.fx, currency, customer_ids=customer_ids, through=through
    )


def invoice_entries(
    invoices: Iterable[Invoice],
    fx: FxRates,
    currency: str,
    *,
    customer_ids: tuple[str, ...],
    through: int | None = None,
) -> InvoiceColumns:
    """:func:`invoice_columns` of any invoices, converted with ``fx``."""
    index = {c: i for i, c in enumerate(customer_ids)}
    hi = 2**63 if through is None else through
    epoch = _EPOCH
    picked: list[tuple[int, int, str, int]] = []
    listed = invoices if isinstance(invoices, list | tuple) else list(invoices)
    for k, inv in enumerate(listed):
        c = index.get(inv.customer_id)
        if c is None:
            continue
        d = inv.issued_at - epoch  # moment_us, inlined: one per invoice of the book
        at = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
        if at <= hi:
            picked.append((c, at, inv.id, k))
    # (customer, issued_at, id) is unique (ids are), so the plain tuple order is the documented one.
    picked.sort()
    raw = [(r[0], r[1], r[2], listed[r[3]]) for r in picked]
    totals = [invoice_total(r[3]) for r in raw]
    currencies = tuple(sorted({r[3].currency for r in raw} | {currency}))
    code = {c: i for i, c in enumerate(currencies)}
    keys = [(r[3].currency, r[1] // _DAY_US) for r in raw]
    rates: dict[tuple[str, int], Decimal | None] = {}
    for key in keys:
        if key not in rates:
            try:
                rates[key] = fx.rate(key[0], currency, date.fromordinal(_EPOCH_ORDINAL + key[1]))
            except MissingRateError:
                rates[key] = None
    # Totals repeat (prices): each distinct one is scaled once.
    distinct = set(totals)
    amount_places = max((places(v) for v in distinct), default=0)
    rate_places = max((places(r) for r in rates.values() if r is not None), default=0)
    ctx = EXACT_CONTEXT
    units_of = {v: int(v.scaleb(amount_places, context=ctx)) for v in distinct}
    units = [units_of[v] for v in totals]
    rate_of = {
        k: 0 if r is None else int(r.scaleb(rate_places, context=ctx)) for k, r in rates.items()
    }
    status_code = {s: i for i, s in enumerate(STATUS_CODES)}
    paid, ordered, u_start, u_end = [], [], [], []
    o_row: list[int] = []
    o_start: list[int] = []
    o_end: list[int] = []
    for i, (_, at, _, inv) in enumerate(raw):
        paid.append(OPEN if inv.paid_at is None else moment_us(inv.paid_at))
        first = first_invoiced_at((inv,))
        ordered.append(
            OPEN if first is None else at if first == inv.issued_at else moment_us(first)
        )
        unpaid = invoice_unpaid_span(inv)
        u_start.append(
            OPEN if unpaid is None else at if unpaid[0] == inv.issued_at else moment_us(unpaid[0])
        )
        u_end.append(OPEN if unpaid is None or unpaid[1] is None else moment_us(unpaid[1]))
        for lo, end in overdue_intervals(inv):
            o_row.append(i)
            o_start.append(moment_us(lo))
            o_end.append(OPEN if end is None else moment_us(end))
    return InvoiceColumns(
        reporting_currency=currency,
        digits=amount_places + rate_places,
        customer_ids=customer_ids,
        currencies=currencies,
        invoice_ids=tuple(r[2] for r in raw),
        customer=_moments([r[0] for r in raw]),
        issued_at=_moments([r[1] for r in raw]),
        status=_moments([status_code[r[3].status] for r in raw]),
        paid_at=_moments(paid),
        currency=_moments([code[r[3].currency] for r in raw]),
        total=_scaled(units, [10**rate_places] * len(units)),
        reporting=_scaled(units, [rate_of[k] for k in keys]),
        converted=np.array([rates[k] is not None for k in keys], dtype=bool),
        ordered_at=_moments(ordered),
        unpaid_start=_moments(u_start),
        unpaid_end=_moments(u_end),
        overdue_row=_moments(o_row),
        overdue_start=_moments(o_start),
        overdue_end=_moments(o_end),
    )
