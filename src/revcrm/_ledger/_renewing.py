"""The services renewing in a window and their MRR, from the subscriptions' states in force
as arrays: the renewals card of an analysis whose MRR is not read from those states (the
invoice source).

The rules are the ones the walk already vectorises, one definition each: ``next_renewal``
(:meth:`revcrm._ledger._walk.Services.renewing`, over one state per subscription) and the
billing calendar (:mod:`revcrm._ledger._renewals`). A state's MRR is the caller's rule
(``state_amount`` under its policy: this package sits below ``revcrm.metrics``), asked
only of the services renewing. A foreign amount converts at the rate of one date (the
policy's FX rule): the start of the service period holding the moment, or a date the
caller gives; amounts sharing a currency, a date and a value are multiplied once. Times
are microseconds since 1970-01-01 UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import repeat
from operator import attrgetter
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._cycles import BillingCycle
from revcrm._ledger._cash import moment_us
from revcrm._ledger._renewals import billing_dates, cycle_code, period_index
from revcrm._ledger._walk import STATUSES, Services
from revcrm._money import EXACT_CONTEXT, FxRates
from revcrm._subscription import Subscription, SubscriptionState

__all__ = ["InForce", "in_force", "renewing_mrr"]

I64 = npt.NDArray[np.int64]

#: A state's MRR at a moment, in its own currency (``state_amount`` under a policy).
Amount = Callable[[SubscriptionState, datetime], Decimal]

_DAY_US: Final = 86_400_000_000
_EPOCH_DAY: Final = date(1970, 1, 1)
_CODE: Final = {s: i for i, s in enumerate(STATUSES)}


@attrs.frozen(kw_only=True, eq=False)
class InForce:
    """The state in force at one moment of each subscription started by then, and of
    each such state its billing calendar as arrays; ``due``: the positions of those whose
    service renews by the horizon (see :func:`in_force`)."""

    states: tuple[SubscriptionState, ...]
    anchor: I64
    months: I64
    length_us: I64
    due: I64

    def __len__(self) -> int:
        return int(self.due.size)


def in_force(subscriptions: Sequence[Subscription], at: datetime, horizon_us: int) -> InForce:
    """The subscriptions' states in force at ``at`` (changes at it included), and which
    are active or past due with no cancellation scheduled and renew after ``at`` at or
    before ``horizon_us``."""
    found = [s for s in map(_state_at, subscriptions, repeat(at)) if s is not None]
    m = len(found)
    codes: dict[int, tuple[int, int]] = {}

    def code(cycle: BillingCycle) -> tuple[int, int]:
        key = id(cycle)
        out = codes.get(key)
        if out is None:
            out = codes[key] = cycle_code(cycle)
        return out

    cycles = np.array([code(c) for c in map(attrgetter("cycle"), found)], dtype=np.int64)
    cycles = cycles.reshape(m, 2)
    anchor = np.array([moment_us(a) for a in map(attrgetter("billing_anchor"), found)])
    anchor = anchor.astype(np.int64)
    at_us = moment_us(at)
    services = Services(
        ptr=np.arange(m + 1, dtype=np.int64),
        at=np.full(m, at_us, dtype=np.int64),
        status=np.fromiter(map(_CODE.__getitem__, map(attrgetter("status"), found)), np.int64, m),
        cap=np.fromiter(map(attrgetter("cancel_at_period_end"), found), dtype=bool, count=m),
        anchor=anchor,
        months=cycles[:, 0].copy(),
        length_us=cycles[:, 1].copy(),
        stream=np.full(m, -1, dtype=np.int64),
    )
    return InForce(
        states=tuple(found),
        anchor=services.anchor,
        months=services.months,
        length_us=services.length_us,
        due=np.flatnonzero(services.renewing(at_us, horizon_us)).astype(np.int64),
    )


def _state_at(sub: Subscription, at: datetime) -> SubscriptionState | None:
    """``sub.state_at(at)``: the last state when its change is at or before ``at`` (a
    dashboard's moment is mostly after every change), else the one in force then."""
    last = sub.current
    return last if last.as_of <= at else sub.state_at(at)


def renewing_mrr(
    rows: InForce,
    at: datetime,
    amount: Amount,
    *,
    currency: str,
    fx: FxRates,
    service_period: bool,
    on: date,
) -> Decimal:
    """The MRR at ``at`` of the services renewing, in ``currency``, exactly: each one's
    ``amount``; a foreign one converted at the rate of the start of its service period
    holding ``at`` (``service_period``), else of ``on``. Zero converts at no rate."""
    due = rows.due.tolist()
    values = [amount(rows.states[i], at) for i in due]
    keep = [j for j, v in enumerate(values) if v != 0]
    total = Decimal(0)
    if not keep:
        return total
    k = rows.due[keep]
    codes = [rows.states[i].currency for i in k.tolist()]
    names = tuple(dict.fromkeys(codes))
    index = {c: i for i, c in enumerate(names)}
    cur = np.array([index[c] for c in codes], dtype=np.int64)
    day = np.full(k.size, (on - _EPOCH_DAY).days, dtype=np.int64)
    foreign = cur != index.get(currency, -1)
    if service_period and foreign.any():
        f = k[foreign]
        anchor, months, length = rows.anchor[f], rows.months[f], rows.length_us[f]
        t = np.full(f.size, moment_us(at), dtype=np.int64)
        start = billing_dates(anchor, months, length, period_index(anchor, months, length, t))
        day[foreign] = start // _DAY_US
    day[~foreign] = 0
    # One product per currency, date and value: sum(v_i x r) == r x sum(v_i), exactly.
    kept = [values[j] for j in keep]
    uniq = {v: i for i, v in enumerate(dict.fromkeys(kept))}
    code = np.array([uniq[v] for v in kept], dtype=np.int64)
    distinct = list(uniq)
    groups, counts = np.unique(np.stack([cur, day, code]), axis=1, return_counts=True)
    exact = EXACT_CONTEXT
    rates: dict[tuple[int, int], Decimal] = {}
    for (c, d, v), n in zip(groups.T.tolist(), counts.tolist(), strict=True):
        part = exact.multiply(distinct[v], n)
        if names[c] != currency:
            rate = rates.get((c, d))
            if rate is None:
                on_day = _EPOCH_DAY + timedelta(days=d)
                rate = rates[(c, d)] = fx.rate(names[c], currency, on_day)
            part = exact.multiply(part, rate)
        total = exact.add(total, part)
    return total
