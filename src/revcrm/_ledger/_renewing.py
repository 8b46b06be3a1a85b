"""The services renewing in a window and their MRR, from the subscriptions' states as
arrays (:func:`revcrm._ledger._walk.states_of`): the renewals card of an analysis whose
MRR is not read from those states (the invoice source), with no object per subscription.

The rules are the ones the walk already vectorises, one definition each: the state in
force at a moment (the last change at or before it), ``next_renewal``
(:meth:`Services.renewing`), the state's MRR (:func:`~revcrm._ledger._walk.amount_codes`,
``state_amount`` over arrays) and the billing calendar (:mod:`revcrm._ledger._renewals`).
A foreign amount converts at the rate of one date (the policy's FX rule): the start of
the service period holding the moment, or a date the caller gives; amounts sharing a
currency, a date and a value are multiplied once. Times are microseconds since 1970-01-01
UTC.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._renewals import billing_dates, period_index
from revcrm._ledger._walk import Rules, Services, States, amount_codes
from revcrm._money import EXACT_CONTEXT, FxRates

__all__ = ["Renewing", "renewing", "renewing_mrr"]

I64 = npt.NDArray[np.int64]

_DAY_US: Final = 86_400_000_000
_EPOCH_DAY: Final = date(1970, 1, 1)


@attrs.frozen(kw_only=True, eq=False)
class Renewing:
    """The services renewing: per service its subscription (an index of the states'
    subscriptions) and the state in force (an index of the states)."""

    subscription: I64
    state: I64

    def __len__(self) -> int:
        return int(self.subscription.size)


def renewing(st: States, subscriptions: int, at_us: int, horizon_us: int) -> Renewing:
    """The subscriptions (of ``subscriptions``, every one with a state) whose service is
    active or past due at ``at_us`` (changes at it included), with no cancellation
    scheduled, and next renews after ``at_us`` at or before ``horizon_us``."""
    empty = np.zeros(0, dtype=np.int64)
    if subscriptions == 0:
        return Renewing(subscription=empty, state=empty)
    svc = Services.of(st, subscriptions, np.full(subscriptions, -1, dtype=np.int64))
    due = np.flatnonzero(svc.renewing(at_us, horizon_us)).astype(np.int64)
    # The state in force: the last of the subscription's states at or before the moment.
    lo, hi = svc.ptr[due], svc.ptr[due + 1]
    seen = np.zeros(st.at.size + 1, dtype=np.int64)
    np.cumsum(st.at <= at_us, out=seen[1:])
    state = lo + (seen[hi] - seen[lo]) - 1
    return Renewing(subscription=due, state=state)


def renewing_mrr(
    st: States,
    rows: Renewing,
    at_us: int,
    rules: Rules,
    *,
    currency: str,
    fx: FxRates,
    service_period: bool,
    on: date,
) -> Decimal:
    """The MRR of the services ``rows`` at ``at_us`` in ``currency``, exactly: each
    state's amount under ``rules``; a foreign one converted at the rate of the start of
    its service period holding ``at_us`` (``service_period``), else of ``on``. Amounts of
    zero convert at no rate."""
    k = rows.state
    codes, _ = amount_codes(st, k, np.full(k.size, at_us, dtype=np.int64), rules)
    paying = codes != 0
    k, codes, subs = k[paying], codes[paying], rows.subscription[paying]
    total = Decimal(0)
    if k.size == 0:
        return total
    names = tuple(dict.fromkeys(st.currencies))
    index = {c: i for i, c in enumerate(names)}
    cur = np.array([index[st.currencies[s]] for s in subs.tolist()], dtype=np.int64)
    day = np.full(k.size, (on - _EPOCH_DAY).days, dtype=np.int64)
    foreign = cur != index.get(currency, -1)
    if service_period and foreign.any():
        f = np.flatnonzero(foreign)
        anchor, months, length = st.anchor[k[f]], st.months[k[f]], st.length_us[k[f]]
        t = np.full(f.size, at_us, dtype=np.int64)
        start = billing_dates(anchor, months, length, period_index(anchor, months, length, t))
        day[f] = start // _DAY_US
    day[~foreign] = 0
    groups, counts = np.unique(np.stack([cur, day, codes]), axis=1, return_counts=True)
    exact = EXACT_CONTEXT
    rates: dict[tuple[int, int], Decimal] = {}
    for (c, d, code), n in zip(groups.T.tolist(), counts.tolist(), strict=True):
        amount = exact.multiply(st.values[code], n)
        if names[c] != currency:
            rate = rates.get((c, d))
            if rate is None:
                on_day = _EPOCH_DAY + timedelta(days=d)
                rate = rates[(c, d)] = fx.rate(names[c], currency, on_day)
            amount = exact.multiply(amount, rate)
        total = exact.add(total, amount)
    return total
