"""MRR steps: each stream's native monthly amount from each change on, as arrays.

A *stream* is one subscription (subscription source) or one series of invoice lines (a
subscription id, or one line without one). A *step* says "from ``at`` on, the stream's
MRR is ``value`` (native currency, ledger units)"; ``rate_day`` is the fixed conversion
date of a foreign stream under the service-period FX rule (days since 1970-01-01), or
:data:`NO_DAY` when the amount converts at the measured moment (or needs no conversion).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import UTC, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._columns import DAY_CYCLE, EPOCH, LineColumns, micros, moment
from revcrm._ledger._fixed import DIGITS, LIMIT, Units, muldiv_exact, norm, places
from revcrm._ledger._order import lex_order
from revcrm._money import EXACT_CONTEXT, Money, divide
from revcrm.errors import ValidationError

__all__ = [
    "DAY_US",
    "NO_DAY",
    "Steps",
    "day_spread",
    "line_values",
    "months_back",
    "steps_from_lines",
]

DAY_US: Final = 86_400_000_000
#: ``rate_day`` of a step converted at the measured moment (or not converted).
NO_DAY: Final = np.iinfo(np.int32).min
#: 365 * 86400 / 12: seconds of a month under the daily convention (365/12 days).
_MONTH_SECONDS: Final = 2_628_000

_SPREADINGS: Final = ("billing_cycle", "days")

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@attrs.frozen(eq=False, kw_only=True)
class Steps:
    """Every stream's steps, sorted by (stream, at); streams have at least one step.

    ``customer_ids`` is sorted, so ordering by customer index is ordering by id; the
    streams' order is their source's (the book's subscriptions, the lines' own order),
    which no figure depends on. Amounts are units of ``10 ** -digits`` of the currency.
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

    Whole months when both ends are the same billing anchor clamped to month end.
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


def months_back(t: I64, m: I64) -> I64:
    """``t`` minus ``m`` calendar months, the day clamped to the month's last day (the
    rule of ``add_months``), elementwise, in microseconds."""
    d = t // DAY_US
    tod = t - d * DAY_US
    dd = d.astype("datetime64[D]")
    mo = dd.astype("datetime64[M]")
    day = (dd - mo.astype("datetime64[D]")).astype(np.int64)
    m2 = mo - m.astype("timedelta64[M]")
    first = m2.astype("datetime64[D]")
    length = ((m2 + 1).astype("datetime64[D]") - first).astype(np.int64)
    out: I64 = (first.astype(np.int64) + np.minimum(day, length - 1)) * DAY_US + tod
    return out


def _cycle_shares(start: I64, end: I64, n: I64, cycle: I64) -> tuple[Units, Units]:
    """Lines that are not whole months, measured in their billing cycle of ``cycle``
    months: ``k`` whole cycles counted back from the line's end, and the rest as a share
    of the cycle before them (the one holding it). Returns ``(mul, div)``: the line's
    monthly amount is ``net * mul / div`` (``div = cycle * (k * length + rest)``)."""
    k = n // cycle
    while True:  # the month count can overshoot by one cycle
        over = (k > 0) & (months_back(end, k * cycle) < start)
        if not over.any():
            break
        k = k - over
    b0 = months_back(end, k * cycle)
    b1 = months_back(end, (k + 1) * cycle)
    length, rest = b0 - b1, b0 - start
    bound = int(cycle.max()) * (int((end - start).max()) + int(length.max()))
    if bound >= LIMIT:
        div: Units = cycle.astype(object) * (k.astype(object) * length + rest)
    else:
        div = cycle * (k * length + rest)
    return length, div


