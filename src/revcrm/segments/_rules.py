"""The built-in segment rules, once: what every path (the pure segmentation, the facade,
the in-memory and the SQL stores) applies to a customer's facts.

A store may compute the facts where the data lives (:class:`ServiceFacts` per active
service, and the customer's last payment, overdue invoices...), but membership is
always decided here, by :func:`memberships`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from revcrm._cycles import BillingCycle
from revcrm._money import Money
from revcrm._records import Invoice, InvoiceStatus
from revcrm._subscription import SubscriptionState
from revcrm.segments._baseline import LtvBaseline
from revcrm.segments._config import Segment, SegmentConfig

__all__ = [
    "RuleFacts",
    "SegmentInputs",
    "SegmentMiss",
    "ServiceFacts",
    "ServiceReach",
    "active_window_start",
    "is_active",
    "memberships",
    "misses",
    "reach_at",
    "service_facts",
    "service_facts_of",
    "service_paid_up",
    "service_reach",
]


@attrs.frozen(kw_only=True)
class ServiceFacts:
    """One active service at ``as_of``: its billing cycle, the service period running then
    (``[period_start, period_end)``, from its anchor by the calendar rule) and how far its
    invoices reach.

    * ``billed_through``: the latest ``period_end`` of a line of this service, with a
      service period starting by ``as_of``, on an invoice issued by ``as_of`` that is
      neither draft nor void (None: the service has no such invoice).
    * ``paid_through``: the same over the invoices paid at ``as_of`` (status paid, and
      ``paid_at`` unknown or by ``as_of``).
    """

    subscription_id: str
    cycle: BillingCycle
    period_start: datetime
    period_end: datetime
    billed_through: datetime | None = None
    paid_through: datetime | None = None


@attrs.frozen(kw_only=True, slots=True)
class ServiceReach:
    """How far a service's invoices reach from ``start`` until the next step (see
    :func:`service_reach`): ``billed_through`` and ``paid_through`` of
    :class:`ServiceFacts` at every moment of the step."""

    start: datetime
    billed_through: datetime | None
    paid_through: datetime | None


def service_reach(subscription_id: str, invoices: Iterable[Invoice]) -> tuple[ServiceReach, ...]:
    """The steps of ``billed_through`` / ``paid_through`` of the service over time, by
    ``start``: a line counts from the moment its invoice is issued and its service
    period has started (for ``paid_through``: and its invoice is paid, ``paid_at`` unknown
    counting from then), so each reach only grows; before the first step both are None.
    The invoices' statuses are their current ones (a paid invoice is paid from
    ``paid_at``)."""
    events: list[tuple[datetime, datetime, bool]] = []
    for inv in invoices:
        if inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            continue
        for line in inv.lines:
            if (
                line.subscription_id != subscription_id
                or line.period_start is None
                or line.period_end is None
            ):
                continue
            billed_from = max(inv.issued_at, line.period_start)
            events.append((billed_from, line.period_end, False))
            if inv.status is InvoiceStatus.PAID:
                paid_from = billed_from if inv.paid_at is None else max(billed_from, inv.paid_at)
                events.append((paid_from, line.period_end, True))
    events.sort(key=lambda e: e[0])
    steps: list[ServiceReach] = []
    billed: datetime | None = None
    paid: datetime | None = None
    for k, (at, end, is_paid) in enumerate(events):
        if is_paid:
            paid = end if paid is None else max(paid, end)
        billed = end if billed is None else max(billed, end)
        if k + 1 < len(events) and events[k + 1][0] == at:
            continue  # every event of one moment holds from it together
        last = steps[-1] if steps else None
        if last is None or (last.billed_through, last.paid_through) != (billed, paid):
            steps.append(ServiceReach(start=at, billed_through=billed, paid_through=paid))
    return tuple(steps)


def reach_at(steps: Sequence[ServiceReach], at: datetime) -> ServiceReach | None:
    """The step of :func:`service_reach` holding at ``at`` (None: before the first)."""
    k = bisect_right([s.start for s in steps], at)
    return steps[k - 1] if k else None


def service_facts_of(
    subscription_id: str,
    cycle: BillingCycle,
    anchor: datetime,
    at: datetime,
    reach: ServiceReach | None,
) -> ServiceFacts:
    """The :class:`ServiceFacts` at ``at`` of a service billed on ``cycle`` from
    ``anchor`` (its state's billing calendar, ``SubscriptionState.service_period``)
    whose invoices reach as ``reach`` (its :func:`reach_at` ``at``) says."""
    start, end = cycle.period_containing(anchor, at)
    return ServiceFacts(
        subscription_id=subscription_id,
        cycle=cycle,
        period_start=start,
        period_end=end,
        billed_through=None if reach is None else reach.billed_through,
        paid_through=None if reach is None else reach.paid_through,
    )


def service_facts(
    subscription_id: str, state: SubscriptionState, at: datetime, invoices: Iterable[Invoice]
) -> ServiceFacts:
    """The :class:`ServiceFacts` of a service active at ``at``, reading the lines of
    ``invoices`` (the customer's) that belong to it."""
    reach = reach_at(service_reach(subscription_id, invoices), at)
    return service_facts_of(subscription_id, state.cycle, state.billing_anchor, at, reach)


def active_window_start(cycle: BillingCycle, at: datetime, config: SegmentConfig) -> datetime:
    """The earliest payment that still pays a service on ``cycle`` at ``at`` (when it has
    no invoice): one cycle back from ``at`` by the calendar rule (``anchor + n months``
    clamped to month end), less ``active_grace_days``."""
    return cycle.advance(at, -1) - timedelta(days=config.active_grace_days)


def service_paid_up(
    service: ServiceFacts, last_payment_at: datetime | None, at: datetime, config: SegmentConfig
) -> bool:
    """Whether the service's current period is paid at ``at`` (the cycle-aware rule).

    With an invoice reaching into the last ``active_grace_days`` (``billed_through >
    at - grace``), the invoices decide: paid up when a paid one reaches that far too (the
    current period's invoice is paid, or the previous period's still counts during the
    grace after a renewal). Without one, the customer's last successful payment decides:
    paid up when it falls in :func:`active_window_start` ``..at``.
    """
    since = at - timedelta(days=config.active_grace_days)
    if service.billed_through is not None and service.billed_through > since:
        return service.paid_through is not None and service.paid_through > since
    return last_payment_at is not None and last_payment_at >= active_window_start(
        service.cycle, at, config
    )


class RuleFacts(Protocol):
    """What the built-in rules read of a customer (:class:`CustomerFacts` has all of it;
    a store fills a :class:`SegmentInputs`)."""

    @property
    def as_of(self) -> datetime: ...
    @property
    def registered_at(self) -> datetime: ...
    @property
    def ltv(self) -> Money: ...
    @property
    def last_payment_at(self) -> datetime | None: ...
    @property
    def active_services(self) -> int: ...
    @property
    def troubled_services(self) -> int: ...
    @property
    def overdue_invoices(self) -> int: ...
    @property
    def next_cancellation_at(self) -> datetime | None: ...
    @property
    def subscriber_since(self) -> datetime | None: ...
    @property
    def ordered(self) -> bool: ...
    @property
    def services(self) -> tuple[ServiceFacts, ...]: ...


@attrs.frozen(kw_only=True, slots=True)
class SegmentInputs:
    """The facts the built-in rules read, as a store computes them (see :class:`RuleFacts`
    and :class:`~revcrm.segments.CustomerFacts` for their meaning)."""

    as_of: datetime
    registered_at: datetime
    ltv: Money
    last_payment_at: datetime | None
    active_services: int
    troubled_services: int
    overdue_invoices: int
    next_cancellation_at: datetime | None
    subscriber_since: datetime | None
    ordered: bool
    services: tuple[ServiceFacts, ...] = ()


def is_active(f: RuleFacts, config: SegmentConfig) -> bool:
    """Active: an active service whose current period is paid (:func:`service_paid_up`);
    with ``config.active_payment_days`` set, an active service and a successful payment
    in the last that many days instead."""
    if f.active_services <= 0:
        return False
    if config.active_payment_days is not None:
        return f.last_payment_at is not None and f.last_payment_at >= f.as_of - timedelta(
            days=config.active_payment_days
        )
    return any(service_paid_up(s, f.last_payment_at, f.as_of, config) for s in f.services)


def _at_risk(f: RuleFacts, config: SegmentConfig) -> bool:
    return (
        f.overdue_invoices > 0
        or f.troubled_services > 0
        or (
            f.next_cancellation_at is not None
            and f.next_cancellation_at <= f.as_of + timedelta(days=config.at_risk_cancellation_days)
        )
    )


def _new(f: RuleFacts, config: SegmentConfig) -> bool:
    return f.as_of - timedelta(days=config.new_customer_days) <= f.registered_at <= f.as_of


def memberships(f: RuleFacts, config: SegmentConfig, baseline: LtvBaseline) -> frozenset[Segment]:
    """The built-in segments of a customer (``OTHER`` alone when in none of the six)."""
    out: set[Segment] = set()
    if _at_risk(f, config):
        out.add(Segment.AT_RISK)
    if f.active_services > 0 and baseline.exceeded_by(f.ltv):
        out.add(Segment.HIGH_VALUE)
    if _new(f, config):
        out.add(Segment.NEW)
    if is_active(f, config):
        out.add(Segment.ACTIVE)
    if f.subscriber_since is not None and f.active_services == 0:
        out.add(Segment.CHURNED)
    if not f.ordered:
        out.add(Segment.NEVER_PURCHASED)
    return frozenset(out or {Segment.OTHER})


@attrs.frozen(kw_only=True)
class SegmentMiss:
    """Why a customer is not in ``segment``: the rule it missed, in words."""

    segment: Segment
    reason: str

    def __str__(self) -> str:
        return f"{self.segment.label}: {self.reason}"


def _day(t: datetime) -> str:
    return f"{t:%Y-%m-%d}"


def _active_miss(f: RuleFacts, config: SegmentConfig) -> str:
    if f.active_services <= 0:
        return "no active service"
    if config.active_payment_days is not None:
        last = "none" if f.last_payment_at is None else _day(f.last_payment_at)
        return f"no payment in the last {config.active_payment_days} days (last: {last})"
    parts = []
    for s in f.services:
        since = f.as_of - timedelta(days=config.active_grace_days)
        period = f"{_day(s.period_start)}..{_day(s.period_end)}"
        if s.billed_through is not None and s.billed_through > since:
            parts.append(f"{s.subscription_id} ({s.cycle}): invoice for {period} unpaid")
        else:
            window = _day(active_window_start(s.cycle, f.as_of, config))
            parts.append(f"{s.subscription_id} ({s.cycle}): no payment since {window}")
    return "current period not paid: " + "; ".join(parts)


def misses(f: RuleFacts, config: SegmentConfig, baseline: LtvBaseline) -> tuple[SegmentMiss, ...]:
    """For each of the six named segments the customer is not in, the rule it missed (in
    precedence order of :data:`~revcrm.segments.PRECEDENCE`)."""
    held = memberships(f, config, baseline)
    out: list[SegmentMiss] = []

    def miss(segment: Segment, reason: str) -> None:
        if segment not in held:
            out.append(SegmentMiss(segment=segment, reason=reason))

    miss(
        Segment.AT_RISK,
        "no overdue invoice, no past-due or suspended service, no cancellation within "
        f"{config.at_risk_cancellation_days} days",
    )
    miss(
        Segment.HIGH_VALUE,
        "no active service"
        if f.active_services <= 0
        else "LTV not above the average LTV of paying customers",
    )
    miss(Segment.NEW, f"registered {_day(f.registered_at)}, over {config.new_customer_days} days ago")
    miss(Segment.ACTIVE, _active_miss(f, config))
    miss(
        Segment.CHURNED,
        "still has an active service" if f.active_services > 0 else "never had a paid service",
    )
    miss(Segment.NEVER_PURCHASED, "has ordered")
    return tuple(out)
