"""MRR steps: each stream's native monthly amount from each change on, as arrays.

A *stream* is one subscription (subscription source) or one series of invoice lines (a
subscription id, or one line without one). A *step* says "from ``at`` on, the stream's
MRR is ``value`` (native currency, ledger units)"; ``rate_day`` is the fixed conversion
date of a foreign stream under the service-period FX rule (days since 1970-01-01), or
:data:`NO_DAY` when the amount converts at the measured moment (or needs no conversion).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._columns import LineColumns
from revcrm._ledger._fixed import DIGITS, Units, muldiv_exact, norm, places, summable
from revcrm._money import EXACT_CONTEXT, divide
from revcrm.errors import ValidationError

__all__ = ["DAY_US", "NO_DAY", "Steps", "steps_from_lines"]

DAY_US: Final = 86_400_000_000
#: ``rate_day`` of a step converted at the measured moment (or not converted).
NO_DAY: Final = np.iinfo(np.int32).min
#: 365 * 86400 / 12: seconds of a month under the daily convention (365/12 days).
_MONTH_SECONDS: Final = 2_628_000

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@attrs.frozen(eq=False, kw_only=True)
class Steps:
    """Every stream's steps, sorted by (stream, at); streams have at least one step.

    ``customer_ids`` is sorted, so ordering by customer index is ordering by id. Amounts
    are units of ``10 ** -digits`` of the currency.
    """

    digits: int
    customer_ids: tuple[str, ...]
    currencies: tuple[str, ...]
    stream_keys: tuple[str, ...]
    stream_customer: I32  # per stream
    stream_currency: npt.NDArray[np.int16]  # per stream
    stream: I32  # per step
    at: I64  # microseconds since 1970-01-01 UTC
    value: Units  # native monthly amount in ledger units
    rate_day: I32
    # Live zero-price spans of subscriptions (free plans), per customer: [start, end).
    free_customer: I32
    free_start: I64
    free_end: I64  # int64 max: open

    @property
    def stream_ptr(self) -> I64:
        """Index of each stream's first step (and the total at the end)."""
        n = len(self.stream_keys)
        return np.searchsorted(self.stream, np.arange(n + 1)).astype(np.int64)


def _months(start: I64, end: I64) -> tuple[npt.NDArray[np.bool_], I64, I64]:
    """Per line: whole months?, the month count, the length in whole seconds.

    The rule of ``_months_between``: whole months when both ends are the same billing
    anchor clamped to month end, otherwise seconds at 365/12 days per month.
    """
    ds, de = start // DAY_US, end // DAY_US
    ts, te = start - ds * DAY_US, end - de * DAY_US
    dds, dde = ds.astype("datetime64[D]"), de.astype("datetime64[D]")
    ms, me = dds.astype("datetime64[M]"), dde.astype("datetime64[M]")
    n = me.astype(np.int64) - ms.astype(np.int64)
    day_s = (dds - ms.astype("datetime64[D]")).astype(np.int64)
    day_e = (dde - me.astype("datetime64[D]")).astype(np.int64)
    last_s = ((ms + 1).astype("datetime64[D]") - dds).astype(np.int64) == 1
    last_e = ((me + 1).astype("datetime64[D]") - dde).astype(np.int64) == 1
    whole = (
        (n > 0)
        & (ts == te)
        & ((day_s == day_e) | (last_s & (day_e > day_s)) | (last_e & (day_e < day_s)))
    )
    seconds = (end - start) // 1_000_000
    return whole, n, seconds


