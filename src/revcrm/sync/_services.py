"""Services: a host's current rows diffed against stored histories into appended changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs

from revcrm._cycles import BillingCycle
from revcrm._money import Money
from revcrm._subscription import (
    ChangeKind,
    Subscription,
    SubscriptionChange,
    SubscriptionState,
    SubscriptionStatus,
)
from revcrm.errors import ValidationError
from revcrm.sync._state import HostZone, ServiceState

__all__ = ["StaleStateError", "changes_from_state", "implied_changes", "new_subscription"]


class StaleStateError(ValidationError):
    """A host state observed before the last change revcrm holds for that service.

    Appending it would put a change before one already recorded; nothing is written.
    Pass ``allow_backdating=True`` to record it at the last stored change instead.
    """

    def __init__(self, service_id: str, observed_at: datetime, last_change_at: datetime) -> None:
        self.service_id = service_id
        self.observed_at = observed_at
        self.last_change_at = last_change_at
        super().__init__(
            f"services[{service_id}].observed_at",
            observed_at,
            f"is before the last stored change at {last_change_at.isoformat()}",
        )


_LIVE_SETTABLE = frozenset(
    {
        SubscriptionStatus.TRIALING,
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.SUSPENDED,
    }
)


def new_subscription(s: ServiceState, zone: HostZone, observed_at: datetime) -> Subscription:
    """The subscription a host's first view of a service implies.

    It starts at ``started_at`` (pending if the host says so, otherwise active) on the
    host's terms, then takes the host's status, cancellation and end through the same
    changes a known service gets, each at the host's own moment or at ``observed_at``
    (never before the start).
    """
    price, cycle = s.plan_terms()
    started = zone.moment(s.started_at, f"services[{s.id}].started_at")
    anchor = zone.optional(s.next_due_date, f"services[{s.id}].next_due_date")
    first = Subscription.start(
        id=s.id,
        customer_id=s.customer_id,
        at=started,
        price=price,
        cycle=cycle,
        quantity=s.quantity,
        product_id=s.product_id,
        plan_id=s.plan_id,
        discount=s.discount,
        billing_anchor=anchor,
        status=SubscriptionStatus.PENDING
        if s.status is SubscriptionStatus.PENDING
        else SubscriptionStatus.ACTIVE,
        details=s.details,
    )
    sub = first
    for change in implied_changes(first, s, zone, max(observed_at, started)):
        sub = sub.append(change)
    return sub


def implied_changes(
    sub: Subscription,
    s: ServiceState,
    zone: HostZone,
    observed_at: datetime,
    *,
    floor: datetime | None = None,
) -> list[SubscriptionChange]:
    """The changes that take ``sub`` from its last state to the host's state ``s``.

    Each change is effective at the host's own moment for it when the state has one (but
    no later than ``observed_at``), else at ``observed_at``; never before ``floor`` (default: the last change ``sub`` holds),
    since history is only appended to. An equal state implies no change.
    """
    return changes_from_state(
        sub.current, sub.history[-1].at, lambda: sub, s, zone, observed_at, floor=floor
    )


def changes_from_state(
    current: SubscriptionState,
    last_change_at: datetime,
    load: Callable[[], Subscription],
    s: ServiceState,
    zone: HostZone,
    observed_at: datetime,
    *,
    floor: datetime | None = None,
) -> list[SubscriptionChange]:
    """:func:`implied_changes` from a stored service's current state and the moment of its
    last change; ``load`` returns the whole subscription, called only when a change is
    implied (each one is validated by replaying it), so an equal state reads no history."""
    lowest = last_change_at if floor is None else max(floor, last_change_at)
    name = f"services[{s.id}]"

    def at(value: object, field: str) -> datetime:
        own = zone.optional(value, f"{name}.{field}")
        # A host's moment after the observation is a plan, not a fact: it is seen now.
        return max(observed_at if own is None else min(own, observed_at), lowest)

    cur = current
    last = last_change_at
    price, cycle = s.plan_terms()
    out: list[SubscriptionChange] = []
    host_ended = s.status.is_ended
    work: Subscription | None = None

    def push(change: SubscriptionChange) -> None:
        nonlocal work, cur, last
        if work is None:
            work = load()
        work = work.append(change)  # replays: an impossible move is a ValidationError here
        cur = work.current
        last = change.at
        out.append(change)

    if cur.status.is_ended:
        if not host_ended:
            push(
                SubscriptionChange(
                    kind=ChangeKind.REACTIVATED,
                    at=at(s.status_since, "status_since"),
                    price=price,
                    cycle=cycle,
                    quantity=s.quantity,
                    billing_anchor=zone.optional(s.next_due_date, f"{name}.next_due_date"),
                )
            )
        elif s.status is SubscriptionStatus.TERMINATED and cur.status is not s.status:
            push(_terminate(at(s.ended_at, "ended_at")))
            return out
        else:
            return out  # both ended: a stored ending is never moved
    if host_ended:
        push(_ending(s, at, zone, name))
        return out

    pending: list[SubscriptionChange] = []
    terms = _plan_change(s, cur, price, cycle, zone, name)
    if terms is not None:
        pending.append(attrs.evolve(terms, at=at(None, "observed_at")))
    if s.discount != cur.discount:
        pending.append(
            SubscriptionChange(
                kind=ChangeKind.DISCOUNT_CHANGED, at=at(None, "observed_at"), discount=s.discount
            )
        )
    if s.cancellation_requested and not cur.cancel_at_period_end:
        pending.append(
            SubscriptionChange(
                kind=ChangeKind.CANCELLATION_SCHEDULED,
                at=at(s.cancellation_requested_at, "cancellation_requested_at"),
            )
        )
    elif not s.cancellation_requested and cur.cancel_at_period_end:
        pending.append(
            SubscriptionChange(kind=ChangeKind.CANCELLATION_UNSCHEDULED, at=at(None, "observed_at"))
        )
    if s.status is not cur.status:
        if s.status not in _LIVE_SETTABLE:
            raise ValidationError(
                f"{name}.status",
                s.status.value,
                f"a {cur.status.value} service cannot return to it",
            )
        pending.append(
            SubscriptionChange(
                kind=ChangeKind.STATUS_CHANGED,
                at=at(s.status_since, "status_since"),
                status=s.status,
            )
        )
    # Independent changes, applied in time order (a stable sort keeps ties in this order).
    for change in sorted(pending, key=lambda c: c.at):
        push(attrs.evolve(change, at=max(change.at, last)))
    return out


def _plan_change(
    s: ServiceState,
    cur: SubscriptionState,
    price: Money,
    cycle: BillingCycle,
    zone: HostZone,
    name: str,
) -> SubscriptionChange | None:
    new_price = price if price != cur.price else None
    new_cycle = cycle if cycle != cur.cycle else None
    new_quantity = s.quantity if s.quantity != cur.quantity else None
    # A host that does not name a product or plan leaves the stored one as it is.
    new_product = s.product_id if s.product_id not in (None, cur.product_id) else None
    new_plan = s.plan_id if s.plan_id not in (None, cur.plan_id) else None
    if (new_price, new_cycle, new_quantity, new_product, new_plan) == (None,) * 5:
        return None
    anchor = None
    if new_cycle is not None:
        anchor = zone.optional(s.next_due_date, f"{name}.next_due_date")
    return SubscriptionChange(
        kind=ChangeKind.PLAN_CHANGED,
        at=cur.as_of,
        price=new_price,
        cycle=new_cycle,
        quantity=new_quantity,
        product_id=new_product,
        plan_id=new_plan,
        billing_anchor=anchor,
    )


def _terminate(at: datetime) -> SubscriptionChange:
    return SubscriptionChange(
        kind=ChangeKind.STATUS_CHANGED, at=at, status=SubscriptionStatus.TERMINATED
    )


def _ending(
    s: ServiceState,
    at: Callable[[object, str], datetime],
    zone: HostZone,
    name: str,
) -> SubscriptionChange:
    if s.status is SubscriptionStatus.TERMINATED:
        return _terminate(at(s.ended_at if s.ended_at is not None else s.status_since, "ended_at"))
    when = at(s.cancelled_at if s.cancelled_at is not None else s.status_since, "cancelled_at")
    ends = zone.optional(s.ended_at, f"{name}.ended_at")
    if ends is not None and ends < when:
        # Ended before the cancellation was recorded: the cancellation took effect then
        # (never before a change revcrm already holds).
        when = at(s.ended_at, "ended_at")
        ends = max(ends, when)
    return SubscriptionChange(kind=ChangeKind.CANCELLED, at=when, ends_at=ends)
