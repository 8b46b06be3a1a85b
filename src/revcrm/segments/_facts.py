"""Per-customer facts at a moment: what every segment rule and predicate reads.

The facts of every customer are computed in one pass over the book's per-customer
indexes, with one MRR analysis and one :func:`customer_values` call, so the cost is
linear in the book.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

import attrs

from revcrm._book import Book
from revcrm._crm_records import tag_key
from revcrm._crm_services import (
    invoice_overdue,
    is_active_service,
    is_troubled_service,
    pending_cancellation,
)
from revcrm._money import Money
from revcrm._records import AttributeValue, InvoiceStatus
from revcrm.metrics._customer_value import customer_values
from revcrm.metrics._engine import MrrAnalysis
from revcrm.metrics._policy import MetricsPolicy
from revcrm.segments._config import Segment
from revcrm.segments._rules import ServiceFacts, service_facts

__all__ = ["CustomerFacts", "compute_facts"]


@attrs.frozen(kw_only=True)
class CustomerFacts:
    """What is known about one customer at ``as_of``, money in ``currency``.

    * ``mrr``: the customer's MRR (MRR engine, policy's FX rule).
    * ``ltv``: historical lifetime value, i.e. net payments (successful payments minus
      successful refunds up to ``as_of``, each converted at its own date).
    * ``total_paid``, ``payment_count``, ``last_payment_at``: successful payments.
    * ``active_services``: services active at ``as_of`` (active, trialing, past due, or
      cancelled with the paid period still running); ``troubled_services``: past due or
      suspended ones; ``next_cancellation_at``: the earliest cancellation taking effect
      after ``as_of``; ``overdue_invoices``: invoices overdue at ``as_of``.
    * ``subscriber_since``: first moment a service had MRR > 0 (None: never paid for a
      service by ``as_of``); ``ordered``: any service started, invoice issued (neither
      draft nor void) or payment made by ``as_of``.
    * ``services``: the :class:`ServiceFacts` of each active service (its cycle, current
      period and how far its invoices and paid invoices reach), by subscription id:
      what the cycle-aware Active rule reads.
    * ``tags``: tag keys (case-folded names); ``segments``: built-in memberships.
    """

    customer_id: str
    as_of: datetime
    currency: str
    registered_at: datetime
    mrr: Money
    ltv: Money
    total_paid: Money
    payment_count: int
    last_payment_at: datetime | None
    active_services: int
    troubled_services: int
    overdue_invoices: int
    next_cancellation_at: datetime | None
    subscriber_since: datetime | None
    ordered: bool
    services: tuple[ServiceFacts, ...] = ()
    tags: frozenset[str] = frozenset()
    referral_source: str | None = None
    owner_id: str | None = None
    custom_attributes: Mapping[str, AttributeValue] = attrs.field(
        factory=lambda: MappingProxyType({}), hash=False
    )
    segments: frozenset[Segment] = frozenset()


def compute_facts(
    book: Book,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    analysis: MrrAnalysis,
    tags: Mapping[str, Iterable[str]],
) -> dict[str, CustomerFacts]:
    """Facts (without segments) of the customers registered at or before ``at``."""
    values = {
        v.customer_id: v for v in customer_values(book, as_of=at, currency=currency, policy=policy)
    }
    mrrs = analysis.customers_with_mrr(at)
    zero = Money.zero(currency)
    out: dict[str, CustomerFacts] = {}
    for c in book.customers:
        if c.registered_at > at:
            continue
        active = troubled = overdue = 0
        cancels: list[datetime] = []
        services: list[ServiceFacts] = []
        started = False
        invoices = book.invoices_by_customer.get(c.id, ())
        for sub in sorted(book.subscriptions_by_customer.get(c.id, ()), key=lambda x: x.id):
            s = sub.state_at(at)
            if s is None:
                continue
            started = True
            if is_active_service(s, at):
                active += 1
                services.append(service_facts(sub.id, s, at, invoices))
            troubled += is_troubled_service(s)
            when = pending_cancellation(s, at)
            if when is not None:
                cancels.append(when)
        invoiced = False
        for inv in invoices:
            overdue += invoice_overdue(inv, at)
            if inv.issued_at <= at and inv.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
                invoiced = True
        v = values[c.id]
        out[c.id] = CustomerFacts(
            customer_id=c.id,
            as_of=at,
            currency=currency,
            registered_at=c.registered_at,
            mrr=mrrs.get(c.id, zero),
            ltv=v.net_payments,
            total_paid=v.total_paid,
            payment_count=v.payment_count,
            last_payment_at=v.last_payment_at,
            active_services=active,
            troubled_services=troubled,
            overdue_invoices=overdue,
            next_cancellation_at=min(cancels) if cancels else None,
            subscriber_since=v.subscriber_since,
            ordered=started or invoiced or v.payment_count > 0,
            services=tuple(services),
            tags=frozenset(tag_key(t) for t in tags.get(c.id, ())),
            referral_source=c.referral_source,
            owner_id=c.owner_id,
            custom_attributes=c.custom_attributes,
        )
    return out
