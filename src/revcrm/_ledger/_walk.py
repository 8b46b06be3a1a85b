"""The subscription source's policy walk as arrays: every subscription's states to MRR steps.

The rules are :mod:`revcrm.metrics._mrr`'s, one definition: a state's monthly amounts
(:func:`~revcrm.metrics._mrr.state_prices`) are computed once per distinct terms (price,
quantity, cycle, discount), and what depends on the moment (is it still paid, past the
scheduled end, past the past-due grace, within the discount) is a comparison against
per-state thresholds, done here for all breakpoints of all subscriptions at once.
``tests/ledger/test_walk.py`` proves :func:`amount_codes` equal to ``state_amount`` and
:func:`walk` equal to the engine's one-subscription walk on generated histories.

Times are microseconds since 1970-01-01 UTC. A value is a small int *code* into
``Walk.values`` (code 0 is zero), so equal amounts compare as equal ints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from itertools import chain, repeat
from operator import attrgetter, is_not
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._discount import DiscountDuration
from revcrm._ledger._columns import EPOCH
from revcrm._ledger._fixed import places
from revcrm._ledger._renewals import billing_dates, cycle_code, period_index
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus

__all__ = [
    "Prices",
    "Rules",
    "Services",
    "States",
    "Walk",
    "amount_codes",
    "next_billing_after",
    "next_renewal_after",
    "states_of",
    "walk",
]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_US: Final = timedelta(microseconds=1)
#: Thresholds that never pass: ``t < NEVER`` always, ``t >= NEVER`` never.
NEVER: Final = np.iinfo(np.int64).max
#: ``t < BEFORE`` never (an ``ended_at`` that is not set).
BEFORE: Final = np.iinfo(np.int64).min

_S = SubscriptionStatus
#: Status codes (index into this tuple).
STATUSES: Final = tuple(SubscriptionStatus)
_CODE: Final = {s: i for i, s in enumerate(STATUSES)}
_ACTIVE, _PAST_DUE, _CANCELLED = _CODE[_S.ACTIVE], _CODE[_S.PAST_DUE], _CODE[_S.CANCELLED]
_TERMINATED, _PENDING = _CODE[_S.TERMINATED], _CODE[_S.PENDING]
_TRIALING, _SUSPENDED = _CODE[_S.TRIALING], _CODE[_S.SUSPENDED]


#: ``state_prices``: a state's monthly amount, and after its discount (None without one).
Prices = Callable[[SubscriptionState], tuple[Decimal, Decimal | None]]


@attrs.frozen(kw_only=True)
class Rules:
    """The policy settings the walk reads (the engine builds it from a ``MetricsPolicy``:
    this package sits below ``revcrm.metrics``)."""

    end_of_paid_period: bool  # churn_recognition END_OF_PAID_PERIOD
    when_scheduled: bool  # churn_recognition WHEN_SCHEDULED
    count_trials: bool
    count_suspended: bool
    past_due_days: int | None
    #: Discount durations counted: codes 0 once, 1 repeating, 2 forever.
    discount_durations: frozenset[int]


_REPEATING: Final = DiscountDuration.REPEATING
#: Discount duration codes.
DURATIONS: Final = {
    DiscountDuration.ONCE: 0,
    DiscountDuration.REPEATING: 1,
    DiscountDuration.FOREVER: 2,
}


@attrs.frozen(eq=False, kw_only=True)
class States:
    """Every state of every subscription, in (subscription, history) order.

    ``at`` is the moment the state took effect; thresholds are :data:`NEVER` (or
    :data:`BEFORE` for ``ended``) where the state has none. ``full`` and ``discounted``
    are value codes (``discounted`` is ``full`` without a discount).
    """

    sub: I64
    at: I64
    status: I64
    paying: I64
    status_since: I64
    cap: B  # cancel_at_period_end
    ended: I64  # ended_at, BEFORE when not set
    has_ended: B
    scheduled: I64  # scheduled_end for cap states, NEVER otherwise
    until: I64  # when the discount stops applying, NEVER for none or forever
    has_until: B
    has_discount: B
    duration: I64  # 0 once, 1 repeating, 2 forever, -1 no discount
    anchor: I64
    months: I64
    length_us: I64
    full: I64
    discounted: I64
    values: tuple[Decimal, ...]  # per code; code 0 is zero
    currencies: tuple[str, ...]  # per subscription (its first state's price currency)
    value_places: tuple[int, ...]  # decimal places of each code's amount as stored


def _ids(col: Sequence[object]) -> I64:
    return np.fromiter(map(id, col), dtype=np.int64, count=len(col))


def _dense(a: I64) -> I64:
    """Codes 0..k-1 of ``a``'s distinct values."""
    out: I64 = np.unique(a, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return out


def _pair(a: I64, b: I64) -> I64:
    """Dense codes of the pairs ``(a, b)`` (both below ``len(a)`` once made dense, so the
    combined key stays far below 2**63)."""
    b = _dense(b)
    return _dense(a * (int(b.max(initial=0)) + 1) + b)


def _times(col: Sequence[Any], missing: int = 0) -> I64:
    """Microseconds of each datetime (``missing`` for None), each distinct object
    converted once: a subscription's states share their anchor, start and status times."""
    if not col:
        return np.zeros(0, dtype=np.int64)
    uniq, first, inverse = np.unique(_ids(col), return_index=True, return_inverse=True)
    epoch = EPOCH
    conv = np.fromiter(
        (
            missing if t is None else (t - epoch) // _US
            for t in map(col.__getitem__, first.tolist())
        ),
        dtype=np.int64,
        count=uniq.size,
    )
    out: I64 = conv[inverse.reshape(-1)]
    return out


def _column(flat: Sequence[SubscriptionState], name: str) -> list[Any]:
    return list(map(attrgetter(name), flat))


def states_of(subs: Sequence[Subscription], state_prices: Prices) -> States:
    """The states of ``subs`` as arrays: attribute reads by ``map`` (no Python frame per
    state), each distinct object (datetime, price terms) converted once."""
    per_sub = list(map(attrgetter("states"), subs))
    sizes = np.fromiter(map(len, per_sub), dtype=np.int64, count=len(per_sub))
    flat: list[SubscriptionState] = list(chain.from_iterable(per_sub))
    n = len(flat)
    owner = np.repeat(np.arange(len(subs), dtype=np.int64), sizes)
    code = _CODE
    status = np.fromiter(map(code.__getitem__, _column(flat, "status")), np.int64, count=n)
    paying = np.fromiter(map(code.__getitem__, _column(flat, "paying_status")), np.int64, count=n)
    cap = np.fromiter(_column(flat, "cancel_at_period_end"), dtype=bool, count=n)
    c_ended = _column(flat, "ended_at")
    has_ended = np.fromiter(map(is_not, c_ended, repeat(None)), dtype=bool, count=n)
    # One conversion per distinct datetime object among the states' moments (a
    # change's moment is also its state's as_of and often its status_since).
    moments = _times(
        _column(flat, "as_of")
        + _column(flat, "status_since")
        + _column(flat, "billing_anchor")
        + c_ended,
        BEFORE,
    )
    at, status_since, anchor, ended = (moments[k * n : (k + 1) * n] for k in range(4))
    c_cycle = _column(flat, "cycle")
    c_disc = _column(flat, "discount")
    c_price = _column(flat, "price")
    c_qty = _column(flat, "quantity")
    months = np.zeros(n, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)

    # The amounts: once per distinct terms (price, quantity, cycle and discount objects,
    # shared between a subscription's states and kept alive by the book), then once per
    # distinct value behind those.
    values: list[Decimal] = [Decimal(0)]
    value_places: list[int] = [0]
    by_value: dict[Decimal, int] = {Decimal(0): 0}

    def code_of(v: Decimal) -> int:
        # Equal amounts spelled differently (10 and 10.00) are one exact value: the
        # first spelling's places suffice for its units.
        c = by_value.get(v)
        if c is None:
            c = by_value[v] = len(values)
            values.append(v)
            value_places.append(places(v))
        return c

    full = np.zeros(n, dtype=np.int64)
    disc = np.zeros(n, dtype=np.int64)
    if n:
        # Equal amounts share a code (by value, a dict built in C), then the distinct
        # (amount, quantity, cycle object, discount object) rows get their prices.
        amounts = list(map(attrgetter("amount"), c_price))
        amount_code = {a: i for i, a in enumerate(dict.fromkeys(amounts))}
        key = _dense(np.fromiter(map(amount_code.__getitem__, amounts), np.int64, count=n))
        key = _pair(key, np.fromiter(c_qty, dtype=np.int64, count=n))
        key = _pair(key, _ids(c_cycle))
        key = _pair(key, _ids(c_disc))
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        rows = []
        # Rows with distinct objects but equal terms (each discount its own object) are
        # priced once.
        by_terms: dict[tuple[object, ...], tuple[int, int, int, int]] = {}
        for i in first.tolist():
            s = flat[i]
            terms = (s.price.amount, s.quantity, s.cycle, s.discount)
            row = by_terms.get(terms)
            if row is None:
                a, b = state_prices(s)
                ca = code_of(a)
                row = by_terms[terms] = (ca, ca if b is None else code_of(b), *cycle_code(s.cycle))
            rows.append(row)
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)[inverse.reshape(-1)]
        full, disc = table[:, 0].copy(), table[:, 1].copy()
        months, length = table[:, 2].copy(), table[:, 3].copy()

    # When a discount stops: forever never, repeating at its end, once at the end of
    # the billing period it was set in (SubscriptionState.discount_until's rule).
    has_discount = np.fromiter(map(is_not, c_disc, repeat(None)), dtype=bool, count=n)
    duration = np.full(n, -1, dtype=np.int64)
    until = np.full(n, NEVER, dtype=np.int64)
    with_disc = np.flatnonzero(has_discount).tolist()
    if with_disc:
        ds = [c_disc[i] for i in with_disc]
        duration[with_disc] = [DURATIONS[d.duration] for d in ds]
        rep = [j for j, d in zip(with_disc, ds, strict=True) if d.duration is _REPEATING]
        if rep:
            until[rep] = _times([c_disc[i].ends_at for i in rep])
        once = np.flatnonzero(duration == 0)
        if once.size:
            frm = _times([flat[i].discount_from for i in once.tolist()])
            until[once] = next_billing_after(anchor[once], months[once], length[once], frm)
    has_until = (duration == 0) | (duration == 1)

    # A scheduled cancellation ends at the end of the billing period it was asked in (at
    # the anchor when asked before it): scheduled_end's rule.
    scheduled = np.full(n, NEVER, dtype=np.int64)
    sc = np.flatnonzero(cap)
    if sc.size:
        req = _times([flat[i].cancel_requested_at for i in sc.tolist()])
        an = anchor[sc]
        after = next_billing_after(an, months[sc], length[sc], np.maximum(req, an))
        scheduled[sc] = np.where(req < an, an, after)
    return States(
        sub=owner,
        at=at,
        status=status,
        paying=paying,
        status_since=status_since,
        cap=cap,
        ended=ended,
        has_ended=has_ended,
        scheduled=scheduled,
        until=until,
        has_until=has_until,
        has_discount=has_discount,
        duration=duration,
        anchor=anchor,
        months=months,
        length_us=length,
        full=full,
        discounted=disc,
        values=tuple(values),
        value_places=tuple(value_places),
        currencies=tuple(
            map(
                attrgetter("currency"),
                map(c_price.__getitem__, (np.cumsum(sizes) - sizes).tolist()),
            )
        ),
    )


