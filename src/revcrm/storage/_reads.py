"""What every store's reads share: query ranges and month bounds, the rates the customer
list needs, the list's match, sort and paging, and a customer's summary from its records.

These are no aggregates: the figures themselves come from the ledger
(:mod:`revcrm._ledger`, :mod:`revcrm.metrics`). :mod:`revcrm.storage._reference` (the
plain-Python oracle the store tests compare with) re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Final, Protocol, TypeVar

from revcrm import _calendar as calendar
from revcrm._book import Book
from revcrm._money import FxRates
from revcrm._records import CreditEntry, Customer, Invoice, Transaction
from revcrm._subscription import Subscription, SubscriptionStatus
from revcrm._time import as_of_moment
from revcrm.errors import ValidationError
from revcrm.metrics import MetricsPolicy
from revcrm.metrics._customer_value import ledger_rows
from revcrm.storage._query import (
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    CustomerSummary,
    Direction,
    Page,
    SortValue,
    row_of,
)

__all__ = [
    "ACTIVE_STATUSES",
    "NEVER",
    "book_currencies",
    "customer_rows",
    "list_rates",
    "matches",
    "month_bounds",
    "page_of",
    "reporting_range",
    "sort_value",
    "summary_of",
]

#: Statuses that count as an active service in the customer list.
ACTIVE_STATUSES: Final = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
#: Sort value of "never paid" in the last-payment column: before every real moment.
NEVER: Final = datetime(1, 1, 1, tzinfo=UTC)


def month_bounds(
    start: datetime, end: datetime, zone: tzinfo = UTC
) -> list[tuple[datetime, datetime]]:
    """Months of the reporting zone ``zone`` covering ``[start, end)``, the first and last
    clipped to it (as :meth:`revcrm.metrics.MrrAnalysis.series` does); UTC instants."""
    if end <= start:
        return []
    return [
        (max(a, start), min(b, end))
        for a, b in calendar.period_bounds(calendar.Frequency.MONTH, start, end, zone)
    ]


def reporting_range(
    start: date | datetime, end: date | datetime, zone: tzinfo = UTC
) -> tuple[datetime, datetime]:
    """A store's ``[start, end)`` in the reporting zone: a plain date is midnight starting
    that day there; aware moments in the supported range, ``end`` not before ``start``."""
    a = as_of_moment(calendar.local_moment(start, zone), "start")
    b = as_of_moment(calendar.local_moment(end, zone), "end")
    if b < a:
        raise ValidationError("end", end, "is before start")
    return a, b


def book_currencies(book: Book) -> set[str]:
    """Currencies the customer list may have to convert: of subscriptions and transactions."""
    return {s.currency for s in book.subscriptions} | {t.amount.currency for t in book.transactions}


def list_rates(
    currencies: Iterable[str], fx: FxRates, target: str, day: date
) -> dict[str, Decimal]:
    """The rate of each currency into ``target`` on ``day``; MissingRateError if one lacks it."""
    return {c: fx.rate(c, target, day) for c in sorted(set(currencies))}


def customer_rows(
    book: Book,
    customers: Iterable[Customer],
    *,
    at: datetime,
    currency: str,
    rates: dict[str, Decimal],
    policy: MetricsPolicy,
) -> list[CustomerRow]:
    """The list rows of ``customers``: the ledger's customer facts (one definition with
    the segments: MRR under the policy's FX rule, cash converted at its own dates, active
    services by ``is_active_service``). ``rates`` (the as-of rates the caller checked the
    list needs) convert nothing."""
    del rates
    facts = ledger_rows(book, as_of=at, currency=currency, policy=policy).facts
    index = facts.index()
    return [row_of(c, facts, index[c.id]) for c in customers]


def sort_value(row: CustomerRow, sort: CustomerSort) -> SortValue:
    c = row.customer
    match sort:
        case CustomerSort.ID:
            return c.id
        case CustomerSort.NAME:
            return c.name.casefold()
        case CustomerSort.EMAIL:
            return (c.email or "").casefold()
        case CustomerSort.MRR:
            return row.mrr.amount
        case CustomerSort.LTV:
            return row.ltv.amount
        case CustomerSort.TOTAL_PAID:
            return row.total_paid.amount
        case CustomerSort.CREDIT_BALANCE:
            return row.credit_balance.amount
        case CustomerSort.ACTIVE_SERVICES:
            return row.active_services
        case CustomerSort.CREATED:
            return c.registered_at
        case CustomerSort.LAST_PAYMENT:
            return row.last_payment_at or NEVER


class _Keyed(Protocol):
    @property
    def id(self) -> str: ...


_K = TypeVar("_K", bound=_Keyed)


def page_of(
    items: Sequence[_K],
    *,
    key: Callable[[_K], SortValue],
    direction: Direction,
    after: tuple[SortValue, str] | None,
    limit: int,
    cursor_of: Callable[[SortValue, str], str],
    as_of: datetime | None = None,
) -> Page[_K]:
    """Sort by (key, id), skip past the cursor, cut one page and make its next cursor
    (``cursor_of(value, id)``: the query's signed cursor)."""
    desc = direction is Direction.DESC
    decorated = sorted(((key(i), i.id, i) for i in items), key=lambda d: (d[0], d[1]), reverse=desc)
    if after is not None:
        av, aid = after
        if desc:
            decorated = [d for d in decorated if (d[0], d[1]) < (av, aid)]
        else:
            decorated = [d for d in decorated if (d[0], d[1]) > (av, aid)]
    chosen = decorated[:limit]
    more = len(decorated) > limit
    cursor = cursor_of(chosen[-1][0], chosen[-1][1]) if more and chosen else None
    return Page(items=tuple(d[2] for d in chosen), next_cursor=cursor, as_of=as_of)


def matches(c: Customer, q: CustomerQuery) -> bool:
    """Whether customer ``c`` passes the list's record filters (search, owner, referral
    source, registration range, ids)."""
    if q.search is not None and not any(
        q.search in text
        for text in (c.name.casefold(), (c.email or "").casefold(), (c.username or "").casefold())
    ):
        return False
    if q.owner_id is not None and c.owner_id != q.owner_id:
        return False
    if q.referral_source is not None and c.referral_source != q.referral_source:
        return False
    if q.registered_from is not None and c.registered_at < q.registered_from:
        return False
    if q.registered_before is not None and c.registered_at >= q.registered_before:
        return False
    return q.customer_ids is None or c.id in q.customer_ids


def summary_of(
    customer: Customer,
    subscriptions: tuple[Subscription, ...],
    invoices: tuple[Invoice, ...],
    transactions: tuple[Transaction, ...],
    credits: tuple[CreditEntry, ...],
    *,
    fx: FxRates,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
) -> CustomerSummary:
    """The summary from one customer's records (every backend loads them, then this): its
    row is the ledger's facts of its own sub-book; it needs a rate on ``at``'s day for
    each currency of its subscriptions and transactions."""
    own = {s.currency for s in subscriptions} | {t.amount.currency for t in transactions}
    rates = list_rates(own, fx, currency, at.date())
    mini = Book(
        customers=(customer,),
        subscriptions=subscriptions,
        invoices=invoices,
        transactions=transactions,
        credits=credits,
        fx=fx,
    )
    (row,) = customer_rows(mini, [customer], at=at, currency=currency, rates=rates, policy=policy)
    return CustomerSummary(
        row=row,
        subscriptions=subscriptions,
        invoices=invoices,
        transactions=transactions,
        credits=credits,
    )
