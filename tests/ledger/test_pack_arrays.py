"""The KPI pack read from the analysis arrays equals its definition over Movement objects."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm.metrics import (
    ChurnDenominator,
    Frequency,
    MetricsPolicy,
    MovementKind,
    MrrAnalysis,
    analyse,
    churn_series,
)
from revcrm.testing.strategies import books

PRESETS = st.sampled_from(
    [
        MetricsPolicy.chartmogul(),
        MetricsPolicy.stripe(),
        MetricsPolicy.baremetrics(),
        MetricsPolicy(grouping_window=None, reactivation_window_days=30),
    ]
)
START = datetime(2019, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)


def _reference(a: MrrAnalysis, a0: datetime, b0: datetime) -> tuple[int, int, int]:
    """(new, churned, denominator) of one period as the Movement-based code counted them."""
    rule = a.policy.churn_denominator
    a1, b1 = a0, b0
    if rule is ChurnDenominator.START_30_DAY:
        from revcrm._calendar import shift
        from revcrm.metrics._churn import _THIRTY_DAYS

        a1 = shift(b0, -_THIRTY_DAYS, a.policy.timezone)
    moves = a.movements(START, END)
    times = [m.at for m in moves]
    window = moves[bisect.bisect_left(times, a1) : bisect.bisect_left(times, b1)]
    new = {m.customer_id for m in window if m.kind is MovementKind.NEW}
    churned = {m.customer_id for m in window if m.kind is MovementKind.CHURN}
    at_start = a.profile_at([a1])[0][0]
    if rule is ChurnDenominator.START_30_DAY:
        return len(new), len(churned), at_start
    kept = 0
    for cid in churned:
        (_, was), (_, still) = a.customer_levels(cid, [a1, b1])
        if (was or rule is ChurnDenominator.START_PLUS_NEW) and not still:
            kept += 1
    extra = len(new) if rule is ChurnDenominator.START_PLUS_NEW else 0
    return len(new), kept, at_start + extra


@settings(max_examples=15, deadline=None)
@given(book=books(latest=datetime(2024, 12, 31, tzinfo=UTC), max_customers=6), policy=PRESETS)
def test_churn_series_from_arrays_equals_the_movement_definition(
    book: Book, policy: MetricsPolicy
) -> None:
    used = sorted({s.currency for s in book.subscriptions}) or ["USD"]
    a = analyse(book, currency=used[0], policy=policy)
    for p in churn_series(a, START, END, Frequency.QUARTER):
        r = p.customer_churn
        got = (r.new_customers, r.churned, r.denominator)
        assert got == _reference(a, p.start, p.end)


@settings(max_examples=25)
@given(
    lines=st.lists(
        st.tuples(
            st.integers(0, 3),  # customer
            st.integers(0, 40),  # start day
            st.integers(1, 70),  # length in days
            st.integers(-5_000, 50_000),  # net cents
        ),
        min_size=1,
        max_size=12,
    ),
    fixed=st.booleans(),
)
def test_a_stream_per_line_takes_no_sort_and_the_same_steps(
    lines: list[tuple[int, int, int, int]], fixed: bool
) -> None:
    import numpy as np
    import pytest

    from revcrm._ledger import _steps
    from revcrm._ledger._columns import LineColumns

    day = 86_400_000_000
    base = 19_723 * day  # 2024-01-01
    n = len(lines)
    cols = LineColumns.from_arrays(
        customer_ids=[f"c{k}" for k in range(4)],
        stream_ids=[f"s{n - i:03d}" for i in range(n)],  # not in line order
        currencies=["EUR"],
        customer=np.array([c for c, _, _, _ in lines]),
        stream=np.arange(n),
        currency=np.zeros(n, dtype=np.int16),
        start=np.array([base + s * day for _, s, _, _ in lines], dtype=np.int64),
        end=np.array([base + (s + d) * day for _, s, d, _ in lines], dtype=np.int64),
        net=np.array([v for _, _, _, v in lines], dtype=np.int64),
        scale=2,
    )
    fast = _steps.steps_from_lines(cols, [fixed])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_steps, "_one_line_each", lambda *args: False)
        slow = _steps.steps_from_lines(cols, [fixed])
    for name in ("customer_ids", "stream_keys", "digits"):
        assert getattr(fast, name) == getattr(slow, name)
    for name in ("stream_customer", "stream_currency", "stream", "at", "value", "rate_day"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), name


@given(
    pairs=st.lists(
        st.tuples(st.integers(-(2**62), 2**62), st.integers(-(2**62), 2**62)), max_size=30
    ),
    narrow=st.booleans(),
)
def test_lex_order_is_a_stable_lexsort(pairs: list[tuple[int, int]], narrow: bool) -> None:
    import numpy as np

    from revcrm._ledger._order import lex_order

    if narrow:  # small spans in steps (days, indices): the combined-key path
        pairs = [(a % 5, (b % 7) * 86_400_000_000) for a, b in pairs]
    major = np.array([a for a, _ in pairs], dtype=np.int64)
    minor = np.array([b for _, b in pairs], dtype=np.int64)
    assert lex_order(major, minor).tolist() == np.lexsort((minor, major)).tolist()
