"""The vectorised billing calendar against BillingCycle's own rule (one date at a time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import BillingCycle
from revcrm._ledger._renewals import billing_dates, cycle_code, period_index, renewals

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
CYCLES = st.builds(
    BillingCycle, st.integers(1, 4), st.sampled_from(["month", "year", "week", "day"])
)
MOMENTS = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


def _us(t: datetime) -> int:
    return (t - EPOCH) // US


def _arrays(cycle: BillingCycle, anchor: datetime) -> tuple[np.ndarray, ...]:
    months, length = cycle_code(cycle)
    one = np.ones(1, dtype=np.int64)
    return one * _us(anchor), one * months, one * length


@settings(max_examples=200)
@given(cycle=CYCLES, anchor=MOMENTS, n=st.integers(0, 60), later=st.integers(0, 10**15))
def test_dates_and_periods_follow_the_cycle(
    cycle: BillingCycle, anchor: datetime, n: int, later: int
) -> None:
    a, months, length = _arrays(cycle, anchor)
    got = int(billing_dates(a, months, length, np.array([n]))[0])
    assert got == _us(cycle.advance(anchor, n))
    t = anchor + later * US
    start = cycle.period_containing(anchor, t)[0]
    idx = int(period_index(a, months, length, np.array([_us(t)]))[0])
    assert int(billing_dates(a, months, length, np.array([idx]))[0]) == _us(start)


@settings(max_examples=100)
@given(cycle=CYCLES, anchor=MOMENTS, lo=MOMENTS, days=st.integers(0, 900))
def test_renewals_are_the_billing_dates_between(
    cycle: BillingCycle, anchor: datetime, lo: datetime, days: int
) -> None:
    hi = lo + timedelta(days=days)
    a, months, length = _arrays(cycle, anchor)
    seg, dates = renewals(a, months, length, np.array([_us(lo)]), np.array([_us(hi)]))
    want = []
    n = 0
    while (d := cycle.advance(anchor, n)) < hi:
        if d > lo:
            want.append(_us(d))
        n += 1
    assert dates.tolist() == want
    assert seg.tolist() == [0] * len(want)
