"""Query options and result values shared by every storage backend.

Everything here is a small frozen value: a listing is asked for with keyword-only options
(validated by :class:`CustomerQuery` and :class:`RecordQuery`), and answered with a
:class:`Page` whose ``next_cursor`` is an opaque keyset cursor.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Generic, Required, TypedDict, TypeVar, Unpack

import attrs

from revcrm._checks import as_enum, storable_text
from revcrm._ledger._facts import FactColumns
from revcrm._ledger._fixed import to_decimal
from revcrm._ledger._services import OPEN
from revcrm._money import EXACT_CONTEXT, Money, check_currency
from revcrm._records import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription
from revcrm._time import as_moment
from revcrm.crm._services import CustomerStatus
from revcrm.errors import ValidationError

# The dashboard's types are the metrics' (one Dashboard from every store and the pure
# functions); the storage names stay as aliases.
from revcrm.metrics._dashboard import CashRevenue as CashMonth
from revcrm.metrics._dashboard import Dashboard as StoreDashboard
from revcrm.metrics._dashboard import MonthTrend as TrendMonth
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig

__all__ = [
    "MAX_LIMIT",
    "CashMonth",
    "CustomerFlow",
    "CustomerOptions",
    "CustomerPages",
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
    "cursor_as_of",
    "cursor_secret",
    "query_as_of",
    "read_ids",
    "read_period",
    "read_records",
    "read_text",
    "row_of",
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


def read_text(value: object, field: str) -> str:
    """A text argument of a read (an id, an external id, a filter value): a ``str`` every
    backend can encode, so a lookup never fails in the driver. NUL characters and lone
    surrogates are refused exactly as writes refuse them (no record can hold one)."""
    if not isinstance(value, str):
        raise ValidationError(field, value, "expected a string")
    return storable_text(value, field)


def read_ids(value: object, field: str = "customer_ids") -> list[str]:
    """A collection of ids given to a read (``mrr(customer_ids=...)``, ``segments_of``)."""
    if isinstance(value, (str, bytes)):
        raise ValidationError(field, value, "a collection of ids, not one string")
    try:
        items: list[str] = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise ValidationError(field, value, "expected a collection of ids") from None
    for v in items:
        read_text(v, field)
    return items


def read_records(value: object, field: str = "records") -> list[Any]:
    """The records of a batch write (``upsert_many``): any iterable, taken once into a list
    so that a generator is read before anything is written. One string, bytes or mapping
    is refused as a collection (iterating it would yield its characters or keys)."""
    if isinstance(value, (str, bytes, bytearray, dict)):
        raise ValidationError(field, value, "expected a collection of records")
    try:
        items = iter(value)  # type: ignore[call-overload]
    except TypeError:
        raise ValidationError(field, value, "expected a collection of records") from None
    # Outside the try: an error raised by the host's own generator stays the host's.
    return list(items)


def read_period(value: object, field: str = "period") -> Period | None:
    """An optional :class:`Period` argument of a read (``book(period=...)``)."""
    if value is not None and not isinstance(value, Period):
        raise ValidationError(field, value, "expected a revcrm.storage.Period")
    return value


def _optional_text(field: str) -> Any:
    def check(_i: object, _a: object, value: object) -> None:
        if value is not None:
            read_text(value, field)

    return check


def _ids(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(read_ids(value))


def _search(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("search", value, "expected a string")
    if "\x00" in value:
        raise ValidationError("search", value, "NUL characters are not searchable")
    storable_text(value, "search")
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
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next one.

    ``as_of`` is the moment the figures of a customer list were computed at (the query's,
    or the cursor's when the query left it out); None for the plain listings.
    """

    items: tuple[_T, ...]
    next_cursor: str | None = None
    as_of: datetime | None = None

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
#
# A cursor is ``base64(json payload) "." base64(HMAC-SHA256(secret, payload)[:16])``. The
# payload holds the query's scope, the last row's sort value and id, and (customer lists)
# the ``as_of`` the page was computed at. The MAC makes an edited or forged cursor a
# ValidationError; every decoded value is validated anyway, so even a cursor signed under
# a leaked secret cannot reach a driver with a value it would choke on.

