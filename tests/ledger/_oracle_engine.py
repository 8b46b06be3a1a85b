"""TEST ORACLE: a verbatim copy of revcrm.metrics._engine before the columnar ledger (issue 13).

Kept unchanged (Decimal, per-event objects) as the reference the differential tests in
``tests/ledger`` compare the columnar engine with. Do not optimise it.

The MRR engine: customer timelines, movements, waterfalls and series.

Everything is computed once per :func:`analyse` call into an :class:`MrrAnalysis`, which
answers any number of questions about the book without recomputing timelines. Amounts
are Decimals internally (exact addition; division only in normalisation) and become
:class:`~revcrm.Money` at the API boundary.
"""

from __future__ import annotations

import bisect
import calendar
import decimal
import enum
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, NamedTuple, TypeVar, cast

import attrs
from dateutil.relativedelta import relativedelta

from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit, add_months
from revcrm._money import EXACT_CONTEXT, FxRates, Money, check_currency
from revcrm._records import InvoiceStatus, LineKind
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus
from revcrm._time import as_moment, as_of_moment
from revcrm.errors import ValidationError
from revcrm.metrics._mrr import DEFAULT_POLICY, discounted_price, scheduled_end, state_amount
from revcrm.metrics._policy import FxDateRule, MetricsPolicy, Spreading

__all__ = [
    "Frequency",
    "Movement",
    "MovementKind",
    "MrrAnalysis",
    "MrrPoint",
    "MrrSource",
    "Waterfall",
    "analyse",
    "exact",
    "mrr_movements",
    "mrr_series",
    "mrr_waterfall",
]

_ZERO: Final = Decimal(0)

_F = TypeVar("_F", bound=Callable[..., Any])


