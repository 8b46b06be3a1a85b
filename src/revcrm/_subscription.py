"""Subscriptions (services) with an append-only history of changes."""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import attrs

from revcrm._checks import (
    as_enum,
    check_count,
    check_id,
    check_instance,
    check_items,
    check_text,
    optional_id,
    optional_instance,
)
from revcrm._cycles import BillingCycle
from revcrm._discount import Discount, DiscountDuration
from revcrm._money import Money
from revcrm._time import optional_utc, utc
from revcrm.errors import ValidationError

__all__ = [
    "ChangeKind",
    "Subscription",
    "SubscriptionChange",
    "SubscriptionState",
    "SubscriptionStatus",
]


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"

    @property
    def is_ended(self) -> bool:
        return self in (SubscriptionStatus.CANCELLED, SubscriptionStatus.TERMINATED)


class ChangeKind(enum.StrEnum):
    STARTED = "started"
    PLAN_CHANGED = "plan_changed"  # plan, price, quantity or cycle
    DISCOUNT_CHANGED = "discount_changed"
    STATUS_CHANGED = "status_changed"  # trial converted, past due, suspended, terminated...
    CANCELLATION_SCHEDULED = "cancellation_scheduled"
    CANCELLATION_UNSCHEDULED = "cancellation_unscheduled"
    CANCELLED = "cancelled"
    REACTIVATED = "reactivated"


# Status changes that STATUS_CHANGED may set; cancellation has its own kinds because
# when it takes effect is a policy question.
_SETTABLE = frozenset(
    {
        SubscriptionStatus.TRIALING,
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.SUSPENDED,
        SubscriptionStatus.TERMINATED,
    }
)


def _quantity(value: object) -> int | None:
    if value is None:
        return None
    return check_count(value, "quantity", minimum=1)


def _price(value: object) -> Money | None:
    if value is None:
        return None
    if not isinstance(value, Money):
        raise ValidationError("price", value, "expected Money")
    if value.amount < 0:
        raise ValidationError("price", value, "prices cannot be negative")
    return value


def _at(value: object) -> datetime:
    return utc(value, "at")


def _trial_end(value: object) -> datetime | None:
    return optional_utc(value, "trial_end")


def _anchor(value: object) -> datetime | None:
    return optional_utc(value, "billing_anchor")


def _ends_at(value: object) -> datetime | None:
    return optional_utc(value, "ends_at")


def _kind(value: object) -> ChangeKind:
    return as_enum(ChangeKind, value, "kind")


def _status(value: object) -> SubscriptionStatus | None:
    return None if value is None else as_enum(SubscriptionStatus, value, "status")