def next_billing_after(anchor: I64, months: I64, length_us: I64, t: I64) -> I64:
    """The first billing date strictly after ``t`` (``BillingCycle.next_after``'s rule)."""
    return billing_dates(anchor, months, length_us, period_index(anchor, months, length_us, t) + 1)


def next_renewal_after(anchor: I64, months: I64, length_us: I64, t: I64) -> I64:
    """The next renewal after ``t`` (``SubscriptionState.next_renewal``'s rule): the
    anchor while ``t`` is before it, else the first billing date after ``t``."""
    out: I64 = np.where(t < anchor, anchor, next_billing_after(anchor, months, length_us, t))
    return out


def amount_codes(st: States, i: I64, t: I64, rules: Rules) -> tuple[I64, I64]:
    """``state_amount(state i, t)`` as a value code, and the code of the price the policy
    counts at ``t`` whatever the status (``discounted_price``'s: zero means a free plan)."""
    status = st.status[i]
    cancelled = status == _CANCELLED
    still_paid = t < st.ended[i]
    eff = np.where(cancelled, st.paying[i], status)
    zero = cancelled & ~(still_paid & rules.end_of_paid_period)
    cap = st.cap[i]
    if rules.when_scheduled:
        zero |= cap
    zero |= cap & (t >= st.scheduled[i])
    zero |= (eff == _TERMINATED) | (eff == _PENDING)
    if not rules.count_trials:
        zero |= eff == _TRIALING
    if not rules.count_suspended:
        zero |= eff == _SUSPENDED
    days = rules.past_due_days
    if days is not None:
        zero |= (eff == _PAST_DUE) & (t >= st.status_since[i] + days * 86_400_000_000)
    duration = st.duration[i]
    allowed = np.isin(duration, sorted(rules.discount_durations))
    applies = allowed & (t < st.until[i])
    price = np.where(applies, st.discounted[i], st.full[i])
    return np.where(zero, 0, price), price