def exact(fn: _F) -> _F:
    """Run ``fn`` with exact Decimal addition and multiplication.

    The engine adds many Decimals; under the caller's context (28 digits by default)
    those sums would round silently, so they run under revcrm's unbounded context.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with decimal.localcontext(EXACT_CONTEXT):
            return fn(*args, **kwargs)

    return cast(_F, wrapper)


class MrrSource(enum.StrEnum):
    """Where MRR comes from."""

    SUBSCRIPTIONS = "subscriptions"  # subscription change history (a host panel's normal case)
    INVOICES = "invoices"  # recurring invoice lines spread over their service periods


class MovementKind(enum.StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


class Frequency(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


@attrs.frozen(kw_only=True)
class Movement:
    """One MRR movement of a customer; ``amount`` is the signed change of its MRR."""

    customer_id: str
    at: datetime
    kind: MovementKind
    amount: Money
    subscription_ids: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Waterfall:
    """MRR bridge over ``[start, end)``.

    ``start_mrr + new + expansion + reactivation + contraction + churn + fx_impact ==
    end_mrr`` exactly; contraction and churn are negative. ``fx_impact`` is the change
    that exchange rates alone caused (never a movement); it is zero in one currency.
    """

    start: datetime
    end: datetime
    start_mrr: Money
    new: Money
    expansion: Money
    reactivation: Money
    contraction: Money
    churn: Money
    fx_impact: Money
    end_mrr: Money
    movement_count: int

    @property
    def net_movements(self) -> Money:
        return self.new + self.expansion + self.reactivation + self.contraction + self.churn

    def total(self, kind: MovementKind) -> Money:
        value: Money = getattr(self, kind.value)
        return value


@attrs.frozen(kw_only=True)
class MrrPoint:
    """MRR at the close of ``[start, end)`` (after every change before ``end``)."""

    start: datetime
    end: datetime
    mrr: Money


class _Step(NamedTuple):
    at: datetime
    value: Decimal  # native monthly amount from ``at`` on
    rate_day: date | None  # fixed conversion date (service-period rule), None: measured moment


@attrs.frozen
class _Stream:
    """The MRR of one subscription (or one invoice-line series) as steps, native currency."""

    key: str
    customer_id: str
    currency: str
    steps: tuple[_Step, ...]
    free_live: tuple[tuple[datetime, datetime | None], ...]  # live zero-price spans
    times: tuple[datetime, ...] = attrs.field(init=False)

    @times.default
    def _times_default(self) -> tuple[datetime, ...]:
        return tuple(step.at for step in self.steps)


class _Event(NamedTuple):
    at: datetime
    before: Decimal  # customer MRR just before, converted at the event date
    after: Decimal
    keys: tuple[str, ...]
    free_after: bool  # a live free subscription remains after the event


# -- calendar helpers -------------------------------------------------------------------------


_add_months = add_months


def _advance(cycle: BillingCycle, anchor: datetime, n: int) -> datetime:
    match cycle.unit:
        case CycleUnit.MONTH:
            return _add_months(anchor, cycle.count * n)
        case CycleUnit.YEAR:
            return _add_months(anchor, 12 * cycle.count * n)
        case CycleUnit.WEEK:
            return anchor + timedelta(weeks=cycle.count * n)
        case CycleUnit.DAY:
            return anchor + timedelta(days=cycle.count * n)


def _period_starts(
    cycle: BillingCycle, anchor: datetime, lo: datetime, hi: datetime
) -> Iterator[datetime]:
    """Billing dates ``anchor + n cycles`` falling in ``(lo, hi)``, each from the anchor."""
    # A float only for the first guess of the cycle index (not money): the exact clamped
    # dates below decide which billing dates fall in the range.
    months = float(cycle.length_in_months)
    guess = int(((lo - anchor).days / 30.436875) / months) - 1 if lo > anchor else 0
    n = max(guess, 0)
    while True:
        d = _advance(cycle, anchor, n)
        if d >= hi:
            return
        if d > lo:
            yield d
        n += 1


#: The most periods one series (MRR, churn, cohorts) may hold.
MAX_PERIODS: Final = 100_000
_MIN_DAYS: Final = {Frequency.DAY: 1, Frequency.WEEK: 7, Frequency.MONTH: 28, Frequency.QUARTER: 89}


def period_bounds(
    freq: Frequency, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Consecutive calendar periods ``[a, b)`` covering ``[start, end)``, aligned to ``freq``.

    Both ends must lie in the supported date range and the series may hold at most
    :data:`MAX_PERIODS` periods (a ValidationError otherwise), so a series never runs
    off the calendar or out of memory.
    """
    as_of_moment(start, "start")
    as_of_moment(end, "end")
    if (end - start).days // _MIN_DAYS[freq] > MAX_PERIODS:
        raise ValidationError("end", end, f"a series holds at most {MAX_PERIODS} periods")
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    match freq:
        case Frequency.DAY:
            step = relativedelta(days=1)
        case Frequency.WEEK:
            first -= timedelta(days=first.weekday())  # ISO weeks start on Monday
            step = relativedelta(weeks=1)
        case Frequency.MONTH:
            first = first.replace(day=1)
            step = relativedelta(months=1)
        case Frequency.QUARTER:
            first = first.replace(day=1, month=3 * ((first.month - 1) // 3) + 1)
            step = relativedelta(months=3)
    out: list[tuple[datetime, datetime]] = []
    i = 0
    a = first
    while a < end:
        b = first + step * (i + 1)
        out.append((a, b))
        i += 1
        a = b
    return out


# -- streams ----------------------------------------------------------------------------------


def _subscription_stream(
    sub: Subscription, policy: MetricsPolicy, currency: str, horizon: datetime
) -> _Stream:
    # Breakpoints at which the policy can change the MRR (changes, deferred ends, discount
    # ends, past-due grace), walked in order with the state in force at each.
    extra: list[datetime] = []
    days = policy.past_due_churn_after_days
    for s in sub.states:
        if s.ended_at is not None:
            extra.append(s.ended_at)
        if s.cancel_at_period_end:
            extra.append(scheduled_end(s))
        until = s.discount_until()
        if until is not None:
            extra.append(until)
        if days is not None and SubscriptionStatus.PAST_DUE in (s.status, s.paying_status):
            extra.append(s.status_since + timedelta(days=days))
    times = [c.at for c in sub.history]
    states = sub.states
    points = sorted(set(times).union(extra))
    raw: list[tuple[datetime, Decimal, SubscriptionState]] = []
    i = -1
    for t in points:
        while i + 1 < len(times) and times[i + 1] <= t:
            i += 1
        if i < 0:
            continue
        s = states[i]
        value = state_amount(s, t, policy)
        raw.append((t, value, s))
    steps: list[_Step] = []
    foreign = sub.currency != currency and policy.fx_date is FxDateRule.SERVICE_PERIOD_START
    for j, (t, value, s) in enumerate(raw):
        if not foreign:
            if (steps and steps[-1].value == value) or (not steps and value == _ZERO):
                continue
            steps.append(_Step(t, value, None))
            continue
        # Foreign currency under the service-period rule: the rate changes at each renewal,
        # so emit a step per billing date while the value is non-zero.
        if not steps or steps[-1].value != value or value != _ZERO:
            start = (
                s.cycle.period_containing(s.billing_anchor, t)[0] if t >= s.billing_anchor else t
            )
            if not (not steps and value == _ZERO):
                steps.append(_Step(t, value, start.date()))
        if value != _ZERO:
            nxt = raw[j + 1][0] if j + 1 < len(raw) else horizon
            for d in _period_starts(s.cycle, s.billing_anchor, t, min(nxt, horizon)):
                steps.append(_Step(d, value, d.date()))
    free: list[tuple[datetime, datetime | None]] = []
    open_at: datetime | None = None
    for t, value, s in raw:
        live_free = (
            value == _ZERO and _is_live(s, t) and discounted_price(s, t, policy).amount == _ZERO
        )
        if live_free and open_at is None:
            open_at = t
        elif not live_free and open_at is not None:
            free.append((open_at, t))
            open_at = None
    if open_at is not None:
        free.append((open_at, None))
    return _Stream(sub.id, sub.customer_id, sub.currency, tuple(steps), tuple(free))


def _is_live(s: SubscriptionState, t: datetime) -> bool:
    if s.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
        return True
    return s.status is SubscriptionStatus.CANCELLED and s.ended_at is not None and t < s.ended_at


_US: Final = timedelta(microseconds=1)


def _line_cycle(book: Book, subscription_id: str | None, start: datetime) -> int:
    """The line's billing cycle: months, -1 for days or weeks, 0 when not known."""
    sub = book.subscription_index.get(subscription_id or "")
    if sub is None:
        return 0
    state = sub.state_at(start) or sub.states[0]
    if state.cycle.unit in (CycleUnit.MONTH, CycleUnit.YEAR):
        return int(state.cycle.length_in_months)
    return -1


def _months_between(start: datetime, end: datetime, cycle: int) -> Fraction:
    """Length of a service period in months under the billing-cycle rule.

    Whole months when both ends are the same billing anchor clamped to month end (Jan 31 ->
    Feb 28 -> Mar 31 are one month apart each). Otherwise a cycle of days or weeks counts
    365/12 days a month; any other cycle (one month when not known) counts the whole
    cycles back from the end, and the rest as a share of the cycle before them.
    """
    n = (end.year - start.year) * 12 + end.month - start.month
    if n > 0 and start.time() == end.time():
        start_last = start.day == calendar.monthrange(start.year, start.month)[1]
        end_last = end.day == calendar.monthrange(end.year, end.month)[1]
        if (
            start.day == end.day
            or (start_last and end.day > start.day)
            or (end_last and end.day < start.day)
        ):
            return Fraction(n)
    if cycle == -1:
        seconds = Fraction(int((end - start).total_seconds()))
        return seconds * 12 / (365 * 86400)
    c = max(cycle, 1)
    k = 0
    while add_months(end, -(k + 1) * c) >= start:
        k += 1
    b0, b1 = add_months(end, -k * c), add_months(end, -(k + 1) * c)
    return c * k + c * Fraction((b0 - start) // _US, (b0 - b1) // _US)


def _month_pieces(
    start: datetime, end: datetime, net: Money
) -> list[tuple[datetime, datetime, Decimal]]:
    """Day spreading (saas-metrics' ratable rule): per calendar month the line touches,
    from the line's start (or the month's) to the month's end, its share of the amount by
    time, in whole smallest units of the amount (the currency's minor unit, or finer when
    the amount has more decimals): each the floor of the exact share, and the units left
    over to the largest remainders, the earlier month on a tie. A credit as its magnitude."""
    places = max(Money.zero(net.currency).minor_units, -_exponent(net.amount.normalize()))
    units = abs(int(net.amount.scaleb(places)))
    sign = -1 if net.amount < 0 else 1
    total = (end - start) // _US
    months = []
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month < end:
        following = add_months(month, 1)
        a = max(start, month)
        months.append((a, following, (min(end, following) - a) // _US))
        month = following
    base = [units * share // total for _, _, share in months]
    by_remainder = sorted(range(len(months)), key=lambda i: (-(units * months[i][2] % total), i))
    for i in by_remainder[: units - sum(base)]:
        base[i] += 1
    return [
        (a, b, Decimal(sign * n).scaleb(-places)) for (a, b, _), n in zip(months, base, strict=True)
    ]


def _exponent(d: Decimal) -> int:
    e = d.as_tuple().exponent
    assert isinstance(e, int)
    return min(e, 0)


def _invoice_streams(book: Book, policy: MetricsPolicy, currency: str) -> list[_Stream]:
    by_key: dict[str, list[tuple[datetime, datetime, Decimal, bool]]] = defaultdict(list)
    meta: dict[str, tuple[str, str]] = {}
    for inv in book.invoices:
        if inv.status in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
            continue
        for idx, line in enumerate(inv.lines):
            if line.kind is not LineKind.RECURRING:
                continue
            assert line.period_start is not None
            assert line.period_end is not None
            key = line.subscription_id or f"{inv.id}#{idx}"
            a, b = line.period_start, line.period_end
            if policy.spreading is Spreading.DAYS:
                pieces = _month_pieces(a, b, line.net)
                by_key[key] += [(p, q, v, p == a) for p, q, v in pieces]
            else:
                months = _months_between(a, b, _line_cycle(book, line.subscription_id, a))
                value = (line.net * months.denominator / Decimal(months.numerator)).amount
                by_key[key].append((a, b, value, True))
            meta[key] = (inv.customer_id, inv.currency)
    streams = []
    for key, spans in sorted(by_key.items()):
        customer_id, cur = meta[key]
        deltas: dict[datetime, Decimal] = defaultdict(Decimal)
        starts: dict[datetime, date] = {}
        for a, b, v, opens in spans:
            deltas[a] += v
            deltas[b] -= v
            if opens:
                starts[a] = a.date()
        foreign = cur != currency and policy.fx_date is FxDateRule.SERVICE_PERIOD_START
        steps: list[_Step] = []
        level = _ZERO
        for t in sorted(deltas):
            level += deltas[t]
            rate_day = starts.get(t, steps[-1].rate_day if steps else t.date()) if foreign else None
            if steps and steps[-1].value == level and steps[-1].rate_day == rate_day:
                continue
            if not steps and level == _ZERO:
                continue
            steps.append(_Step(t, level, rate_day))
        streams.append(_Stream(key, customer_id, cur, tuple(steps), ()))
    return streams


# -- analysis ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class MrrAnalysis:
    """A book's MRR analysed once, under one policy, in one reporting currency."""

    currency: str
    policy: MetricsPolicy
    source: MrrSource
    horizon: datetime
    fx: FxRates
    _streams: tuple[_Stream, ...] = attrs.field(alias="_streams")
    _by_customer: dict[str, tuple[_Stream, ...]] = attrs.field(alias="_by_customer")
    _events: dict[str, tuple[_Event, ...]] = attrs.field(alias="_events")
    # The last few classifications by period bounds: a KPI page asks for the same periods
    # through several functions (waterfalls, churn rates, quick ratio).
    _recent: dict[tuple[datetime, ...], tuple[tuple[int, Movement], ...]] = attrs.field(
        init=False, factory=dict, repr=False
    )

    # -- MRR at moments ------------------------------------------------------------------

    def _convert(self, value: Decimal, cur: str, rate_day: date | None, at: datetime) -> Decimal:
        if cur == self.currency or value == _ZERO:
            return value
        day = rate_day if rate_day is not None else at.date()
        return value * self.fx.rate(cur, self.currency, day)

    def _stream_value(self, stream: _Stream, at: datetime, *, before: bool) -> Decimal:
        i = (bisect.bisect_left if before else bisect.bisect_right)(stream.times, at)
        if i == 0:
            return _ZERO
        step = stream.steps[i - 1]
        return self._convert(step.value, stream.currency, step.rate_day, at)

    @exact
    def _total(self, streams: Iterable[_Stream], at: datetime, *, before: bool) -> Decimal:
        return sum((self._stream_value(s, at, before=before) for s in streams), _ZERO)

    @exact
    def mrr(self, at: date | datetime, *, customer_ids: Iterable[str] | None = None) -> Money:
        """MRR at moment ``at``, including changes effective exactly at ``at``."""
        t = as_moment(at, "at")
        if customer_ids is None:
            return Money(self._values_before([t], inclusive=True)[0], self.currency)
        return Money(self._total(self._for(customer_ids), t, before=False), self.currency)

    @exact
    def mrr_before(self, at: date | datetime) -> Money:
        """MRR just before ``at``: the close of a period ending at ``at``."""
        return Money(self._values_before([as_moment(at, "at")])[0], self.currency)

    @exact
    def customer_mrr(self, customer_id: str, at: date | datetime) -> Money:
        t = as_moment(at, "at")
        return Money(
            self._total(self._by_customer.get(customer_id, ()), t, before=False), self.currency
        )

    def _for(self, customer_ids: Iterable[str]) -> list[_Stream]:
        return [s for c in customer_ids for s in self._by_customer.get(c, ())]

    @exact
    def customers_with_mrr(self, at: date | datetime) -> dict[str, Money]:
        """Paying customers at ``at`` and their MRR (each customer once)."""
        t = as_moment(at, "at")
        out = {}
        for cid, streams in self._by_customer.items():
            v = self._total(streams, t, before=False)
            if v != _ZERO:
                out[cid] = Money(v, self.currency)
        return out

    def series(
        self, start: date | datetime, end: date | datetime, every: Frequency | str = Frequency.MONTH
    ) -> list[MrrPoint]:
        """MRR at the close of each calendar period (day, week, month, quarter) in the range.

        One sweep over every step of every stream, so the cost is linear in the book.
        """
        a, b = as_moment(start, "start"), as_moment(end, "end")
        periods = period_bounds(Frequency(every), a, b)
        if not periods:
            return []
        # The first and last periods are clipped to [start, end).
        clipped = [(max(p, a), min(q, b)) for p, q in periods]
        values = self._values_before([q for _, q in clipped])
        return [
            MrrPoint(start=p, end=q, mrr=Money(v, self.currency))
            for (p, q), v in zip(clipped, values, strict=True)
        ]

    @functools.cached_property
    def _sweep(self) -> tuple[_Prefix, dict[str, _Prefix]]:
        # Fixed-rate steps contribute converted deltas; measured-moment steps are summed per
        # currency and converted at each queried moment.
        fixed: list[tuple[datetime, Decimal]] = []
        native: dict[str, list[tuple[datetime, Decimal]]] = defaultdict(list)
        for s in self._streams:
            prev = _ZERO
            for step in s.steps:
                if s.currency == self.currency or step.rate_day is not None:
                    conv = self._convert(step.value, s.currency, step.rate_day, step.at)
                    fixed.append((step.at, conv - prev))
                    prev = conv
                else:
                    native[s.currency].append((step.at, step.value - prev))
                    prev = step.value
        return _Prefix(fixed), {c: _Prefix(d) for c, d in sorted(native.items())}

    @exact
    def _values_before(
        self, moments: Sequence[datetime], *, inclusive: bool = False
    ) -> list[Decimal]:
        fixed, native = self._sweep
        out = []
        for m in moments:
            total = fixed.at(m, inclusive)
            for cur, prefix in native.items():
                level = prefix.at(m, inclusive)
                if level != _ZERO:
                    total += level * self.fx.rate(cur, self.currency, m.date())
            out.append(total)
        return out

    # -- movements -----------------------------------------------------------------------

    @exact
    def movements(self, start: date | datetime, end: date | datetime) -> list[Movement]:
        """Movements with ``start <= at < end``, grouped by the policy's window within it."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        return [m for _, m in self._movements([a, b])]

    @exact
    def _movements(self, bounds: Sequence[datetime]) -> list[tuple[int, Movement]]:
        """Movements between the first and last bound, tagged with their period's index.

        Groups never span a bound, so every period's waterfall adds up exactly.
        """
        key = tuple(bounds)
        cached = self._recent.get(key)
        if cached is not None:
            return list(cached)
        out: list[tuple[int, Movement]] = []
        for cid in sorted(self._events):
            out.extend(self._classify(cid, self._events[cid], bounds))
        out.sort(key=lambda m: (m[1].at, m[1].customer_id))
        if len(self._recent) >= 8:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = tuple(out)
        return out

    def _classify(
        self, customer_id: str, events: Sequence[_Event], bounds: Sequence[datetime]
    ) -> Iterator[tuple[int, Movement]]:
        window = self.policy.grouping_window
        last_region = len(bounds)
        paid_before = False
        churned_at: datetime | None = None
        i = 0
        n = len(events)
        while i < n:
            first = events[i]
            region = bisect.bisect_right(bounds, first.at)
            j = i + 1
            while (
                window is not None
                and j < n
                and events[j].at - first.at <= window
                and bisect.bisect_right(bounds, events[j].at) == region
            ):
                j += 1
            group = events[i:j]
            before = first.before
            # The group's net change is measured event by event at each event's rate, so
            # that exchange-rate moves between grouped events are never a movement.
            after = before + sum((e.after - e.before for e in group), _ZERO)
            kind = self._kind(
                before, after, group[-1].free_after, paid_before, churned_at, first.at
            )
            if kind is MovementKind.CHURN:
                churned_at = first.at
            if after > _ZERO:
                paid_before = True
                churned_at = None
            if kind is not None and 0 < region < last_region:
                keys = tuple(sorted({k for e in group for k in e.keys}))
                yield (
                    region - 1,
                    Movement(
                        customer_id=customer_id,
                        at=first.at,
                        kind=kind,
                        amount=Money(after - before, self.currency),
                        subscription_ids=keys,
                    ),
                )
            i = j

    def _kind(
        self,
        before: Decimal,
        after: Decimal,
        free_after: bool,
        paid_before: bool,
        churned_at: datetime | None,
        at: datetime,
    ) -> MovementKind | None:
        if before == after:
            return None
        if before == _ZERO:
            if not paid_before:
                return MovementKind.NEW
            if churned_at is None:  # was on a free plan that did not count as churn
                return MovementKind.EXPANSION
            days = self.policy.reactivation_window_days
            if days is not None and at - churned_at > timedelta(days=days):
                return MovementKind.NEW
            return MovementKind.REACTIVATION
        if after == _ZERO:
            if free_after and not self.policy.free_plans_churn:
                return MovementKind.CONTRACTION
            return MovementKind.CHURN
        return MovementKind.EXPANSION if after > before else MovementKind.CONTRACTION

    @exact
    def waterfall(self, start: date | datetime, end: date | datetime) -> Waterfall:
        """The MRR bridge over ``[start, end)``."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        return self._waterfalls([a, b])[0]

    def waterfalls(
        self, start: date | datetime, end: date | datetime, every: Frequency | str = Frequency.MONTH
    ) -> list[Waterfall]:
        """One waterfall per calendar period, computed in one pass over the movements."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        periods = period_bounds(Frequency(every), a, b)
        if not periods:
            return []
        # The first and last periods are clipped to [start, end).
        return self._waterfalls([a] + [p[0] for p in periods[1:]] + [b])

    @exact
    def _waterfalls(self, bounds: list[datetime]) -> list[Waterfall]:
        k = len(bounds) - 1
        totals = [dict.fromkeys(MovementKind, _ZERO) for _ in range(k)]
        counts = [0] * k
        for region, m in self._movements(bounds):
            totals[region][m.kind] += m.amount.amount
            counts[region] += 1
        levels = self._values_before(bounds)
        c = self.currency
        out = []
        for r in range(k):
            t = totals[r]
            fx_impact = levels[r + 1] - levels[r] - sum(t.values(), _ZERO)
            out.append(
                Waterfall(
                    start=bounds[r],
                    end=bounds[r + 1],
                    start_mrr=Money(levels[r], c),
                    new=Money(t[MovementKind.NEW], c),
                    expansion=Money(t[MovementKind.EXPANSION], c),
                    reactivation=Money(t[MovementKind.REACTIVATION], c),
                    contraction=Money(t[MovementKind.CONTRACTION], c),
                    churn=Money(t[MovementKind.CHURN], c),
                    fx_impact=Money(fx_impact, c),
                    end_mrr=Money(levels[r + 1], c),
                    movement_count=counts[r],
                )
            )
        return out

    def customer_states(self, at: datetime, *, inclusive: bool) -> Iterator[tuple[str, bool]]:
        """Each customer with history before ``at`` and whether it counts as a customer then:
        MRR above zero, or a live free plan after having paid when the policy keeps free-plan
        customers (``free_plans_churn=False``)."""
        keep_free = not self.policy.free_plans_churn
        find = bisect.bisect_right if inclusive else bisect.bisect_left
        for cid, times in self._event_times.items():
            i = find(times, at)
            if i:
                e = self._events[cid][i - 1]
                yield cid, e.after > _ZERO or (keep_free and e.free_after)

    def customer_levels(
        self, customer_id: str, moments: Sequence[datetime]
    ) -> list[tuple[Decimal, bool]]:
        """The customer's MRR just before each (sorted) moment, converted at the date of the
        change that set it, and whether it counts as a customer then."""
        events = self._events.get(customer_id, ())
        keep_free = not self.policy.free_plans_churn
        out = []
        i = 0
        level, counted = _ZERO, False
        for m in moments:
            while i < len(events) and events[i].at < m:
                e = events[i]
                level, counted = e.after, e.after > _ZERO or (keep_free and e.free_after)
                i += 1
            out.append((level, counted))
        return out

    @exact
    def profile_at(
        self, moments: Sequence[datetime], customer_ids: Iterable[str] | None = None
    ) -> tuple[list[int], list[Decimal]]:
        """Customers counted and their total MRR just before each of the sorted ``moments``.

        One pass over the customers' events with difference arrays, so a whole cohort
        triangle or churn series costs O(events x log(moments)), not customers x moments.
        MRR is each customer's level as converted at the date of the change that set it.
        """
        k = len(moments)
        counted = [0] * (k + 1)
        sums = [_ZERO] * (k + 1)
        keep_free = not self.policy.free_plans_churn
        ids = self._events.keys() if customer_ids is None else customer_ids
        find = bisect.bisect_right
        for cid in ids:
            events = self._events.get(cid, ())
            previous = _ZERO
            for i, e in enumerate(events):
                lo = find(moments, e.at)
                if lo >= k:
                    break
                sums[lo] += e.after - previous
                previous = e.after
                if e.after > _ZERO or (keep_free and e.free_after):
                    hi = find(moments, events[i + 1].at) if i + 1 < len(events) else k
                    if lo < hi:
                        counted[lo] += 1
                        counted[hi] -= 1
        out_counts, out_sums = [], []
        c, m = 0, _ZERO
        for i in range(k):
            c += counted[i]
            m += sums[i]
            out_counts.append(c)
            out_sums.append(m)
        return out_counts, out_sums

    def first_paid(self) -> dict[str, datetime]:
        """When each customer first had MRR (the moment of its ``new`` movement)."""
        out = {}
        for cid, events in self._events.items():
            for e in events:
                if e.after > _ZERO:
                    out[cid] = e.at
                    break
        return out

    @functools.cached_property
    def _event_times(self) -> dict[str, list[datetime]]:
        return {cid: [e.at for e in events] for cid, events in self._events.items()}

    @property
    def customer_ids(self) -> list[str]:
        return sorted(self._by_customer)

    @exact
    def customer_timeline(self, customer_id: str) -> list[tuple[datetime, Money]]:
        """The customer's MRR after each change (converted at each change's date)."""
        return [(e.at, Money(e.after, self.currency)) for e in self._events.get(customer_id, ())]


class _Prefix:
    """Prefix sums of time-sorted deltas: the level before (or at) any moment in O(log n)."""

    def __init__(self, deltas: list[tuple[datetime, Decimal]]) -> None:
        deltas.sort(key=lambda d: d[0])
        self._times = [d[0] for d in deltas]
        sums = [_ZERO]
        acc = _ZERO
        for _, v in deltas:
            acc += v
            sums.append(acc)
        self._sums = sums

    def at(self, moment: datetime, inclusive: bool) -> Decimal:
        find = bisect.bisect_right if inclusive else bisect.bisect_left
        return self._sums[find(self._times, moment)]


def _converted(
    streams: Sequence[_Stream], values: Sequence[Decimal], currency: str, fx: FxRates, day: date
) -> Decimal:
    total = _ZERO
    for s, v in zip(streams, values, strict=True):
        if v != _ZERO:
            total += v if s.currency == currency else v * fx.rate(s.currency, currency, day)
    return total


def _customer_events(fx: FxRates, currency: str, streams: Sequence[_Stream]) -> tuple[_Event, ...]:
    times = sorted({step.at for s in streams for step in s.steps})
    if not times:
        return ()
    events = []
    idx = [0] * len(streams)
    levels = [_ZERO] * len(streams)
    for t in times:
        before_native = list(levels)
        keys = []
        for k, s in enumerate(streams):
            steps = s.steps
            while idx[k] < len(steps) and steps[idx[k]].at <= t:
                levels[k] = steps[idx[k]].value
                idx[k] += 1
            if levels[k] != before_native[k]:
                keys.append(s.key)
        if not keys:
            continue  # a renewal that only moved the conversion date
        day = t.date()
        free_after = any(_in_spans(s.free_live, t) for s in streams)
        before = _converted(streams, before_native, currency, fx, day)
        after = _converted(streams, levels, currency, fx, day)
        events.append(_Event(t, before, after, tuple(keys), free_after))
    return tuple(events)


def _in_spans(spans: Sequence[tuple[datetime, datetime | None]], t: datetime) -> bool:
    return any(a <= t and (b is None or t < b) for a, b in spans)


@exact
def analyse(
    book: Book,
    *,
    currency: str,
    policy: MetricsPolicy = DEFAULT_POLICY,
    source: MrrSource | str = MrrSource.SUBSCRIPTIONS,
    horizon: date | datetime | None = None,
) -> MrrAnalysis:
    """Analyse a book's MRR once; ask the result for MRR, series, movements, waterfalls.

    ``horizon`` bounds the renewals generated for foreign-currency subscriptions under the
    service-period FX rule (their converted MRR changes at each billing date); queries past
    it use the rate of the last billing date before it. It defaults to one year after the
    book's last record; the function API (``mrr_series`` and friends) passes the end of the
    requested range.
    """
    check_currency(currency)
    src = MrrSource(source)
    h = as_of_moment(horizon, "horizon") if horizon is not None else _default_horizon(book)
    if src is MrrSource.SUBSCRIPTIONS:
        streams = [_subscription_stream(s, policy, currency, h) for s in book.subscriptions]
    else:
        streams = _invoice_streams(book, policy, currency)
    by_customer: dict[str, list[_Stream]] = defaultdict(list)
    for s in streams:
        if s.steps:
            by_customer[s.customer_id].append(s)
    frozen = {c: tuple(v) for c, v in by_customer.items()}
    events = {c: _customer_events(book.fx, currency, v) for c, v in frozen.items()}
    return MrrAnalysis(
        currency=currency,
        policy=policy,
        source=src,
        horizon=h,
        fx=book.fx,
        _streams=tuple(s for v in frozen.values() for s in v),
        _by_customer=frozen,
        _events=events,
    )


def _default_horizon(book: Book) -> datetime:
    latest = [s.history[-1].at for s in book.subscriptions]
    latest += [i.issued_at for i in book.invoices]
    latest += [t.at for t in book.transactions]
    base = max(latest) if latest else as_moment(date(2000, 1, 1), "horizon")
    return _add_months(base, 12)


# -- function API -----------------------------------------------------------------------------


def mrr_movements(
    book: Book,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str,
    policy: MetricsPolicy = DEFAULT_POLICY,
    source: MrrSource | str = MrrSource.SUBSCRIPTIONS,
) -> list[Movement]:
    """Event-level MRR movements with ``start <= at < end`` in ``currency``."""
    a = analyse(book, currency=currency, policy=policy, source=source, horizon=end)
    return a.movements(start, end)


def mrr_waterfall(
    book: Book,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str,
    policy: MetricsPolicy = DEFAULT_POLICY,
    every: Frequency | str | None = None,
    source: MrrSource | str = MrrSource.SUBSCRIPTIONS,
) -> Waterfall | list[Waterfall]:
    """The MRR bridge over ``[start, end)``, or one per calendar period when ``every`` is given."""
    analysis = analyse(book, currency=currency, policy=policy, source=source, horizon=end)
    if every is None:
        return analysis.waterfall(start, end)
    return analysis.waterfalls(start, end, every)


def mrr_series(
    book: Book,
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str,
    every: Frequency | str = Frequency.MONTH,
    policy: MetricsPolicy = DEFAULT_POLICY,
    source: MrrSource | str = MrrSource.SUBSCRIPTIONS,
) -> list[MrrPoint]:
    """MRR at the close of each day, week, month or quarter between ``start`` and ``end``."""
    as_of_moment(start, "start")
    as_of_moment(end, "end")
    a = analyse(book, currency=currency, policy=policy, source=source, horizon=end)
    return a.series(start, end, every)
