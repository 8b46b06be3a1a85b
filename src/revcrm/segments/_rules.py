"""The built-in segment rules, once: what every path (the pure segmentation, the facade,
the in-memory and the SQL stores) applies to a customer's facts.

A store may compute the facts where the data lives (:class:`ServiceFacts` per active
service, and the customer's last payment, overdue invoices...), but membership is
always decided here, by :func:`rule_masks` over :class:`RuleColumns` (many customers at
once; :func:`memberships` is it for one customer).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._cycles import BillingCycle
from revcrm._ledger._cash import moment_us
from revcrm._ledger._fixed import Units, norm
from revcrm._ledger._reach import ServiceReach, service_reach
from revcrm._ledger._services import OPEN
from revcrm._money import Money
from revcrm._records import Invoice
from revcrm._subscription import SubscriptionState
from revcrm.errors import CurrencyMismatchError, ValidationError
from revcrm.segments._baseline import LtvBaseline, decimal_units, places_of
from revcrm.segments._config import Segment, SegmentConfig

__all__ = [
    "RuleColumns",
    "RuleFacts",
    "SegmentInputs",
    "SegmentMiss",
    "ServiceFacts",
    "ServiceReach",
    "ServiceRuleColumns",
    "active_window_start",
    "is_active",
    "memberships",
    "misses",
    "primary_of",
    "reach_at",
    "rule_columns",
    "rule_masks",
    "segment_sets",
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
    paid up when it falls in :func:`active_window_start` ``..at``. (:func:`_paid_up` of
    one service.)
    """
    window = np.array([moment_us(active_window_start(service.cycle, at, config))])
    paid = _paid_up(
        np.array([_us(service.billed_through)]),
        np.array([_us(service.paid_through)]),
        np.array([_us(last_payment_at)]),
        window,
        moment_us(at - timedelta(days=config.active_grace_days)),
    )
    return bool(paid[0])


def _paid_up(
    billed: npt.NDArray[np.int64],
    paid: npt.NDArray[np.int64],
    last_payment: npt.NDArray[np.int64],
    window: npt.NDArray[np.int64],
    since: int,
) -> npt.NDArray[np.bool_]:
    """:func:`service_paid_up` per service: how far its invoices and paid invoices reach,
    its customer's last payment and its cycle's :func:`active_window_start` (moments in
    microseconds, :data:`OPEN` for None), ``since`` = ``at - active_grace_days``."""
    by_invoice = (billed != OPEN) & (billed > since)
    invoice_paid = (paid != OPEN) & (paid > since)
    payment_recent = (last_payment != OPEN) & (last_payment >= window)
    out: npt.NDArray[np.bool_] = np.where(by_invoice, invoice_paid, payment_recent)
    return out


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


def _us(t: datetime | None) -> int:
    return OPEN if t is None else moment_us(t)


@attrs.frozen(kw_only=True, eq=False)
class ServiceRuleColumns:
    """The active services' :class:`ServiceFacts` the Active rule reads, as parallel
    arrays: ``customer`` indexes the customers of :class:`RuleColumns`; ``cycle`` indexes
    ``cycles`` (each distinct cycle once); ``billed_through`` / ``paid_through`` in
    microseconds, :data:`OPEN` for None."""

    customer: npt.NDArray[np.int64]
    cycles: tuple[BillingCycle, ...]
    cycle: npt.NDArray[np.int64]
    billed_through: npt.NDArray[np.int64]
    paid_through: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> ServiceRuleColumns:
        none = np.zeros(0, dtype=np.int64)
        return cls(customer=none, cycles=(), cycle=none, billed_through=none, paid_through=none)