@attrs.frozen(eq=False, kw_only=True)
class Walk:
    """The steps of every subscription with MRR, sorted by (subscription, at).

    A step: from ``at`` on, the subscription's native MRR is ``values[code]``; ``state``
    is the state in force (its billing calendar converts a foreign step). ``free_*``:
    the live zero-price spans ``[start, end)`` (``end`` :data:`NEVER`: still open).
    """

    sub: I64
    at: I64
    code: I64
    state: I64
    free_sub: I64
    free_start: I64
    free_end: I64


def walk(st: States, rules: Rules, foreign: B) -> Walk:
    """Every subscription's policy walk at once (the engine's ``_subscription_steps``).

    ``foreign[k]``: subscription ``k`` converts at its service periods' starts, so a
    renewal at an unchanged amount stays a step (only consecutive zeros merge).
    """
    n = st.sub.size
    days = rules.past_due_days
    # Breakpoints: the changes, deferred ends, scheduled ends, discount ends and the
    # past-due grace, each (subscription, moment) once.
    parts_sub = [st.sub]
    parts_at = [st.at]
    for mask, when in (
        (st.has_ended, st.ended),
        (st.cap, st.scheduled),
        (st.has_until, st.until),
    ):
        idx = np.flatnonzero(mask)
        parts_sub.append(st.sub[idx])
        parts_at.append(when[idx])
    if days is not None:
        idx = np.flatnonzero((st.status == _PAST_DUE) | (st.paying == _PAST_DUE))
        parts_sub.append(st.sub[idx])
        parts_at.append(st.status_since[idx] + days * 86_400_000_000)
    p_sub = np.concatenate(parts_sub)
    p_at = np.concatenate(parts_at)
    order = np.lexsort((p_at, p_sub))
    p_sub, p_at = p_sub[order], p_at[order]
    keep = np.ones(p_sub.size, dtype=bool)
    keep[1:] = (p_sub[1:] != p_sub[:-1]) | (p_at[1:] != p_at[:-1])
    p_sub, p_at = p_sub[keep], p_at[keep]
    # The state in force at each point: the last state of its subscription at or before
    # it (states first at equal moments), found by one merge of states and points.
    m = n + p_sub.size
    kind = np.concatenate([np.zeros(n, dtype=np.int8), np.ones(p_sub.size, dtype=np.int8)])
    all_sub = np.concatenate([st.sub, p_sub])
    all_at = np.concatenate([st.at, p_at])
    merged = np.lexsort((kind, all_at, all_sub))
    pos = np.where(merged < n, merged, -1)
    last = np.maximum.accumulate(pos) if m else pos
    is_point = merged >= n
    state = last[is_point]
    pt_sub = all_sub[merged[is_point]]
    pt_at = all_at[merged[is_point]]
    valid = state >= 0
    valid[valid] = st.sub[state[valid]] == pt_sub[valid]
    state, pt_sub, pt_at = state[valid], pt_sub[valid], pt_at[valid]
    code, price = amount_codes(st, state, pt_at, rules)

    # Steps: from the first non-zero point on, each change of value; a foreign stream
    # keeps equal non-zero values too (each may convert at another period's start).
    k = pt_sub.size
    new_sub = np.ones(k, dtype=bool)
    new_sub[1:] = pt_sub[1:] != pt_sub[:-1]
    prev = np.empty(k, dtype=np.int64)
    prev[1:] = code[:-1]
    prev[new_sub] = -1
    nz = code != 0
    opened = np.zeros(k, dtype=bool)
    if k:
        seg = np.cumsum(new_sub) - 1
        first_nz = np.flatnonzero(new_sub)
        pos_k = np.arange(k, dtype=np.int64)
        first_open = np.minimum.reduceat(np.where(nz, pos_k, NEVER), first_nz)[seg]
        opened = pos_k >= first_open
    fgn = foreign[pt_sub] if k else np.zeros(0, dtype=bool)
    changed = code != prev
    step = opened & (changed | (fgn & nz))
    out = np.flatnonzero(step)

    # Live free spans: zero MRR while the service is live on a zero price.
    status = st.status[state]
    live = (status == _ACTIVE) | (status == _PAST_DUE)
    live |= (status == _CANCELLED) & (pt_at < st.ended[state])
    free = (code == 0) & live & (price == 0)
    f_prev = np.zeros(k, dtype=bool)
    f_prev[1:] = free[:-1]
    f_prev[new_sub] = False
    starts = np.flatnonzero(free & ~f_prev)
    # Each span ends at the next point of its subscription that is not free.
    not_free = np.where(~free, np.arange(k, dtype=np.int64), NEVER)
    nxt = np.minimum.accumulate(not_free[::-1])[::-1] if k else not_free
    end_pos = nxt[starts]
    closed = end_pos < k
    closed[closed] = pt_sub[end_pos[closed]] == pt_sub[starts[closed]]
    free_end = np.full(starts.size, NEVER, dtype=np.int64)
    free_end[closed] = pt_at[end_pos[closed]]
    return Walk(
        sub=pt_sub[out],
        at=pt_at[out],
        code=code[out],
        state=state[out],
        free_sub=pt_sub[starts],
        free_start=pt_at[starts],
        free_end=free_end,
    )


