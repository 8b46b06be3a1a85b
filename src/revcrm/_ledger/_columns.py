"""Invoice lines as columns: the input of the columnar MRR ledger.

:class:`LineColumns` holds the recurring invoice lines of the counted invoices (neither
void nor draft), one row per line, as numpy arrays with small string tables. Every figure
stays exact: ``net`` is an integer count of ``10 ** -scale`` units (``scale=2``: cents),
never a float; an amount that does not fit an int64 at the chosen scale is a
:class:`~revcrm.errors.ValidationError` (the caller may fall back to the ``Book`` path).

Times are int64 microseconds since 1970-01-01 UTC; a service period is ``[start, end)``.
``cycle`` gives each line's billing cycle where it is known (the line's subscription's
cycle at the line's start): ``k > 0`` months, :data:`UNKNOWN_CYCLE` (0) when it is not
known (a partial period is then a share of a one-month cycle),
:data:`DAY_CYCLE` (-1) for a cycle of days or weeks (365/12 days a month).
A row's stream is the line's subscription id, or ``f"{invoice_id}#{line_index}"`` when it
has none (exactly the keys ``_invoice_streams`` of the Decimal engine uses).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._checks import check_id
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._money import Money, check_currency
from revcrm._records import InvoiceStatus, LineKind
from revcrm.errors import ValidationError

if TYPE_CHECKING:
    from revcrm._book import Book
    from revcrm._subscription import Subscription

__all__ = [
    "DAY_CYCLE",
    "EPOCH",
    "MAX_MICROS",
    "MAX_SCALE",
    "MIN_MICROS",
    "UNKNOWN_CYCLE",
    "LineColumns",
    "LineRow",
    "book_cycles",
    "cycle_code",
    "line_cycle",
    "micros",
    "moment",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
#: The range of datetimes a timestamp may name (year 1 to year 9999, as ``datetime``).
MIN_MICROS: Final = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // _US
MAX_MICROS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // _US
#: The most decimal places ``net`` may carry (10**18 still fits an int64).
MAX_SCALE: Final = 18
_I64: Final = np.iinfo(np.int64)
#: ``cycle`` of a line whose billing cycle is not known (measured against one month).
UNKNOWN_CYCLE: Final = 0
#: ``cycle`` of a line billed every few days or weeks (its period at 365/12 days a month).
DAY_CYCLE: Final = -1
#: The longest cycle in months a line may name (100 years, as ``BillingCycle``).
MAX_CYCLE: Final = 1200

LineRow = tuple[str, str, str, datetime, datetime, Decimal]


def micros(at: datetime) -> int:
    """An aware datetime as microseconds since 1970-01-01 UTC."""
    return (at - EPOCH) // _US


def moment(us: int) -> datetime:
    """Microseconds since 1970-01-01 UTC as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=int(us))


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = array.view()
    view.flags.writeable = False
    return view


