"""Churn, retention, quick ratio, revenue retention and cohorts over an :class:`MrrAnalysis`."""

from __future__ import annotations

import bisect
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Final

import attrs
import numpy as np

from revcrm._calendar import Frequency, day_start, period_bounds, shift
from revcrm._ledger._columns import micros as _us
from revcrm._money import Money, divide
from revcrm._time import as_moment
from revcrm.errors import ValidationError
from revcrm.metrics._engine import (
    Movement,
    MovementKind,
    MrrAnalysis,
    Waterfall,
    exact,
)
from revcrm.metrics._inputs import BookOrAnalysis, Rate, analysis_of, rate_of
from revcrm.metrics._policy import ChurnDenominator, MetricsPolicy

__all__ = [
    "ChurnRate",
    "Cohort",
    "CohortCell",
    "MrrChurn",
    "RevenueRetention",
    "churn_series",
    "cohorts",
    "customer_churn_rate",
    "customer_retention_rate",
    "customers_at",
    "mrr_churn",
    "quick_ratio",
    "revenue_retention",
]

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)


def _rate(numerator: int | Decimal, denominator: int | Decimal) -> Decimal | None:
    """``numerator / denominator`` (division rule of Money); None when the denominator is 0."""
    if denominator == 0:
        return None
    return divide(Decimal(numerator), Decimal(denominator))


def _paying(analysis: MrrAnalysis, at: datetime, *, inclusive: bool) -> set[str]:
    return {c for c, counted in analysis.customer_states(at, inclusive=inclusive) if counted}


