"""Billing dates as arrays: the subscription source's renewals without one datetime each.

The rule is :meth:`revcrm.BillingCycle.advance`'s: the ``n``-th billing date is ``anchor +
n cycles`` computed from the anchor, months clamped to the month's last day (time of day
kept), weeks and days exact. A cycle is given per element as ``months`` (its length in
calendar months, 0 for week and day cycles) and ``length_us`` (its length in microseconds
for week and day cycles, 0 otherwise). Times are microseconds since 1970-01-01 UTC.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from revcrm._cycles import BillingCycle, CycleUnit

__all__ = ["billing_dates", "cycle_code", "period_index", "renewals"]

I64 = npt.NDArray[np.int64]
_DAY_US: Final = 86_400_000_000


def cycle_code(cycle: BillingCycle) -> tuple[int, int]:
    """``(months, length_us)`` of a cycle (see the module docstring)."""
    match cycle.unit:
        case CycleUnit.MONTH:
            return cycle.count, 0
        case CycleUnit.YEAR:
            return 12 * cycle.count, 0
        case CycleUnit.WEEK:
            return 0, 7 * cycle.count * _DAY_US
        case CycleUnit.DAY:
            return 0, cycle.count * _DAY_US


def _month_of(us: I64) -> tuple[I64, I64, I64]:
    """Per time: months since 1970-01, the 0-based day of the month, the time of day."""
    day = us // _DAY_US
    tod = us - day * _DAY_US
    month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    first = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return month, day - first, tod


def billing_dates(anchor: I64, months: I64, length_us: I64, n: I64) -> I64:
    """The ``n``-th billing date of each (anchor, cycle)."""
    month, dom, tod = _month_of(anchor)
    target = month + months * n
    first = target.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    nxt = (target + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    clamped = (first + np.minimum(dom, nxt - first - 1)) * _DAY_US + tod
    out: I64 = np.where(months > 0, clamped, anchor + length_us * n)
    return out


def period_index(anchor: I64, months: I64, length_us: I64, t: I64) -> I64:
    """The index of the billing period holding ``t`` (``t >= anchor``): the last ``n`` whose
    billing date is at or before ``t``."""
    by_month = months > 0
    m_t = _month_of(t)[0]
    m_a = _month_of(anchor)[0]
    guess = (m_t - m_a) // np.where(by_month, months, 1)
    # The guess's date falls in t's month or before; clamping can put it after t, never
    # by more than one period (the period before starts in an earlier month).
    late = billing_dates(anchor, months, length_us, guess) > t
    n_month = guess - late
    n_other = (t - anchor) // np.where(by_month, 1, length_us)
    out: I64 = np.where(by_month, n_month, n_other)
    return out


def renewals(anchor: I64, months: I64, length_us: I64, lo: I64, hi: I64) -> tuple[I64, I64]:
    """Every billing date ``d`` (``n >= 0``) with ``lo < d < hi``, per segment: the segment's
    index and the date, sorted by segment then date."""
    empty = np.zeros(0, dtype=np.int64)
    if anchor.size == 0:
        return empty, empty
    after_anchor = lo >= anchor
    n_lo = np.where(
        after_anchor, period_index(anchor, months, length_us, np.maximum(lo, anchor)) + 1, 0
    )
    last = hi - 1
    n_hi = np.where(
        last >= anchor, period_index(anchor, months, length_us, np.maximum(last, anchor)), -1
    )
    count = np.maximum(n_hi - n_lo + 1, 0)
    total = int(count.sum())
    if total == 0:
        return empty, empty
    seg = np.repeat(np.arange(anchor.size, dtype=np.int64), count)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    n = n_lo[seg] + offset
    return seg, billing_dates(anchor[seg], months[seg], length_us[seg], n)
