"""Per-customer facts at a moment: what every segment rule and predicate reads.

The facts of every customer are the ledger's (:mod:`revcrm._ledger._facts`: cash
entries, service-state rows and the MRR analysis aggregated as columns), the one
definition the customer list and the customer summary share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

import attrs

from revcrm._book import Book
from revcrm._crm_records import tag_key
from revcrm._ledger._facts import LedgerRows
from revcrm._ledger._fixed import to_decimal
from revcrm._ledger._services import OPEN
from revcrm._money import Money
from revcrm._records import AttributeValue
from revcrm.metrics._customer_value import ledger_rows
from revcrm.metrics._engine import MrrAnalysis
from revcrm.metrics._policy import MetricsPolicy
from revcrm.segments._config import Segment
from revcrm.segments._rules import ServiceFacts, service_facts

__all__ = ["CustomerFacts", "compute_facts", "facts_of"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


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


def _money(units: int, digits: int, currency: str, minor: int) -> Money:
    return Money(to_decimal(units, minor, digits), currency)


def _moment(us: int) -> datetime | None:
    return None if us == OPEN else _EPOCH + timedelta(microseconds=us)


def facts_of(
    book: Book,
    at: datetime,
    ledger: LedgerRows,
    tags: Mapping[str, Iterable[str]],
) -> dict[str, CustomerFacts]:
    """Facts (without segments) of the customers registered at or before ``at``, read
    from the ledger's customer facts (:func:`revcrm.metrics._customer_value.ledger_rows`
    of ``book`` at ``at``); only the cycle-aware Active rule's :class:`ServiceFacts` of
    each active service are read from the records (its invoices)."""
    f = ledger.facts
    currency = f.currency
    minor = Money.zero(currency).minor_units
    digits = f.digits
    services = ledger.services
    by_sub = {s.id: s for s in book.subscriptions}
    per_customer: dict[int, list[ServiceFacts]] = {}
    for row in ledger.services_at.active_rows.tolist():
        sub = by_sub[services.subscription_ids[int(services.subscription[row])]]
        state = sub.state_at(at)
        assert state is not None  # an active row contains ``at``
        invoices = book.invoices_by_customer.get(sub.customer_id, ())
        per_customer.setdefault(int(services.customer[row]), []).append(
            service_facts(sub.id, state, at, invoices)
        )
    customers = book.customer_index
    memo: dict[int, Money] = {}

    def money(units: int) -> Money:
        # Amounts repeat (zero above all, and prices): one validated Money per value.
        found = memo.get(units)
        if found is None:
            found = memo[units] = _money(units, digits, currency, minor)
        return found

    registered = f.registered.tolist()
    mrr, paid, refunded = f.mrr.tolist(), f.total_paid.tolist(), f.refunded.tolist()
    out: dict[str, CustomerFacts] = {}
    for i, cid in enumerate(f.customer_ids):
        if not registered[i]:
            continue
        c = customers[cid]
        out[cid] = CustomerFacts(
            customer_id=cid,
            as_of=at,
            currency=currency,
            registered_at=c.registered_at,
            mrr=money(mrr[i]),
            ltv=money(paid[i] - refunded[i]),
            total_paid=money(paid[i]),
            payment_count=int(f.payment_count[i]),
            last_payment_at=_moment(int(f.last_payment_at[i])),
            active_services=int(f.active_services[i]),
            troubled_services=int(f.troubled_services[i]),
            overdue_invoices=int(f.overdue_invoices[i]),
            next_cancellation_at=_moment(int(f.next_cancellation_at[i])),
            subscriber_since=_moment(int(f.first_paid_at[i])),
            ordered=bool(f.ordered[i]),
            services=tuple(per_customer.get(i, ())),
            tags=frozenset(tag_key(t) for t in tags.get(cid, ())),
            referral_source=c.referral_source,
            owner_id=c.owner_id,
            custom_attributes=c.custom_attributes,
        )
    return out


def compute_facts(
    book: Book,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    analysis: MrrAnalysis,
    tags: Mapping[str, Iterable[str]],
) -> dict[str, CustomerFacts]:
    """Facts (without segments) of the customers registered at or before ``at``: the
    ledger's (:func:`facts_of`) with ``analysis`` as the MRR."""
    ledger = ledger_rows(book, as_of=at, currency=currency, policy=policy, analysis=analysis)
    return facts_of(book, at, ledger, tags)
