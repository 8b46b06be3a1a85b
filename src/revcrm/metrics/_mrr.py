"""MRR of a subscription at a moment, its timeline, and a book's MRR in one currency."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

from revcrm._book import Book
from revcrm._discount import DiscountDuration
from revcrm._money import EXACT_CONTEXT, FxRates, Money, check_currency
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus
from revcrm._time import as_moment
from revcrm.metrics._normalise import normalise
from revcrm.metrics._policy import ChurnRecognition, DiscountPolicy, FxDateRule, MetricsPolicy

__all__ = ["mrr", "subscription_mrr", "subscription_mrr_timeline"]

DEFAULT_POLICY: Final = MetricsPolicy()
_ZERO: Final = Decimal(0)

_S = SubscriptionStatus


def _discount_applies(s: SubscriptionState, at: datetime, policy: MetricsPolicy) -> bool:
    d = s.discount
    if d is None:
        return False
    match policy.discounts:
        case DiscountPolicy.NONE:
            return False
        case DiscountPolicy.FOREVER_ONLY:
            allowed = d.duration is DiscountDuration.FOREVER
        case DiscountPolicy.RECURRING_ONLY:
            allowed = d.duration is not DiscountDuration.ONCE
        case DiscountPolicy.ALL:
            allowed = True
    until = s.discount_until()
    return allowed and (until is None or at < until)


def state_mrr(s: SubscriptionState, at: datetime, policy: MetricsPolicy) -> Money:
    """The MRR a subscription in state ``s`` contributes at ``at`` (its own currency)."""
    return Money(state_amount(s, at, policy), s.currency)


def state_amount(s: SubscriptionState, at: datetime, policy: MetricsPolicy) -> Decimal:
    """:func:`state_mrr` as a bare Decimal: the engine's hot path avoids building Money."""
    status = s.status
    if status is _S.CANCELLED:
        still_paid = s.ended_at is not None and at < s.ended_at
        if policy.churn_recognition is ChurnRecognition.END_OF_PAID_PERIOD and still_paid:
            status = s.paying_status
        else:
            return _ZERO
    if s.cancel_at_period_end:
        if policy.churn_recognition is ChurnRecognition.WHEN_SCHEDULED:
            return _ZERO
        # A scheduled cancellation ends the service when the paid period ends, even if the
        # host never records the CANCELLED change.
        if at >= scheduled_end(s):
            return _ZERO
    if status in (_S.TERMINATED, _S.PENDING):
        return _ZERO
    if status is _S.TRIALING and not policy.count_trials:
        return _ZERO
    if status is _S.SUSPENDED and not policy.count_suspended:
        return _ZERO
    days = policy.past_due_churn_after_days
    if status is _S.PAST_DUE and days is not None and at >= s.status_since + timedelta(days=days):
        return _ZERO
    full, discounted = state_prices(s)
    if discounted is not None and _discount_applies(s, at, policy):
        return discounted
    return full


def state_prices(s: SubscriptionState) -> tuple[Decimal, Decimal | None]:
    """The monthly amounts :func:`state_amount` chooses between once the status allows
    MRR: price x quantity normalised, and the same after the discount (``None`` without
    one). The vectorised walk (:mod:`revcrm._ledger._walk`) evaluates these once per
    distinct state terms and only vectorises the choice."""
    price = EXACT_CONTEXT.multiply(s.price.amount, Decimal(s.quantity))
    if s.discount is None:
        return normalise(price, s.cycle), None
    return normalise(price, s.cycle), normalise(s.discount.apply_amount(price), s.cycle)


def scheduled_end(s: SubscriptionState) -> datetime:
    """When a cancellation scheduled at period end takes effect: the end of the billing
    period in which it was requested."""
    assert s.cancel_requested_at is not None
    if s.cancel_requested_at < s.billing_anchor:
        return s.billing_anchor
    return s.service_period(s.cancel_requested_at)[1]


def discounted_price(s: SubscriptionState, at: datetime, policy: MetricsPolicy) -> Money:
    """Price x quantity per cycle after the discounts the policy counts."""
    price = s.list_amount()
    if s.discount is not None and _discount_applies(s, at, policy):
        price = s.discount.apply(price)
    return price


def subscription_mrr(
    subscription: Subscription, at: date | datetime, *, policy: MetricsPolicy = DEFAULT_POLICY
) -> Money:
    """MRR of one subscription at moment ``at`` in its own currency (zero before it starts)."""
    t = as_moment(at, "at")
    s = subscription.state_at(t)
    return state_mrr(s, t, policy) if s is not None else Money.zero(subscription.currency)


def _breakpoints(sub: Subscription, policy: MetricsPolicy) -> list[datetime]:
    """Every moment at which the subscription's MRR may change under ``policy``."""
    points: set[datetime] = set()
    days = policy.past_due_churn_after_days
    for change, s in sub.replay():
        points.add(change.at)
        if s.ended_at is not None:
            points.add(s.ended_at)
        if s.cancel_at_period_end:
            points.add(scheduled_end(s))
        until = s.discount_until()
        if until is not None:
            points.add(until)
        if days is not None and _S.PAST_DUE in (s.status, s.paying_status):
            points.add(s.status_since + timedelta(days=days))
    return sorted(points)


def subscription_mrr_timeline(
    subscription: Subscription, *, policy: MetricsPolicy = DEFAULT_POLICY
) -> tuple[tuple[datetime, Money], ...]:
    """The steps of a subscription's MRR: ``(from_moment, monthly_amount)`` pairs.

    Each value holds from its moment until the next step; before the first step the MRR
    is zero. Consecutive equal values are merged.
    """
    steps: list[tuple[datetime, Money]] = []
    for t in _breakpoints(subscription, policy):
        value = subscription_mrr(subscription, t, policy=policy)
        if steps and steps[-1][1] == value:
            continue
        if not steps and value.is_zero():
            continue
        steps.append((t, value))
    return tuple(steps)


def fx_date(subscription: Subscription, at: datetime, policy: MetricsPolicy) -> date:
    """The date whose rate converts this subscription's MRR at ``at`` (policy's FX rule)."""
    if policy.fx_date is FxDateRule.TRANSACTION_DATE:
        return at.date()
    s = subscription.state_at(at)
    if s is None:
        return at.date()
    return s.service_period(at)[0].date()


def convert_mrr(
    value: Money,
    subscription: Subscription,
    at: datetime,
    currency: str,
    fx: FxRates,
    policy: MetricsPolicy,
) -> Money:
    if value.currency == currency:
        return value
    return fx.convert(value, currency, on=fx_date(subscription, at, policy))


def mrr(
    book: Book,
    *,
    at: date | datetime,
    currency: str,
    policy: MetricsPolicy = DEFAULT_POLICY,
    customer_ids: Iterable[str] | None = None,
) -> Money:
    """Total MRR of the book at moment ``at`` in ``currency``, converted through ``book.fx``.

    A missing exchange rate raises :class:`revcrm.errors.MissingRateError`: amounts in
    different currencies are never summed as plain numbers.
    """
    check_currency(currency)
    t = as_moment(at, "at")
    subs: Iterable[Subscription]
    if customer_ids is None:
        subs = book.subscriptions
    else:
        by_customer = book.subscriptions_by_customer
        subs = [s for c in customer_ids for s in by_customer.get(c, ())]
    total = Money.zero(currency)
    for sub in subs:
        value = subscription_mrr(sub, t, policy=policy)
        if not value.is_zero():
            total += convert_mrr(value, sub, t, currency, book.fx, policy)
    return total
