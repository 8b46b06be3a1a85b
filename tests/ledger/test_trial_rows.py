"""Trial conversion from the ledger's trial rows (``revcrm._ledger._trials``) against the
per-subscription definition it replaced: each stretch of TRIALING status in a
subscription's replayed history, converted when the state after it has MRR > 0."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import BillingCycle, Book, Customer, Money, Subscription
from revcrm._subscription import SubscriptionStatus
from revcrm.errors import ValidationError
from revcrm.metrics import MetricsPolicy, TrialBasis, TrialConversion, trial_conversion
from revcrm.metrics._economics import ratio, trial_rows
from revcrm.metrics._mrr import state_mrr
from revcrm.testing.strategies import books, moments, moments_near, subscriptions

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BOOKS = books(latest=datetime(2024, 12, 31, tzinfo=UTC), max_customers=3, max_subscriptions=2)


@st.composite
def _trial_books(draw: st.DrawFn) -> Book:
    """Up to eight subscriptions of two customers over 2023-2024, a trial in about every
    other one (the generic books have one in four), so periods meet several trials."""
    window = moments(min_value=T0 - timedelta(days=365), max_value=T0 + timedelta(days=365))
    subs = []
    for i in range(draw(st.integers(1, 8))):
        sub = draw(subscriptions(st.sampled_from(("c0", "c1")), id=f"s{i}", start=window))
        if sub.states[0].status is not SubscriptionStatus.TRIALING and draw(st.booleans()):
            first = sub.history[0].at
            sub = Subscription.start(
                id=sub.id,
                customer_id=sub.customer_id,
                at=first,
                price=sub.states[0].price,
                cycle=sub.states[0].cycle,
                trial_end=first + timedelta(days=draw(st.integers(0, 30))),
            ).set_status(first + timedelta(days=draw(st.integers(0, 40))), draw(_ENDS))
        subs.append(sub)
    registered = T0 - timedelta(days=400)
    return Book.of(
        customers=[Customer(id=c, registered_at=registered) for c in ("c0", "c1")],
        subscriptions=subs,
    )


_ENDS = st.sampled_from(
    [SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.TERMINATED]
)
TRIAL_BOOKS = st.one_of(_trial_books(), _trial_books(), BOOKS)
POLICIES = st.sampled_from(
    [MetricsPolicy(), MetricsPolicy(count_trials=True), MetricsPolicy.stripe()]
)


# -- the oracle: trial_conversion as it was, one subscription at a time -------------------


@attrs.frozen
class _Trial:
    started_at: datetime
    ended_at: datetime | None
    converted: bool


def _trials(sub: Subscription, policy: MetricsPolicy) -> Iterator[_Trial]:
    began: datetime | None = None
    for change, state in sub.replay():
        trialing = state.status is SubscriptionStatus.TRIALING
        if trialing and began is None:
            began = change.at
        elif not trialing and began is not None:
            paying = not state_mrr(state, change.at, policy).is_zero()
            yield _Trial(began, change.at, paying)
            began = None
    if began is not None:
        yield _Trial(began, None, False)


def _oracle(
    book: Book,
    a: datetime,
    b: datetime,
    kind: TrialBasis,
    cutoff: datetime | None,
    policy: MetricsPolicy,
) -> TrialConversion:
    return _count(
        [t for sub in book.subscriptions for t in _trials(sub, policy)], a, b, kind, cutoff
    )


def _count(
    found: list[_Trial], a: datetime, b: datetime, kind: TrialBasis, cutoff: datetime | None
) -> TrialConversion:
    trials = converted = 0
    for trial in found:
        if kind is TrialBasis.STARTED:
            if not a <= trial.started_at < b:
                continue
            trials += 1
            done = trial.ended_at
            if (
                trial.converted
                and done is not None
                and (done < b if cutoff is None else done <= cutoff)
            ):
                converted += 1
        else:
            if trial.ended_at is None or not a <= trial.ended_at < b:
                continue
            trials += 1
            converted += trial.converted
    return TrialConversion(
        basis=kind, trials=trials, converted=converted, rate=ratio(converted, trials)
    )


def _trial_moments(book: Book, policy: MetricsPolicy) -> st.SearchStrategy[datetime]:
    """A trial's start or end, give or take a microsecond, or a moment near the book's."""
    edges = [
        t
        for sub in book.subscriptions
        for trial in _trials(sub, policy)
        for t in (trial.started_at, trial.ended_at)
        if t is not None
    ]
    if not edges:
        return moments_near(book, days=(0, 30))
    tick = timedelta(microseconds=1)
    near = st.builds(
        lambda t, d: t + d, st.sampled_from(edges), st.sampled_from((-tick, timedelta(0), tick))
    )
    return st.one_of(near, near, near, moments_near(book, days=(0, 30)))


@settings(max_examples=min(25, settings().max_examples), deadline=None)
@given(data=st.data(), book=TRIAL_BOOKS, policy=POLICIES, basis=st.sampled_from(list(TrialBasis)))
def test_trial_conversion_is_the_per_subscription_definition(
    data: st.DataObject, book: Book, policy: MetricsPolicy, basis: TrialBasis
) -> None:
    near = _trial_moments(book, policy)
    a, b = sorted((data.draw(near), data.draw(near)))
    cutoff = data.draw(st.none() | near)
    want = _oracle(book, a, b, basis, cutoff, policy)
    got = trial_conversion(book, start=a, end=b, basis=basis, as_of=cutoff, policy=policy)
    assert got == want
    # The rows built once answer every period the same: each pair of moments on and a
    # microsecond around the trials' starts and ends, and a few as_of among them.
    rows = trial_rows(book, policy)
    found = [t for sub in book.subscriptions for t in _trials(sub, policy)]
    tick = timedelta(microseconds=1)
    edges = {t for x in found[:6] for t in (x.started_at, x.ended_at) if t is not None}
    bounds = sorted({t + d for t in edges for d in (-tick, timedelta(0), tick)})
    cutoffs = [None, *data.draw(st.lists(st.sampled_from(bounds), max_size=3))] if bounds else []
    for i, lo in enumerate(bounds):
        for hi in bounds[i:]:
            for kind, by in [(TrialBasis.ENDED, None), *((TrialBasis.STARTED, c) for c in cutoffs)]:
                again = trial_conversion(
                    book, start=lo, end=hi, basis=kind, as_of=by, policy=policy, trials=rows
                )
                assert again == _count(found, lo, hi, kind, by), (lo, hi, kind, by)


def _book(sub: Subscription) -> Book:
    return Book.of(
        customers=[Customer(id=sub.customer_id, registered_at=T0 - timedelta(days=1))],
        subscriptions=[sub],
    )


def _trialing(trial_days: int = 14) -> Subscription:
    return Subscription.start(
        id="s1",
        customer_id="c1",
        at=T0,
        price=Money("30", "USD"),
        cycle=BillingCycle.MONTHLY,
        trial_end=T0 + timedelta(days=trial_days),
    )


def test_a_conversion_exactly_at_the_end_of_the_period_counts_only_with_as_of() -> None:
    end = T0 + timedelta(days=10)
    book = _book(_trialing().set_status(end, SubscriptionStatus.ACTIVE))
    rows = trial_rows(book)
    assert len(rows) == 1
    assert bool(rows.converted[0])
    # Converted at ``end``: not before it, so not by the default cutoff; by as_of=end it is.
    started = trial_conversion(book, start=T0, end=end, trials=rows)
    assert (started.trials, started.converted) == (1, 0)
    by_end = trial_conversion(book, start=T0, end=end, as_of=end, trials=rows)
    assert (by_end.trials, by_end.converted) == (1, 1)
    # Ended at ``end``: in [end, ...), not in [T0, end).
    before = trial_conversion(book, start=T0, end=end, basis="ended")
    assert before.trials == 0
    after = trial_conversion(book, start=end, end=end + timedelta(days=1), basis="ended")
    assert (after.trials, after.converted) == (1, 1)


def test_a_running_trial_and_a_free_conversion_are_unconverted() -> None:
    running = _book(_trialing())
    assert trial_conversion(running, start=T0, end=T0 + timedelta(days=1)).converted == 0
    # Activated on a free price: the trial ended, and not into MRR.
    free = _book(
        _trialing()
        .change_plan(T0 + timedelta(days=3), price=Money("0", "USD"))
        .set_status(T0 + timedelta(days=5), SubscriptionStatus.ACTIVE)
    )
    result = trial_conversion(free, start=T0, end=T0 + timedelta(days=30), basis="ended")
    assert (result.trials, result.converted) == (1, 0)
    cancelled = _book(_trialing().cancel(T0 + timedelta(days=3), ends_at=T0 + timedelta(days=3)))
    result = trial_conversion(
        cancelled, start=T0, end=T0 + timedelta(days=30), basis=TrialBasis.ENDED
    )
    assert (result.trials, result.converted) == (1, 0)


def test_rows_of_another_policy_are_refused() -> None:
    book = _book(_trialing())
    rows = trial_rows(book, MetricsPolicy(count_trials=True))
    with pytest.raises(ValidationError):
        trial_conversion(book, start=T0, end=T0 + timedelta(days=1), trials=rows)