def _line_ratios(columns: LineColumns) -> tuple[Units, Units]:
    """Each line's monthly amount as ``net * mul / div``, under the billing-cycle rule.

    A line of whole months (same anchor, clamped) is its amount over its months; a line of
    a cycle in days or weeks counts 365/12 days a month; any other line is whole cycles
    plus a share of the cycle that holds the rest (an unknown cycle is one month), so a
    proration for the second half of a monthly cycle carrying $10 is $20 a month.
    """
    whole, n, seconds = _months(columns.start, columns.end)
    cycle = columns.cycles.astype(np.int64)
    by_day = ~whole & (cycle == DAY_CYCLE)
    if by_day.any() and int(seconds[by_day].min()) <= 0:
        i = int(np.argmax(by_day & (seconds <= 0)))
        raise ValidationError(f"end[{i}]", int(columns.end[i]), "a service period under a second")
    mul: Units = np.where(whole, 1, np.where(by_day, _MONTH_SECONDS, 0)).astype(np.int64)
    div: Units = np.where(whole, n, np.where(by_day, seconds, 0)).astype(np.int64)
    share = np.flatnonzero(~whole & ~by_day)
    if share.size:
        c = np.maximum(cycle[share], 1)
        m, d = _cycle_shares(columns.start[share], columns.end[share], n[share], c)
        if d.dtype == object:
            div = div.astype(object)
        mul[share] = m
        div[share] = d
    return mul, div


