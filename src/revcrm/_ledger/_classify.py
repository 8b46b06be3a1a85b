"""The one movement classifier: customer events grouped and given their kinds, as arrays.

The rules (ChartMogul's by default, every vendor difference a policy setting):

* Events of one customer closer than the grouping window to the first event of their
  group merge into one movement, never across a period bound (so every period's
  waterfall adds up). The group's change is the sum of its events' changes, each at its
  own date's rate, so exchange-rate moves between grouped events are never a movement.
* From zero: ``new`` for a customer that never paid, ``expansion`` after a free plan that
  did not count as churn, ``reactivation`` after churn (``new`` again past the
  reactivation window). To zero: ``churn``, or ``contraction`` onto a live free plan when
  free plans do not churn. Otherwise ``expansion`` or ``contraction`` by sign.

Everything is vectorised over all customers except the window grouping of events that
fall within a window of each other, a tight loop over plain ints for those events only.
"""

from __future__ import annotations

from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._events import Events
from revcrm._ledger._fixed import Units, group_sums, norm
from revcrm._ledger._order import lex_order

__all__ = ["KINDS", "Classified", "classify"]

#: Kind codes; 0 is "no movement" (the group's change is zero).
NONE, NEW, EXPANSION, CONTRACTION, CHURN, REACTIVATION = range(6)
KINDS: Final = ("", "new", "expansion", "contraction", "churn", "reactivation")

I64 = npt.NDArray[np.int64]


@attrs.frozen(eq=False, kw_only=True)
class Classified:
    """The movements between the first and last bound, sorted by (at, customer).

    ``region[i]`` is the index of the period ``[bounds[r], bounds[r + 1])`` holding it;
    ``first[i]:last[i] + 1`` its events (indices into :class:`Events`).
    """

    customer: npt.NDArray[np.int32]
    at: I64
    kind: npt.NDArray[np.int8]
    amount: Units
    region: I64
    first: I64
    last: I64


def _groups(ev: Events, region: I64, window_us: int | None) -> npt.NDArray[np.bool_]:
    """Whether each event starts a group."""
    n = ev.at.size
    start = np.ones(n, dtype=bool)
    if window_us is None or n == 0:
        return start
    same = np.zeros(n, dtype=bool)
    same[1:] = (
        (ev.customer[1:] == ev.customer[:-1])
        & (region[1:] == region[:-1])
        & (ev.at[1:] - ev.at[:-1] <= window_us)
    )
    start = ~same
    # Joining is measured from the group's first event: walk the (rare) near events.
    at = ev.at
    anchor = -1
    for i in np.flatnonzero(same).tolist():
        if start[i - 1]:
            anchor = i - 1
        if int(at[i]) - int(at[anchor]) > window_us:
            start[i] = True
            anchor = i
    return start


def _last_before(flag: npt.NDArray[np.bool_]) -> I64:
    """For each index, the last earlier index where ``flag`` holds (-1 if none)."""
    idx = np.where(flag, np.arange(flag.size, dtype=np.int64), -1)
    acc = np.maximum.accumulate(idx) if idx.size else idx
    out = np.full(flag.size, -1, dtype=np.int64)
    out[1:] = acc[:-1]
    return out


def classify(
    ev: Events,
    bounds_us: I64,
    *,
    window_us: int | None,
    reactivation_us: int | None,
    keep_free: bool,
) -> Classified:
    """Group and classify every event; keep the movements within the bounds."""
    region = np.searchsorted(bounds_us, ev.at, side="right").astype(np.int64)
    start = _groups(ev, region, window_us)
    if start.size == 0:
        none = np.zeros(0, dtype=np.int64)
        return Classified(
            customer=ev.customer,
            at=none,
            kind=np.zeros(0, dtype=np.int8),
            amount=none,
            region=none,
            first=none,
            last=none,
        )
    gfirst = np.flatnonzero(start)
    glast = np.append(gfirst[1:], ev.at.size) - 1
    g_cust = ev.customer[gfirst]
    g_at = ev.at[gfirst]
    before = ev.before[gfirst]
    change = norm(ev.after - ev.before)
    g_change = group_sums(change, gfirst) if gfirst.size else change[:0]
    after = norm(before + g_change)
    free = ev.free_after[glast]
    cust_first = ev.ptr[g_cust]  # first event of the customer: compare as group starts
    cfirst_g = np.searchsorted(gfirst, cust_first)
    positive = after > 0
    churn = (before != after) & (after == 0) & (before != 0) & ~(free & keep_free)
    last_pos = _last_before(positive)
    last_churn = _last_before(churn)
    paid_before = last_pos >= cfirst_g
    churned = (last_churn > last_pos) & (last_churn >= cfirst_g)
    kind = np.zeros(gfirst.size, dtype=np.int8)
    from_zero = (before == 0) & (after != 0)
    to_zero = (after == 0) & (before != 0)
    other = (before != 0) & (after != 0) & (before != after)
    kind[other & (after > before)] = EXPANSION
    kind[other & (after < before)] = CONTRACTION
    kind[to_zero] = CONTRACTION
    kind[churn] = CHURN
    kind[from_zero & ~paid_before] = NEW
    kind[from_zero & paid_before & ~churned] = EXPANSION
    back = from_zero & paid_before & churned
    kind[back] = REACTIVATION
    if reactivation_us is not None and back.any():
        churned_at = g_at[np.maximum(last_churn, 0)]
        kind[back & (g_at - churned_at > reactivation_us)] = NEW
    g_region = region[gfirst]
    out = np.flatnonzero((kind != NONE) & (g_region > 0) & (g_region < bounds_us.size))
    order = out[lex_order(g_at[out], g_cust[out].astype(np.int64))]
    amount = norm(after[order] - before[order])
    return Classified(
        customer=g_cust[order],
        at=g_at[order],
        kind=kind[order],
        amount=amount,
        region=g_region[order] - 1,
        first=gfirst[order],
        last=glast[order],
    )