def line_values(columns: LineColumns) -> tuple[Units, int]:
    """Each line's monthly amount (net over its months) as units, and the units' digits.

    Exact as the Decimal rule computes it: a quotient that terminates within 9 decimals
    (or the amounts' scale) is an integer division; any other line takes revcrm's
    division rule (``DIVISION_PRECISION`` significant digits) and the units get as many
    digits as the longest such quotient needs, so no amount is rounded twice.
    """
    whole, n, seconds = _months(columns.start, columns.end)
    if not whole.all() and int(seconds[~whole].min(initial=1)) <= 0:
        i = int(np.argmax(~whole & (seconds <= 0)))
        raise ValidationError(f"end[{i}]", int(columns.end[i]), "a service period under a second")
    mul = np.where(whole, 1, _MONTH_SECONDS).astype(np.int64)
    div = np.where(whole, n, seconds).astype(np.int64)
    d0 = max(DIGITS, columns.scale)
    factor = 10 ** (d0 - columns.scale)
    net: Units = columns.net
    if net.size and max(abs(int(net.max())), abs(int(net.min()))) * factor < 2**62:
        net = net * factor
    else:
        net = net.astype(object) * factor
    value, exact = muldiv_exact(net, mul, div)
    inexact = np.flatnonzero(~exact)
    if inexact.size == 0:
        return value, d0
    quotients = [
        divide(
            Decimal(int(columns.net[i])).scaleb(-columns.scale) * int(mul[i]), Decimal(int(div[i]))
        )
        for i in inexact.tolist()
    ]
    digits = max(d0, max(places(q) for q in quotients))
    out = value.astype(object) * 10 ** (digits - d0)
    out[inexact] = [int(q.scaleb(digits, EXACT_CONTEXT)) for q in quotients]
    return norm(out), digits