@attrs.frozen(kw_only=True, eq=False)
class RuleColumns:
    """What the built-in rules read (:class:`RuleFacts`) of many customers at one
    ``as_of``, as parallel arrays (index ``i`` is one customer): moments in microseconds
    since 1970-01-01 UTC, :data:`OPEN` for None; ``ltv`` in exact units of
    ``10 ** -digits`` of ``currency`` (int64, or Python ints: ``_ledger._fixed.Units``)."""

    as_of: datetime
    currency: str
    digits: int
    registered_at: npt.NDArray[np.int64]
    ltv: Units
    last_payment_at: npt.NDArray[np.int64]
    active_services: npt.NDArray[np.int64]
    troubled_services: npt.NDArray[np.int64]
    overdue_invoices: npt.NDArray[np.int64]
    next_cancellation_at: npt.NDArray[np.int64]
    subscriber_since: npt.NDArray[np.int64]
    ordered: npt.NDArray[np.bool_]
    services: ServiceRuleColumns = attrs.field(factory=ServiceRuleColumns.empty)

    def __len__(self) -> int:
        return len(self.registered_at)


def rule_columns(facts: Sequence[RuleFacts], *, as_of: datetime, currency: str) -> RuleColumns:
    """:class:`RuleColumns` of ``facts`` (each at ``as_of``, LTV in ``currency``)."""
    for f in facts:
        if f.as_of != as_of:
            raise ValidationError("as_of", f.as_of, f"the facts are not all at {as_of}")
    digits = max((places_of(f.ltv.amount) for f in facts), default=0)
    cycles: dict[BillingCycle, int] = {}
    owner: list[int] = []
    cycle: list[int] = []
    billed: list[int] = []
    paid: list[int] = []
    ltv: list[int] = []
    for i, f in enumerate(facts):
        if f.ltv.currency != currency:
            raise CurrencyMismatchError(f.ltv.currency, currency, "compare")
        ltv.append(decimal_units(f.ltv.amount, digits))
        for s in f.services:
            owner.append(i)
            cycle.append(cycles.setdefault(s.cycle, len(cycles)))
            billed.append(_us(s.billed_through))
            paid.append(_us(s.paid_through))

    def moments(values: Iterable[datetime | None]) -> npt.NDArray[np.int64]:
        return np.array([_us(v) for v in values], dtype=np.int64)

    def counts(values: Iterable[int]) -> npt.NDArray[np.int64]:
        return np.array(list(values), dtype=np.int64)

    return RuleColumns(
        as_of=as_of,
        currency=currency,
        digits=digits,
        registered_at=moments(f.registered_at for f in facts),
        ltv=norm(np.array(ltv, dtype=object)) if ltv else np.zeros(0, dtype=np.int64),
        last_payment_at=moments(f.last_payment_at for f in facts),
        active_services=counts(f.active_services for f in facts),
        troubled_services=counts(f.troubled_services for f in facts),
        overdue_invoices=counts(f.overdue_invoices for f in facts),
        next_cancellation_at=moments(f.next_cancellation_at for f in facts),
        subscriber_since=moments(f.subscriber_since for f in facts),
        ordered=np.array([bool(f.ordered) for f in facts], dtype=bool),
        services=ServiceRuleColumns(
            customer=counts(owner),
            cycles=tuple(cycles),
            cycle=counts(cycle),
            billed_through=counts(billed),
            paid_through=counts(paid),
        ),
    )


def _active(c: RuleColumns, config: SegmentConfig) -> npt.NDArray[np.bool_]:
    """Active: an active service whose current period is paid (:func:`_paid_up`, each
    cycle's :func:`active_window_start` computed once); with
    ``config.active_payment_days`` set, an active service and a successful payment in
    the last that many days instead."""
    has_service = c.active_services > 0
    last = c.last_payment_at
    if config.active_payment_days is not None:
        since = moment_us(c.as_of - timedelta(days=config.active_payment_days))
        out: npt.NDArray[np.bool_] = has_service & (last != OPEN) & (last >= since)
        return out
    s = c.services
    windows = np.array(
        [moment_us(active_window_start(cy, c.as_of, config)) for cy in s.cycles], dtype=np.int64
    )
    paid = _paid_up(
        s.billed_through,
        s.paid_through,
        last[s.customer],
        windows[s.cycle] if len(windows) else np.zeros(0, dtype=np.int64),
        moment_us(c.as_of - timedelta(days=config.active_grace_days)),
    )
    any_paid = np.zeros(len(c), dtype=bool)
    any_paid[s.customer[paid]] = True
    return has_service & any_paid


