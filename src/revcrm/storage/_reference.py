"""The store aggregates written as plain Python over a :class:`~revcrm.Book`: the test
oracle the stores' ledger reads are compared with (no store answers with these).

The helpers every store's reads share (ranges, list rates, sort and paging, a customer's
summary) live in :mod:`revcrm.storage._reads` and are re-exported here.
"""

from __future__ import annotations

import bisect
import decimal
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Final, Protocol

from revcrm import _calendar as calendar
from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._money import EXACT_CONTEXT, Money, check_currency
from revcrm._records import TransactionKind
from revcrm._time import as_of_moment
from revcrm.crm._services import CustomerStatus, customer_status, is_active_service
from revcrm.errors import ValidationError
from revcrm.metrics import (
    Dashboard,
    FxDateRule,
    MetricsPolicy,
    MrrPoint,
    dashboard,
    mrr,
    subscription_mrr,
)
from revcrm.metrics._dashboard import check_trend_months
from revcrm.segments._config import SegmentConfig
from revcrm.segments._segments import Segmentation, segmentation
from revcrm.storage._query import (
    CashMonth,
    CustomerFlow,
    CustomerQuery,
    CustomerRow,
    CustomerSummary,
    Page,
)
from revcrm.storage._reads import (
    ACTIVE_STATUSES,
    NEVER,
    book_currencies,
    customer_rows,
    list_rates,
    month_bounds,
    page_of,
    reporting_range,
    sort_value,
    summary_of,
)
from revcrm.storage._reads import matches as _matches
from revcrm.storage._spans import subscription_spans

__all__ = [
    "ACTIVE_STATUSES",
    "NEVER",
    "book_currencies",
    "cash_by_month",
    "compose_dashboard",
    "customer_flow",
    "customer_rows",
    "customer_segments",
    "customer_summary",
    "customers_with_product",
    "customers_with_status",
    "list_customers",
    "list_rates",
    "month_bounds",
    "mrr_at",
    "mrr_series",
    "page_of",
    "paying_customer_ids",
    "reporting_range",
    "sort_value",
    "summary_of",
]

_ZERO: Final = Decimal(0)
_ONE_MICRO: Final = timedelta(microseconds=1)


def month_start(t: datetime, zone: tzinfo = UTC) -> datetime:
    """The start of the reporting month holding ``t`` (see :mod:`revcrm._calendar`)."""
    return calendar.month_start(t, zone)


# -- the customer list -----------------------------------------------------------------------


# -- status, product and segments ------------------------------------------------------------


def customers_with_status(book: Book, status: CustomerStatus, at: datetime) -> set[str]:
    """Customers whose :func:`revcrm.crm.customer_status` at ``at`` is ``status``."""
    subs, invoices = book.subscriptions_by_customer, book.invoices_by_customer
    return {
        c.id
        for c in book.customers
        if customer_status(subs.get(c.id, ()), invoices.get(c.id, ()), at) is status
    }


def customers_with_product(book: Book, product_id: str, at: datetime) -> set[str]:
    """Customers with a service active at ``at`` of ``product_id``: the service's own
    ``product_id``, else its plan's product (as the customer profile names it)."""
    product_of = {p.id: p.product_id for p in book.plans}
    out = set()
    for s in book.subscriptions:
        state = s.state_at(at)
        if state is None or not is_active_service(state, at):
            continue
        own = state.product_id
        if own is None and state.plan_id is not None:
            own = product_of.get(state.plan_id)
        if own == product_id:
            out.add(s.customer_id)
    return out


def customer_segments(
    book: Book, *, at: datetime, currency: str, config: SegmentConfig, policy: MetricsPolicy
) -> Segmentation:
    """The segmentation the store's segment figures are defined by (no tags: they do not
    change built-in memberships)."""
    return segmentation(book, as_of=at, currency=currency, config=config, policy=policy)


SegmentationOf = Callable[[datetime, str, SegmentConfig], Segmentation]


