"""The ledger's cash entries as columns: successful payments and refunds, and credit-ledger
entries, each converted into the reporting currency at its own date (the UTC day of its
moment), in exact integer units.

One pass over the book's transactions and credit entries builds plain lists; the
conversion is one rate per distinct (currency, day) and one integer multiplication per
entry, vectorised (int64 while every product stays below :data:`~revcrm._ledger._fixed.LIMIT`,
Python ints past it). ``digits`` is the most decimal places among the amounts plus the
most among the rates used, so every converted amount is an exact integer: nothing is
rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._fixed import LIMIT, Units, norm, places, summable
from revcrm._ledger._rows import CashEntry, CashKind
from revcrm._money import EXACT_CONTEXT, FxRates
from revcrm._records import CreditEntry, Transaction, TransactionKind, TransactionStatus
from revcrm.errors import MissingRateError

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = [
    "KIND_CODES",
    "NO_METHOD",
    "CashColumns",
    "PeriodCash",
    "cash_columns",
    "cash_entries",
    "moment_us",
    "period_cash",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US: Final = 86_400_000_000
_EPOCH_ORDINAL: Final = _EPOCH.date().toordinal()
#: The kind column's integer codes (index into this tuple).
KIND_CODES: Final = (CashKind.PAYMENT, CashKind.REFUND, CashKind.CREDIT)
_PAYMENT, _REFUND, _CREDIT = 0, 1, 2
#: The ``method`` code of a credit entry (it has no payment method).
NO_METHOD: Final = -1


def moment_us(t: datetime) -> int:
    """Microseconds since 1970-01-01 UTC (exact: integer arithmetic on the timedelta)."""
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


@attrs.frozen(kw_only=True, eq=False)
class CashColumns:
    """Cash entries as parallel arrays, ordered by (customer, at, kind, id).

    ``customer`` indexes ``customer_ids``; ``kind`` indexes :data:`KIND_CODES`;
    ``currency`` indexes ``currencies``; ``amount`` (native, as recorded) and
    ``reporting`` (converted at the entry's own date into ``reporting_currency``) are
    units of ``10 ** -digits``; ``converted`` is False only for a credit entry without a
    rate on its day (credits are not cash: no figure converts them), whose ``reporting``
    is 0. ``method`` indexes ``methods`` (a payment's or refund's payment method), or is
    :data:`NO_METHOD` for a credit entry.
    """

    reporting_currency: str
    digits: int
    customer_ids: tuple[str, ...]
    currencies: tuple[str, ...]
    entry_ids: tuple[str, ...]
    invoice_ids: tuple[str | None, ...]
    customer: npt.NDArray[np.int64]
    at: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    currency: npt.NDArray[np.int64]
    amount: Units
    reporting: Units
    converted: npt.NDArray[np.bool_]
    methods: tuple[str, ...] = ()
    method: npt.NDArray[np.int64] = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.entry_ids)

    def rows(self) -> Iterator[CashEntry]:
        """The entries as :class:`CashEntry` rows (what a store keeps as a table)."""
        # Python lists, not one numpy scalar per element: an import builds every row.
        kinds = [k.value for k in KIND_CODES]
        customers, currencies, methods = self.customer_ids, self.currencies, self.methods
        columns = zip(
            self.entry_ids,
            self.customer.tolist(),
            self.at.tolist(),
            self.kind.tolist(),
            self.currency.tolist(),
            self.amount.tolist(),
            self.reporting.tolist(),
            self.converted.tolist(),
            self.invoice_ids,
            self.method.tolist(),
            strict=True,
        )
        for (
            entry,
            customer,
            at,
            kind,
            currency,
            amount,
            reporting,
            converted,
            invoice,
            m,
        ) in columns:
            yield CashEntry(
                entry_id=entry,
                customer_id=customers[customer],
                at=at,
                kind=kinds[kind],
                currency=currencies[currency],
                amount=int(amount),
                amount_reporting=int(reporting) if converted else None,
                digits=self.digits,
                invoice_id=invoice,
                method=None if m == NO_METHOD else methods[m],
            )


def _scaled(values: list[int], factor: list[int]) -> Units:
    """``values[i] * factor[i]`` exactly: int64 when every product fits, else Python ints."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    big_value = max(max(values), -min(values))
    big_factor = max(max(factor), -min(factor))
    # Each operand must fit int64 too: all-zero values times a huge factor have a zero
    # product bound, but the factor alone would overflow the int64 array.
    if big_value * big_factor < LIMIT and big_value < LIMIT and big_factor < LIMIT:
        return np.array(values, dtype=np.int64) * np.array(factor, dtype=np.int64)
    return norm(np.array(values, dtype=object) * np.array(factor, dtype=object))


def cash_columns(
    book: Book,
    currency: str,
    *,
    customer_ids: tuple[str, ...],
    through: int | None = None,
    since: int | None = None,
    credits: bool = True,
) -> CashColumns:
    """The cash entries of ``book`` (of the customers in ``customer_ids``), those in
    ``[since, through]`` (microseconds; either end open when None), converted into
    ``currency``; without the credit entries when ``credits`` is False.

    A payment or refund without a rate on its day is a
    :class:`~revcrm.errors.MissingRateError`, as every cash figure converts it.
    """
    return cash_entries(
        book.transactions,
        book.credits if credits else (),
        book.fx,
        currency,
        customer_ids=customer_ids,
        since=since,
        through=through,
    )


def cash_entries(
    transactions: Iterable[Transaction],
    credits: Iterable[CreditEntry],
    fx: FxRates,
    currency: str,
    *,
    customer_ids: tuple[str, ...] | None = None,
    since: int | None = None,
    through: int | None = None,
) -> CashColumns:
    """:func:`cash_columns` of any transactions and credit entries, converted with ``fx``;
    ``customer_ids`` None: every customer they name, in id order."""
    named = customer_ids is None
    index: dict[str, int] = (
        {} if customer_ids is None else {c: i for i, c in enumerate(customer_ids)}
    )
    raw: list[tuple[int, int, int, str, Decimal, str, str | None, str | None]] = []
    payment, succeeded = TransactionKind.PAYMENT, TransactionStatus.SUCCEEDED
    lo = -(2**63) if since is None else since
    hi = 2**63 if through is None else through
    epoch = _EPOCH
    for t in transactions:
        if t.status is not succeeded:
            continue
        d = t.at - epoch  # moment_us, inlined: this loop is every cash figure's cost
        at = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
        if not lo <= at <= hi:
            continue
        c = index.setdefault(t.customer_id, len(index)) if named else index.get(t.customer_id)
        if c is None:
            continue
        kind = _PAYMENT if t.kind is payment else _REFUND
        amount = t.amount
        raw.append((c, at, kind, t.id, amount.amount, amount.currency, t.invoice_id, t.method))
    for e in credits:
        at = moment_us(e.at)
        if not lo <= at <= hi:
            continue
        c = index.setdefault(e.customer_id, len(index)) if named else index.get(e.customer_id)
        if c is None:
            continue
        raw.append((c, at, _CREDIT, e.id, e.amount.amount, e.amount.currency, e.invoice_id, None))
    if customer_ids is None:
        # Customers in id order: renumber the first-seen codes.
        customer_ids = tuple(sorted(index))
        order = {c: i for i, c in enumerate(customer_ids)}
        renumber = [0] * len(index)
        for cid, i in index.items():
            renumber[i] = order[cid]
        raw = [(renumber[r[0]], *r[1:]) for r in raw]
    # (customer, at, kind, id) is unique, so the plain tuple order is the documented one.
    raw.sort()
    currencies = tuple(sorted({r[5] for r in raw} | {currency}))
    code = {c: i for i, c in enumerate(currencies)}
    methods = tuple(sorted({r[7] for r in raw if r[7] is not None}))
    method_code = {m: i for i, m in enumerate(methods)}
    # One rate per distinct (currency, day); a credit without one is left unconverted.
    keys = [(r[5], r[1] // _DAY_US) for r in raw]
    rates: dict[tuple[str, int], Decimal | None] = {}
    for key, r in zip(keys, raw, strict=True):
        if key in rates and (rates[key] is not None or r[2] == _CREDIT):
            continue
        day = date.fromordinal(_EPOCH_ORDINAL + key[1])
        try:
            rates[key] = fx.rate(key[0], currency, day)
        except MissingRateError:
            if r[2] != _CREDIT:
                raise
            rates[key] = None
    # Amounts repeat (prices): each distinct one is scaled once.
    distinct = {r[4] for r in raw}
    amount_places = max((places(v) for v in distinct), default=0)
    rate_places = max((places(r) for r in rates.values() if r is not None), default=0)
    digits = amount_places + rate_places
    ctx = EXACT_CONTEXT
    units_of = {v: int(v.scaleb(amount_places, context=ctx)) for v in distinct}
    rate_of = {
        k: 0 if r is None else int(r.scaleb(rate_places, context=ctx)) for k, r in rates.items()
    }
    amounts = [units_of[r[4]] for r in raw]
    rate_units = [rate_of[k] for k in keys]
    native = _scaled(amounts, [10**rate_places] * len(amounts))
    return CashColumns(
        reporting_currency=currency,
        digits=digits,
        customer_ids=customer_ids,
        currencies=currencies,
        entry_ids=tuple(r[3] for r in raw),
        invoice_ids=tuple(r[6] for r in raw),
        customer=np.array([r[0] for r in raw], dtype=np.int64),
        at=np.array([r[1] for r in raw], dtype=np.int64),
        kind=np.array([r[2] for r in raw], dtype=np.int64),
        currency=np.array([code[r[5]] for r in raw], dtype=np.int64),
        amount=native,
        reporting=_scaled(amounts, rate_units),
        converted=np.array([rates[k] is not None for k in keys], dtype=bool),
        methods=methods,
        method=np.array(
            [NO_METHOD if r[7] is None else method_code[r[7]] for r in raw], dtype=np.int64
        ),
    )


@attrs.frozen(kw_only=True, eq=False)
class PeriodCash:
    """Cash per period ``[edges[i], edges[i + 1])``: ``gross`` (successful payments) and
    ``refunds`` (successful refunds) in the reporting currency in units of
    ``10 ** -digits``, each entry converted at its own date; ``payments`` counts the
    payments."""

    digits: int
    gross: Units
    refunds: Units
    payments: npt.NDArray[np.int64]


def _bucket_sum(bucket: npt.NDArray[np.int64], values: Units, k: int) -> Units:
    v = summable(values)
    out: Units = np.zeros(k, dtype=np.int64 if v.dtype == np.int64 else object)
    if v.dtype != np.int64:
        out[:] = 0
    np.add.at(out, bucket, v)
    return norm(out)


def period_cash(cash: CashColumns, edges: Sequence[int]) -> PeriodCash:
    """The cash entries bucketed into the periods between consecutive ``edges``
    (microseconds, ascending): one ``searchsorted`` and one exact integer sum per kind."""
    k = max(len(edges) - 1, 0)
    bounds = np.array(edges, dtype=np.int64)
    if k == 0 or len(cash) == 0:
        zero = np.zeros(k, dtype=np.int64)
        return PeriodCash(digits=cash.digits, gross=zero, refunds=zero.copy(), payments=zero.copy())
    bucket = np.searchsorted(bounds, cash.at, side="right") - 1
    inside = (bucket >= 0) & (bucket < k)
    pay = inside & (cash.kind == _PAYMENT)
    ref = inside & (cash.kind == _REFUND)
    return PeriodCash(
        digits=cash.digits,
        gross=_bucket_sum(bucket[pay], cash.reporting[pay], k),
        refunds=_bucket_sum(bucket[ref], cash.reporting[ref], k),
        payments=np.bincount(bucket[pay], minlength=k).astype(np.int64),
    )
