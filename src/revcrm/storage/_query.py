"""Query options and result values shared by every storage backend.

Everything here is a small frozen value: a listing is asked for with keyword-only options
(validated by :class:`CustomerQuery` and :class:`RecordQuery`), and answered with a
:class:`Page` whose ``next_cursor`` is an opaque keyset cursor.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

import attrs

from revcrm._checks import as_enum
from revcrm._money import EXACT_CONTEXT, Money, check_currency
from revcrm._records import CreditEntry, Customer, Invoice, Transaction
from revcrm._subscription import Subscription
from revcrm._time import as_moment
from revcrm.crm._services import CustomerStatus
from revcrm.errors import ValidationError
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig

__all__ = [
    "MAX_LIMIT",
    "CashMonth",
    "CustomerFlow",
    "CustomerQuery",
    "CustomerRow",
    "CustomerSort",
    "CustomerSummary",
    "Direction",
    "ImportResult",
    "Page",
    "Period",
    "RecordQuery",
    "StoreDashboard",
    "TrendMonth",
    "Versioned",
]

_T = TypeVar("_T")

#: Largest page any listing returns; bigger exports page through the cursor.
MAX_LIMIT: Final = 1000


class Direction(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


class CustomerSort(enum.StrEnum):
    """Columns of the customer list; every sort breaks ties by customer id."""

    ID = "id"
    NAME = "name"  # case-folded name
    EMAIL = "email"  # case-folded email, customers without one first
    MRR = "mrr"
    LTV = "ltv"
    TOTAL_PAID = "total_paid"
    CREDIT_BALANCE = "credit_balance"
    ACTIVE_SERVICES = "active_services"
    CREATED = "created"  # registered_at
    LAST_PAYMENT = "last_payment"  # customers who never paid first


# Named converters (the attrs mypy plugin needs named functions to see accepted types).
def _start(value: object) -> datetime:
    return as_moment(value, "start")


def _end(value: object) -> datetime:
    return as_moment(value, "end")


def _as_of(value: object) -> datetime:
    return as_moment(value, "as_of")


def _optional(value: object, field: str) -> datetime | None:
    return None if value is None else as_moment(value, field)


def _registered_from(value: object) -> datetime | None:
    return _optional(value, "registered_from")


def _registered_before(value: object) -> datetime | None:
    return _optional(value, "registered_before")


def _since(value: object) -> datetime | None:
    return _optional(value, "since")


def _until(value: object) -> datetime | None:
    return _optional(value, "until")


def _limit(_i: object, _a: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValidationError("limit", value, f"a whole number from 1 to {MAX_LIMIT}")


def _optional_text(field: str) -> Any:
    def check(_i: object, _a: object, value: object) -> None:
        if value is not None and not isinstance(value, str):
            raise ValidationError(field, value, "expected a string")

    return check


def _ids(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValidationError("customer_ids", value, "a collection of ids, not one string")
    out = frozenset(value)
    for v in out:
        if not isinstance(v, str):
            raise ValidationError("customer_ids", v, "ids are strings")
    return out


def _search(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("search", value, "expected a string")
    if "\x00" in value:
        raise ValidationError("search", value, "NUL characters are not searchable")
    needle = value.strip().casefold()
    return needle or None


def _currency(value: object) -> str:
    return check_currency(value)


def _status(value: object) -> CustomerStatus | None:
    return None if value is None else as_enum(CustomerStatus, value, "status")


def _segment(value: object) -> Segment | None:
    return None if value is None else as_enum(Segment, value, "segment")


def _segment_config(_i: object, _a: object, value: object) -> None:
    if not isinstance(value, SegmentConfig):
        raise ValidationError("segment_config", value, "expected a SegmentConfig")


def _sort(value: object) -> CustomerSort:
    return as_enum(CustomerSort, value, "sort")


def _direction(value: object) -> Direction:
    return as_enum(Direction, value, "direction")


@attrs.frozen(kw_only=True)
class Period:
    """A half-open interval ``[start, end)`` of aware UTC moments (dates mean 00:00 UTC)."""

    start: datetime = attrs.field(converter=_start)
    end: datetime = attrs.field(converter=_end)

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise ValidationError("end", self.end, "must be after start")

    @classmethod
    def of(cls, start: date | datetime, end: date | datetime) -> Period:
        return cls(start=start, end=end)

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


@attrs.frozen(kw_only=True)
class Page(Generic[_T]):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: tuple[_T, ...]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[_T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@attrs.frozen(kw_only=True)
class Versioned(Generic[_T]):
    """A record with the version a store holds it at (1 after the first write)."""

    record: _T
    version: int


@attrs.frozen(kw_only=True)
class ImportResult:
    """What an import or batch upsert did: records inserted, changed, and already equal."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
        )

    @property
    def written(self) -> int:
        return self.inserted + self.updated