def rule_masks(
    c: RuleColumns, config: SegmentConfig, baseline: LtvBaseline
) -> dict[Segment, npt.NDArray[np.bool_]]:
    """The built-in rules, once: per :class:`Segment` (``OTHER`` included: in none of the
    six) which customers of ``c`` are in it."""
    at = c.as_of
    at_risk = (
        (c.overdue_invoices > 0)
        | (c.troubled_services > 0)
        | (
            (c.next_cancellation_at != OPEN)
            & (
                c.next_cancellation_at
                <= moment_us(at + timedelta(days=config.at_risk_cancellation_days))
            )
        )
    )
    has_service = c.active_services > 0
    high_value = has_service.copy()
    if high_value.any():
        high_value[high_value] = baseline.exceeded_by_units(c.ltv[high_value], c.digits, c.currency)
    new = (c.registered_at >= moment_us(at - timedelta(days=config.new_customer_days))) & (
        c.registered_at <= moment_us(at)
    )
    churned = (c.subscriber_since != OPEN) & ~has_service
    out = {
        Segment.AT_RISK: at_risk,
        Segment.HIGH_VALUE: high_value,
        Segment.NEW: new,
        Segment.ACTIVE: _active(c, config),
        Segment.CHURNED: churned,
        Segment.NEVER_PURCHASED: ~c.ordered,
    }
    named = np.zeros(len(c), dtype=bool)
    for mask in out.values():
        named |= mask
    out[Segment.OTHER] = ~named
    return out


def primary_of(
    masks: Mapping[Segment, npt.NDArray[np.bool_]], precedence: Sequence[Segment]
) -> npt.NDArray[np.int64]:
    """Per customer the index in ``precedence`` of its primary segment (the first of
    ``precedence`` it is in: every customer is in one, ``OTHER`` at least)."""
    n = len(masks[Segment.OTHER])
    out = np.full(n, len(precedence), dtype=np.int64)
    for k in range(len(precedence) - 1, -1, -1):
        out[masks[precedence[k]]] = k
    return out


def segment_sets(masks: Mapping[Segment, npt.NDArray[np.bool_]]) -> list[frozenset[Segment]]:
    """Per customer the set of segments ``masks`` (:func:`rule_masks`) puts it in."""
    order = tuple(masks)
    code = np.zeros(len(masks[Segment.OTHER]), dtype=np.int64)
    for bit, seg in enumerate(order):
        code |= masks[seg].astype(np.int64) << bit
    # Few distinct combinations: one frozenset each.
    sets = {
        int(k): frozenset(seg for bit, seg in enumerate(order) if int(k) >> bit & 1)
        for k in np.unique(code).tolist()
    }
    return [sets[k] for k in code.tolist()]


def is_active(f: RuleFacts, config: SegmentConfig) -> bool:
    """Active: an active service whose current period is paid (:func:`service_paid_up`);
    with ``config.active_payment_days`` set, an active service and a successful payment
    in the last that many days instead. (:func:`rule_masks` of one customer.)"""
    c = rule_columns((f,), as_of=f.as_of, currency=f.ltv.currency)
    return bool(_active(c, config)[0])


def memberships(f: RuleFacts, config: SegmentConfig, baseline: LtvBaseline) -> frozenset[Segment]:
    """The built-in segments of a customer (``OTHER`` alone when in none of the six):
    :func:`rule_masks` of one customer."""
    c = rule_columns((f,), as_of=f.as_of, currency=f.ltv.currency)
    return frozenset(seg for seg, mask in rule_masks(c, config, baseline).items() if mask[0])


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
    miss(
        Segment.NEW, f"registered {_day(f.registered_at)}, over {config.new_customer_days} days ago"
    )
    miss(Segment.ACTIVE, _active_miss(f, config))
    miss(
        Segment.CHURNED,
        "still has an active service" if f.active_services > 0 else "never had a paid service",
    )
    miss(Segment.NEVER_PURCHASED, "has ordered")
    return tuple(out)