def steps_from_lines(
    columns: LineColumns, foreign_fixed: Sequence[bool], rate_digits: int = 0
) -> Steps:
    """The invoice source: each stream's lines spread over their service periods.

    ``foreign_fixed[k]``: currency ``k`` converts at the service period's start (a foreign
    currency under the service-period rule); such a stream's step carries the start date
    of the latest period begun, and a renewal at an unchanged amount is its own step.
    ``rate_digits``: extra digits so that conversions are exact (:func:`rate_places`).
    """
    if len(columns) == 0:
        return _empty(columns.currencies, DIGITS + rate_digits)
    value, digits = line_values(columns)
    if rate_digits:
        value = norm(value.astype(object) * 10**rate_digits)
        digits += rate_digits
    # Customers sorted by id; the stream's customer and currency are its last line's.
    corder = np.argsort(np.array(columns.customer_ids, dtype=object)).astype(np.int32)
    crank = np.empty(len(corder), dtype=np.int32)
    crank[corder] = np.arange(len(corder), dtype=np.int32)
    nstreams = len(columns.stream_ids)
    s_cust = np.zeros(nstreams, dtype=np.int32)
    s_cur = np.zeros(nstreams, dtype=np.int16)
    s_cust[columns.stream] = crank[columns.customer]
    s_cur[columns.stream] = columns.currency
    # Streams sorted by key (as the Decimal engine does): only the key order matters.
    sorder = np.argsort(np.array(columns.stream_ids, dtype=object))
    srank = np.empty(nstreams, dtype=np.int32)
    srank[sorder] = np.arange(nstreams, dtype=np.int32)
    stream = srank[columns.stream]
    s_cust, s_cur = s_cust[sorder], s_cur[sorder]
    keys = tuple(columns.stream_ids[i] for i in sorder)

    nl = len(columns)
    p_stream = np.concatenate([stream, stream])
    p_at = np.concatenate([columns.start, columns.end])
    p_delta = norm(np.concatenate([value, -value]))
    p_start = np.concatenate([np.ones(nl, dtype=bool), np.zeros(nl, dtype=bool)])
    order = np.lexsort((p_at, p_stream))
    p_stream, p_at, p_delta, p_start = p_stream[order], p_at[order], p_delta[order], p_start[order]
    # One point per (stream, at).
    first = np.ones(p_at.size, dtype=bool)
    first[1:] = (p_stream[1:] != p_stream[:-1]) | (p_at[1:] != p_at[:-1])
    idx = np.flatnonzero(first)
    u_stream, u_at = p_stream[idx], p_at[idx]
    u_delta = np.add.reduceat(summable(p_delta), idx)
    u_start = np.logical_or.reduceat(p_start, idx)
    # Each stream's level after each point: prefix sums restarted per stream.
    cum = np.cumsum(summable(u_delta))
    new_stream = np.ones(u_at.size, dtype=bool)
    new_stream[1:] = u_stream[1:] != u_stream[:-1]
    sidx = np.flatnonzero(new_stream)
    seg = np.cumsum(new_stream) - 1
    base = (cum[sidx] - u_delta[sidx])[seg]
    level = norm(cum - base)
    prev = np.empty_like(level)
    prev[1:] = level[:-1]
    prev[sidx] = 0
    fixed = (
        np.asarray(foreign_fixed, dtype=bool)[s_cur[u_stream]]
        if len(foreign_fixed)
        else (np.zeros(u_at.size, dtype=bool))
    )
    day = (u_at // DAY_US).astype(np.int64)
    # The first point at a non-zero level opens the stream; leading zeros are not steps.
    pos = np.arange(u_at.size, dtype=np.int64)
    nz = level != 0
    big = np.iinfo(np.int64).max
    first_open = np.minimum.reduceat(np.where(nz, pos, big), sidx)[seg]
    live = pos >= first_open
    # The conversion date: the latest period start at or after the opening point.
    last_start = np.maximum.accumulate(np.where(u_start, pos, -1))
    anchor = np.maximum(last_start, first_open)
    anchor = np.minimum(anchor, u_at.size - 1)
    rate = np.where(fixed, day[anchor], NO_DAY)
    prev_rate = np.empty_like(rate)
    prev_rate[1:] = rate[:-1]
    prev_rate[sidx] = NO_DAY
    keep = live & ((level != prev) | (fixed & (rate != prev_rate) & (pos > first_open)))
    keep |= live & (pos == first_open)
    out = np.flatnonzero(keep)
    customer_ids = tuple(columns.customer_ids[i] for i in corder)
    return compact(
        Steps(
            digits=digits,
            customer_ids=customer_ids,
            currencies=columns.currencies,
            stream_keys=keys,
            stream_customer=s_cust,
            stream_currency=s_cur,
            stream=u_stream[out].astype(np.int32),
            at=u_at[out],
            value=level[out],
            rate_day=rate[out].astype(np.int32),
            free_customer=np.zeros(0, dtype=np.int32),
            free_start=np.zeros(0, dtype=np.int64),
            free_end=np.zeros(0, dtype=np.int64),
        )
    )


def compact(steps: Steps) -> Steps:
    """Only the streams with steps and the customers with such streams (order kept)."""
    used = np.unique(steps.stream)
    if used.size == len(steps.stream_keys) and np.unique(steps.stream_customer).size == len(
        steps.customer_ids
    ):
        return steps
    remap = np.full(len(steps.stream_keys), -1, dtype=np.int32)
    remap[used] = np.arange(used.size, dtype=np.int32)
    s_cust = steps.stream_customer[used]
    cused = np.unique(s_cust)
    cmap = np.full(len(steps.customer_ids), -1, dtype=np.int32)
    cmap[cused] = np.arange(cused.size, dtype=np.int32)
    return attrs.evolve(
        steps,
        customer_ids=tuple(steps.customer_ids[i] for i in cused.tolist()),
        stream_keys=tuple(steps.stream_keys[i] for i in used.tolist()),
        stream_customer=cmap[s_cust],
        stream_currency=steps.stream_currency[used],
        stream=remap[steps.stream],
        free_customer=cmap[steps.free_customer],
    )


def _empty(currencies: tuple[str, ...], digits: int) -> Steps:
    return Steps(
        digits=digits,
        customer_ids=(),
        currencies=currencies,
        stream_keys=(),
        stream_customer=np.zeros(0, dtype=np.int32),
        stream_currency=np.zeros(0, dtype=np.int16),
        stream=np.zeros(0, dtype=np.int32),
        at=np.zeros(0, dtype=np.int64),
        value=np.zeros(0, dtype=np.int64),
        rate_day=np.zeros(0, dtype=np.int32),
        free_customer=np.zeros(0, dtype=np.int32),
        free_start=np.zeros(0, dtype=np.int64),
        free_end=np.zeros(0, dtype=np.int64),
    )