# -- cursors ---------------------------------------------------------------------------------

SortValue = str | int | Decimal | datetime


def _encode_value(value: SortValue) -> list[str]:
    if isinstance(value, bool):
        raise TypeError("bool is not a sort value")
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, Decimal):
        # Canonical, so every backend issues the same cursor for the same amount.
        return ["d", str(value.normalize(context=EXACT_CONTEXT))]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    return ["s", value]


def _decode_value(tag: str, text: str) -> SortValue:
    match tag:
        case "i":
            return int(text)
        case "d":
            return Decimal(text)
        case "t":
            return as_moment(datetime.fromisoformat(text), "cursor")
        case "s":
            return text
    raise ValueError(tag)


def encode_cursor(scope: str, value: SortValue, key: str) -> str:
    """An opaque keyset cursor: the last row's sort value and id, bound to its query."""
    raw = json.dumps([scope, *_encode_value(value), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> tuple[SortValue, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        got_scope, tag, text, key = data
        if not isinstance(text, str) or not isinstance(key, str):
            raise TypeError("cursor fields")
        value = _decode_value(tag, text)
    except (ValueError, TypeError, UnicodeError, ArithmeticError, ValidationError):
        raise ValidationError("cursor", cursor, "not a cursor this store issued") from None
    if got_scope != scope:
        raise ValidationError("cursor", cursor, "belongs to a different query; start over")
    return value, key


def _scope(*parts: object) -> str:
    # Bind a cursor to the query that issued it: a short digest of every option but the
    # cursor and the limit, so a cursor reused with other filters fails loudly.
    text = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen(kw_only=True)
class CustomerQuery:
    """Options of the customer list: money columns at ``as_of`` in ``currency``.

    ``search`` is a case-insensitive (Unicode case-folded) substring of the name, email or
    username. Filters combine with AND. Amounts in other currencies are converted at the
    rate on ``as_of``'s date (see docs/storage.md).

    ``status`` keeps the customers whose :func:`revcrm.crm.customer_status` at ``as_of``
    is that status; ``product_id`` those with a service active at ``as_of``
    (:func:`revcrm.crm.is_active_service`) on a plan of that product; ``segment`` the
    members at ``as_of`` of that built-in segment under ``segment_config`` (as
    :meth:`revcrm.segments.Segmentation.customers_in`, so never a customer registered
    after ``as_of``).
    """

    as_of: datetime = attrs.field(converter=_as_of)
    currency: str = attrs.field(converter=_currency)
    search: str | None = attrs.field(default=None, converter=_search)
    owner_id: str | None = attrs.field(default=None, validator=_optional_text("owner_id"))
    referral_source: str | None = attrs.field(
        default=None, validator=_optional_text("referral_source")
    )
    registered_from: datetime | None = attrs.field(default=None, converter=_registered_from)
    registered_before: datetime | None = attrs.field(default=None, converter=_registered_before)
    paying: bool | None = None
    has_active_services: bool | None = None
    customer_ids: frozenset[str] | None = attrs.field(default=None, converter=_ids)
    status: CustomerStatus | None = attrs.field(default=None, converter=_status)
    product_id: str | None = attrs.field(default=None, validator=_optional_text("product_id"))
    segment: Segment | None = attrs.field(default=None, converter=_segment)
    segment_config: SegmentConfig = attrs.field(default=DEFAULT_CONFIG, validator=_segment_config)
    sort: CustomerSort = attrs.field(default=CustomerSort.NAME, converter=_sort)
    direction: Direction = attrs.field(default=Direction.ASC, converter=_direction)
    limit: int = attrs.field(default=50, validator=_limit)
    cursor: str | None = attrs.field(default=None, validator=_optional_text("cursor"))

    def __attrs_post_init__(self) -> None:
        for name in ("paying", "has_active_services"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                raise ValidationError(name, v, "expected True, False or None")

    @property
    def scope(self) -> str:
        ids = sorted(self.customer_ids) if self.customer_ids is not None else None
        return _scope(
            "customers",
            self.as_of.isoformat(),
            self.currency,
            self.search,
            self.owner_id,
            self.referral_source,
            self.registered_from,
            self.registered_before,
            self.paying,
            self.has_active_services,
            ids,
            self.status,
            self.product_id,
            self.segment,
            _config_key(self.segment_config) if self.segment is not None else None,
            self.sort,
            self.direction,
        )

    def after(self) -> tuple[SortValue, str] | None:
        """The decoded cursor: the sort value and id the page starts after."""
        return None if self.cursor is None else decode_cursor(self.cursor, self.scope)


def _config_key(config: SegmentConfig) -> str:
    # Precedence never changes membership, only the thresholds do.
    return (
        f"{config.active_payment_days}/{config.at_risk_cancellation_days}/"
        f"{config.new_customer_days}"
    )


@attrs.frozen(kw_only=True)
class RecordQuery:
    """Options of the plain listings: ordered by (time, id), or by id for undated records.

    ``since`` is inclusive and ``until`` exclusive; ``status`` and ``kind`` filter invoices
    and transactions by their enum value.
    """

    kind_name: str  # the repository, part of the cursor's scope
    customer_id: str | None = attrs.field(default=None, validator=_optional_text("customer_id"))
    since: datetime | None = attrs.field(default=None, converter=_since)
    until: datetime | None = attrs.field(default=None, converter=_until)
    status: str | None = attrs.field(default=None, validator=_optional_text("status"))
    kind: str | None = attrs.field(default=None, validator=_optional_text("kind"))
    direction: Direction = attrs.field(default=Direction.ASC, converter=_direction)
    limit: int = attrs.field(default=100, validator=_limit)
    cursor: str | None = attrs.field(default=None, validator=_optional_text("cursor"))

    @property
    def scope(self) -> str:
        return _scope(
            self.kind_name,
            self.customer_id,
            self.since,
            self.until,
            self.status,
            self.kind,
            self.direction,
        )

    def after(self) -> tuple[SortValue, str] | None:
        return None if self.cursor is None else decode_cursor(self.cursor, self.scope)


# -- results ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CustomerRow:
    """One line of the customer list, every figure at the query's ``as_of``.

    * ``mrr``: the customer's MRR under the store's policy, converted at ``as_of``'s rate;
    * ``total_paid``: successful payments up to ``as_of``;
    * ``ltv``: historical value, net payments (successful payments minus refunds);
    * ``credit_balance``: the credit ledger in the query currency (never converted);
    * ``active_services``: subscriptions active or past due at ``as_of``;
    * ``last_payment_at``: the latest successful payment up to ``as_of``.
    """

    customer: Customer
    mrr: Money
    ltv: Money
    total_paid: Money
    credit_balance: Money
    active_services: int
    last_payment_at: datetime | None

    @property
    def id(self) -> str:
        return self.customer.id


@attrs.frozen(kw_only=True)
class CustomerSummary:
    """One customer's full billing picture: the list row and every record it owns."""

    row: CustomerRow
    subscriptions: tuple[Subscription, ...]
    invoices: tuple[Invoice, ...]
    transactions: tuple[Transaction, ...]
    credits: tuple[CreditEntry, ...]


@attrs.frozen(kw_only=True)
class CashMonth:
    """Cash of ``[start, end)``: successful payments and refunds converted at their dates."""

    start: datetime
    end: datetime
    gross: Money
    refunds: Money
    net: Money
    payments: int


@attrs.frozen(kw_only=True)
class CustomerFlow:
    """Paying customers (MRR above zero) at ``start`` and at ``end``, and the flow between."""

    start: datetime
    end: datetime
    at_start: int
    at_end: int
    retained: int
    gained: int
    lost: int


@attrs.frozen(kw_only=True)
class TrendMonth:
    start: datetime
    end: datetime
    cash: CashMonth
    mrr: Money  # at the close of the month; at ``as_of`` for the current month


@attrs.frozen(kw_only=True)
class StoreDashboard:
    """The dashboard figures a store computes where the data lives (see docs/storage.md)."""

    as_of: datetime
    currency: str
    mrr: Money
    arr: Money
    paying_customers: int
    revenue_this_month: CashMonth
    revenue_last_month: CashMonth
    flow_this_month: CustomerFlow
    trend: tuple[TrendMonth, ...]
