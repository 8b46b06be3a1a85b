"""Customer events: every moment a customer's MRR changes, in the reporting currency.

An event is a (customer, moment) at which at least one of the customer's streams changes
its native amount (a renewal that only moves a conversion date is not one). ``before`` and
``after`` are the customer's MRR just before and at the moment, both converted at the
event's date, so the event's change is never an exchange-rate effect. ``free_after``: a
live free (zero-price) subscription remains after the event.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._fixed import Units, convert, norm, prefix_sums
from revcrm._ledger._order import lex_order
from revcrm._ledger._steps import DAY_US, Steps
from revcrm._money import FxRates

__all__ = ["Events", "build_events", "day_of", "rates_on"]

_EPOCH_DAY: Final = date(1970, 1, 1)

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def day_of(day_number: int) -> date:
    return _EPOCH_DAY + timedelta(days=day_number)


def rates_on(fx: FxRates, source: str, target: str, days: I64) -> list[Decimal]:
    """The rate on each day (looked up once per distinct day)."""
    if days.size == 0:
        return []
    uniq, inverse = np.unique(days, return_inverse=True)
    table = [fx.rate(source, target, day_of(int(d))) for d in uniq]
    return [table[i] for i in inverse.tolist()]


@attrs.frozen(eq=False, kw_only=True)
class Events:
    """Events sorted by (customer, at); ``ptr[c]:ptr[c + 1]`` are customer ``c``'s."""

    customer: I32
    at: I64
    before: Units  # reporting-currency ledger units
    after: Units
    free_after: Bools
    ptr: I64
    # The event's rows in the (customer, at)-sorted steps: ``row_lo[e]:row_hi[e]``; a row
    # whose stream changed names it in ``row_stream`` (else -1).
    row_lo: I64
    row_hi: I64
    row_stream: I32
    # ``after`` minus the customer's previous ``after`` (its first event: minus zero): the
    # change of the customer's level as profiles count it, computed once.
    level_change: Units


def _restart(cum: Units, delta: Units, seg: I64, starts: I64) -> Units:
    """Prefix sums ``cum`` restarted at each segment's first row."""
    base = norm(cum[starts] - delta[starts])
    if not base.any():  # every earlier customer's changes sum to zero (their streams end)
        return norm(cum)
    return norm(cum - base[seg])


def build_events(steps: Steps, fx: FxRates, currency: str) -> Events:
    n = steps.at.size
    ncust = len(steps.customer_ids)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return Events(
            customer=np.zeros(0, dtype=np.int32),
            at=z,
            before=z,
            after=z,
            free_after=np.zeros(0, dtype=bool),
            ptr=np.zeros(ncust + 1, dtype=np.int64),
            row_lo=z,
            row_hi=z,
            row_stream=np.zeros(0, dtype=np.int32),
            level_change=z,
        )
    value = steps.value
    new_stream = np.ones(n, dtype=bool)
    new_stream[1:] = steps.stream[1:] != steps.stream[:-1]
    prev = np.empty_like(value)
    prev[1:] = value[:-1]
    prev[new_stream] = 0
    delta = norm(value - prev)
    cust = steps.stream_customer[steps.stream]
    cur = steps.stream_currency[steps.stream]
    rows = lex_order(cust, steps.at)
    r_cust, r_at, r_delta, r_cur = cust[rows], steps.at[rows], delta[rows], cur[rows]
    changed = r_delta != 0
    r_stream = np.where(changed, steps.stream[rows], -1).astype(np.int32)
    first = np.ones(n, dtype=bool)
    first[1:] = (r_cust[1:] != r_cust[:-1]) | (r_at[1:] != r_at[:-1])
    gidx = np.flatnonzero(first)
    gend = np.append(gidx[1:], n)
    keep = np.logical_or.reduceat(changed, gidx)
    lo, hi = gidx[keep], gend[keep]
    e_cust, e_at = r_cust[lo], r_at[lo]
    new_cust = np.ones(n, dtype=bool)
    new_cust[1:] = r_cust[1:] != r_cust[:-1]
    cstart = np.flatnonzero(new_cust)
    seg = np.cumsum(new_cust) - 1
    days = e_at // DAY_US
    before: Units = np.zeros(lo.size, dtype=np.int64)
    after: Units = np.zeros(lo.size, dtype=np.int64)
    for k, code in enumerate(steps.currencies):
        mask = r_cur == k
        if not mask.any():
            continue
        whole = k == 0 and len(steps.currencies) == 1
        d_k = r_delta if whole else np.where(mask, r_delta, 0).astype(r_delta.dtype)
        level = _restart(prefix_sums(d_k), d_k, seg, cstart)
        a_k = level[hi - 1]
        b_k = norm(level[lo] - d_k[lo])
        if code != currency:
            live = np.flatnonzero((a_k != 0) | (b_k != 0))
            rates = rates_on(fx, code, currency, days[live])
            a_conv = np.zeros(lo.size, dtype=object)
            b_conv = np.zeros(lo.size, dtype=object)
            a_conv[live] = convert(a_k[live], rates)
            b_conv[live] = convert(b_k[live], rates)
            a_k, b_k = norm(a_conv), norm(b_conv)
        # Elementwise sums of two arrays below LIMIT: exact in int64, then normalised.
        after = a_k if whole else norm(after + a_k)
        before = b_k if whole else norm(before + b_k)
    free = np.zeros(lo.size, dtype=bool)
    if steps.free_customer.size:
        free = _live_free(steps, e_cust, e_at)
    ptr = np.searchsorted(e_cust, np.arange(ncust + 1)).astype(np.int64)
    prev_after = np.empty_like(after)
    prev_after[1:] = after[:-1]
    prev_after[ptr[:-1][ptr[:-1] < after.size]] = 0
    return Events(
        customer=e_cust.astype(np.int32),
        at=e_at,
        before=before,
        after=after,
        free_after=free,
        ptr=ptr,
        row_lo=lo.astype(np.int64),
        row_hi=hi.astype(np.int64),
        row_stream=r_stream,
        level_change=norm(after - prev_after),
    )


def _live_free(steps: Steps, e_cust: I32, e_at: I64) -> Bools:
    """Whether a free span of the event's customer holds ``start <= at < end``."""
    ns, ne = steps.free_start.size, e_at.size
    cust = np.concatenate([steps.free_customer, steps.free_customer, e_cust])
    at = np.concatenate([steps.free_start, steps.free_end, e_at])
    # At one moment a span's start and end count before the query (start <= at, end <= at).
    kind = np.concatenate([np.zeros(2 * ns, dtype=np.int8), np.ones(ne, dtype=np.int8)])
    sign = np.concatenate(
        [np.ones(ns, dtype=np.int64), -np.ones(ns, dtype=np.int64), np.zeros(ne, dtype=np.int64)]
    )
    order = np.lexsort((kind, at, cust))
    count = np.cumsum(sign[order])
    out = np.zeros(ne, dtype=bool)
    is_query = order >= 2 * ns
    out[order[is_query] - 2 * ns] = count[is_query] > 0
    return out