SortValue = str | int | Decimal | datetime

_MAX_CURSOR: Final = 4096  # characters; a real cursor is a few hundred
_MAC_BYTES: Final = 16
_INT_TEXT: Final = re.compile(r"-?[0-9]{1,30}")
_DECIMAL_TEXT: Final = re.compile(r"-?[0-9]{1,80}(\.[0-9]{1,80})?(E[+-]?[0-9]{1,4})?")
_MIN_SECRET: Final = 16


def cursor_secret(value: object = None) -> bytes:
    """The key a store signs its cursors with: ``value`` (bytes or text of at least 16
    bytes), or a fresh random one. Processes serving one listing must share it."""
    if value is None:
        return secrets.token_bytes(32)
    if isinstance(value, str):
        read_text(value, "cursor_secret")
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or len(value) < _MIN_SECRET:
        raise ValidationError(
            "cursor_secret", "<hidden>", f"bytes or text of at least {_MIN_SECRET} bytes"
        )
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES])


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


def _moment_text(text: object) -> datetime:
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError("moment")
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() != timedelta(0):
        raise ValueError("not a UTC moment")  # every moment a store issues is UTC
    return moment.replace(tzinfo=UTC)  # sort values include sentinels such as year 1


def _decode_value(tag: object, text: object) -> SortValue:
    if not isinstance(text, str):
        raise ValueError("text")
    match tag:
        case "i":
            if not _INT_TEXT.fullmatch(text):
                raise ValueError("int")
            return int(text)
        case "d":
            if not _DECIMAL_TEXT.fullmatch(text):
                raise ValueError("decimal")
            return Decimal(text)
        case "t":
            return _moment_text(text)
        case "s":
            return storable_text(text, "cursor")
    raise ValueError("tag")


def encode_cursor(
    scope: str, value: SortValue, key: str, *, secret: bytes, as_of: datetime | None = None
) -> str:
    """An opaque keyset cursor: the last row's sort value and id, bound to its query and
    signed with the store's ``secret``."""
    stamp = None if as_of is None else as_of.isoformat()
    raw = json.dumps([scope, *_encode_value(value), key, stamp], separators=(",", ":"))
    body = _b64(raw.encode("utf-8"))
    return f"{body}.{_mac(secret, body)}"


def _payload(cursor: object) -> tuple[str, list[Any]]:
    """The cursor's body and decoded payload, shape-checked (not verified)."""
    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > _MAX_CURSOR:
        raise ValueError("cursor text")
    body, _, _mac_text = cursor.partition(".")
    data = json.loads(_unb64(body).decode("utf-8"))
    if not isinstance(data, list) or len(data) != 5:
        raise ValueError("cursor shape")
    return body, data


_BAD: Final = (ValueError, TypeError, UnicodeError, ArithmeticError, binascii.Error, RecursionError)


def decode_cursor(cursor: str, scope: str, *, secret: bytes) -> tuple[SortValue, str]:
    """The sort value and id a page starts after; a ValidationError for any cursor this
    store did not issue for this query (forged, edited, truncated, another query's)."""
    try:
        body, data = _payload(cursor)
        if not hmac.compare_digest(cursor.partition(".")[2], _mac(secret, body)):
            raise ValueError("signature")
        got_scope, tag, text, key, stamp = data
        if not isinstance(got_scope, str) or not isinstance(key, str):
            raise TypeError("cursor fields")
        storable_text(key, "cursor")
        value = _decode_value(tag, text)
        if stamp is not None:
            _moment_text(stamp)
    except (*_BAD, ValidationError):
        raise ValidationError("cursor", cursor, "not a cursor this store issued") from None
    if got_scope != scope:
        raise ValidationError("cursor", cursor, "belongs to a different query; start over")
    return value, key


