"""Aggregations over the ledger: MRR at moments (prefix sums), per-stream values, profiles.

MRR at a moment is one ``np.searchsorted`` into prefix sums of step changes: fixed-rate
changes (the reporting currency, and foreign streams under the service-period rule,
converted at their step's date) in one array; measured-moment changes per foreign
currency, converted at each queried moment's date.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._events import Events, day_of, rates_on
from revcrm._ledger._fixed import Units, convert, norm, prefix_sums
from revcrm._ledger._steps import DAY_US, NO_DAY, Steps
from revcrm._money import FxRates

__all__ = ["Sweep", "build_sweep", "profile", "stream_values"]

I64 = npt.NDArray[np.int64]


@attrs.frozen(eq=False, kw_only=True)
class Sweep:
    """Prefix sums of MRR changes; ``value`` per step in the reporting currency (fixed-rate
    streams) or native (``measured`` streams, converted when asked)."""

    fixed_at: I64
    fixed_cum: Units  # len(fixed_at) + 1, starting at 0
    native: tuple[tuple[str, I64, Units], ...]  # (currency, sorted times, prefix sums)
    value: Units
    measured: npt.NDArray[np.bool_]
    ptr: I64  # each stream's first step
    currency: str
    fx: FxRates

    def totals(self, moments_us: I64, *, inclusive: bool) -> list[int]:
        side: Literal["left", "right"] = "right" if inclusive else "left"
        idx = np.searchsorted(self.fixed_at, moments_us, side=side)
        out: list[int] = [int(v) for v in self.fixed_cum[idx].tolist()]
        for code, at, cum in self.native:
            levels = cum[np.searchsorted(at, moments_us, side=side)]
            live = np.flatnonzero(levels != 0)
            if live.size:
                rates = rates_on(self.fx, code, self.currency, moments_us[live] // DAY_US)
                conv = convert(levels[live], rates).tolist()
                for i, v in zip(live.tolist(), conv, strict=True):
                    out[i] += int(v)
        return out


def _cumsum0(a: Units) -> Units:
    sums = prefix_sums(a)
    out = np.zeros(sums.size + 1, dtype=sums.dtype)
    out[1:] = sums
    return out


def build_sweep(steps: Steps, fx: FxRates, currency: str) -> Sweep:
    n = steps.at.size
    cur = steps.stream_currency[steps.stream]
    codes = np.array((*steps.currencies, ""), dtype=object)
    foreign = codes[cur] != currency if n else np.zeros(0, dtype=bool)
    fixed_rate = foreign & (steps.rate_day != NO_DAY)
    measured = foreign & (steps.rate_day == NO_DAY)
    value = steps.value
    if fixed_rate.any():
        conv = value.astype(object)
        for k, code in enumerate(steps.currencies):
            idx = np.flatnonzero(fixed_rate & (cur == k) & (value != 0))
            if idx.size:
                days = steps.rate_day[idx].astype(np.int64)
                conv[idx] = convert(value[idx], rates_on(fx, code, currency, days))
        value = norm(conv)
    new_stream = np.ones(n, dtype=bool)
    new_stream[1:] = steps.stream[1:] != steps.stream[:-1]
    prev = np.empty_like(value)
    prev[1:] = value[:-1]
    prev[new_stream] = 0
    delta = norm(value - prev)
    fx_idx = np.flatnonzero(~measured)
    order = fx_idx[np.argsort(steps.at[fx_idx], kind="stable")]
    native = []
    for k, code in enumerate(steps.currencies):
        idx = np.flatnonzero(measured & (cur == k))
        if idx.size:
            idx = idx[np.argsort(steps.at[idx], kind="stable")]
            native.append((code, steps.at[idx], _cumsum0(delta[idx])))
    return Sweep(
        fixed_at=steps.at[order],
        fixed_cum=_cumsum0(delta[order]),
        native=tuple(native),
        value=value,
        measured=measured,
        ptr=steps.stream_ptr,
        currency=currency,
        fx=fx,
    )


def stream_values(steps: Steps, sweep: Sweep, streams: I64, at_us: int) -> Units:
    """Each stream's MRR at ``at_us`` (changes at ``at_us`` included), reporting currency."""
    if streams.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = sweep.ptr[streams], sweep.ptr[streams + 1]
    if streams.size == len(steps.stream_keys):
        # Every stream is asked for, in any order: count each stream's steps so far at once
        # (prefix sums, so a stream without steps counts 0), then pick them in that order.
        seen = np.concatenate(([0], np.cumsum(steps.at <= at_us, dtype=np.int64)))
        count = (seen[sweep.ptr[1:]] - seen[sweep.ptr[:-1]])[streams]
    else:
        count = np.array(
            [
                int(np.searchsorted(steps.at[a:b], at_us, side="right"))
                for a, b in zip(lo.tolist(), hi.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
    last = lo + count - 1
    has = count > 0
    out: Units = np.zeros(streams.size, dtype=sweep.value.dtype)
    out[has] = sweep.value[last[has]]
    meas = has & sweep.measured[np.maximum(last, 0)] & (out != 0)
    if meas.any():
        conv = out.astype(object)
        cur = steps.stream_currency[streams]
        day = at_us // DAY_US
        for k, code in enumerate(steps.currencies):
            idx = np.flatnonzero(meas & (cur == k))
            if idx.size:
                rate = sweep.fx.rate(code, sweep.currency, day_of(int(day)))
                conv[idx] = convert(out[idx], [rate] * idx.size)
        out = norm(conv)
    return out


def profile(
    ev: Events, moments_us: I64, weights: npt.NDArray[np.int64] | None, keep_free: bool
) -> tuple[list[int], list[int]]:
    """Customers counted and their MRR just before each sorted moment (difference arrays).

    Only the events before the last moment with a non-zero weight are touched beyond one
    int64 pass, so a cohort's profile costs little more than its own events.
    """
    k = moments_us.size
    n = ev.at.size
    if n == 0 or k == 0:
        return [0] * k, [0] * k
    lo_all = np.searchsorted(moments_us, ev.at, side="right")
    sel = lo_all < k
    if weights is not None:
        w_all = weights[ev.customer]
        sel &= w_all != 0
    idx = np.flatnonzero(sel)
    lo = lo_all[idx]
    # The period in which the event's level stops holding: the customer's next event's.
    nxt = np.full(idx.size, k, dtype=np.int64)
    has_next = idx + 1 < n
    has_next[has_next] = ev.customer[idx[has_next] + 1] == ev.customer[idx[has_next]]
    nxt[has_next] = lo_all[idx[has_next] + 1]
    hi = np.minimum(nxt, k)
    change = ev.level_change[idx]
    if weights is None:
        w = np.ones(idx.size, dtype=np.int64)
    else:
        w = w_all[idx]
        if int(w.max(initial=0)) > 1:
            change = norm(change.astype(object) * w)
    sums = np.zeros(k + 1, dtype=object)
    np.add.at(sums, lo, change.astype(object))
    counts_flag = (ev.after[idx] > 0) | (keep_free & ev.free_after[idx])
    live = counts_flag & (lo < hi)
    counted = np.zeros(k + 1, dtype=np.int64)
    np.add.at(counted, lo[live], w[live])
    np.add.at(counted, hi[live], -w[live])
    c = np.cumsum(counted[:k]).tolist()
    s = np.cumsum(sums[:k]).tolist()
    return [int(x) for x in c], [int(x) for x in s]
