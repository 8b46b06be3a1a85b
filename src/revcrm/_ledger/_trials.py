"""The ledger's trials as columns: every stretch of TRIALING status of every subscription,
built once by one rule, so trial conversion rates are aggregations over arrays.

A trial starts at the first change into TRIALING and ends at the first change that leaves
it (:data:`OPEN`: still trialing). It converted when the state after that change was
paying: MRR above zero under the metrics policy (ACTIVE or PAST_DUE on a paid price);
cancelling, terminating or moving to a free price ends it unconverted. The paying test is
the caller's (``state_mrr`` under its policy: this package sits below ``revcrm.metrics``).
Times are microseconds since 1970-01-01 UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain, repeat
from operator import attrgetter, is_
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._cash import moment_us
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus

__all__ = ["OPEN", "Paying", "TrialColumns", "trial_columns"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: ``ended_at`` of a trial still running.
OPEN: Final = np.iinfo(np.int64).max

#: Whether a subscription in a state pays at a moment (MRR above zero under a policy).
Paying = Callable[[SubscriptionState, datetime], bool]

_TRIALING: Final = SubscriptionStatus.TRIALING


@attrs.frozen(kw_only=True, eq=False, repr=False)
class TrialColumns:
    """One row per trial, ordered by (subscription in the book's order, start).

    ``subscription`` indexes ``subscription_ids``, ``customer`` indexes ``customer_ids``;
    ``ended_at`` is :data:`OPEN` for a trial still running, and ``converted`` is then
    False. ``rule`` is what decided the conversions (the metrics policy), so a caller
    handed prebuilt rows can check they answer its question.
    """

    rule: object
    subscription_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]
    subscription: I64
    customer: I64
    started_at: I64
    ended_at: I64
    converted: B

    def __len__(self) -> int:
        return int(self.started_at.size)

    def __repr__(self) -> str:
        return f"TrialColumns({len(self)} trials)"

    def started(self, lo: int, hi: int, converted_by: int) -> tuple[int, int]:
        """Trials started in ``[lo, hi)`` and, of them, those converted at or before
        ``converted_by``."""
        inside = (self.started_at >= lo) & (self.started_at < hi)
        won = inside & self.converted & (self.ended_at <= converted_by)
        return int(np.count_nonzero(inside)), int(np.count_nonzero(won))

    def ended(self, lo: int, hi: int) -> tuple[int, int]:
        """Trials that ended in ``[lo, hi)`` (converted or not) and, of them, those that
        converted."""
        inside = (self.ended_at != OPEN) & (self.ended_at >= lo) & (self.ended_at < hi)
        return int(np.count_nonzero(inside)), int(np.count_nonzero(inside & self.converted))


def trial_columns(
    subscriptions: Sequence[Subscription], paying: Paying, rule: object
) -> TrialColumns:
    """The trials of ``subscriptions`` (see the module docstring); ``paying`` is called
    once per trial that ended, on the state after it at the moment it ended."""
    per_sub = list(map(attrgetter("states"), subscriptions))
    sizes = np.fromiter(map(len, per_sub), dtype=np.int64, count=len(per_sub))
    flat: list[SubscriptionState] = list(chain.from_iterable(per_sub))
    n = len(flat)
    trialing = np.fromiter(
        map(is_, map(attrgetter("status"), flat), repeat(_TRIALING)), dtype=bool, count=n
    )
    owner = np.repeat(np.arange(len(subscriptions), dtype=np.int64), sizes)
    first = np.zeros(n, dtype=bool)
    first[(np.cumsum(sizes) - sizes)[sizes > 0]] = True
    before = np.zeros(n, dtype=bool)
    before[1:] = trialing[:-1]
    before[first] = False
    begins = np.flatnonzero(trialing & ~before)
    leaves = np.flatnonzero(~trialing & before)
    # Each trial ends at its subscription's first leaving change after its start: the
    # stretches alternate, so the k-th leaving change after a start is that start's.
    sub_of = owner[begins]
    pos = np.searchsorted(leaves, begins)
    has_end = pos < leaves.size
    end_at = np.full(begins.size, -1, dtype=np.int64)
    end_at[has_end] = leaves[pos[has_end]]
    has_end[has_end] = owner[end_at[has_end]] == sub_of[has_end]
    starts = np.array([moment_us(_at(flat[i])) for i in begins.tolist()], dtype=np.int64)
    ends = np.full(begins.size, OPEN, dtype=np.int64)
    converted = np.zeros(begins.size, dtype=bool)
    for k in np.flatnonzero(has_end).tolist():
        state = flat[int(end_at[k])]
        ends[k] = moment_us(_at(state))
        converted[k] = paying(state, _at(state))
    subs = sub_of.tolist()
    used = sorted(set(subs))
    sub_index = {s: j for j, s in enumerate(used)}
    customer_ids = tuple(dict.fromkeys(subscriptions[s].customer_id for s in used))
    cust_index = {c: j for j, c in enumerate(customer_ids)}
    return TrialColumns(
        rule=rule,
        subscription_ids=tuple(subscriptions[s].id for s in used),
        customer_ids=customer_ids,
        subscription=np.array([sub_index[s] for s in subs], dtype=np.int64),
        customer=np.array([cust_index[subscriptions[s].customer_id] for s in subs], dtype=np.int64),
        started_at=starts,
        ended_at=ends,
        converted=converted,
    )


def _at(state: SubscriptionState) -> datetime:
    """The moment of the change that set ``state`` (a state's ``as_of``)."""
    return state.as_of