def cursor_as_of(cursor: str) -> datetime | None:
    """The ``as_of`` a customer-list cursor was issued at (None for other listings).

    Read without the store's key: a caller uses it to ask for the next page at the same
    moment, and the store still verifies the cursor when it is used.
    """
    try:
        _body, data = _payload(cursor)
        stamp = data[4]
        return None if stamp is None else _moment_text(stamp)
    except (*_BAD, ValidationError):
        raise ValidationError("cursor", cursor, "not a cursor this store issued") from None


def query_as_of(as_of: date | datetime | None, cursor: str | None) -> date | datetime:
    """The customer list's moment: ``as_of``, else the cursor's (a store never reads the
    clock, so one of them is needed)."""
    if as_of is not None:
        return as_of
    if cursor is None:
        raise ValidationError(
            "as_of", None, "required for a first page (a store never reads the clock)"
        )
    found = cursor_as_of(cursor)
    if found is None:
        raise ValidationError("cursor", cursor, "carries no as_of; pass as_of")
    return found


def _scope(*parts: object) -> str:
    # Bind a cursor to the query that issued it: a short digest of every option but the
    # cursor and the limit, so a cursor reused with other filters fails loudly.
    text = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _ListOptions(TypedDict, total=False):
    currency: Required[str]
    search: str | None
    owner_id: str | None
    referral_source: str | None
    registered_from: date | datetime | None
    registered_before: date | datetime | None
    paying: bool | None
    has_active_services: bool | None
    customer_ids: Iterable[str] | None
    status: CustomerStatus | str | None
    product_id: str | None
    segment: Segment | str | None
    segment_config: SegmentConfig
    sort: CustomerSort | str
    direction: Direction | str
    limit: int
    cursor: str | None


class CustomerOptions(_ListOptions, total=False):
    """The customer list's options as callers pass them (``store.customers.page(**options)``,
    :meth:`CustomerQuery.of`): the one place this call shape is written. Only
    ``currency`` is required; each option is described on :class:`CustomerQuery`."""

    as_of: date | datetime | None


