"""The vectorised subscription walk against the scalar rules it vectorises.

``state_amount`` / ``discounted_price`` (revcrm.metrics._mrr) stay the one definition;
here the array form is proved equal to them on generated states and moments, and the
whole walk equal to the engine's one-subscription walk (``_subscription_steps``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import BillingCycle, Subscription
from revcrm._ledger._walk import States, amount_codes, next_billing_after, states_of, walk
from revcrm.metrics import MetricsPolicy
from revcrm.metrics._engine import _subscription_steps, walk_rules
from revcrm.metrics._mrr import discounted_price, state_amount, state_prices
from revcrm.metrics._policy import ChurnRecognition, DiscountPolicy
from revcrm.testing.strategies import subscriptions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)

POLICIES = st.builds(
    MetricsPolicy,
    discounts=st.sampled_from(list(DiscountPolicy)),
    churn_recognition=st.sampled_from(list(ChurnRecognition)),
    past_due_churn_after_days=st.sampled_from([None, 0, 1, 30]),
    count_trials=st.booleans(),
    count_suspended=st.booleans(),
)
SUBS = st.lists(subscriptions(currency=st.sampled_from(["USD", "EUR"])), min_size=1, max_size=4)


def _us(t: datetime) -> int:
    return (t - EPOCH) // US


def _moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _thresholds(st_: States, i: int) -> list[int]:
    out = [int(st_.at[i]), int(st_.status_since[i])]
    for arr in (st_.ended, st_.scheduled, st_.until):
        v = int(arr[i])
        if abs(v) < 2**62:
            out.append(v)
    return out


@settings(max_examples=60, deadline=None)
@given(subs=SUBS, policy=POLICIES, later=st.integers(0, 400 * 86_400_000_000))
def test_amount_codes_equal_state_amount(
    subs: list[Subscription], policy: MetricsPolicy, later: int
) -> None:
    states = states_of(subs, state_prices)
    flat = [s for sub in subs for s in sub.states]
    idx: list[int] = []
    moments: list[int] = []
    grace = (policy.past_due_churn_after_days or 0) * 86_400_000_000
    for i in range(len(flat)):
        for t in [*_thresholds(states, i), int(states.status_since[i]) + grace]:
            for d in (-1, 0, 1, later):
                idx.append(i)
                moments.append(t + d)
    i_arr, t_arr = np.array(idx, dtype=np.int64), np.array(moments, dtype=np.int64)
    code, price = amount_codes(states, i_arr, t_arr, walk_rules(policy))
    for i, t, c, p in zip(idx, moments, code.tolist(), price.tolist(), strict=True):
        s, at = flat[i], _moment(t)
        assert states.values[c] == state_amount(s, at, policy), (s, at)
        assert (p == 0) == (discounted_price(s, at, policy).amount == 0), (s, at)


@settings(max_examples=60, deadline=None)
@given(subs=SUBS, policy=POLICIES, foreign_eur=st.booleans())
def test_walk_equals_the_one_subscription_walk(
    subs: list[Subscription], policy: MetricsPolicy, foreign_eur: bool
) -> None:
    foreign = np.array([foreign_eur and s.currency == "EUR" for s in subs], dtype=bool)
    states = states_of(subs, state_prices)
    w = walk(states, walk_rules(policy), foreign)
    flat = [s for sub in subs for s in sub.states]
    for k, sub in enumerate(subs):
        want_steps, want_free = _subscription_steps(sub, policy, bool(foreign[k]))
        mine = np.flatnonzero(w.sub == k).tolist()
        got = [(_moment(int(w.at[j])), states.values[int(w.code[j])]) for j in mine]
        assert got == [(t, v) for t, v, _ in want_steps]
        if foreign[k]:
            # The state in force (its billing calendar converts the step).
            assert [flat[int(w.state[j])] for j in mine] == [s for _, _, s in want_steps]
        fm = np.flatnonzero(w.free_sub == k).tolist()
        never = np.iinfo(np.int64).max
        got_free = [
            (
                _moment(int(w.free_start[j])),
                None if int(w.free_end[j]) == never else _moment(int(w.free_end[j])),
            )
            for j in fm
        ]
        assert got_free == want_free


CYCLES = st.builds(
    BillingCycle, st.integers(1, 4), st.sampled_from(["month", "year", "week", "day"])
)
MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=200)
@given(cycle=CYCLES, anchor=MOMENTS, moment=MOMENTS)
def test_next_billing_after_equals_next_after_before_and_after_the_anchor(
    cycle: BillingCycle, anchor: datetime, moment: datetime
) -> None:
    from revcrm._ledger._renewals import cycle_code

    months, length = cycle_code(cycle)
    one = np.ones(1, dtype=np.int64)
    got = next_billing_after(one * _us(anchor), one * months, one * length, one * _us(moment))
    assert _moment(int(got[0])) == cycle.next_after(anchor, moment)
