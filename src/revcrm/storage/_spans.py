"""A subscription's MRR and status as spans of time: what the SQL store materialises.

Each span ``[start, end)`` carries the monthly amount (native currency, exact), the
subscription's status and the billing anchor and cycle in force, so that MRR at a moment,
monthly series, paying-customer counts and active-service counts become plain aggregates
over one table. Spans break at every moment the pure MRR functions can change their
answer (changes, deferred ends, discount ends, past-due grace), so the amount of the span
containing ``t`` is exactly ``subscription_mrr(sub, t, policy=policy)``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import attrs

from revcrm._subscription import Subscription
from revcrm._version import __version__
from revcrm.metrics import MetricsPolicy, subscription_mrr
from revcrm.metrics._mrr import _breakpoints as mrr_breakpoints

__all__ = ["Span", "policy_fingerprint", "subscription_spans"]


class Span(NamedTuple):
    seq: int
    start: datetime
    end: datetime | None  # None: open-ended
    amount: Decimal  # monthly, in the subscription's currency
    status: str
    anchor: datetime
    cycle_count: int
    cycle_unit: str


def _points(sub: Subscription, policy: MetricsPolicy) -> list[datetime]:
    # Exactly the moments the pure timeline walks (changes, deferred and scheduled ends,
    # discount ends, past-due grace), so a new kind of breakpoint there reaches the spans.
    first = sub.history[0].at
    return [p for p in mrr_breakpoints(sub, policy) if p >= first]


def subscription_spans(sub: Subscription, policy: MetricsPolicy) -> list[Span]:
    """The subscription's spans, consecutive and non-overlapping, from its first change on.

    Neighbours with equal amount, status, anchor and cycle merge, except before the
    billing anchor: there the engine converts foreign MRR at the date each span starts,
    so those starts are kept; and no span runs across its anchor, so "before the anchor"
    is a property of a whole span (``start < anchor``).
    """
    points = set(_points(sub, policy))
    first = sub.history[0].at
    points.update(s.billing_anchor for s in sub.states if s.billing_anchor > first)
    spans: list[Span] = []
    for t in sorted(points):
        s = sub.state_at(t)
        assert s is not None
        value = subscription_mrr(sub, t, policy=policy).amount
        key = (value, s.status.value, s.billing_anchor, s.cycle.count, s.cycle.unit.value)
        if spans:
            last = spans[-1]
            same = (last.amount, last.status, last.anchor, last.cycle_count, last.cycle_unit)
            if same == key and last.start >= last.anchor:
                continue
            spans[-1] = last._replace(end=t)
        spans.append(Span(len(spans), t, None, *key))
    return spans


def policy_fingerprint(policy: MetricsPolicy) -> str:
    """What stored spans and the ledger depend on: the policy settings and the revcrm
    release (whose MRR rules may change), as text. Rows stored under another fingerprint
    must be rebuilt. The movement settings (grouping, reactivation, free plans) and the FX
    date rule decide the ledger's kinds and conversions (schema version 7)."""
    fields = (
        "discounts",
        "past_due_churn_after_days",
        "count_suspended",
        "churn_recognition",
        "count_trials",
        "free_plans_churn",
        "reactivation_window_days",
        "grouping_window",
        "fx_date",
    )
    values = attrs.asdict(policy)
    return f"revcrm={__version__};" + ";".join(f"{f}={values[f]}" for f in fields)