def customers_at(
    analysis: BookOrAnalysis,
    at: date | datetime,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> int:
    """Number of customers at moment ``at`` (see the policy's ``free_plans_churn``).

    Like every period metric here, ``analysis`` is an :class:`MrrAnalysis` or a book
    (analysed from its subscriptions with ``currency`` and ``policy``).
    """
    t = _moment(at, "at", analysis, policy)
    a = analysis_of(analysis, currency=currency, policy=policy, horizon=t)
    return len(_paying(a, t, inclusive=True))


@attrs.frozen(kw_only=True)
class ChurnRate:
    """Customer churn over ``[start, end)``: ``rate = churned / denominator`` (None if 0).

    ``churned`` and the other fields are customer counts (never negative); :attr:`value`
    is ``rate``, as on every rate result.
    """

    start: datetime
    end: datetime
    denominator_rule: ChurnDenominator
    customers_at_start: int
    new_customers: int
    churned: int
    denominator: int
    rate: Decimal | None

    @property
    def value(self) -> Decimal | None:
        """The rate (the same as :attr:`rate`): every rate result has a ``value``."""
        return self.rate


def _moment(
    value: object, field: str, source: BookOrAnalysis, policy: MetricsPolicy | None
) -> datetime:
    """A bound read in the reporting zone: a plain date is midnight starting that day of
    the policy's zone (of the analysis, or the one given)."""
    zone: tzinfo
    if isinstance(source, MrrAnalysis):
        zone = source.policy.timezone
    else:
        zone = policy.timezone if isinstance(policy, MetricsPolicy) else UTC
    if isinstance(value, date) and not isinstance(value, datetime):
        value = day_start(value, zone)
    return as_moment(value, field)


_THIRTY_DAYS: Final = timedelta(days=30)


def _of(
    source: BookOrAnalysis, currency: str | None, policy: MetricsPolicy | None, end: datetime
) -> MrrAnalysis:
    return analysis_of(source, currency=currency, policy=policy, horizon=end)


def _by_kind(moves: Iterable[Movement], kind: MovementKind) -> set[str]:
    return {m.customer_id for m in moves if m.kind is kind}


@exact
def customer_churn_rate(
    analysis: BookOrAnalysis,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> ChurnRate:
    """Customer churn rate with the policy's denominator.

    - ``START`` (ChartMogul): customers who churned in the period, excluding those who
      joined in it and those who churned and came back within it, over customers at start.
    - ``START_30_DAY`` (Baremetrics): customers lost in the 30 days before ``end`` over
      customers active 30 days before ``end`` (``start`` is ignored).
    - ``START_PLUS_NEW`` (Stripe): customers lost in the period over customers at start
      plus new customers in the period.
    """
    a, b = _moment(start, "start", analysis, policy), _moment(end, "end", analysis, policy)
    if b <= a:
        raise ValidationError("end", end, "must be after start")
    return _churn_rates(_of(analysis, currency, policy, b), [(a, b)])[0]


@exact
def _churn_rates(
    analysis: MrrAnalysis, periods: Sequence[tuple[datetime, datetime]]
) -> list[ChurnRate]:
    """Churn rates of many periods from one pass over the movements and the events."""
    rule = analysis.policy.churn_denominator
    if rule is ChurnDenominator.START_30_DAY:
        # Thirty calendar days of the reporting zone (30 x 24 h but across a DST change).
        zone = analysis.policy.timezone
        periods = [(shift(b, -_THIRTY_DAYS, zone), b) for _, b in periods]
    points = sorted({p for period in periods for p in period})
    # The movements as arrays (no Movement object each: a 100k-customer book has hundreds
    # of thousands), customers as indices: the same sets as their ids.
    at, customer, kinds, kind = analysis._movement_columns(points)
    new_code, churn_code = kinds.index(MovementKind.NEW), kinds.index(MovementKind.CHURN)
    counts = dict(zip(points, analysis.profile_at(points)[0], strict=True))
    out = []
    for a, b in periods:
        lo, hi = np.searchsorted(at, [_us(a), _us(b)], side="left").tolist()
        who, what = customer[lo:hi], kind[lo:hi]
        new = np.unique(who[what == new_code])
        churned = np.unique(who[what == churn_code])
        at_start = counts[a]
        if rule is ChurnDenominator.START_30_DAY:
            counted = int(churned.size)
            denominator = at_start
        else:
            still = analysis._counted_before(churned, b)
            if rule is ChurnDenominator.START_PLUS_NEW:
                counted = int(np.count_nonzero(~still))
            else:
                was = analysis._counted_before(churned, a)
                counted = int(np.count_nonzero(was & ~still))
            denominator = at_start + (
                int(new.size) if rule is ChurnDenominator.START_PLUS_NEW else 0
            )
        out.append(
            ChurnRate(
                start=a,
                end=b,
                denominator_rule=rule,
                customers_at_start=at_start,
                new_customers=int(new.size),
                churned=counted,
                denominator=denominator,
                rate=_rate(counted, denominator),
            )
        )
    return out


@exact
def customer_retention_rate(
    analysis: BookOrAnalysis,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> Rate:
    """``(E - N) / S``: customers at end minus new ones, over customers at start.

    A :class:`Rate` (numerator ``E - N``, denominator ``S``); ``value`` is ``None`` with
    no customers at start.
    """
    a, b = _moment(start, "start", analysis, policy), _moment(end, "end", analysis, policy)
    an = _of(analysis, currency, policy, b)
    s = _paying(an, a, inclusive=False)
    e = _paying(an, b, inclusive=False)
    new = _by_kind(an.movements(a, b), MovementKind.NEW)
    return rate_of(len(e) - len(new & e), len(s))


@attrs.frozen(kw_only=True)
class MrrChurn:
    """Gross and net MRR churn over a period, as fractions of the starting MRR.

    The movements follow the sign convention of every result (as in
    :class:`~revcrm.metrics.Waterfall`): each is the signed change of MRR it caused, so
    ``churn`` and ``contraction`` are zero or negative, ``expansion`` and
    ``reactivation`` zero or positive. ``gross`` and ``net`` are positive when MRR was
    lost: ``gross = -(churn + contraction) / start_mrr``.
    """

    start_mrr: Money
    churn: Money
    contraction: Money
    expansion: Money
    reactivation: Money
    gross: Decimal | None
    net: Decimal | None

    @property
    def churned(self) -> Money:
        """Deprecated: the MRR lost to churn as a positive amount, i.e. ``-churn``."""
        warnings.warn(
            "MrrChurn.churned is deprecated: use MrrChurn.churn, the signed change like "
            "Waterfall.churn (negative when MRR was lost); -MrrChurn.churn is the old value",
            DeprecationWarning,
            stacklevel=2,
        )
        return -self.churn

    @property
    def lost(self) -> Money:
        """MRR lost to churn and contraction, as a positive amount (gross churn's numerator)."""
        return -(self.churn + self.contraction)


@exact
def mrr_churn(
    analysis: BookOrAnalysis,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> MrrChurn:
    """Gross = -(churn + contraction) / start MRR; net subtracts expansion and (by policy)
    reactivation. Baremetrics' cap at 100% applies when ``policy.cap_mrr_churn``."""
    a, b = _moment(start, "start", analysis, policy), _moment(end, "end", analysis, policy)
    an = _of(analysis, currency, policy, b)
    return _mrr_churn(an, an.waterfall(a, b))


@exact
def _mrr_churn(analysis: MrrAnalysis, w: Waterfall) -> MrrChurn:
    lost = -(w.churn + w.contraction)
    won = w.expansion
    if analysis.policy.net_churn_includes_reactivation:
        won += w.reactivation
    gross = _rate(lost.amount, w.start_mrr.amount)
    net = _rate((lost - won).amount, w.start_mrr.amount)
    if analysis.policy.cap_mrr_churn and gross is not None:
        gross = min(gross, _ONE)
        net = min(net, _ONE) if net is not None else None
    return MrrChurn(
        start_mrr=w.start_mrr,
        churn=w.churn,
        contraction=w.contraction,
        expansion=w.expansion,
        reactivation=w.reactivation,
        gross=gross,
        net=net,
    )


@exact
def quick_ratio(
    analysis: BookOrAnalysis,
    start: date | datetime,
    end: date | datetime,
    *,
    include_reactivation: bool = True,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> Rate:
    """(new + expansion [+ reactivation]) / -(contraction + churn) as a :class:`Rate`
    (MRR gained over MRR lost, both positive); ``value`` is None with no losses.

    saas-metrics includes reactivation (the default); Baremetrics excludes it.
    """
    a, b = _moment(start, "start", analysis, policy), _moment(end, "end", analysis, policy)
    w = _of(analysis, currency, policy, b).waterfall(a, b)
    gained = (
        w.new
        + w.expansion
        + (w.reactivation if include_reactivation else Money.zero(w.new.currency))
    )
    lost = -(w.contraction + w.churn)
    return rate_of(gained.amount, lost.amount)


@attrs.frozen(kw_only=True)
class RevenueRetention:
    """NRR and GRR of the customers paying at ``start``, measured at ``end``."""

    customers: int
    start_mrr: Money
    end_mrr: Money
    retained_mrr: Money  # sum over customers of min(end, start): no expansion
    net: Decimal | None
    gross: Decimal | None


@exact
def revenue_retention(
    analysis: BookOrAnalysis,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> RevenueRetention:
    """Net and gross revenue retention of a fixed set of customers (GRR never above 100%)."""
    a, b = _moment(start, "start", analysis, policy), _moment(end, "end", analysis, policy)
    analysis = _of(analysis, currency, policy, b)
    c = analysis.currency
    ids = sorted(_paying(analysis, a, inclusive=False))
    s_total = e_total = kept = _ZERO
    for cid in ids:
        (s_v, _), (e_v, _) = analysis.customer_levels(cid, [a, b])
        s_total += s_v
        e_total += e_v
        kept += min(s_v, e_v)
    return RevenueRetention(
        customers=len(ids),
        start_mrr=Money(s_total, c),
        end_mrr=Money(e_total, c),
        retained_mrr=Money(kept, c),
        net=_rate(e_total, s_total),
        gross=_rate(kept, s_total),
    )


@attrs.frozen(kw_only=True)
class ChurnPoint:
    start: datetime
    end: datetime
    customer_churn: ChurnRate
    mrr_churn: MrrChurn


@exact
def churn_series(
    analysis: BookOrAnalysis,
    start: date | datetime,
    end: date | datetime,
    every: Frequency | str = Frequency.MONTH,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> list[ChurnPoint]:
    """Customer and MRR churn per calendar period, for trend charts (one pass for all)."""
    a, b = _moment(start, "start", analysis, policy), _moment(end, "end", analysis, policy)
    analysis = _of(analysis, currency, policy, b)
    falls = analysis.waterfalls(a, b, every)
    rates = _churn_rates(analysis, [(w.start, w.end) for w in falls])
    return [
        ChurnPoint(start=w.start, end=w.end, customer_churn=r, mrr_churn=_mrr_churn(analysis, w))
        for w, r in zip(falls, rates, strict=True)
    ]


@attrs.frozen(kw_only=True)
class CohortCell:
    """A cohort ``age`` periods after its first: customers and MRR at that period's close."""

    age: int
    customers: int
    mrr: Money
    customer_rate: Decimal | None  # customers / cohort size
    mrr_rate: Decimal | None  # MRR / MRR at the close of the first period


@attrs.frozen(kw_only=True)
class Cohort:
    start: datetime  # the acquisition period
    end: datetime
    size: int
    initial_mrr: Money
    cells: tuple[CohortCell, ...]
    customer_ids: tuple[str, ...]


@exact
def cohorts(
    analysis: BookOrAnalysis,
    start: date | datetime,
    as_of: date | datetime,
    every: Frequency | str = Frequency.MONTH,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> list[Cohort]:
    """Cohort triangle: customers grouped by the period of their first MRR (``new``
    movement), with customers retained and net MRR retained at the close of each later
    period up to ``as_of``."""
    a, b = _moment(start, "start", analysis, policy), _moment(as_of, "as_of", analysis, policy)
    analysis = _of(analysis, currency, policy, b)
    freq = Frequency(every)
    if freq not in (Frequency.MONTH, Frequency.QUARTER):
        raise ValidationError("every", every, "cohorts are monthly or quarterly")
    periods = period_bounds(freq, a, b, analysis.policy.timezone)
    if not periods:
        return []
    starts = [p[0] for p in periods]
    first_paid = analysis.first_paid()
    members: dict[int, list[str]] = defaultdict(list)
    for cid, t in first_paid.items():
        if starts[0] <= t < periods[-1][1]:
            members[bisect.bisect_right(starts, t) - 1].append(cid)
    closes = [p[1] for p in periods]
    out = []
    cur = analysis.currency
    for k, (p, q) in enumerate(periods):
        ids = sorted(members.get(k, []))
        alive, sums = analysis.profile_at(closes[k:], ids)
        initial = sums[0]
        cells = tuple(
            CohortCell(
                age=age,
                customers=alive[age],
                mrr=Money(sums[age], cur),
                customer_rate=_rate(alive[age], len(ids)),
                mrr_rate=_rate(sums[age], initial),
            )
            for age in range(len(closes) - k)
        )
        out.append(
            Cohort(
                start=p,
                end=q,
                size=len(ids),
                initial_mrr=Money(initial, cur),
                cells=cells,
                customer_ids=tuple(ids),
            )
        )
    return out