def list_customers(
    book: Book,
    q: CustomerQuery,
    policy: MetricsPolicy,
    segmentation_of: SegmentationOf | None = None,
) -> Page[CustomerRow]:
    """The customer list of ``book``; ``segmentation_of(at, currency, config)`` may supply
    (a cached) :func:`customer_segments` of this book for the segment filter."""
    rates = list_rates(book_currencies(book), book.fx, q.currency, q.as_of.date())
    after = q.after()
    candidates = [c for c in book.customers if _matches(c, q)]
    if q.status is not None:
        with_status = customers_with_status(book, q.status, q.as_of)
        candidates = [c for c in candidates if c.id in with_status]
    if q.product_id is not None:
        with_product = customers_with_product(book, q.product_id, q.as_of)
        candidates = [c for c in candidates if c.id in with_product]
    if q.segment is not None:
        if segmentation_of is None:
            seg = customer_segments(
                book, at=q.as_of, currency=q.currency, config=q.segment_config, policy=policy
            )
        else:
            seg = segmentation_of(q.as_of, q.currency, q.segment_config)
        members = set(seg.customers_in(q.segment))
        candidates = [c for c in candidates if c.id in members]
    rows = customer_rows(
        book, candidates, at=q.as_of, currency=q.currency, rates=rates, policy=policy
    )
    if q.paying is not None:
        rows = [r for r in rows if (r.mrr.amount > 0) == q.paying]
    if q.has_active_services is not None:
        rows = [r for r in rows if (r.active_services > 0) == q.has_active_services]
    return page_of(
        rows,
        key=lambda r: sort_value(r, q.sort),
        direction=q.direction,
        after=after,
        limit=q.limit,
        cursor_of=q.next_cursor,
        as_of=q.as_of,
    )


def customer_summary(
    book: Book, customer_id: str, *, at: datetime, currency: str, policy: MetricsPolicy
) -> CustomerSummary:
    """One customer's row and records, each ordered by moment then id. Only the currencies
    of this customer's subscriptions and transactions need a rate on ``at``'s date."""
    customer = book.customer(customer_id)
    subscriptions = tuple(
        sorted(
            book.subscriptions_by_customer.get(customer_id, ()), key=lambda s: (s.started_at, s.id)
        )
    )
    invoices = tuple(
        sorted(book.invoices_by_customer.get(customer_id, ()), key=lambda i: (i.issued_at, i.id))
    )
    transactions = tuple(
        sorted(book.transactions_by_customer.get(customer_id, ()), key=lambda t: (t.at, t.id))
    )
    credits = tuple(
        sorted(book.credits_by_customer.get(customer_id, ()), key=lambda c: (c.at, c.id))
    )
    return summary_of(
        customer,
        subscriptions,
        invoices,
        transactions,
        credits,
        fx=book.fx,
        at=at,
        currency=currency,
        policy=policy,
    )


# -- dashboard aggregates --------------------------------------------------------------------


def mrr_at(
    book: Book,
    *,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    customer_ids: Iterable[str] | None = None,
) -> Money:
    return mrr(book, at=at, currency=currency, policy=policy, customer_ids=customer_ids)


