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

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._fixed import LIMIT, Units, norm, places
from revcrm._ledger._rows import CashEntry, CashKind
from revcrm._money import EXACT_CONTEXT
from revcrm._records import TransactionKind
from revcrm.errors import MissingRateError

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = ["KIND_CODES", "CashColumns", "cash_columns", "moment_us"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US: Final = 86_400_000_000
_EPOCH_ORDINAL: Final = _EPOCH.date().toordinal()
#: The kind column's integer codes (index into this tuple).
KIND_CODES: Final = (CashKind.PAYMENT, CashKind.REFUND, CashKind.CREDIT)
_PAYMENT, _REFUND, _CREDIT = 0, 1, 2


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
    is 0.
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

    def __len__(self) -> int:
        return len(self.entry_ids)

    def rows(self) -> Iterator[CashEntry]:
        """The entries as :class:`CashEntry` rows (what a store keeps as a table)."""
        for i in range(len(self)):
            yield CashEntry(
                entry_id=self.entry_ids[i],
                customer_id=self.customer_ids[int(self.customer[i])],
                at=int(self.at[i]),
                kind=KIND_CODES[int(self.kind[i])].value,
                currency=self.currencies[int(self.currency[i])],
                amount=int(self.amount[i]),
                amount_reporting=int(self.reporting[i]) if self.converted[i] else None,
                digits=self.digits,
                invoice_id=self.invoice_ids[i],
            )


def _scaled(values: list[int], factor: list[int]) -> Units:
    """``values[i] * factor[i]`` exactly: int64 when every product fits, else Python ints."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    bound = max(max(values), -min(values)) * max(max(factor), -min(factor))
    if bound < LIMIT:
        return np.array(values, dtype=np.int64) * np.array(factor, dtype=np.int64)
    return norm(np.array(values, dtype=object) * np.array(factor, dtype=object))


def cash_columns(
    book: Book,
    currency: str,
    *,
    customer_ids: tuple[str, ...],
    through: int | None = None,
) -> CashColumns:
    """The cash entries of ``book`` (of the customers in ``customer_ids``), those at or
    before ``through`` (microseconds) when given, converted into ``currency``.

    A payment or refund without a rate on its day is a
    :class:`~revcrm.errors.MissingRateError`, as every cash figure converts it.
    """
    index: Mapping[str, int] = {c: i for i, c in enumerate(customer_ids)}
    raw: list[tuple[int, int, int, str, Decimal, str, str | None]] = []
    payment = TransactionKind.PAYMENT
    for t in book.transactions:
        if not t.succeeded:
            continue
        c = index.get(t.customer_id)
        if c is None:
            continue
        at = moment_us(t.at)
        if through is not None and at > through:
            continue
        kind = _PAYMENT if t.kind is payment else _REFUND
        raw.append((c, at, kind, t.id, t.amount.amount, t.amount.currency, t.invoice_id))
    for e in book.credits:
        c = index.get(e.customer_id)
        if c is None:
            continue
        at = moment_us(e.at)
        if through is not None and at > through:
            continue
        raw.append((c, at, _CREDIT, e.id, e.amount.amount, e.amount.currency, e.invoice_id))
    raw.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    currencies = tuple(sorted({r[5] for r in raw} | {currency}))
    code = {c: i for i, c in enumerate(currencies)}
    # One rate per distinct (currency, day); a credit without one is left unconverted.
    keys = [(r[5], r[1] // _DAY_US) for r in raw]
    rates: dict[tuple[str, int], Decimal | None] = {}
    for key, r in zip(keys, raw, strict=True):
        if key in rates and (rates[key] is not None or r[2] == _CREDIT):
            continue
        day = date.fromordinal(_EPOCH_ORDINAL + key[1])
        try:
            rates[key] = book.fx.rate(key[0], currency, day)
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
    )
