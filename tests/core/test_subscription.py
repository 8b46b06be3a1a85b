"""Subscription history: append-only, immutable, replayable, and only valid sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    ChangeKind,
    Discount,
    DiscountDuration,
    Money,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
)
from revcrm.errors import ValidationError
from revcrm.testing import strategies as S
from tests._builders import t, usd

Status = SubscriptionStatus
USD = "USD"


def basic(**kw: object) -> Subscription:
    args: dict[str, object] = {
        "id": "s1",
        "customer_id": "c1",
        "at": t(2024, 1, 15),
        "price": usd("10"),
        "cycle": BillingCycle.MONTHLY,
    }
    args.update(kw)
    return Subscription.start(**args)  # type: ignore[arg-type]


def rejected(call: object, field: str) -> ValidationError:
    assert callable(call)
    with pytest.raises(ValidationError) as e:
        call()
    assert e.value.field == field
    return e.value


class TestReplay:
    @given(S.subscriptions())
    def test_state_at_each_change_is_the_state_after_the_last_change_at_that_time(
        self, sub: Subscription
    ) -> None:
        times = [c.at for c in sub.history]
        for change, state in sub.replay():
            last = max(i for i, at in enumerate(times) if at == change.at)
            assert sub.state_at(change.at) == sub.states[last]
            assert state.as_of == change.at
        assert sub.state_at(sub.started_at - timedelta(microseconds=1)) is None
        assert sub.current == sub.states[-1]
        assert sub.state_at(S.LATEST + timedelta(days=9999)) == sub.current

    @given(S.subscriptions(), st.data())
    def test_between_changes_the_earlier_state_holds(
        self, sub: Subscription, data: st.DataObject
    ) -> None:
        times = [c.at for c in sub.history]
        i = data.draw(st.integers(0, len(times) - 1))
        if i + 1 < len(times) and times[i + 1] > times[i]:
            moment = data.draw(
                S.moments(min_value=times[i], max_value=times[i + 1] - timedelta(microseconds=1))
            )
            last = max(j for j, at in enumerate(times) if at <= moment)
            assert sub.state_at(moment) == sub.states[last]

    @given(S.subscriptions())
    def test_replaying_the_history_rebuilds_the_same_states(self, sub: Subscription) -> None:
        again = Subscription(id=sub.id, customer_id=sub.customer_id, history=list(sub.history))
        assert again == sub
        assert again.states == sub.states
        assert all(s.currency == sub.currency for s in sub.states)

    @given(S.subscriptions())
    def test_history_is_in_time_order_and_starts_with_started(self, sub: Subscription) -> None:
        assert sub.history[0].kind is ChangeKind.STARTED
        assert all(c.kind is not ChangeKind.STARTED for c in sub.history[1:])
        assert all(a.at <= b.at for a, b in zip(sub.history, sub.history[1:], strict=False))

    def test_state_at_rejects_naive_datetimes(self) -> None:
        rejected(lambda: basic().state_at(datetime(2024, 1, 1)), "at")


class TestAppendOnly:
    @given(S.subscriptions(), S.money(USD))
    def test_appending_leaves_the_past_untouched(self, sub: Subscription, price: Money) -> None:
        at = sub.current.as_of + timedelta(days=1)
        s = sub.current
        if s.status.is_ended:
            later = sub.reactivate(at)
        elif sub.currency == USD:
            later = sub.change_plan(at, price=price)
        else:
            later = sub.set_status(at, Status.PAST_DUE)
        assert later is not sub
        assert len(later.history) == len(sub.history) + 1
        assert later.history[:-1] == sub.history
        assert later.states[:-1] == sub.states
        for change in sub.history:
            assert later.state_at(change.at) == sub.state_at(change.at)

    def test_subscriptions_and_changes_are_frozen(self) -> None:
        sub = basic()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            sub.history = ()  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            sub.history[0].at = t(2020, 1, 1)  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            sub.current.price = usd("1")  # type: ignore[misc]
        assert isinstance(sub.history, tuple)

    def test_the_callers_list_is_copied(self) -> None:
        changes = list(basic().history)
        sub = Subscription(id="s1", customer_id="c1", history=changes)
        changes.append(SubscriptionChange(kind=ChangeKind.CANCELLED, at=t(2024, 2, 1)))
        assert len(sub.history) == 1

    @given(S.subscriptions())
    def test_a_rejected_change_leaves_the_subscription_as_it_was(self, sub: Subscription) -> None:
        before = sub.history
        with pytest.raises(ValidationError):
            sub.set_status(sub.current.as_of - timedelta(seconds=1), Status.ACTIVE)
        assert sub.history == before


class TestInvalidSequences:
    @given(S.subscriptions(), st.timedeltas(timedelta(microseconds=1), timedelta(days=400)))
    def test_changes_out_of_time_order(self, sub: Subscription, back: timedelta) -> None:
        at = sub.current.as_of - back
        e = rejected(
            lambda: sub.append(
                SubscriptionChange(kind="status_changed", at=at, status="terminated")
            ),
            f"subscription[{sub.id}].at",
        )
        assert e.value == at

    def test_started_twice(self) -> None:
        sub = basic()
        again = SubscriptionChange(
            kind=ChangeKind.STARTED, at=t(2024, 2, 1), price=usd("5"), cycle=BillingCycle.MONTHLY
        )
        rejected(lambda: sub.append(again), "subscription[s1].kind")

    def test_history_must_begin_with_started(self) -> None:
        first = SubscriptionChange(kind=ChangeKind.PLAN_CHANGED, at=t(2024, 1, 1), price=usd("1"))
        rejected(
            lambda: Subscription(id="s1", customer_id="c1", history=[first]),
            "subscription[s1].history[0].kind",
        )

    def test_history_must_not_be_empty(self) -> None:
        rejected(
            lambda: Subscription(id="s1", customer_id="c1", history=[]), "subscription[s1].history"
        )
        rejected(lambda: basic(id=""), "subscription.id")

    def test_started_needs_price_and_cycle(self) -> None:
        bare = SubscriptionChange(kind=ChangeKind.STARTED, at=t(2024, 1, 1))
        rejected(
            lambda: Subscription(id="s1", customer_id="c1", history=[bare]),
            "subscription[s1].price",
        )

    @pytest.mark.parametrize("status", [Status.CANCELLED, Status.TERMINATED])
    def test_cannot_start_ended(self, status: SubscriptionStatus) -> None:
        rejected(lambda: basic(status=status), "subscription[s1].status")

    @pytest.mark.parametrize(
        "change",
        [
            lambda s: s.change_plan(t(2024, 3, 1), price=usd("20")),
            lambda s: s.set_discount(t(2024, 3, 1), Discount.percent(10)),
            lambda s: s.schedule_cancellation(t(2024, 3, 1)),
            lambda s: s.cancel(t(2024, 3, 1)),
            lambda s: s.set_status(t(2024, 3, 1), Status.ACTIVE),
        ],
    )
    def test_no_changes_after_cancellation_but_reactivation_or_termination(
        self, change: object
    ) -> None:
        cancelled = basic().cancel(t(2024, 2, 1))
        assert callable(change)
        with pytest.raises(ValidationError) as e:
            change(cancelled)
        assert e.value.field in ("subscription[s1].kind", "subscription[s1].status")
        assert cancelled.reactivate(t(2024, 3, 1)).current.status is Status.ACTIVE
        assert (
            cancelled.set_status(t(2024, 3, 1), Status.TERMINATED).current.status
            is Status.TERMINATED
        )

    def test_reactivate_when_not_cancelled(self) -> None:
        rejected(lambda: basic().reactivate(t(2024, 2, 1)), "subscription[s1].kind")

    def test_unschedule_when_nothing_is_scheduled(self) -> None:
        rejected(lambda: basic().unschedule_cancellation(t(2024, 2, 1)), "subscription[s1].kind")

    def test_currency_cannot_change(self) -> None:
        sub = basic()
        eur = Money("10", "EUR")
        rejected(lambda: sub.change_plan(t(2024, 2, 1), price=eur), "subscription[s1].price")
        cancelled = sub.cancel(t(2024, 2, 1))
        rejected(lambda: cancelled.reactivate(t(2024, 3, 1), price=eur), "subscription[s1].price")
        off = Discount.amount(Money("1", "EUR"))
        rejected(lambda: sub.set_discount(t(2024, 2, 1), off), "subscription[s1].discount")
        rejected(lambda: basic(discount=off), "subscription[s1].discount")

    @pytest.mark.parametrize("status", [Status.CANCELLED, Status.PENDING])
    def test_status_changed_cannot_cancel_or_pend(self, status: SubscriptionStatus) -> None:
        rejected(lambda: basic().set_status(t(2024, 2, 1), status), "subscription[s1].status")

    def test_trial_cannot_end_before_start(self) -> None:
        rejected(lambda: basic(trial_end=t(2024, 1, 14)), "subscription[s1].trial_end")

    def test_service_cannot_end_before_cancellation(self) -> None:
        sub = basic()
        rejected(
            lambda: sub.cancel(t(2024, 2, 10), ends_at=t(2024, 2, 9)), "subscription[s1].ends_at"
        )

    def test_discount_cannot_end_before_it_is_set(self) -> None:
        d = Discount.percent(10, DiscountDuration.REPEATING, ends_at=t(2024, 1, 1))
        rejected(
            lambda: basic().set_discount(t(2024, 2, 1), d), "subscription[s1].discount.ends_at"
        )

    def test_change_fields_are_typed(self) -> None:
        rejected(lambda: SubscriptionChange(kind="bogus", at=t(2024, 1, 1)), "kind")
        rejected(
            lambda: SubscriptionChange(kind="started", at=t(2024, 1, 1), status="gone"), "status"
        )
        rejected(
            lambda: SubscriptionChange(kind="started", at=t(2024, 1, 1), cycle="monthly"),  # type: ignore[arg-type]
            "cycle",
        )
        rejected(
            lambda: SubscriptionChange(kind="started", at=t(2024, 1, 1), discount=10),  # type: ignore[arg-type]
            "discount",
        )


class TestStates:
    def test_start_defaults(self) -> None:
        s = basic().current
        assert s.status is Status.ACTIVE
        assert s.quantity == 1
        assert s.billing_anchor == t(2024, 1, 15)
        assert s.discount is None
        assert s.list_amount() == usd("10")
        assert s.currency == USD

    def test_trial_sets_status_and_anchor(self) -> None:
        s = basic(trial_end=t(2024, 1, 29)).current
        assert s.status is Status.TRIALING
        assert s.billing_anchor == t(2024, 1, 29)
        assert s.next_renewal(t(2024, 1, 20)) == t(2024, 1, 29)

    def test_plan_change_keeps_what_it_does_not_set(self) -> None:
        sub = basic(quantity=2, plan_id="p1", product_id="prod").change_plan(
            t(2024, 2, 1), price=usd("15")
        )
        s = sub.current
        assert (s.price, s.quantity, s.plan_id, s.product_id, s.cycle) == (
            usd("15"),
            2,
            "p1",
            "prod",
            BillingCycle.MONTHLY,
        )
        s = sub.change_plan(t(2024, 3, 1), quantity=5, cycle=BillingCycle.ANNUAL).current
        assert (s.price, s.quantity, s.cycle) == (usd("15"), 5, BillingCycle.ANNUAL)
        assert s.list_amount() == usd("75")

    def test_discounts_set_and_removed(self) -> None:
        sub = basic().set_discount(t(2024, 2, 1), Discount.percent(20))
        assert sub.current.discount == Discount.percent(20)
        assert sub.current.discount_from == t(2024, 2, 1)
        assert sub.current.discount_until() is None
        removed = sub.set_discount(t(2024, 3, 1), None).current
        assert removed.discount is None
        assert removed.discount_from is None

    def test_discount_until(self) -> None:
        once = basic().set_discount(t(2024, 2, 1), Discount.percent(50, DiscountDuration.ONCE))
        assert once.current.discount_until() == t(2024, 2, 15)  # the next billing date
        ends = t(2024, 6, 1)
        rep = basic().set_discount(
            t(2024, 2, 1), Discount.percent(50, DiscountDuration.REPEATING, ends_at=ends)
        )
        assert rep.current.discount_until() == ends
        assert basic().current.discount_until() is None

    def test_schedule_and_unschedule(self) -> None:
        sub = basic().schedule_cancellation(t(2024, 2, 20))
        assert sub.current.cancel_at_period_end
        assert sub.current.cancel_requested_at == t(2024, 2, 20)
        assert sub.current.next_renewal(t(2024, 2, 21)) is None
        back = sub.unschedule_cancellation(t(2024, 2, 25)).current
        assert not back.cancel_at_period_end
        assert back.cancel_requested_at is None
        assert back.next_renewal(t(2024, 2, 25)) == t(2024, 3, 15)

    def test_cancel_ends_at_the_end_of_the_paid_period_by_default(self) -> None:
        s = basic().cancel(t(2024, 6, 8)).current
        assert s.status is Status.CANCELLED
        assert s.cancelled_at == t(2024, 6, 8)
        assert s.ended_at == t(2024, 6, 15)
        assert s.paying_status is Status.ACTIVE
        assert s.next_renewal(t(2024, 6, 9)) is None
        now = basic().cancel(t(2024, 6, 8), ends_at=t(2024, 6, 8)).current
        assert now.ended_at == t(2024, 6, 8)

    def test_termination_after_cancellation_ends_service_no_later(self) -> None:
        sub = basic().cancel(t(2024, 6, 8))
        s = sub.set_status(t(2024, 6, 10), Status.TERMINATED).current
        assert s.ended_at == t(2024, 6, 10)
        assert s.cancelled_at == t(2024, 6, 8)
        s = sub.set_status(t(2024, 7, 1), Status.TERMINATED).current
        assert s.ended_at == t(2024, 6, 15)

    def test_termination_while_active(self) -> None:
        s = basic().set_status(t(2024, 3, 3), Status.TERMINATED).current
        assert (s.status, s.ended_at, s.cancelled_at) == (
            Status.TERMINATED,
            t(2024, 3, 3),
            t(2024, 3, 3),
        )
        assert s.paying_status is Status.ACTIVE

    def test_reactivation_after_the_end_restarts_billing(self) -> None:
        sub = basic().cancel(t(2024, 6, 8)).reactivate(t(2024, 8, 3), price=usd("12"))
        s = sub.current
        assert (s.status, s.billing_anchor, s.price, s.ended_at, s.cancelled_at) == (
            Status.ACTIVE,
            t(2024, 8, 3),
            usd("12"),
            None,
            None,
        )

    def test_reactivation_of_a_scheduled_cancellation_keeps_the_anchor(self) -> None:
        s = basic().schedule_cancellation(t(2024, 2, 20)).reactivate(t(2024, 2, 21)).current
        assert (s.status, s.billing_anchor, s.cancel_at_period_end) == (
            Status.ACTIVE,
            t(2024, 1, 15),
            False,
        )

    def test_status_changes_record_when(self) -> None:
        s = basic().set_status(t(2024, 2, 1), Status.PAST_DUE).current
        assert (s.status, s.status_since, s.paying_status) == (
            Status.PAST_DUE,
            t(2024, 2, 1),
            Status.PAST_DUE,
        )
        assert s.service_period(t(2024, 2, 1)) == (t(2024, 1, 15), t(2024, 2, 15))
        assert s.next_renewal(t(2023, 1, 1)) == t(2024, 1, 15)

    def test_ended_status(self) -> None:
        assert Status.CANCELLED.is_ended
        assert Status.TERMINATED.is_ended
        assert not Status.PAST_DUE.is_ended

    def test_moments_are_normalised_to_utc(self) -> None:
        from datetime import timezone

        plus2 = timezone(timedelta(hours=2))
        sub = basic(at=datetime(2024, 1, 15, 2, tzinfo=plus2))
        assert sub.started_at == t(2024, 1, 15)
        assert sub.started_at.tzinfo is UTC


def test_a_change_to_price_zero_is_applied_not_dropped() -> None:
    # A paid service becoming a free account: `c.price or prev.price` read Money(0) as
    # "unchanged", so the state kept the old price and MRR stayed 10.
    from revcrm import Book, Customer
    from revcrm.metrics import mrr

    free = basic().change_plan(at=t(2024, 3, 1), price=usd("0"))
    assert free.current.price == usd("0")
    back = basic().cancel(at=t(2024, 2, 1), ends_at=t(2024, 2, 15))
    revived = back.reactivate(at=t(2024, 3, 1), price=usd("0"))
    assert revived.current.price == usd("0")
    customer = Customer(id="c1", registered_at=t(2024, 1, 1))
    for sub in (free, revived):
        book = Book.of(customers=[customer], subscriptions=[sub])
        assert mrr(book, at=t(2024, 1, 20), currency=USD) == usd("10")
        assert mrr(book, at=t(2024, 3, 2), currency=USD) == usd("0")
