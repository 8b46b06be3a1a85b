"""Stripe subscriptions as revcrm subscription histories.

Two sources, in this order of preference:

* **events** (``customer.subscription.created/updated/deleted``): each event's
  ``data.object`` is the subscription after the change; they are replayed in order of
  ``created`` (then id), and each difference from the state before becomes a revcrm change
  dated at the event. When the first event given is an update, the state before it is the
  object with ``previous_attributes`` laid over it, starting at ``start_date``.
* otherwise the **subscription object with its invoices**: the plan over time comes from the
  periods of its invoice lines (a subscription line's period start, or a proration line's
  start for a change mid-cycle), the current state from the object itself (status,
  discount, trial, cancellation). A change the invoices do not show yet is dated at the
  start of the current period.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from revcrm._discount import Discount
from revcrm._subscription import (
    ChangeKind,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from revcrm.errors import ValidationError
from revcrm.io._stripe_common import StripeObject
from revcrm.io._stripe_prices import PlanKey, discount_of, plan_of

__all__ = ["STATUS_MAP", "LinePlan", "from_events", "from_snapshot"]

_S = SubscriptionStatus

#: Stripe subscription status -> revcrm status. ``canceled`` is a revcrm cancellation (with
#: the service end at ``ended_at``) and ``incomplete_expired`` a termination of a service
#: that never started; ``unpaid`` and ``paused`` bill nothing, as suspended services.
STATUS_MAP: Final[Mapping[str, SubscriptionStatus]] = {
    "incomplete": _S.PENDING,
    "incomplete_expired": _S.TERMINATED,
    "trialing": _S.TRIALING,
    "active": _S.ACTIVE,
    "past_due": _S.PAST_DUE,
    "canceled": _S.CANCELLED,
    "unpaid": _S.SUSPENDED,
    "paused": _S.SUSPENDED,
}

PriceLookup = Callable[[Any, StripeObject, str], StripeObject]


class LinePlan(NamedTuple):
    """What one invoice shows a subscription billing from ``at`` on."""

    at: datetime
    plan: PlanKey


class _Snap(NamedTuple):
    status: str
    plan: PlanKey
    discount: Discount | None
    discount_start: datetime | None
    start: datetime
    trial_end: datetime | None
    cancel_scheduled: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    anchor: datetime | None
    period_start: datetime | None


def _status(sub: StripeObject) -> str:
    status = sub.get("status")
    if status not in STATUS_MAP:
        raise sub.error("status", status, f"expected one of {', '.join(STATUS_MAP)}")
    return str(status)


def items_of(sub: StripeObject, price_of: PriceLookup) -> list[tuple[StripeObject, int]]:
    out = []
    for i, raw in enumerate(sub.items("items")):
        field = f"items[{i}]"
        if not isinstance(raw, Mapping):
            raise sub.error(field, raw, "expected a subscription item")
        quantity = raw.get("quantity", 1)
        if quantity is None:
            quantity = 1
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise sub.error(f"{field}.quantity", quantity, "expected a whole number")
        if quantity == 0:
            continue  # a zero-quantity item bills nothing
        price = price_of(raw.get("price") or raw.get("plan"), sub, f"{field}.price")
        out.append((price, quantity))
    return out


def _discount(
    sub: StripeObject, discounts: Mapping[str, Mapping[str, Any]]
) -> tuple[Discount | None, datetime | None]:
    raw = sub.get("discount")
    if raw is None:
        listed = sub.get("discounts") or []
        if not isinstance(listed, list):
            raise sub.error("discounts", listed, "expected a list")
        found = [d if isinstance(d, Mapping) else discounts.get(str(d)) for d in listed]
        if any(d is None for d in found):
            missing = [d for d in listed if not isinstance(d, Mapping) and str(d) not in discounts]
            raise sub.error("discounts", missing, "expand the discounts (or pass them)")
        if len(found) > 1:
            raise sub.error("discounts", listed, "more than one discount is not supported")
        raw = found[0] if found else None
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping):
        raise sub.error("discount", raw, "expected a discount object")
    return discount_of(raw, sub, "discount")


def snapshot(
    sub: StripeObject, price_of: PriceLookup, discounts: Mapping[str, Mapping[str, Any]]
) -> _Snap:
    discount, discount_start = _discount(sub, discounts)
    start = sub.moment("start_date") or sub.moment("created", required=True)
    assert start is not None
    return _Snap(
        status=_status(sub),
        plan=plan_of(items_of(sub, price_of), sub, "items"),
        discount=discount,
        discount_start=discount_start,
        start=start,
        trial_end=sub.moment("trial_end")
        if sub.has("trial_start") or sub.has("trial_end")
        else None,
        cancel_scheduled=sub.flag("cancel_at_period_end") or sub.has("cancel_at"),
        canceled_at=sub.moment("canceled_at"),
        ended_at=sub.moment("ended_at"),
        anchor=sub.moment("billing_cycle_anchor"),
        period_start=sub.moment("current_period_start"),
    )


class _Builder:
    """Collects changes, keeping them in time order (a late one is moved to the last time)."""

    def __init__(self, sub_id: str, customer_id: str) -> None:
        self.sub_id = sub_id
        self.customer_id = customer_id
        self.changes: list[SubscriptionChange] = []
        self.status: SubscriptionStatus = _S.ACTIVE
        self.scheduled = False

    @property
    def last(self) -> datetime:
        return self.changes[-1].at

    @property
    def ended(self) -> bool:
        return self.status.is_ended

    def add(self, kind: ChangeKind, at: datetime, **fields: Any) -> None:
        if self.changes and at < self.last:
            at = self.last
        self.changes.append(SubscriptionChange(kind=kind, at=at, **fields))

    def start(self, snap: _Snap, plan: PlanKey, *, pending: bool) -> None:
        trial = (
            snap.trial_end if snap.trial_end is not None and snap.trial_end >= snap.start else None
        )
        status = _S.PENDING if pending else (_S.TRIALING if trial is not None else _S.ACTIVE)
        discount = snap.discount if _discount_from_start(snap) else None
        self.add(
            ChangeKind.STARTED,
            snap.start,
            price=plan.price,
            cycle=plan.cycle,
            quantity=plan.quantity,
            product_id=plan.product_id,
            plan_id=plan.plan_id,
            discount=discount,
            trial_end=trial,
            billing_anchor=snap.anchor,
            status=status,
        )
        self.status = status

    def plan(self, at: datetime, plan: PlanKey, anchor: datetime | None = None) -> None:
        self.add(
            ChangeKind.PLAN_CHANGED,
            at,
            price=plan.price,
            cycle=plan.cycle,
            quantity=plan.quantity,
            product_id=plan.product_id,
            plan_id=plan.plan_id,
            billing_anchor=anchor,
        )

    def set_status(self, at: datetime, status: SubscriptionStatus) -> None:
        if status is self.status or self.ended:
            return
        if status in (_S.TRIALING, _S.ACTIVE, _S.PAST_DUE, _S.SUSPENDED, _S.TERMINATED):
            self.add(ChangeKind.STATUS_CHANGED, at, status=status)
            self.status = status

    def schedule(self, at: datetime, on: bool) -> None:
        if self.ended or on == self.scheduled:
            return
        kind = ChangeKind.CANCELLATION_SCHEDULED if on else ChangeKind.CANCELLATION_UNSCHEDULED
        self.add(kind, at)
        self.scheduled = on

    def cancel(self, at: datetime, ends_at: datetime | None) -> None:
        if self.ended:
            return
        if self.changes and at < self.last:
            at = self.last
        ends = ends_at if ends_at is not None and ends_at >= at else at
        self.add(ChangeKind.CANCELLED, at, ends_at=ends)
        self.status = _S.CANCELLED

    def build(self, external_id: str) -> Subscription:
        try:
            return Subscription(
                id=self.sub_id,
                customer_id=self.customer_id,
                external_id=external_id,
                history=tuple(self.changes),
            )
        except ValidationError as e:
            raise ValidationError(
                f"subscription[{self.sub_id}]: {e.field}", e.value, e.reason
            ) from e


def _discount_from_start(snap: _Snap) -> bool:
    return snap.discount is not None and (
        snap.discount_start is None or snap.discount_start <= snap.start
    )


def _finish(b: _Builder, snap: _Snap, at: datetime) -> None:
    """Status, trial conversion and cancellation of the final state, dated as well as known."""
    status = snap.status
    if status == "incomplete_expired":
        b.set_status(snap.ended_at or at, _S.TERMINATED)
        return
    if status in ("past_due", "unpaid", "paused", "active"):
        b.set_status(max(at, b.last), STATUS_MAP[status])
    if status == "canceled":
        ended = snap.ended_at or snap.canceled_at or at
        requested = snap.canceled_at or ended
        if requested < ended:
            b.schedule(requested, True)
        b.cancel(ended, ended)
    elif snap.cancel_scheduled:
        b.schedule(snap.canceled_at or snap.period_start or b.last, True)


def from_snapshot(
    sub: StripeObject,
    customer_id: str,
    price_of: PriceLookup,
    discounts: Mapping[str, Mapping[str, Any]],
    lines: list[LinePlan],
    status_since: datetime | None,
) -> Subscription:
    """A history from the subscription object and the plans its invoice lines show."""
    snap = snapshot(sub, price_of, discounts)
    b = _Builder(sub.id, customer_id)
    shown = sorted((lp for lp in lines if lp.at >= snap.start), key=lambda lp: lp.at)
    first = shown[0].plan if shown and shown[0].at == snap.start else None
    pending = snap.status in ("incomplete", "incomplete_expired")
    current = first or (shown[0].plan if shown else snap.plan)
    b.start(snap, current, pending=pending)
    # The trial converts at its end, between the plans the invoices show.
    conversion: tuple[datetime, SubscriptionStatus] | None = None
    trial_end = snap.trial_end
    if (
        trial_end is not None
        and snap.status != "trialing"
        and b.status is _S.TRIALING
        and (snap.ended_at is None or trial_end <= snap.ended_at)
    ):
        conversion = (trial_end, _S.SUSPENDED if snap.status == "paused" else _S.ACTIVE)
    for lp in shown:
        if conversion is not None and lp.at >= conversion[0]:
            b.set_status(*conversion)
            conversion = None
        if lp.plan != current:
            b.plan(lp.at, lp.plan)
            current = lp.plan
    if conversion is not None:
        b.set_status(*conversion)
    if snap.plan != current:
        b.plan(max(snap.period_start or b.last, b.last), snap.plan)
    if snap.discount is not None and not _discount_from_start(snap):
        assert snap.discount_start is not None
        b.add(ChangeKind.DISCOUNT_CHANGED, snap.discount_start, discount=snap.discount)
    _finish(b, snap, status_since or snap.period_start or b.last)
    return b.build(sub.id)


class SubscriptionEvent(NamedTuple):
    created: datetime
    event_id: str
    type: str
    object: StripeObject
    previous: Mapping[str, Any]


def from_events(
    events: list[SubscriptionEvent],
    customer_id: str,
    price_of: PriceLookup,
    discounts: Mapping[str, Mapping[str, Any]],
) -> Subscription:
    """A history replayed from ``customer.subscription.*`` events (sorted here)."""
    ordered = sorted(events, key=lambda e: (e.created, e.event_id))
    first = ordered[0]
    b = _Builder(first.object.id, customer_id)
    if first.type == "customer.subscription.created":
        prev = snapshot(first.object, price_of, discounts)
        rest = ordered[1:]
    else:
        before = StripeObject({**first.object.data, **first.previous}, "subscription")
        prev = snapshot(before, price_of, discounts)
        rest = ordered
    b.start(prev, prev.plan, pending=prev.status in ("incomplete", "incomplete_expired"))
    b.scheduled = False
    if prev.cancel_scheduled:
        b.schedule(prev.canceled_at or prev.start, True)
    if prev.status not in ("incomplete", "trialing", "active"):
        b.set_status(prev.start, STATUS_MAP[prev.status])
    for event in rest:
        snap = snapshot(event.object, price_of, discounts)
        at = event.created
        if snap.plan != prev.plan:
            anchor = snap.anchor if snap.anchor != prev.anchor else None
            b.plan(at, snap.plan, anchor)
        if snap.discount != prev.discount:
            b.add(ChangeKind.DISCOUNT_CHANGED, at, discount=snap.discount)
        if snap.status == "canceled" or event.type == "customer.subscription.deleted":
            b.cancel(min(at, snap.ended_at or at), snap.ended_at or at)
        elif snap.status != prev.status:
            if snap.status == "incomplete_expired":
                b.set_status(at, _S.TERMINATED)
            else:
                b.set_status(at, STATUS_MAP[snap.status])
        if not b.ended and snap.cancel_scheduled != prev.cancel_scheduled:
            b.schedule(at, snap.cancel_scheduled)
        prev = snap
    return b.build(first.object.id)