@attrs.frozen(eq=False, kw_only=True)
class Services:
    """What the renewals card reads of every subscription's states, kept by the analysis:
    the states' moments, statuses, scheduled cancellations and billing calendars, in
    (subscription, history) order, and each subscription's stream (-1: never any MRR)."""

    ptr: I64  # each subscription's first state (and the total at the end)
    at: I64
    status: I64
    cap: B
    anchor: I64
    months: I64
    length_us: I64
    stream: I64  # per subscription

    @classmethod
    def of(cls, st: States, subscriptions: int, stream: I64) -> Services:
        ptr = np.searchsorted(st.sub, np.arange(subscriptions + 1)).astype(np.int64)
        return cls(
            ptr=ptr,
            at=st.at,
            status=st.status,
            cap=st.cap,
            anchor=st.anchor,
            months=st.months,
            length_us=st.length_us,
            stream=stream,
        )

    def renewing(self, at_us: int, horizon_us: int) -> B:
        """Per subscription: active or past due at ``at_us`` (changes at it included), no
        cancellation scheduled, and its next billing date after ``at_us`` at or before
        ``horizon_us`` (``SubscriptionState.next_renewal``'s rule)."""
        n = self.ptr.size - 1
        if n <= 0:
            return np.zeros(0, dtype=bool)
        count = np.add.reduceat((self.at <= at_us).astype(np.int64), self.ptr[:-1])
        i = self.ptr[:-1] + np.maximum(count - 1, 0)
        status = self.status[i]
        ok = (count > 0) & ((status == _ACTIVE) | (status == _PAST_DUE)) & ~self.cap[i]
        out = np.zeros(n, dtype=bool)
        j = np.flatnonzero(ok)
        if j.size:
            k = i[j]
            t = np.full(j.size, at_us, dtype=np.int64)
            anchor = self.anchor[k]
            nxt = next_renewal_after(anchor, self.months[k], self.length_us[k], t)
            out[j] = nxt <= horizon_us
        return out