def _month_pieces(columns: LineColumns) -> tuple[I64, I64, I64, I64, I64, I64]:
    """Day spreading: each line cut at calendar month starts (UTC).

    Returns per piece its line, its start (the line's start, then each month's start), its
    end (the next month's start: the month's share is its MRR for the whole calendar
    month), its place among its line's pieces, its time in the line and the line's time
    (microseconds: days, for whole-day periods).
    """
    start, end = columns.start, columns.end
    m_first = (start // DAY_US).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    last_day = ((end - 1) // DAY_US).astype("datetime64[D]")
    m_last = last_day.astype("datetime64[M]").astype(np.int64)
    count = m_last - m_first + 1
    line = np.repeat(np.arange(len(columns), dtype=np.int64), count)
    offset = np.arange(line.size, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    month = m_first[line] + offset
    m_start = month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) * DAY_US
    m_end = (month + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) * DAY_US
    p_start = np.maximum(m_start, start[line])
    overlap = np.minimum(m_end, end[line]) - p_start
    return line, p_start, m_end, offset, overlap, (end - start)[line]


def _own_unit(columns: LineColumns) -> I64:
    """Per line, the smallest unit of its amount as a power of ten of ``net``'s units: the
    currency's minor unit, or a finer one when the amount has more decimals."""
    minor = np.array([Money.zero(c).minor_units for c in columns.currencies], dtype=np.int64)
    places = np.minimum(minor[columns.currency], columns.scale)
    net = columns.net
    for k in range(columns.scale, 0, -1):  # the places the amount needs
        needs = (net % 10 ** (columns.scale - k + 1) != 0) & (places < k)
        places = np.where(needs, k, places)
    return (10 ** (columns.scale - places)).astype(np.int64)


def _is_utc(zone: tzinfo) -> bool:
    return zone is UTC or getattr(zone, "key", None) in ("UTC", "Etc/UTC")


def _wall(us: I64, zone: tzinfo) -> I64:
    """Instants as the wall-clock times of ``zone`` (microseconds, as if UTC)."""
    u, inv = np.unique(us, return_inverse=True)
    one = timedelta(microseconds=1)
    off = [moment(x).astimezone(zone).utcoffset() or timedelta(0) for x in u.tolist()]
    shift = np.array([o // one for o in off], dtype=np.int64)
    out: I64 = us + shift[inv.reshape(us.shape)]
    return out


def _instants(wall: I64, zone: tzinfo) -> I64:
    """Wall-clock times of ``zone`` (as :func:`_wall` gives them) back as instants."""
    u, inv = np.unique(wall, return_inverse=True)
    naive = EPOCH.replace(tzinfo=None)
    back = [
        micros((naive + timedelta(microseconds=x)).replace(tzinfo=zone).astimezone(UTC))
        for x in u.tolist()
    ]
    out: I64 = np.array(back, dtype=np.int64)[inv.reshape(wall.shape)]
    return out


def _zone_day_spread(columns: LineColumns, zone: tzinfo) -> tuple[I64, I64, I64, Units, int, I64]:
    """:func:`day_spread` on the calendar of ``zone``: lines read as wall-clock times, so
    months start at the zone's midnights and a day is a calendar day (23 or 25 hours
    across a DST change); the pieces' bounds are turned back into instants. Also returns
    the pieces that open their line."""
    local = attrs.evolve(columns, start=_wall(columns.start, zone), end=_wall(columns.end, zone))
    line, w_start, w_end, value, digits = day_spread(local)
    opens = w_start == local.start[line]
    return line, _instants(w_start, zone), _instants(w_end, zone), value, digits, opens


def day_spread(columns: LineColumns) -> tuple[I64, I64, I64, Units, int]:
    """Day spreading's pieces and their amounts as units (and the units' digits).

    saas-metrics' ratable rule: a line's amount over the calendar months its period
    touches, by days, in whole smallest units of the amount (cents), each month the floor
    of its exact share and the units left over to the largest remainders (the earlier
    month on a tie), so a line's months sum exactly to its amount. A credit splits as its
    magnitude does.
    """
    line, p_start, p_end, offset, overlap, total = _month_pieces(columns)
    unit = _own_unit(columns)[line]
    raw = columns.net[line]
    sign = np.sign(raw)
    whole = np.abs(raw) // unit  # exact: a line's unit divides its amount
    # Days when every period is whole days (small numbers), else microseconds.
    g = int(np.gcd.reduce(np.concatenate([overlap, total]))) if overlap.size else 1
    ov, tot = overlap // g, total // g
    bound = int(whole.max(initial=0)) * int(ov.max(initial=0))
    if bound < LIMIT:
        prod: Units = whole * ov
        base = prod // tot
        rem = prod - base * tot
        order = np.lexsort((offset, -rem, line))
    else:
        prod = whole.astype(object) * ov.astype(object)
        base = prod // tot.astype(object)
        rem = prod - base * tot.astype(object)
        order = np.array(
            sorted(range(line.size), key=lambda i: (int(line[i]), -int(rem[i]), int(offset[i]))),
            dtype=np.int64,
        )
    given = np.zeros(len(columns), dtype=object if base.dtype == object else np.int64)
    np.add.at(given, line, base)
    left = (np.abs(columns.net) // _own_unit(columns)) - given
    rank = np.empty(line.size, dtype=np.int64)
    first = np.searchsorted(line[order], line[order], side="left")
    rank[order] = np.arange(line.size, dtype=np.int64) - first
    pieces = (base + (rank < left[line])) * sign
    d0 = max(DIGITS, columns.scale)
    factor = unit * 10 ** (d0 - columns.scale)
    if (
        pieces.dtype != object
        and int(np.abs(pieces).max(initial=0)) * int(factor.max(initial=1)) < LIMIT
    ):
        return line, p_start, p_end, pieces * factor, d0
    value = norm(pieces.astype(object) * factor.astype(object))
    return line, p_start, p_end, value, d0


def _values(columns: LineColumns, line: I64, mul: Units, div: Units) -> tuple[Units, int]:
    """``net[line] * mul / div`` as units and the units' digits.

    Exact as the Decimal rule computes it: a quotient that terminates within 9 decimals
    (or the amounts' scale) is an integer division; any other takes revcrm's division rule
    (``DIVISION_PRECISION`` significant digits) and the units get as many digits as the
    longest such quotient needs, so no amount is rounded twice.
    """
    d0 = max(DIGITS, columns.scale)
    factor = 10 ** (d0 - columns.scale)
    raw: Units = columns.net[line]
    if raw.size and max(abs(int(raw.max())), abs(int(raw.min()))) * factor < 2**62:
        net = raw * factor
    else:
        net = raw.astype(object) * factor
    value, exact = muldiv_exact(net, mul, div)
    inexact = np.flatnonzero(~exact)
    if inexact.size == 0:
        return value, d0
    c = EXACT_CONTEXT
    quotients = [
        divide(
            c.multiply(Decimal(int(raw[i])).scaleb(-columns.scale, c), Decimal(int(mul[i]))),
            Decimal(int(div[i])),
        )
        for i in inexact.tolist()
    ]
    digits = max(d0, max(places(q) for q in quotients))
    out = value.astype(object) * 10 ** (digits - d0)
    out[inexact] = [int(q.scaleb(digits, EXACT_CONTEXT)) for q in quotients]
    return norm(out), digits


def line_values(columns: LineColumns) -> tuple[Units, int]:
    """Each line's monthly amount (billing-cycle rule) as units, and the units' digits."""
    mul, div = _line_ratios(columns)
    return _values(columns, np.arange(len(columns), dtype=np.int64), mul, div)


def steps_from_lines(
    columns: LineColumns,
    foreign_fixed: Sequence[bool],
    rate_digits: int = 0,
    *,
    spreading: str = "billing_cycle",
    zone: tzinfo | None = None,
) -> Steps:
    """The invoice source: each stream's lines spread over their service periods.

    ``spreading`` (a ``revcrm.metrics.Spreading``, a str enum: the ledger sits below
    metrics): ``"billing_cycle"`` gives each line its monthly amount over
    its period (:func:`line_values`); ``"days"`` gives each calendar month a
    line touches the line's amount times the month's share of the line's days, as that
    month's MRR (saas-metrics' ratable rule), months and days of the reporting time zone
    ``zone`` (UTC when None).

    ``foreign_fixed[k]``: currency ``k`` converts at the service period's start (a foreign
    currency under the service-period rule); such a stream's step carries the start date
    of the latest period begun, and a renewal at an unchanged amount is its own step.
    ``rate_digits``: extra digits so that conversions are exact (:func:`rate_places`).
    """
    if len(columns) == 0:
        return _empty(columns.currencies, DIGITS + rate_digits)
    if spreading not in _SPREADINGS:
        raise ValidationError("spreading", spreading, "expected 'billing_cycle' or 'days'")
    if spreading == "days" and zone is not None and not _is_utc(zone):
        line, l_start, l_end, value, digits, opens = _zone_day_spread(columns, zone)
    elif spreading == "days":
        line, l_start, l_end, value, digits = day_spread(columns)
        opens = l_start == columns.start[line]
    else:
        line = np.arange(len(columns), dtype=np.int64)
        l_start, l_end = columns.start, columns.end
        opens = np.ones(len(columns), dtype=bool)
        value, digits = line_values(columns)
    if rate_digits:
        value = norm(value.astype(object) * 10**rate_digits)
        digits += rate_digits
    # Customers sorted by id; the stream's customer and currency are its last line's.
    corder = _id_order(columns.customer_ids).astype(np.int32)
    crank = np.empty(len(corder), dtype=np.int32)
    crank[corder] = np.arange(len(corder), dtype=np.int32)
    nstreams = len(columns.stream_ids)
    s_cust = np.zeros(nstreams, dtype=np.int32)
    s_cur = np.zeros(nstreams, dtype=np.int16)
    s_cust[columns.stream] = crank[columns.customer]
    s_cur[columns.stream] = columns.currency
    # Streams in the columns' order: no figure depends on it (a movement names its streams
    # sorted), and sorting a million line keys (a CSV's streams) was a quarter of the
    # engine's time. Customers stay sorted by id (movements are ordered by it).
    stream = columns.stream.astype(np.int32)[line]
    keys = columns.stream_ids

    if _one_line_each(stream, nstreams, l_start, l_end):
        # A stream per line (a CSV's lines without subscription ids): each stream's two
        # points are its line's start and end, already in order; no sort of 2n points.
        by_rank = np.empty(stream.size, dtype=np.int64)
        by_rank[stream] = np.arange(stream.size, dtype=np.int64)
        p_stream = np.repeat(stream[by_rank], 2)
        p_at = np.column_stack((l_start[by_rank], l_end[by_rank])).reshape(-1)
        v = value[by_rank]
        p_delta = norm(np.column_stack((v, -v)).reshape(-1))
        p_start = np.zeros(p_at.size, dtype=bool)
        p_start[::2] = opens[by_rank]
    else:
        p_stream = np.concatenate([stream, stream])
        p_at = np.concatenate([l_start, l_end])
        p_delta = norm(np.concatenate([value, -value]))
        p_start = np.concatenate([opens, np.zeros(opens.size, dtype=bool)])
        order = lex_order(p_stream, p_at)
        p_stream, p_at = p_stream[order], p_at[order]
        p_delta, p_start = p_delta[order], p_start[order]
    # One point per (stream, at).
    first = np.ones(p_at.size, dtype=bool)
    first[1:] = (p_stream[1:] != p_stream[:-1]) | (p_at[1:] != p_at[:-1])
    idx = np.flatnonzero(first)
    u_stream, u_at = p_stream[idx], p_at[idx]
    # Every sum below is a partial sum of one stream's deltas (see the level's), so int64
    # holds it exactly when the largest delta times the most deltas of a stream fits.
    if p_delta.dtype != object and p_delta.size:
        most = int(np.bincount(p_stream).max())
        if max(abs(int(p_delta.max())), abs(int(p_delta.min()))) * most >= LIMIT:
            p_delta = p_delta.astype(object)
    u_delta = np.add.reduceat(p_delta, idx)
    u_start = np.logical_or.reduceat(p_start, idx)
    # Each stream's level after each point. A line adds its value at its start and takes
    # it back at its end, in its own stream, so each stream's deltas sum to zero and a
    # prefix sum over all the streams restarts by itself at each stream's first point.
    level = norm(np.cumsum(u_delta))
    new_stream = np.ones(u_at.size, dtype=bool)
    new_stream[1:] = u_stream[1:] != u_stream[:-1]
    sidx = np.flatnonzero(new_stream)
    seg = np.cumsum(new_stream) - 1
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
    customer_ids = _pick(columns.customer_ids, corder)
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


def _one_line_each(stream: I32 | I64, nstreams: int, start: I64, end: I64) -> bool:
    """Whether every stream has exactly one line (``stream`` a permutation) and every line
    ends after it starts (so its two points never merge)."""
    if stream.size != nstreams or stream.size == 0:
        return False
    if not bool((end > start).all()):
        return False
    return bool((np.bincount(stream, minlength=nstreams) == 1).all())


def _id_order(ids: tuple[str, ...]) -> I64:
    """The order that sorts ``ids`` (distinct: any sort gives the same order).

    ASCII ids without a NUL sort as numpy bytes (byte order is code point order there, and
    no trailing NUL is dropped), about twice as fast as Python's sort by key for a million
    ids; any other ids by Python's sort (about twice as fast as numpy's over objects)."""
    if len(ids) > 1_000:
        text = "".join(ids)
        if text.isascii() and "\x00" not in text:
            order: I64 = np.argsort(np.array(ids, dtype=np.bytes_), kind="stable").astype(np.int64)
            return order
    return np.fromiter(sorted(range(len(ids)), key=ids.__getitem__), np.int64, len(ids))


def _pick(ids: tuple[str, ...], order: npt.NDArray[np.integer[Any]]) -> tuple[str, ...]:
    """``ids`` in ``order``, in one C call (a generator costs a Python step per id)."""
    if order.size <= 1:
        return tuple(ids[i] for i in order.tolist())
    picked: tuple[str, ...] = operator.itemgetter(*order.tolist())(ids)
    return picked


def _used(index: npt.NDArray[np.int32], size: int) -> I64:
    """The distinct values of ``index`` (in ``0..size-1``), ascending, by counting."""
    return np.flatnonzero(np.bincount(index, minlength=size))


def compact(steps: Steps) -> Steps:
    """Only the streams with steps and the customers with such streams (order kept)."""
    stream = steps.stream  # sorted (Steps' order): the used streams are its run starts
    runs = np.ones(stream.size, dtype=bool)
    runs[1:] = stream[1:] != stream[:-1]
    used = stream[runs]
    if used.size == len(steps.stream_keys) and _used(
        steps.stream_customer, len(steps.customer_ids)
    ).size == len(steps.customer_ids):
        return steps
    remap = np.full(len(steps.stream_keys), -1, dtype=np.int32)
    remap[used] = np.arange(used.size, dtype=np.int32)
    s_cust = steps.stream_customer[used]
    cused = _used(s_cust, len(steps.customer_ids))
    cmap = np.full(len(steps.customer_ids), -1, dtype=np.int32)
    cmap[cused] = np.arange(cused.size, dtype=np.int32)
    return attrs.evolve(
        steps,
        customer_ids=_pick(steps.customer_ids, cused),
        stream_keys=_pick(steps.stream_keys, used),
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
