"""MRR of one subscription under the default (ChartMogul) policy and the vendor presets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given

from revcrm import BillingCycle, Discount, DiscountDuration, Money, Subscription, SubscriptionStatus
from revcrm.metrics import MetricsPolicy, monthly_amount, subscription_mrr
from revcrm.metrics._mrr import scheduled_end
from revcrm.testing import strategies as S
from tests._builders import t, usd

Status = SubscriptionStatus
STRIPE = MetricsPolicy.stripe()


def start(
    price: str,
    cycle: BillingCycle = BillingCycle.MONTHLY,
    at: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    **kw: Any,
) -> Subscription:
    return Subscription.start(
        id="s1",
        customer_id="c1",
        at=at,
        price=usd(price),
        cycle=cycle,
        **kw,
    )


def test_zero_before_the_start() -> None:
    sub = start("10", at=t(2024, 4, 15))
    assert subscription_mrr(sub, t(2024, 4, 14)) == usd("0")
    assert subscription_mrr(sub, t(2024, 4, 15)) == usd("10")


def test_trial_is_zero_until_converted() -> None:
    sub = start("50", trial_end=t(2024, 1, 15))
    assert subscription_mrr(sub, t(2024, 1, 10)) == usd("0")
    assert subscription_mrr(sub, t(2024, 1, 10), policy=MetricsPolicy(count_trials=True)) == usd(
        "50"
    )
    converted = sub.set_status(t(2024, 1, 15), Status.ACTIVE)
    assert subscription_mrr(converted, t(2024, 1, 15)) == usd("50")


def test_active_and_past_due_count_suspended_does_not() -> None:
    sub = start("30").set_status(t(2024, 2, 1), Status.PAST_DUE)
    assert subscription_mrr(sub, t(2024, 1, 20)) == usd("30")
    assert subscription_mrr(sub, t(2024, 2, 20)) == usd("30")
    suspended = sub.set_status(t(2024, 3, 1), Status.SUSPENDED)
    assert subscription_mrr(suspended, t(2024, 3, 2)) == usd("0")
    assert subscription_mrr(
        suspended, t(2024, 3, 2), policy=MetricsPolicy(count_suspended=True)
    ) == usd("30")


def test_past_due_auto_churn_setting() -> None:
    sub = start("30").set_status(t(2024, 2, 1), Status.PAST_DUE)
    bm = MetricsPolicy.baremetrics()  # delinquent more than 30 days = churned
    assert subscription_mrr(sub, t(2024, 3, 1), policy=bm) == usd("30")
    assert subscription_mrr(sub, t(2024, 3, 2), policy=bm) == usd("0")


def test_terminated_is_zero() -> None:
    sub = start("30").set_status(t(2024, 2, 1), Status.TERMINATED)
    assert subscription_mrr(sub, t(2024, 2, 1)) == usd("0")


def test_discount_applied() -> None:
    sub = start("100").set_discount(t(2024, 2, 1), Discount.percent(20))
    assert subscription_mrr(sub, t(2024, 1, 31)) == usd("100")
    assert subscription_mrr(sub, t(2024, 2, 1)) == usd("80")
    off = start("100").set_discount(t(2024, 2, 1), Discount.amount(usd("150")))
    assert subscription_mrr(off, t(2024, 2, 2)) == usd("0")  # never below zero


def test_discount_durations_under_each_policy() -> None:
    once = start("100").set_discount(t(2024, 1, 1), Discount.percent(50, DiscountDuration.ONCE))
    assert subscription_mrr(once, t(2024, 1, 20)) == usd("50")
    assert subscription_mrr(once, t(2024, 2, 1)) == usd("100")  # first period only
    # Stripe's legacy default counts forever coupons only.
    assert subscription_mrr(once, t(2024, 1, 20), policy=STRIPE) == usd("100")
    forever = start("100", discount=Discount.percent(50))
    assert subscription_mrr(forever, t(2024, 6, 1), policy=STRIPE) == usd("50")
    repeating = start(
        "100", discount=Discount.percent(10, DiscountDuration.REPEATING, ends_at=t(2024, 4, 1))
    )
    assert subscription_mrr(repeating, t(2024, 3, 31)) == usd("90")
    assert subscription_mrr(repeating, t(2024, 4, 1)) == usd("100")
    assert subscription_mrr(
        repeating, t(2024, 3, 1), policy=MetricsPolicy(discounts="recurring_only")
    ) == usd("90")
    assert subscription_mrr(
        once, t(2024, 1, 20), policy=MetricsPolicy(discounts="recurring_only")
    ) == usd("100")
    assert subscription_mrr(forever, t(2024, 3, 1), policy=MetricsPolicy(discounts="none")) == usd(
        "100"
    )


def test_free_plan_is_zero() -> None:
    assert subscription_mrr(start("0"), t(2024, 6, 1)) == usd("0")


def test_quantity_multiplies() -> None:
    sub = start("20", quantity=3)
    assert subscription_mrr(sub, t(2024, 1, 2)) == usd("60")
    assert subscription_mrr(sub.change_plan(t(2024, 2, 1), quantity=5), t(2024, 2, 2)) == usd("100")


def test_profitwell_cancellation_leaves_at_the_end_of_the_paid_period() -> None:
    # $10 plan from Apr 15, cancelled Jun 8: MRR leaves Jun 15 (end of billing cycle).
    sub = start("10", at=t(2024, 4, 15)).cancel(t(2024, 6, 8))
    assert subscription_mrr(sub, t(2024, 6, 8)) == usd("10")
    assert subscription_mrr(sub, t(2024, 6, 15) - timedelta(microseconds=1)) == usd("10")
    assert subscription_mrr(sub, t(2024, 6, 15)) == usd("0")
    assert subscription_mrr(sub, date(2024, 6, 15)) == usd("0")  # a date means 00:00 UTC
    assert subscription_mrr(sub, date(2024, 6, 14)) == usd("10")


def test_stripe_preset_takes_it_out_at_cancellation() -> None:
    sub = start("10", at=t(2024, 4, 15)).cancel(t(2024, 6, 8))
    assert subscription_mrr(sub, t(2024, 6, 8) - timedelta(microseconds=1), policy=STRIPE) == usd(
        "10"
    )
    assert subscription_mrr(sub, t(2024, 6, 8), policy=STRIPE) == usd("0")


def test_when_scheduled_recognition() -> None:
    sub = start("10").schedule_cancellation(t(2024, 2, 3))
    assert subscription_mrr(sub, t(2024, 2, 4)) == usd("10")
    assert subscription_mrr(
        sub, t(2024, 2, 4), policy=MetricsPolicy(churn_recognition="when_scheduled")
    ) == usd("0")


def test_a_cancelled_trial_never_counts() -> None:
    sub = start("10", trial_end=t(2024, 1, 15)).cancel(t(2024, 1, 5))
    assert subscription_mrr(sub, t(2024, 1, 6)) == usd("0")


def test_chartmogul_upgrade_example() -> None:
    # Bronze $100/month from 2019-01-01, upgraded 2019-02-01 to Gold $250 -> MRR $250.
    sub = start("100", at=t(2019, 1, 1), plan_id="bronze").change_plan(
        t(2019, 2, 1), price=usd("250"), plan_id="gold"
    )
    assert subscription_mrr(sub, date(2019, 1, 15)) == usd("100")
    assert subscription_mrr(sub, date(2019, 2, 1)) == usd("250")


def test_profitwell_annual_with_discount_example() -> None:
    # $120/year with 10% discount -> $9.
    sub = start("120", BillingCycle.ANNUAL, discount=Discount.percent(10))
    assert subscription_mrr(sub, t(2024, 5, 1)) == usd("9")


def test_baremetrics_lifetime_coupon_example() -> None:
    # $10/month with a 50% lifetime coupon -> $5.
    sub = start("10", discount=Discount.percent(50, DiscountDuration.FOREVER))
    assert subscription_mrr(sub, t(2026, 1, 1)) == usd("5")


def test_annual_and_long_terms_are_spread_over_their_months() -> None:
    assert subscription_mrr(start("1200", BillingCycle.ANNUAL), t(2024, 2, 1)) == usd("100")
    assert subscription_mrr(start("2400", BillingCycle.BIENNIAL), t(2024, 2, 1)) == usd("100")
    assert subscription_mrr(start("3600", BillingCycle.TRIENNIAL), t(2024, 2, 1)) == usd("100")


def test_mrr_is_in_the_subscriptions_currency() -> None:
    sub = Subscription.start(
        id="s",
        customer_id="c",
        at=t(2024, 1, 1),
        price=Money("3000", "JPY"),
        cycle=BillingCycle.QUARTERLY,
    )
    assert subscription_mrr(sub, t(2024, 2, 1)) == Money("1000", "JPY")
    assert subscription_mrr(sub, t(2023, 2, 1)) == Money("0", "JPY")


@given(S.subscriptions(), S.moments())
def test_default_policy_follows_the_state(sub: Subscription, at: datetime) -> None:
    """Whatever the history: zero unless active/past due (or cancelled but still paid),
    otherwise the monthly amount of price x quantity, never more than the list price."""
    value = subscription_mrr(sub, at)
    assert value.currency == sub.currency
    s = sub.state_at(at)
    if s is None:
        assert value.is_zero()
        return
    status = s.status
    if status is Status.CANCELLED and s.ended_at is not None and at < s.ended_at:
        status = s.paying_status
    if status not in (Status.ACTIVE, Status.PAST_DUE):
        assert value.is_zero()
        return
    if s.cancel_at_period_end and at >= scheduled_end(s):
        # A cancellation scheduled at period end ends the service with the paid period.
        assert value.is_zero()
        return
    full = monthly_amount(s.list_amount(), s.cycle)
    assert Money.zero(sub.currency) <= value <= full
    if s.discount is None:
        assert value == full


@pytest.mark.parametrize("policy", [MetricsPolicy(), STRIPE, MetricsPolicy.baremetrics()])
@given(sub=S.subscriptions(), at=S.moments())
def test_every_preset_gives_zero_before_start_and_never_negative(
    policy: MetricsPolicy, sub: Subscription, at: datetime
) -> None:
    value = subscription_mrr(sub, at, policy=policy)
    assert value >= Money.zero(sub.currency)
    if at < sub.started_at:
        assert value.is_zero()