def _cycle(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    optional_instance(value, BillingCycle, "cycle")


def _discount(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    optional_instance(value, Discount, "discount")


def _opt_ref(field: str) -> Any:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        optional_id(value, field)

    return check


def _note(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    check_text(value, "note")


@attrs.frozen(kw_only=True)
class SubscriptionChange:
    """One entry of a subscription's history, effective at ``at`` (aware, UTC).

    Only the fields the change sets are given; ``None`` means unchanged. For
    ``DISCOUNT_CHANGED`` a ``None`` discount removes the discount. ``CANCELLED`` may
    carry ``ends_at``, the end of the paid service (the end of the current billing
    period when omitted).
    """

    kind: ChangeKind = attrs.field(converter=_kind)
    at: datetime = attrs.field(converter=_at)
    price: Money | None = attrs.field(default=None, converter=_price)
    cycle: BillingCycle | None = attrs.field(default=None, validator=_cycle)
    quantity: int | None = attrs.field(default=None, converter=_quantity)
    product_id: str | None = attrs.field(default=None, validator=_opt_ref("product_id"))
    plan_id: str | None = attrs.field(default=None, validator=_opt_ref("plan_id"))
    discount: Discount | None = attrs.field(default=None, validator=_discount)
    status: SubscriptionStatus | None = attrs.field(default=None, converter=_status)
    trial_end: datetime | None = attrs.field(default=None, converter=_trial_end)
    billing_anchor: datetime | None = attrs.field(default=None, converter=_anchor)
    ends_at: datetime | None = attrs.field(default=None, converter=_ends_at)
    note: str = attrs.field(default="", validator=_note)


@attrs.frozen(kw_only=True)
class SubscriptionState:
    """A subscription as it stood after one change: what replaying the history yields."""

    status: SubscriptionStatus
    status_since: datetime
    product_id: str | None
    plan_id: str | None
    price: Money  # per cycle, per unit, before discount
    cycle: BillingCycle
    quantity: int
    discount: Discount | None
    discount_from: datetime | None
    started_at: datetime
    trial_end: datetime | None
    billing_anchor: datetime
    cancel_at_period_end: bool
    cancel_requested_at: datetime | None
    cancelled_at: datetime | None  # when the cancellation was recorded
    ended_at: datetime | None  # when service ends (end of paid period or termination)
    paying_status: SubscriptionStatus  # the status before cancellation, for deferred churn
    as_of: datetime

    @property
    def currency(self) -> str:
        return self.price.currency

    def list_amount(self) -> Money:
        """Price x quantity per cycle, before discount."""
        return self.price * self.quantity

    def discount_until(self) -> datetime | None:
        """When the current discount stops applying (``None``: it does not stop)."""
        d = self.discount
        if d is None or d.duration is DiscountDuration.FOREVER:
            return None
        if d.duration is DiscountDuration.REPEATING:
            return d.ends_at
        assert self.discount_from is not None
        return self.cycle.next_after(self.billing_anchor, self.discount_from)

    def service_period(self, at: datetime) -> tuple[datetime, datetime]:
        return self.cycle.period_containing(self.billing_anchor, at)

    def next_renewal(self, after: datetime) -> datetime | None:
        """The next billing date strictly after ``after``, or None once service ends."""
        if self.status.is_ended or self.cancel_at_period_end:
            return None
        if after < self.billing_anchor:
            return self.billing_anchor
        return self.cycle.next_after(self.billing_anchor, after)


_V = TypeVar("_V")


def _given(value: _V | None, fallback: _V) -> _V:
    """``value`` unless it is None: a change's field left out keeps the previous value,
    while a given falsy value (a price of zero) is applied, never dropped."""
    return fallback if value is None else value


def _apply(prev: SubscriptionState | None, c: SubscriptionChange, sub_id: str) -> SubscriptionState:
    def bad(field: str, value: object, reason: str) -> ValidationError:
        return ValidationError(f"subscription[{sub_id}].{field}", value, reason)

    def check_discount(currency: str) -> None:
        d = c.discount
        if d is None:
            return
        if d.amount_off is not None and d.amount_off.currency != currency:
            raise bad("discount", d, f"amount off must be in {currency}")
        if d.ends_at is not None and d.ends_at < c.at:
            raise bad("discount.ends_at", d.ends_at, "the discount ends before it is set")

    if prev is None:
        if c.kind is not ChangeKind.STARTED:
            raise bad("history[0].kind", c.kind, "a history must begin with STARTED")
        if c.price is None or c.cycle is None:
            raise bad("price", c.price, "STARTED needs a price and a cycle")
        status = _given(
            c.status,
            SubscriptionStatus.TRIALING if c.trial_end is not None else SubscriptionStatus.ACTIVE,
        )
        if status.is_ended:
            raise bad("status", status, "a subscription cannot start ended")
        if c.trial_end is not None and c.trial_end < c.at:
            raise bad("trial_end", c.trial_end, "trial ends before the subscription starts")
        check_discount(c.price.currency)
        anchor = _given(c.billing_anchor, c.trial_end if c.trial_end is not None else c.at)
        return SubscriptionState(
            status=status,
            status_since=c.at,
            product_id=c.product_id,
            plan_id=c.plan_id,
            price=c.price,
            cycle=c.cycle,
            quantity=_given(c.quantity, 1),
            discount=c.discount,
            discount_from=c.at if c.discount is not None else None,
            started_at=c.at,
            trial_end=c.trial_end,
            billing_anchor=anchor,
            cancel_at_period_end=False,
            cancel_requested_at=None,
            cancelled_at=None,
            ended_at=None,
            paying_status=status,
            as_of=c.at,
        )
    if c.kind is ChangeKind.STARTED:
        raise bad("kind", c.kind, "STARTED may only open the history")
    if c.at < prev.as_of:
        raise bad("at", c.at, f"changes must be in time order (previous at {prev.as_of})")
    ended = prev.status.is_ended
    if ended and c.kind not in (ChangeKind.REACTIVATED, ChangeKind.STATUS_CHANGED):
        raise bad("kind", c.kind, "only REACTIVATED or termination may follow an ended service")
    s = attrs.evolve(prev, as_of=c.at)
    match c.kind:
        case ChangeKind.PLAN_CHANGED:
            if c.price is not None and c.price.currency != prev.currency:
                raise bad("price", c.price, f"currency differs from {prev.currency}")
            s = attrs.evolve(
                s,
                price=_given(c.price, prev.price),
                cycle=_given(c.cycle, prev.cycle),
                quantity=_given(c.quantity, prev.quantity),
                product_id=_given(c.product_id, prev.product_id),
                plan_id=_given(c.plan_id, prev.plan_id),
                billing_anchor=_given(c.billing_anchor, prev.billing_anchor),
            )
        case ChangeKind.DISCOUNT_CHANGED:
            check_discount(prev.currency)
            s = attrs.evolve(
                s, discount=c.discount, discount_from=c.at if c.discount is not None else None
            )
        case ChangeKind.STATUS_CHANGED:
            if c.status is None or c.status not in _SETTABLE:
                raise bad("status", c.status, f"STATUS_CHANGED sets one of {sorted(_SETTABLE)}")
            if ended and c.status is not SubscriptionStatus.TERMINATED:
                raise bad("status", c.status, "use REACTIVATED to revive an ended service")
            s = attrs.evolve(s, status=c.status, status_since=c.at)
            if c.status is SubscriptionStatus.TERMINATED:
                ends = c.at if prev.ended_at is None else min(prev.ended_at, c.at)
                s = attrs.evolve(s, ended_at=ends, cancelled_at=_given(prev.cancelled_at, c.at))
            else:
                s = attrs.evolve(s, paying_status=c.status)
        case ChangeKind.CANCELLATION_SCHEDULED:
            s = attrs.evolve(s, cancel_at_period_end=True, cancel_requested_at=c.at)
        case ChangeKind.CANCELLATION_UNSCHEDULED:
            if not prev.cancel_at_period_end:
                raise bad("kind", c.kind, "no cancellation is scheduled")
            s = attrs.evolve(s, cancel_at_period_end=False, cancel_requested_at=None)
        case ChangeKind.CANCELLED:
            ends = _given(c.ends_at, prev.service_period(c.at)[1])
            if ends < c.at:
                raise bad("ends_at", c.ends_at, "service cannot end before it is cancelled")
            s = attrs.evolve(
                s,
                status=SubscriptionStatus.CANCELLED,
                status_since=c.at,
                cancelled_at=c.at,
                ended_at=ends,
                cancel_requested_at=_given(prev.cancel_requested_at, c.at),
            )
        case ChangeKind.REACTIVATED:
            if not ended and not prev.cancel_at_period_end:
                raise bad("kind", c.kind, "only a cancelled or scheduled-to-cancel service revives")
            if c.price is not None and c.price.currency != prev.currency:
                raise bad("price", c.price, f"currency differs from {prev.currency}")
            s = attrs.evolve(
                s,
                status=SubscriptionStatus.ACTIVE,
                status_since=c.at,
                paying_status=SubscriptionStatus.ACTIVE,
                cancel_at_period_end=False,
                cancel_requested_at=None,
                cancelled_at=None,
                ended_at=None,
                price=_given(c.price, prev.price),
                quantity=_given(c.quantity, prev.quantity),
                cycle=_given(c.cycle, prev.cycle),
                billing_anchor=_given(c.billing_anchor, c.at if ended else prev.billing_anchor),
            )
    return s


def _history(value: Iterable[SubscriptionChange]) -> tuple[SubscriptionChange, ...]:
    changes = check_items(value, "history")
    for i, change in enumerate(changes):
        check_instance(change, SubscriptionChange, f"history[{i}]")
    return changes


def _details(value: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Host details as (name, value) pairs of text: any text, stored escaped, so a round
    trip gives back exactly what was written; other value types are refused, not turned
    into text."""
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(check_items(value, "details")):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValidationError(f"details[{i}]", pair, "expected a (name, value) pair")
        name, text = pair
        for part in (name, text):
            if not isinstance(part, str):
                raise ValidationError(f"details[{i}]", pair, "names and values must be strings")
        out.append((str.__str__(name), str.__str__(text)))
    return tuple(out)


def _sub_id(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    check_id(value, "subscription.id")


def _customer_id(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    check_id(value, "customer_id")


@attrs.frozen(kw_only=True)
class Subscription:
    """A customer's subscription (a hosting service) and its full history.

    The history is append-only: methods such as :meth:`change_plan` return a new
    ``Subscription`` with one more change. :meth:`state_at` replays it, so the state and
    MRR at any past moment are reproducible no matter what happened later.
    """

    id: str = attrs.field(validator=_sub_id)
    customer_id: str = attrs.field(validator=_customer_id)
    external_id: str | None = attrs.field(default=None, validator=_opt_ref("external_id"))
    history: tuple[SubscriptionChange, ...] = attrs.field(converter=_history)
    # host details: server, node, domain
    details: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_details)
    _states: tuple[SubscriptionState, ...] = attrs.field(
        init=False, repr=False, eq=False, alias="_states"
    )
    _times: tuple[datetime, ...] = attrs.field(init=False, repr=False, eq=False, alias="_times")

    def __attrs_post_init__(self) -> None:
        if not self.history:
            raise ValidationError(f"subscription[{self.id}].history", (), "must not be empty")
        states: list[SubscriptionState] = []
        prev: SubscriptionState | None = None
        for c in self.history:
            prev = _apply(prev, c, self.id)
            states.append(prev)
        object.__setattr__(self, "_states", tuple(states))
        object.__setattr__(self, "_times", tuple(c.at for c in self.history))

    # -- named constructors and appends ------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        id: str,
        customer_id: str,
        at: datetime,
        price: Money,
        cycle: BillingCycle,
        quantity: int = 1,
        product_id: str | None = None,
        plan_id: str | None = None,
        discount: Discount | None = None,
        trial_end: datetime | None = None,
        billing_anchor: datetime | None = None,
        status: SubscriptionStatus | None = None,
        external_id: str | None = None,
        details: Iterable[tuple[str, str]] = (),
    ) -> Subscription:
        change = SubscriptionChange(
            kind=ChangeKind.STARTED,
            at=at,
            price=price,
            cycle=cycle,
            quantity=quantity,
            product_id=product_id,
            plan_id=plan_id,
            discount=discount,
            trial_end=trial_end,
            billing_anchor=billing_anchor,
            status=status,
        )
        return cls(
            id=id,
            customer_id=customer_id,
            external_id=external_id,
            history=(change,),
            details=details,
        )

    def append(self, change: SubscriptionChange) -> Subscription:
        check_instance(change, SubscriptionChange, "change")
        return attrs.evolve(self, history=(*self.history, change))

    def change_plan(
        self,
        at: datetime,
        *,
        price: Money | None = None,
        cycle: BillingCycle | None = None,
        quantity: int | None = None,
        product_id: str | None = None,
        plan_id: str | None = None,
    ) -> Subscription:
        return self.append(
            SubscriptionChange(
                kind=ChangeKind.PLAN_CHANGED,
                at=at,
                price=price,
                cycle=cycle,
                quantity=quantity,
                product_id=product_id,
                plan_id=plan_id,
            )
        )

    def set_discount(self, at: datetime, discount: Discount | None) -> Subscription:
        return self.append(
            SubscriptionChange(kind=ChangeKind.DISCOUNT_CHANGED, at=at, discount=discount)
        )

    def set_status(self, at: datetime, status: SubscriptionStatus) -> Subscription:
        return self.append(SubscriptionChange(kind=ChangeKind.STATUS_CHANGED, at=at, status=status))

    def schedule_cancellation(self, at: datetime) -> Subscription:
        return self.append(SubscriptionChange(kind=ChangeKind.CANCELLATION_SCHEDULED, at=at))

    def unschedule_cancellation(self, at: datetime) -> Subscription:
        return self.append(SubscriptionChange(kind=ChangeKind.CANCELLATION_UNSCHEDULED, at=at))

    def cancel(self, at: datetime, *, ends_at: datetime | None = None) -> Subscription:
        return self.append(SubscriptionChange(kind=ChangeKind.CANCELLED, at=at, ends_at=ends_at))

    def reactivate(self, at: datetime, *, price: Money | None = None) -> Subscription:
        return self.append(SubscriptionChange(kind=ChangeKind.REACTIVATED, at=at, price=price))

    # -- reading ---------------------------------------------------------------------------

    @property
    def states(self) -> tuple[SubscriptionState, ...]:
        """The state after each change, in history order."""
        return self._states

    @property
    def current(self) -> SubscriptionState:
        return self._states[-1]

    @property
    def currency(self) -> str:
        return self._states[0].currency

    @property
    def started_at(self) -> datetime:
        return self.history[0].at

    def state_at(self, at: datetime) -> SubscriptionState | None:
        """The state at moment ``at`` (changes effective at or before it), or None before start."""
        i = bisect.bisect_right(self._times, utc(at, "at"))
        return self._states[i - 1] if i else None

    def replay(self) -> Iterator[tuple[SubscriptionChange, SubscriptionState]]:
        return zip(self.history, self._states, strict=True)