@attrs.frozen(eq=False, kw_only=True)
class LineColumns:
    """Recurring invoice lines of counted invoices (not void, not draft), one row per line."""

    customer_ids: tuple[str, ...]  # distinct customer ids; `customer` indexes into it
    customer: npt.NDArray[np.int32]
    stream_ids: tuple[str, ...]  # subscription id, or f"{invoice_id}#{line_index}" when none
    stream: npt.NDArray[np.int32]  # index into stream_ids
    currencies: tuple[str, ...]  # ISO 4217, upper case
    currency: npt.NDArray[np.int16]  # index into currencies
    start: npt.NDArray[np.int64]  # service period start, microseconds since 1970-01-01 UTC
    end: npt.NDArray[np.int64]  # service period end (exclusive), > start
    net: npt.NDArray[np.int64]  # line net amount (after discounts) in units of 10**-scale
    scale: int  # decimal places of `net` (0..18), e.g. 2 for cents
    # Billing cycle per line: months (> 0), UNKNOWN_CYCLE or DAY_CYCLE; None: all unknown.
    cycle: npt.NDArray[np.int32] | None = None

    def __len__(self) -> int:
        return int(self.net.shape[0])

    @property
    def cycles(self) -> npt.NDArray[np.int32]:
        """``cycle``, with :data:`UNKNOWN_CYCLE` for every line when none was given."""
        if self.cycle is None:
            return np.zeros(len(self), dtype=np.int32)
        return self.cycle

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_book(cls, book: Book) -> LineColumns:
        """The lines the Decimal engine's invoice source counts, in the book's order."""
        customers: dict[str, int] = {}
        streams: dict[str, int] = {}
        currencies: dict[str, int] = {}
        cust: list[int] = []
        strm: list[int] = []
        cur: list[int] = []
        start: list[int] = []
        end: list[int] = []
        nets: list[Decimal] = []
        for inv in book.invoices:
            if inv.status in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
                continue
            c = customers.setdefault(inv.customer_id, len(customers))
            k = currencies.setdefault(inv.currency, len(currencies))
            for idx, line in enumerate(inv.lines):
                if line.kind is not LineKind.RECURRING:
                    continue
                assert line.period_start is not None
                assert line.period_end is not None
                key = line.subscription_id or f"{inv.id}#{idx}"
                cust.append(c)
                strm.append(streams.setdefault(key, len(streams)))
                cur.append(k)
                start.append(micros(line.period_start))
                end.append(micros(line.period_end))
                nets.append(line.net.amount)
        scale = scale_for(nets, currencies)
        return cls._build(  # the book checked its ids and codes
            customer_ids=tuple(customers),
            stream_ids=tuple(streams),
            currencies=tuple(currencies),
            customer=np.array(cust, dtype=np.int32),
            stream=np.array(strm, dtype=np.int32),
            currency=np.array(cur, dtype=np.int16),
            start=np.array(start, dtype=np.int64),
            end=np.array(end, dtype=np.int64),
            net=scaled(nets, scale),
            scale=scale,
            cycle=book_cycles(book),
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        customer_ids: Sequence[str],
        stream_ids: Sequence[str],
        currencies: Sequence[str],
        customer: npt.ArrayLike,
        stream: npt.ArrayLike,
        currency: npt.ArrayLike,
        start: npt.ArrayLike,
        end: npt.ArrayLike,
        net: npt.ArrayLike,
        scale: int,
        cycle: npt.ArrayLike | None = None,
    ) -> LineColumns:
        """Validated columns; an array already of the right dtype is not copied.

        Every error is a ValidationError naming the field and, for an array, its first bad
        row (``end[12]``).
        """
        return cls._build(
            customer_ids=_ids(customer_ids, "customer_ids"),
            stream_ids=_ids(stream_ids, "stream_ids"),
            currencies=_codes(currencies),
            customer=customer,
            stream=stream,
            currency=currency,
            start=start,
            end=end,
            net=net,
            scale=scale,
            cycle=cycle,
        )

    @classmethod
    def _build(
        cls,
        *,
        customer_ids: tuple[str, ...],
        stream_ids: tuple[str, ...],
        currencies: tuple[str, ...],
        customer: npt.ArrayLike,
        stream: npt.ArrayLike,
        currency: npt.ArrayLike,
        start: npt.ArrayLike,
        end: npt.ArrayLike,
        net: npt.ArrayLike,
        scale: int,
        cycle: npt.ArrayLike | None = None,
    ) -> LineColumns:
        """:meth:`from_arrays` for id tables already checked (distinct, storable ids and
        currency codes: a reader's own); the arrays are checked all the same."""
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= MAX_SCALE:
            raise ValidationError("scale", scale, f"expected a whole number in 0..{MAX_SCALE}")
        cids, sids, curs = customer_ids, stream_ids, currencies
        arrays = {
            "customer": _int_array(customer, "customer", np.int32),
            "stream": _int_array(stream, "stream", np.int32),
            "currency": _int_array(currency, "currency", np.int16),
            "start": _int_array(start, "start", np.int64),
            "end": _int_array(end, "end", np.int64),
            "net": _int_array(net, "net", np.int64),
        }
        n = arrays["net"].shape[0]
        for name, arr in arrays.items():
            if arr.shape[0] != n:
                raise ValidationError(name, arr.shape[0], f"length differs from net's ({n})")
        for name, table in (("customer", cids), ("stream", sids), ("currency", curs)):
            _in_range(arrays[name], name, 0, len(table) - 1, f"an index into {name}s")
        _in_range(arrays["start"], "start", MIN_MICROS, MAX_MICROS, "a time in years 1..9999")
        _in_range(arrays["end"], "end", MIN_MICROS, MAX_MICROS, "a time in years 1..9999")
        _first_bad(arrays["end"] <= arrays["start"], arrays["end"], "end", "must be after start")
        cycles = None
        if cycle is not None:
            cycles = _int_array(cycle, "cycle", np.int32)
            if cycles.shape[0] != n:
                raise ValidationError("cycle", cycles.shape[0], f"length differs from net's ({n})")
            _in_range(cycles, "cycle", DAY_CYCLE, MAX_CYCLE, f"months (1..{MAX_CYCLE}), 0 or -1")
            cycles = _frozen(cycles)
        return cls(
            customer_ids=cids,
            stream_ids=sids,
            currencies=curs,
            customer=_frozen(arrays["customer"]),
            stream=_frozen(arrays["stream"]),
            currency=_frozen(arrays["currency"]),
            start=_frozen(arrays["start"]),
            end=_frozen(arrays["end"]),
            net=_frozen(arrays["net"]),
            scale=scale,
            cycle=cycles,
        )

    # -- reading back ---------------------------------------------------------------------

    def rows(self) -> Iterator[LineRow]:
        """Each line as ``(customer_id, stream_id, currency, start, end, net)`` (slow: for
        tests and debugging)."""
        unit = Decimal(1).scaleb(-self.scale)
        for i in range(len(self)):
            yield (
                self.customer_ids[int(self.customer[i])],
                self.stream_ids[int(self.stream[i])],
                self.currencies[int(self.currency[i])],
                moment(int(self.start[i])),
                moment(int(self.end[i])),
                Decimal(int(self.net[i])) * unit,
            )