def mrr_series(
    book: Book, *, start: datetime, end: datetime, currency: str, policy: MetricsPolicy
) -> tuple[MrrPoint, ...]:
    """MRR at the close of each month in ``[start, end)``: the subscriptions' MRR just
    before each close, converted as the MRR engine does (at the close's date, or under the
    service-period rule at the start of the billing period then running).

    Equal to :meth:`revcrm.metrics.MrrAnalysis.series` (given a horizon at ``end``) for
    every book it can answer; unlike it, this needs exchange rates only for the amounts
    actually converted at the closes asked for.
    """
    months = month_bounds(start, end, policy.timezone)
    totals = [_ZERO] * len(months)
    by_period = policy.fx_date is FxDateRule.SERVICE_PERIOD_START
    with decimal.localcontext(EXACT_CONTEXT):
        for sub in book.subscriptions:
            spans = subscription_spans(sub, policy)
            starts = [sp.start for sp in spans]
            for i, (_, close) in enumerate(months):
                just_before = close - _ONE_MICRO
                k = bisect.bisect_right(starts, just_before) - 1
                if k < 0 or spans[k].amount == 0:
                    continue
                sp = spans[k]
                if sp.end is not None and sp.end <= just_before:
                    continue
                value = sp.amount
                if sub.currency != currency:
                    if not by_period:
                        day = close.date()
                    elif just_before < sp.anchor:
                        day = sp.start.date()
                    else:
                        cycle = BillingCycle(sp.cycle_count, CycleUnit(sp.cycle_unit))
                        day = cycle.period_containing(sp.anchor, just_before)[0].date()
                    value = value * book.fx.rate(sub.currency, currency, day)
                totals[i] += value
    return tuple(
        MrrPoint(start=a, end=b, mrr=Money(v, currency))
        for (a, b), v in zip(months, totals, strict=True)
    )


def cash_by_month(
    book: Book, *, start: datetime, end: datetime, currency: str, zone: tzinfo = UTC
) -> tuple[CashMonth, ...]:
    """Cash of each month of the reporting zone ``zone`` in ``[start, end)``: successful
    payments and refunds, each converted at its own (UTC) date."""
    months = month_bounds(start, end, zone)
    if not months:
        return ()
    first, last = months[0][0], months[-1][1]
    gross = [_ZERO] * len(months)
    refunds = [_ZERO] * len(months)
    counts = [0] * len(months)
    ends = [b for _, b in months]
    with decimal.localcontext(EXACT_CONTEXT):
        for t in book.transactions:
            if not t.succeeded or not first <= t.at < last:
                continue
            i = bisect.bisect_right(ends, t.at)
            amount = book.fx.convert(t.amount, currency, on=t.at.date()).amount
            if t.kind is TransactionKind.PAYMENT:
                gross[i] += amount
                counts[i] += 1
            else:
                refunds[i] += amount
    return tuple(
        CashMonth(
            start=a,
            end=b,
            gross=Money(gross[i], currency),
            refunds=Money(refunds[i], currency),
            net=Money(gross[i], currency) - Money(refunds[i], currency),
            payments=counts[i],
        )
        for i, (a, b) in enumerate(months)
    )


def paying_customer_ids(book: Book, *, at: datetime, policy: MetricsPolicy) -> set[str]:
    """Customers with MRR above zero at ``at`` (some subscription contributing)."""
    return {
        s.customer_id
        for s in book.subscriptions
        if subscription_mrr(s, at, policy=policy).amount > 0
    }


def customer_flow(
    book: Book, *, start: datetime, end: datetime, policy: MetricsPolicy
) -> CustomerFlow:
    if end < start:
        raise ValidationError("end", end, "is before start")
    a = paying_customer_ids(book, at=start, policy=policy)
    b = paying_customer_ids(book, at=end, policy=policy)
    kept = len(a & b)
    return CustomerFlow(
        start=start,
        end=end,
        at_start=len(a),
        at_end=len(b),
        retained=kept,
        gained=len(b) - kept,
        lost=len(a) - kept,
    )


class _BookStore(Protocol):
    @property
    def policy(self) -> MetricsPolicy: ...

    def book(self) -> Book: ...


def compose_dashboard(
    store: _BookStore, *, as_of: date | datetime, currency: str, trend_months: int
) -> Dashboard:
    """A store's dashboard from its book: :func:`revcrm.metrics.dashboard` under the
    store's policy (its reporting time zone included), the one definition every store's
    dashboard equals."""
    t = as_of_moment(calendar.local_moment(as_of, store.policy.timezone), "as_of")
    check_currency(currency)
    check_trend_months(trend_months)
    return dashboard(
        store.book(), as_of=t, currency=currency, policy=store.policy, trend_months=trend_months
    )