@attrs.frozen(kw_only=True)
class CustomerQuery:
    """Options of the customer list: money columns at ``as_of`` in ``currency``.

    ``search`` is a case-insensitive (Unicode case-folded) substring of the name, email or
    username. Filters combine with AND. Amounts in other currencies are converted at the
    rate on ``as_of``'s date (see docs/storage.md).

    ``status`` keeps the customers whose :func:`revcrm.crm.customer_status` at ``as_of``
    is that status; ``product_id`` those with a service active at ``as_of``
    (:func:`revcrm.crm.is_active_service`) of that product (the service's own
    ``product_id``, else its plan's product); ``segment`` the
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
    #: The store's cursor key (see :func:`cursor_secret`); hosts implementing the protocol
    #: pass their own.
    secret: bytes = attrs.field(default=b"", repr=False, eq=False)

    @classmethod
    def of(
        cls,
        *,
        as_of: date | datetime | None = None,
        secret: bytes = b"",
        **options: Unpack[_ListOptions],
    ) -> CustomerQuery:
        """The query of these options (see :class:`CustomerOptions`); ``as_of=None`` (or
        left out) takes the moment from ``cursor``, and without a cursor is a
        ValidationError: a store never reads the clock."""
        at = query_as_of(as_of, options.get("cursor"))
        return cls(as_of=at, secret=secret, **options)

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
        if self.cursor is None:
            return None
        return decode_cursor(self.cursor, self.scope, secret=self.secret)

    def next_cursor(self, value: SortValue, key: str) -> str:
        """The cursor of the page after the row with sort ``value`` and id ``key``."""
        return encode_cursor(self.scope, value, key, secret=self.secret, as_of=self.as_of)


class CustomerPages:
    """``page(**options)`` over ``query(q)``: a store's customer repository implements
    :meth:`query` and inherits the keyword call shape from here (so do hosts
    implementing :class:`~revcrm.storage.CustomerRepository`, if they like)."""

    def query(self, q: CustomerQuery) -> Page[CustomerRow]:
        raise NotImplementedError

    def page(self, **options: Unpack[CustomerOptions]) -> Page[CustomerRow]:
        """The customer list: ``query(CustomerQuery.of(**options))`` (see
        :class:`CustomerQuery` for the options)."""
        return self.query(CustomerQuery.of(**options))


def _config_key(config: SegmentConfig) -> str:
    # Precedence never changes membership, only the thresholds do (every one of them: the
    # grace decides the cycle-aware Active rule).
    return (
        f"{config.active_payment_days}/{config.active_grace_days}/"
        f"{config.at_risk_cancellation_days}/{config.new_customer_days}"
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
    secret: bytes = attrs.field(default=b"", repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        enums = _FILTER_ENUMS.get(self.kind_name, {})
        for name in ("status", "kind"):
            value = getattr(self, name)
            if value is None:
                continue
            allowed = enums.get(name)
            if allowed is None:
                raise ValidationError(name, value, f"{self.kind_name} listings have no {name}")
            object.__setattr__(self, name, as_enum(allowed, value, name).value)

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
        if self.cursor is None:
            return None
        return decode_cursor(self.cursor, self.scope, secret=self.secret)

    def next_cursor(self, value: SortValue, key: str) -> str:
        return encode_cursor(self.scope, value, key, secret=self.secret)


#: The filters each plain listing takes, and the values they accept.
_FILTER_ENUMS: Final[dict[str, dict[str, type[enum.StrEnum]]]] = {
    "invoice": {"status": InvoiceStatus},
    "transaction": {"status": TransactionStatus, "kind": TransactionKind},
}


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
class CustomerFlow:
    """Paying customers (MRR above zero) at ``start`` and at ``end``, and the flow between."""

    start: datetime
    end: datetime
    at_start: int
    at_end: int
    retained: int
    gained: int
    lost: int

    @classmethod
    def of_counts(
        cls, start: datetime, end: datetime, *, at_start: int, at_end: int, retained: int
    ) -> CustomerFlow:
        """The flow of ``at_start`` and ``at_end`` paying customers, ``retained`` in both."""
        return cls(
            start=start,
            end=end,
            at_start=at_start,
            at_end=at_end,
            retained=retained,
            gained=at_end - retained,
            lost=at_start - retained,
        )

    @classmethod
    def of_sets(
        cls, start: datetime, end: datetime, at_start: AbstractSet[str], at_end: AbstractSet[str]
    ) -> CustomerFlow:
        """The flow between the customers paying at ``start`` and those paying at ``end``."""
        return cls.of_counts(
            start, end, at_start=len(at_start), at_end=len(at_end), retained=len(at_start & at_end)
        )

    def plus(self, other: CustomerFlow) -> CustomerFlow:
        """The flow of two disjoint sets of customers over the same period."""
        return CustomerFlow.of_counts(
            self.start,
            self.end,
            at_start=self.at_start + other.at_start,
            at_end=self.at_end + other.at_end,
            retained=self.retained + other.retained,
        )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _moment_of(us: int) -> datetime | None:
    return None if us == OPEN else _EPOCH + timedelta(microseconds=us)


def row_of(customer: Customer, facts: FactColumns, i: int) -> CustomerRow:
    """The list row of ``customer`` (index ``i`` of ``facts``): the ledger's facts, so the
    same MRR (the policy's FX rule), LTV and total paid (each entry at its own date) and
    active services as the segments'."""
    currency, digits = facts.currency, facts.digits
    places = Money.zero(currency).minor_units

    def money(units: object) -> Money:
        return Money(to_decimal(int(units), places, digits), currency)  # type: ignore[call-overload]

    paid, refunded = int(facts.total_paid[i]), int(facts.refunded[i])
    return CustomerRow(
        customer=customer,
        mrr=money(facts.mrr[i]),
        ltv=money(paid - refunded),
        total_paid=money(paid),
        credit_balance=money(facts.credit_balance[i]),
        active_services=int(facts.active_services[i]),
        last_payment_at=_moment_of(int(facts.last_payment_at[i])),
    )