# -- helpers (shared with revcrm.io's columnar reader) -------------------------------------


def cycle_code(cycle: BillingCycle | None) -> int:
    """A billing cycle as a ``cycle`` value: months, :data:`DAY_CYCLE` or unknown."""
    if cycle is None:
        return UNKNOWN_CYCLE
    if cycle.unit in (CycleUnit.MONTH, CycleUnit.YEAR):
        return int(cycle.length_in_months)
    return DAY_CYCLE


def book_cycles(book: Book) -> npt.NDArray[np.int32]:
    """``cycle`` for the lines :meth:`LineColumns.from_book` reads, in its order (the
    recurring lines of counted invoices)."""
    subs = book.subscription_index
    return np.array(
        [
            line_cycle(subs.get(line.subscription_id or ""), line.period_start)
            for inv in book.invoices
            if inv.status not in (InvoiceStatus.VOID, InvoiceStatus.DRAFT)
            for line in inv.lines
            if line.kind is LineKind.RECURRING
        ],
        dtype=np.int32,
    )


def line_cycle(sub: Subscription | None, start: datetime | None) -> int:
    """The billing cycle of a line of ``sub`` starting at ``start``: the subscription's
    cycle then (its first cycle for a line before it began); unknown without one."""
    if sub is None or start is None:
        return UNKNOWN_CYCLE
    state = sub.state_at(start)
    return cycle_code((state or sub.states[0]).cycle)


def scale_for(nets: Sequence[Decimal], currencies: Sequence[str] | dict[str, int]) -> int:
    """The smallest scale holding every amount exactly and every currency's minor units."""
    scale = max((Money.zero(c).minor_units for c in currencies), default=2)
    for d in nets:
        exponent = d.as_tuple().exponent
        assert isinstance(exponent, int)  # amounts are finite
        scale = max(scale, -exponent)
    if scale > MAX_SCALE:
        raise ValidationError("net", scale, f"more than {MAX_SCALE} decimal places")
    return scale


def scaled(nets: Sequence[Decimal], scale: int) -> npt.NDArray[np.int64]:
    """Exact integers at ``scale``; an amount beyond int64 is a ValidationError."""
    out = np.empty(len(nets), dtype=np.int64)
    for i, d in enumerate(nets):
        v = int(d.scaleb(scale))
        if not _I64.min <= v <= _I64.max:
            raise ValidationError(f"net[{i}]", d, f"does not fit an int64 at scale {scale}")
        out[i] = v
    return out


def _ids(values: Sequence[str], field: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValidationError(field, values, "expected a sequence of ids, not one string")
    out = tuple(values)
    for i, v in enumerate(out):
        check_id(v, f"{field}[{i}]")
    if len(set(out)) != len(out):
        seen: set[str] = set()
        for i, v in enumerate(out):
            if v in seen:
                raise ValidationError(f"{field}[{i}]", v, "repeats an earlier id")
            seen.add(v)
    return out


def _codes(values: Sequence[str]) -> tuple[str, ...]:
    out = _ids(values, "currencies")
    for i, v in enumerate(out):
        check_currency(v, f"currencies[{i}]")
    return out


def _int_array(value: npt.ArrayLike, field: str, dtype: type[np.signedinteger[Any]]) -> Any:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValidationError(field, arr.shape, "expected a one-dimensional array")
    if arr.dtype == dtype:
        return arr
    if arr.size == 0:
        return np.empty(0, dtype=dtype)
    if arr.dtype.kind not in "iu":
        raise ValidationError(field, str(arr.dtype), "expected an integer array")
    info = np.iinfo(dtype)
    bad = (arr < info.min) | (arr > info.max)
    _first_bad(bad, arr, field, f"does not fit {np.dtype(dtype).name}")
    return arr.astype(dtype)


def _in_range(arr: npt.NDArray[Any], field: str, low: int, high: int, what: str) -> None:
    if arr.size:
        _first_bad((arr < low) | (arr > high), arr, field, f"expected {what}")


def _first_bad(bad: npt.NDArray[np.bool_], arr: npt.NDArray[Any], field: str, reason: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise ValidationError(f"{field}[{i}]", arr[i].item(), reason)
