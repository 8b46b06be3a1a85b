"""Per-customer facts at a moment: what every segment rule and predicate reads.

The facts of every customer are the ledger's (:mod:`revcrm._ledger._facts`: cash
entries, service-state rows and the MRR analysis aggregated as columns), the one
definition the customer list and the customer summary share; the active services' reach
is the ledger's too (:mod:`revcrm._ledger._reach`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._book import Book
from revcrm._crm_records import tag_key
from revcrm._cycles import BillingCycle
from revcrm._ledger._facts import LedgerRows
from revcrm._ledger._fixed import to_decimal
from revcrm._ledger._reach import reach_columns
from revcrm._ledger._services import OPEN
from revcrm._money import Money
from revcrm._records import AttributeValue
from revcrm.metrics._customer_value import ledger_rows
from revcrm.metrics._engine import MrrAnalysis
from revcrm.metrics._policy import MetricsPolicy
from revcrm.segments._config import Segment
from revcrm.segments._rules import RuleColumns, ServiceFacts, ServiceRuleColumns

__all__ = [
    "ActiveServices",
    "CustomerFacts",
    "active_services",
    "compute_facts",
    "facts_of",
    "ledger_rule_columns",
]

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


@attrs.frozen(kw_only=True, eq=False)
class ActiveServices:
    """The services active at one moment (the ledger's service-state rows holding it):
    ``rows`` (indexes of ``ledger.services``), their ``customer`` (indexes of the facts'
    customers) and how far their invoices reach then (the :mod:`revcrm._ledger._reach`
    step holding the moment; microseconds, :data:`OPEN` for None)."""

    rows: npt.NDArray[np.int64]
    customer: npt.NDArray[np.int64]
    billed_through: npt.NDArray[np.int64]
    paid_through: npt.NDArray[np.int64]


def active_services(book: Book, ledger: LedgerRows) -> ActiveServices:
    """The :class:`ActiveServices` of ``ledger`` at its facts' ``as_of``: the reach steps
    built once per active subscription from its customer's invoices."""
    services = ledger.services
    rows = ledger.services_at.active_rows
    subs = services.subscription[rows]
    wanted = np.unique(subs)
    reach = reach_columns(book, [services.subscription_ids[int(k)] for k in wanted.tolist()])
    billed, paid = reach.at(ledger.facts.as_of, np.searchsorted(wanted, subs).astype(np.int64))
    return ActiveServices(
        rows=rows, customer=services.customer[rows], billed_through=billed, paid_through=paid
    )


def ledger_rule_columns(ledger: LedgerRows, at: datetime, active: ActiveServices) -> RuleColumns:
    """What the built-in rules read of every customer of ``ledger`` (its facts' order,
    registered or not) at ``at``, its facts' ``as_of``."""
    f = ledger.facts
    cycles: dict[BillingCycle, int] = {}
    of_row = ledger.services.cycles
    cycle = [cycles.setdefault(of_row[r], len(cycles)) for r in active.rows.tolist()]
    return RuleColumns(
        as_of=at,
        currency=f.currency,
        digits=f.digits,
        registered_at=f.registered_at,
        ltv=f.net_payments,
        last_payment_at=f.last_payment_at,
        active_services=f.active_services,
        troubled_services=f.troubled_services,
        overdue_invoices=f.overdue_invoices,
        next_cancellation_at=f.next_cancellation_at,
        subscriber_since=f.first_paid_at,
        ordered=f.ordered,
        services=ServiceRuleColumns(
            customer=active.customer,
            cycles=tuple(cycles),
            cycle=np.array(cycle, dtype=np.int64),
            billed_through=active.billed_through,
            paid_through=active.paid_through,
        ),
    )


def facts_of(
    book: Book,
    at: datetime,
    ledger: LedgerRows,
    tags: Mapping[str, Iterable[str]],
    *,
    active: ActiveServices | None = None,
    segments: Sequence[frozenset[Segment]] | None = None,
) -> dict[str, CustomerFacts]:
    """Facts of the customers registered at or before ``at``, read from the ledger's
    customer facts (:func:`revcrm.metrics._customer_value.ledger_rows` of ``book`` at
    ``at``) and its active services (``active``, else :func:`active_services`): each
    one's :class:`ServiceFacts` from its row's billing calendar and reach step.
    ``segments`` (per customer of the facts' order) fills ``CustomerFacts.segments``."""
    f = ledger.facts
    currency = f.currency
    minor = Money.zero(currency).minor_units
    digits = f.digits
    services = ledger.services
    if active is None:
        active = active_services(book, ledger)
    per_customer: dict[int, list[ServiceFacts]] = {}
    billed, paid = active.billed_through.tolist(), active.paid_through.tolist()
    for k, row in enumerate(active.rows.tolist()):
        sub_id = services.subscription_ids[int(services.subscription[row])]
        start, end = services.cycles[row].period_containing(services.anchors[row], at)
        per_customer.setdefault(int(services.customer[row]), []).append(
            ServiceFacts(
                subscription_id=sub_id,
                cycle=services.cycles[row],
                period_start=start,
                period_end=end,
                billed_through=_moment(billed[k]),
                paid_through=_moment(paid[k]),
            )
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
    mrr, paid_total, refunded = f.mrr.tolist(), f.total_paid.tolist(), f.refunded.tolist()
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
            ltv=money(paid_total[i] - refunded[i]),
            total_paid=money(paid_total[i]),
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
            segments=frozenset() if segments is None else segments[i],
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
