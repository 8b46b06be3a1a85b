"""The MRR engine: customer timelines, movements, waterfalls and series.

Everything is computed once per :func:`analyse` call into an :class:`MrrAnalysis`, which
answers any number of questions about the book without recomputing timelines. The policy
walk of each subscription (or the invoice lines, as columns) becomes the columnar ledger
of :mod:`revcrm._ledger`: numpy arrays of exact integer units (``10**-9`` of a currency
unit, see ``docs/architecture.md``); amounts become :class:`~revcrm.Money` only at the
API boundary.
"""

from __future__ import annotations

import contextlib
import decimal
import enum
import functools
import gc
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, Final, TypeVar, cast

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._book import Book
from revcrm._calendar import Frequency, local_moment, period_bounds
from revcrm._cycles import BillingCycle, CycleUnit, add_months
from revcrm._ledger._aggregate import Sweep, build_sweep, profile, stream_values
from revcrm._ledger._classify import Classified, classify
from revcrm._ledger._columns import EPOCH, LineColumns, book_cycles
from revcrm._ledger._events import Events, build_events
from revcrm._ledger._fixed import (
    DIGITS,
    from_decimal,
    norm,
    places,
    rate_places,
    summable,
    to_decimal,
)
from revcrm._ledger._renewals import billing_dates, period_index, renewals
from revcrm._ledger._steps import DAY_US, NO_DAY, Steps, steps_from_lines
from revcrm._ledger._walk import Rules, Services, states_of, walk
from revcrm._money import EXACT_CONTEXT, FxRates, Money, check_currency, divide
from revcrm._records import InvoiceStatus, LineKind
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus
from revcrm._time import as_moment, as_of_moment
from revcrm.errors import ValidationError
from revcrm.metrics._mrr import (
    DEFAULT_POLICY,
    discounted_price,
    scheduled_end,
    state_amount,
    state_prices,
)
from revcrm.metrics._policy import ChurnRecognition, DiscountPolicy, FxDateRule, MetricsPolicy

__all__ = [
    "Frequency",
    "Movement",
    "MovementKind",
    "MrrAnalysis",
    "MrrPoint",
    "MrrSource",
    "Waterfall",
    "analyse",
    "analyse_lines",
    "exact",
    "mrr_movements",
    "mrr_series",
    "mrr_waterfall",
]

_ZERO: Final = Decimal(0)

_F = TypeVar("_F", bound=Callable[..., Any])


class _GcPause:
    """Pauses Python's cyclic collector while any analysis in the process builds its many
    short-lived, acyclic objects (the walk's steps, the movements): with a large book in
    memory each full collection walks the whole heap (the 36-month churn series of the 20k
    demo book, 44k movements: 2.8 s profiled with the collector, 0.6 s without).

    The collector is process-wide, so overlapping pauses from several threads are counted:
    the first one in records whether it was enabled, the last one out restores that.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


_no_gc = _GcPause()


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


#: The most Money values an analysis keeps for reuse.
_MEMO_SIZE: Final = 1 << 16

#: Microseconds since 1970-01-01 UTC <-> aware datetimes (the ledger's time axis).
_US: Final = timedelta(microseconds=1)
_EPOCH_DAY: Final = date(1970, 1, 1)


def _us(at: datetime) -> int:
    return (at - EPOCH) // _US


def _moments_us(moments: Sequence[datetime]) -> npt.NDArray[np.int64]:
    return np.array([(m - EPOCH) // _US for m in moments], dtype=np.int64)


_KIND_OF: Final = (
    None,
    MovementKind.NEW,
    MovementKind.EXPANSION,
    MovementKind.CONTRACTION,
    MovementKind.CHURN,
    MovementKind.REACTIVATION,
)
_KIND_INDEX: Final = {k: i for i, k in enumerate(_KIND_OF) if k is not None}


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


# -- streams ----------------------------------------------------------------------------------


def _subscription_steps(
    sub: Subscription, policy: MetricsPolicy, foreign: bool
) -> tuple[
    list[tuple[datetime, Decimal, SubscriptionState | None]],
    list[tuple[datetime, datetime | None]],
]:
    """The policy walk of one subscription: its MRR steps (native) and live free spans.

    A step is ``(at, value, state)``; ``state`` is given for a foreign stream under the
    service-period rule (``foreign``): its conversion date is the start of the state's
    billing period holding ``at``, and while the value is not zero every billing date up to
    the next step is a step of its own (:func:`revcrm._ledger._renewals.renewals`, done for
    all streams at once by the caller).
    """
    # Breakpoints at which the policy can change the MRR (changes, deferred ends, discount
    # ends, past-due grace), walked in order with the state in force at each.
    states = sub.states
    days = policy.past_due_churn_after_days
    times = [c.at for c in sub.history]
    points_set = set(times)
    past_due = SubscriptionStatus.PAST_DUE
    for s in states:
        if s.ended_at is not None:
            points_set.add(s.ended_at)
        if s.cancel_at_period_end:
            points_set.add(scheduled_end(s))
        if s.discount is not None:
            until = s.discount_until()
            if until is not None:
                points_set.add(until)
        if days is not None and (s.status is past_due or s.paying_status is past_due):
            points_set.add(s.status_since + timedelta(days=days))
    points = sorted(points_set)
    raw: list[tuple[datetime, Decimal, SubscriptionState]] = []
    i = -1
    last = len(times) - 1
    for t in points:
        while i < last and times[i + 1] <= t:
            i += 1
        if i < 0:
            continue
        s = states[i]
        raw.append((t, state_amount(s, t, policy), s))
    steps: list[tuple[datetime, Decimal, SubscriptionState | None]] = []
    prev: Decimal | None = None
    for t, value, s in raw:
        if prev is None:
            if value == _ZERO:
                continue
        elif prev == value and (not foreign or value == _ZERO):
            continue
        steps.append((t, value, s if foreign else None))
        prev = value
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
    return steps, free


def _is_live(s: SubscriptionState, t: datetime) -> bool:
    if s.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
        return True
    return s.status is SubscriptionStatus.CANCELLED and s.ended_at is not None and t < s.ended_at


# -- analysis ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class MrrAnalysis:
    """A book's MRR analysed once, under one policy, in one reporting currency.

    An aggregation over the columnar ledger (:mod:`revcrm._ledger`): the streams' steps,
    the customers' events and prefix sums of MRR changes, all numpy arrays of exact integer
    units; :class:`~revcrm.Money` appears only in the answers.
    """

    currency: str
    policy: MetricsPolicy
    source: MrrSource
    horizon: datetime
    fx: FxRates
    _steps: Steps = attrs.field(alias="_steps", repr=False)
    _ledger: Events = attrs.field(alias="_ledger", repr=False)
    _prefix: Sweep = attrs.field(alias="_prefix", repr=False)
    # The subscriptions' states the renewals read (the subscription source only).
    _services: Services | None = attrs.field(alias="_services", default=None, repr=False)
    # The last few classifications by period bounds: a KPI page asks for the same periods
    # through several functions (waterfalls, churn rates, quick ratio).
    _recent: dict[tuple[datetime, ...], Classified] = attrs.field(
        init=False, factory=dict, repr=False
    )
    # Money of each units value already answered: movement amounts repeat (the same
    # prices), and building a validated Money costs far more than a dict look-up.
    _memo: dict[int, Money] = attrs.field(init=False, factory=dict, repr=False)

    # -- conversions ---------------------------------------------------------------------

    @functools.cached_property
    def _places(self) -> int:
        return Money.zero(self.currency).minor_units

    def _decimal(self, units: int) -> Decimal:
        return to_decimal(int(units), self._places, self._steps.digits)

    def _money(self, units: int) -> Money:
        u = int(units)
        out = self._memo.get(u)
        if out is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            out = Money(to_decimal(u, self._places, self._steps.digits), self.currency)
            self._memo[u] = out
        return out

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self._steps.customer_ids)}

    @functools.cached_property
    def _customer_streams(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        owner = self._steps.stream_customer
        order = np.argsort(owner, kind="stable").astype(np.int64)
        ptr = np.searchsorted(owner[order], np.arange(len(self._steps.customer_ids) + 1))
        return order, ptr.astype(np.int64)

    def _streams_of(self, customer_ids: Iterable[str]) -> npt.NDArray[np.int64]:
        order, ptr = self._customer_streams
        parts = []
        for cid in customer_ids:
            c = self._index.get(cid)
            if c is not None:
                parts.append(order[ptr[c] : ptr[c + 1]])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    # -- MRR at moments ------------------------------------------------------------------

    def _total_of(self, streams: npt.NDArray[np.int64], at: datetime) -> Decimal:
        values = stream_values(self._steps, self._prefix, streams, _us(at))
        return self._decimal(sum(int(v) for v in values.tolist()))

    def _at(self, value: date | datetime, field: str) -> datetime:
        """A bound of a query: an aware datetime, or a plain date read as the start of that
        day in the policy's reporting time zone."""
        return as_moment(local_moment(value, self.policy.timezone), field)

    def mrr(self, at: date | datetime, *, customer_ids: Iterable[str] | None = None) -> Money:
        """MRR at moment ``at``, including changes effective exactly at ``at``."""
        t = self._at(at, "at")
        if customer_ids is None:
            return Money(self._values_before([t], inclusive=True)[0], self.currency)
        return Money(self._total_of(self._streams_of(customer_ids), t), self.currency)

    def mrr_before(self, at: date | datetime) -> Money:
        """MRR just before ``at``: the close of a period ending at ``at``."""
        return Money(self._values_before([self._at(at, "at")])[0], self.currency)

    def customer_mrr(self, customer_id: str, at: date | datetime) -> Money:
        t = self._at(at, "at")
        return Money(self._total_of(self._streams_of([customer_id]), t), self.currency)

    def customers_with_mrr(self, at: date | datetime) -> dict[str, Money]:
        """Paying customers at ``at`` and their MRR (each customer once)."""
        t = self._at(at, "at")
        steps = self._steps
        n = len(steps.stream_keys)
        if n == 0:
            return {}
        values = stream_values(steps, self._prefix, np.arange(n, dtype=np.int64), _us(t))
        totals = np.zeros(len(steps.customer_ids), dtype=object)
        np.add.at(totals, steps.stream_customer, values.astype(object))
        return {
            steps.customer_ids[i]: self._money(int(totals[i]))
            for i in np.flatnonzero(totals != 0).tolist()
        }

    def _stream_mrrs(self, at: date | datetime) -> list[tuple[str, str, Money]]:
        """Each stream with MRR at ``at``: its key (a subscription id, or an invoice line's
        stream id), its customer and its MRR; per customer they add up to
        :meth:`customers_with_mrr` (the breakdowns group them by product or cycle)."""
        t = self._at(at, "at")
        steps = self._steps
        n = len(steps.stream_keys)
        if n == 0:
            return []
        values = stream_values(steps, self._prefix, np.arange(n, dtype=np.int64), _us(t))
        owner = steps.stream_customer.tolist()
        return [
            (steps.stream_keys[s], steps.customer_ids[owner[s]], self._money(int(values[s])))
            for s in np.flatnonzero(values != 0).tolist()
        ]

    def series(
        self, start: date | datetime, end: date | datetime, every: Frequency | str = Frequency.MONTH
    ) -> list[MrrPoint]:
        """MRR at the close of each calendar period (day, week, month, quarter) in the range.

        One ``searchsorted`` into the ledger's prefix sums per period.
        """
        a, b = self._at(start, "start"), self._at(end, "end")
        periods = period_bounds(Frequency(every), a, b, self.policy.timezone)
        if not periods:
            return []
        # The first and last periods are clipped to [start, end).
        clipped = [(max(p, a), min(q, b)) for p, q in periods]
        values = self._values_before([q for _, q in clipped])
        return [
            MrrPoint(start=p, end=q, mrr=Money(v, self.currency))
            for (p, q), v in zip(clipped, values, strict=True)
        ]

    def _values_before(
        self, moments: Sequence[datetime], *, inclusive: bool = False
    ) -> list[Decimal]:
        return [self._decimal(v) for v in self._units_before(moments, inclusive=inclusive)]

    def _units_before(self, moments: Sequence[datetime], *, inclusive: bool = False) -> list[int]:
        return self._prefix.totals(_moments_us(moments), inclusive=inclusive)

    # -- renewals ------------------------------------------------------------------------

    def renewals(self, at: date | datetime, horizon: date | datetime) -> tuple[int, Money]:
        """Services renewing in ``(at, horizon]`` and their MRR at ``at``.

        A service renews when, at ``at`` (changes at ``at`` included), it is active or past
        due with no cancellation scheduled and its next billing date after ``at`` is at or
        before ``horizon``. Its MRR is the ledger's at ``at``, converted as :meth:`mrr`
        converts it (so the card adds up with the MRR card); a service that never had MRR
        counts with zero. Read from arrays of the subscriptions' states, no object per
        subscription. The invoice source has no services and raises ``ValidationError``.
        """
        t, h = self._at(at, "at"), self._at(horizon, "horizon")
        svc = self._services
        if svc is None:
            raise ValidationError("source", self.source.value, "renewals read subscription states")
        due = svc.renewing(_us(t), _us(h))
        count = int(np.count_nonzero(due))
        streams = svc.stream[due]
        streams = streams[streams >= 0]
        if streams.size == 0:
            return count, Money.zero(self.currency)
        n = len(self._steps.stream_keys)
        values = stream_values(self._steps, self._prefix, np.arange(n, dtype=np.int64), _us(t))
        total = sum(int(v) for v in values[streams].tolist())
        return count, self._money(total)

    # -- movements -----------------------------------------------------------------------

    def movements(self, start: date | datetime, end: date | datetime) -> list[Movement]:
        """Movements with ``start <= at < end``, grouped by the policy's window within it."""
        a, b = self._at(start, "start"), self._at(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        return [m for _, m in self._movements([a, b])]

    def _classified(self, bounds: Sequence[datetime]) -> Classified:
        key = tuple(bounds)
        cached = self._recent.get(key)
        if cached is not None:
            return cached
        window = self.policy.grouping_window
        days = self.policy.reactivation_window_days
        out = classify(
            self._ledger,
            _moments_us(bounds),
            window_us=None if window is None else window // _US,
            reactivation_us=None if days is None else days * 86_400_000_000,
            keep_free=not self.policy.free_plans_churn,
        )
        if len(self._recent) >= 8:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = out
        return out

    def _movements(self, bounds: Sequence[datetime]) -> list[tuple[int, Movement]]:
        """Movements between the first and last bound, tagged with their period's index.

        Groups never span a bound, so every period's waterfall adds up exactly.
        """
        with _no_gc():
            return self._build_movements(bounds)

    def _build_movements(self, bounds: Sequence[datetime]) -> list[tuple[int, Movement]]:
        m = self._classified(bounds)
        ev = self._ledger
        keys = self._steps.stream_keys
        ids = self._steps.customer_ids
        if m.at.size == 0:
            return []
        lo, hi = ev.row_lo[m.first], ev.row_hi[m.last]
        rows = ev.row_stream
        # Most movements are one row (one stream changed): no slice and set for those.
        single = rows[np.minimum(lo, rows.size - 1)].tolist()
        is_single = (hi - lo == 1).tolist()
        money = self._money
        out = []
        for i, (region, cust, at, kind, amount) in enumerate(
            zip(
                m.region.tolist(),
                m.customer.tolist(),
                m.at.tolist(),
                m.kind.tolist(),
                m.amount.tolist(),
                strict=True,
            )
        ):
            if is_single[i]:
                s = single[i]
                subs: tuple[str, ...] = (keys[s],) if s >= 0 else ()
            else:
                a, b = int(lo[i]), int(hi[i])
                streams = {int(s) for s in rows[a:b].tolist() if s >= 0}
                subs = tuple(sorted({keys[s] for s in streams}))
            k = _KIND_OF[kind]
            assert k is not None
            out.append(
                (
                    region,
                    Movement(
                        customer_id=ids[cust],
                        at=_moment(at),
                        kind=k,
                        amount=money(amount),
                        subscription_ids=subs,
                    ),
                )
            )
        return out

    def waterfall(self, start: date | datetime, end: date | datetime) -> Waterfall:
        """The MRR bridge over ``[start, end)``."""
        a, b = self._at(start, "start"), self._at(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        return self._waterfalls([a, b])[0]

    def waterfalls(
        self, start: date | datetime, end: date | datetime, every: Frequency | str = Frequency.MONTH
    ) -> list[Waterfall]:
        """One waterfall per calendar period, computed in one pass over the movements."""
        a, b = self._at(start, "start"), self._at(end, "end")
        periods = period_bounds(Frequency(every), a, b, self.policy.timezone)
        if not periods:
            return []
        # The first and last periods are clipped to [start, end).
        return self._waterfalls([a] + [p[0] for p in periods[1:]] + [b])

    def _waterfalls(self, bounds: list[datetime]) -> list[Waterfall]:
        k = len(bounds) - 1
        m = self._classified(bounds)
        # int64 when the magnitudes' sum bounds every cell's total (exact), else Python ints.
        amount = summable(m.amount)
        totals = np.zeros((k, len(_KIND_OF)), dtype=amount.dtype)
        np.add.at(totals, (m.region, m.kind.astype(np.int64)), amount)
        counts = np.bincount(m.region, minlength=k).tolist() if m.region.size else [0] * k
        levels = self._units_before(bounds)
        money = self._money
        out = []
        for r in range(k):
            t = [int(v) for v in totals[r].tolist()]
            fx_impact = levels[r + 1] - levels[r] - sum(t)

            def of(kind: MovementKind, t: list[int] = t) -> Money:
                return money(t[_KIND_INDEX[kind]])

            out.append(
                Waterfall(
                    start=bounds[r],
                    end=bounds[r + 1],
                    start_mrr=money(levels[r]),
                    new=of(MovementKind.NEW),
                    expansion=of(MovementKind.EXPANSION),
                    reactivation=of(MovementKind.REACTIVATION),
                    contraction=of(MovementKind.CONTRACTION),
                    churn=of(MovementKind.CHURN),
                    fx_impact=money(fx_impact),
                    end_mrr=money(levels[r + 1]),
                    movement_count=int(counts[r]),
                )
            )
        return out

    # -- customers -----------------------------------------------------------------------

    def _counted(self, e: int) -> bool:
        ev = self._ledger
        keep_free = not self.policy.free_plans_churn
        return bool(ev.after[e] > 0) or (keep_free and bool(ev.free_after[e]))

    def customer_states(self, at: datetime, *, inclusive: bool) -> Iterator[tuple[str, bool]]:
        """Each customer with history before ``at`` and whether it counts as a customer then:
        MRR above zero, or a live free plan after having paid when the policy keeps free-plan
        customers (``free_plans_churn=False``)."""
        ev = self._ledger
        n = len(self._steps.customer_ids)
        if ev.at.size == 0:
            return
        t = _us(self._at(at, "at"))
        before = (ev.at <= t) if inclusive else (ev.at < t)
        count = np.add.reduceat(before.astype(np.int64), ev.ptr[:-1])
        last = ev.ptr[:-1] + count - 1
        keep_free = not self.policy.free_plans_churn
        counted = (ev.after[np.maximum(last, 0)] > 0) | (
            keep_free & ev.free_after[np.maximum(last, 0)]
        )
        ids = self._steps.customer_ids
        for c in range(n):
            if count[c]:
                yield ids[c], bool(counted[c])

    def _counted_before(
        self, customers: npt.NDArray[np.int64], at: datetime
    ) -> npt.NDArray[np.bool_]:
        """Whether each customer (an index) counts as a customer just before ``at``: what
        :meth:`customer_levels` says for that moment, for many customers in one pass."""
        ev = self._ledger
        if customers.size == 0 or ev.at.size == 0:
            return np.zeros(customers.size, dtype=bool)
        seen = np.zeros(ev.at.size + 1, dtype=np.int64)
        np.cumsum(ev.at < _us(at), out=seen[1:])
        lo = ev.ptr[customers]
        count = seen[ev.ptr[customers + 1]] - seen[lo]
        last = np.maximum(lo + count - 1, 0)
        keep_free = not self.policy.free_plans_churn
        counted: npt.NDArray[np.bool_] = (count > 0) & (
            (ev.after[last] > 0) | (keep_free & ev.free_after[last])
        )
        return counted

    def _movement_columns(
        self, bounds: Sequence[datetime]
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        tuple[MovementKind | None, ...],
        npt.NDArray[np.int8],
    ]:
        """:meth:`_movements`' moments (microseconds), customers (indices) and kinds (codes
        into the returned kinds) as arrays, in the same order, without a Movement each."""
        m = self._classified(bounds)
        return m.at, m.customer.astype(np.int64), _KIND_OF, m.kind

    def customer_levels(
        self, customer_id: str, moments: Sequence[datetime]
    ) -> list[tuple[Decimal, bool]]:
        """The customer's MRR just before each (sorted) moment, converted at the date of the
        change that set it, and whether it counts as a customer then."""
        c = self._index.get(customer_id)
        if c is None:
            return [(_ZERO, False) for _ in moments]
        ev = self._ledger
        lo, hi = int(ev.ptr[c]), int(ev.ptr[c + 1])
        found = np.searchsorted(ev.at[lo:hi], _moments_us(moments), side="left").tolist()
        out = []
        for i in found:
            if i == 0:
                out.append((_ZERO, False))
            else:
                e = lo + i - 1
                out.append((self._decimal(int(ev.after[e])), self._counted(e)))
        return out

    def profile_at(
        self, moments: Sequence[datetime], customer_ids: Iterable[str] | None = None
    ) -> tuple[list[int], list[Decimal]]:
        """Customers counted and their total MRR just before each of the sorted ``moments``.

        Difference arrays over the customers' events, so a whole cohort triangle or churn
        series costs O(events x log(moments)), not customers x moments. MRR is each
        customer's level as converted at the date of the change that set it.
        """
        weights = None
        if customer_ids is not None:
            weights = np.zeros(len(self._steps.customer_ids), dtype=np.int64)
            for cid in customer_ids:
                c = self._index.get(cid)
                if c is not None:
                    weights[c] += 1
        keep_free = not self.policy.free_plans_churn
        counts, sums = profile(self._ledger, _moments_us(moments), weights, keep_free)
        return counts, [self._decimal(s) for s in sums]

    def first_paid(self) -> dict[str, datetime]:
        """When each customer first had MRR (the moment of its ``new`` movement)."""
        ev = self._ledger
        paid = np.flatnonzero(ev.after > 0)
        if paid.size == 0:
            return {}
        cust = ev.customer[paid]
        first = np.ones(paid.size, dtype=bool)
        first[1:] = cust[1:] != cust[:-1]
        ids = self._steps.customer_ids
        return {
            ids[int(c)]: _moment(int(t))
            for c, t in zip(cust[first].tolist(), ev.at[paid[first]].tolist(), strict=True)
        }

    @property
    def customer_ids(self) -> list[str]:
        return list(self._steps.customer_ids)

    def customer_timeline(self, customer_id: str) -> list[tuple[datetime, Money]]:
        """The customer's MRR after each change (converted at each change's date)."""
        c = self._index.get(customer_id)
        if c is None:
            return []
        ev = self._ledger
        lo, hi = int(ev.ptr[c]), int(ev.ptr[c + 1])
        return [
            (_moment(int(t)), self._money(int(v)))
            for t, v in zip(ev.at[lo:hi].tolist(), ev.after[lo:hi].tolist(), strict=True)
        ]


def _moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


#: The discount durations (``_walk.DURATIONS`` codes) each discount policy counts.
_DURATIONS_COUNTED: Final = {
    DiscountPolicy.NONE: frozenset[int](),
    DiscountPolicy.FOREVER_ONLY: frozenset({2}),
    DiscountPolicy.RECURRING_ONLY: frozenset({1, 2}),
    DiscountPolicy.ALL: frozenset({0, 1, 2}),
}


def walk_rules(policy: MetricsPolicy) -> Rules:
    """The settings of ``policy`` that ``state_amount`` reads, for the vectorised walk."""
    return Rules(
        end_of_paid_period=policy.churn_recognition is ChurnRecognition.END_OF_PAID_PERIOD,
        when_scheduled=policy.churn_recognition is ChurnRecognition.WHEN_SCHEDULED,
        count_trials=policy.count_trials,
        count_suspended=policy.count_suspended,
        past_due_days=policy.past_due_churn_after_days,
        discount_durations=_DURATIONS_COUNTED[policy.discounts],
    )


def _subscription_ledger(
    book: Book, policy: MetricsPolicy, currency: str, horizon: datetime
) -> tuple[Steps, Services]:
    """The subscription source's steps: every subscription's policy walk at once
    (:func:`revcrm._ledger._walk.walk`, the rules of ``state_amount`` over arrays), then
    the renewals and conversion dates of foreign streams (:mod:`revcrm._ledger._renewals`).
    """
    subs = book.subscriptions
    fixed_rule = policy.fx_date is FxDateRule.SERVICE_PERIOD_START
    st = states_of(subs, state_prices)
    sub_currency = st.currencies
    foreign = np.array([fixed_rule and c != currency for c in sub_currency], dtype=bool)
    w = walk(st, walk_rules(policy), foreign)
    # Streams: the subscriptions with steps, in the book's order.
    used = np.unique(w.sub)
    remap = np.full(len(subs), -1, dtype=np.int64)
    remap[used] = np.arange(used.size, dtype=np.int64)
    used_list = used.tolist()
    keys = [subs[i].id for i in used_list]
    key_customer = [subs[i].customer_id for i in used_list]
    key_currency = [sub_currency[i] for i in used_list]
    # Units fine enough for every amount and every conversion: nothing is rounded.
    codes = np.unique(w.code).tolist()
    native = max((st.value_places[c] for c in codes), default=0)
    digits = max(DIGITS, native) + _rate_digits(book.fx, currency, set(key_currency))
    table = np.zeros(len(st.values), dtype=object)
    for c in codes:
        table[c] = from_decimal(st.values[c], digits)
    # Index an int64 table when every amount fits (no object array per step).
    value_arr = _units_array(table)[w.code]
    s_at = w.at
    s_stream = remap[w.sub].astype(np.int32)
    rate_day = np.full(s_at.size, NO_DAY, dtype=np.int32)
    f_idx = np.flatnonzero(foreign[w.sub]) if w.sub.size else np.zeros(0, dtype=np.int64)
    if f_idx.size:
        horizon_us = _us(horizon)
        state = w.state[f_idx]
        anchor = st.anchor[state]
        months, length = st.months[state], st.length_us[state]
        f_at = s_at[f_idx]
        n = period_index(anchor, months, length, np.maximum(f_at, anchor))
        start = np.where(f_at >= anchor, billing_dates(anchor, months, length, n), f_at)
        rate_day[f_idx] = (start // DAY_US).astype(np.int32)
        # Renewals up to the stream's next step (or the horizon) while the value is not zero.
        nxt = np.full(f_idx.size, horizon_us, dtype=np.int64)
        same = np.zeros(f_idx.size, dtype=bool)
        inner = f_idx + 1 < s_at.size
        same[inner] = w.sub[f_idx[inner] + 1] == w.sub[f_idx[inner]]
        nxt[same] = s_at[f_idx[same] + 1]
        hi = np.where(w.code[f_idx] != 0, np.minimum(nxt, horizon_us), -(2**62))
        seg, dates = renewals(anchor, months, length, f_at, hi)
        if seg.size:
            src = f_idx[seg]
            s_at = np.concatenate([s_at, dates])
            s_stream = np.concatenate([s_stream, s_stream[src]])
            rate_day = np.concatenate([rate_day, (dates // DAY_US).astype(np.int32)])
            value_arr = _units_array(np.concatenate([value_arr, value_arr[src]]))
            order = np.lexsort((s_at, s_stream))
            s_at, s_stream = s_at[order], s_stream[order]
            rate_day, value_arr = rate_day[order], value_arr[order]
    cust_order = sorted(set(key_customer))
    cindex = {c: i for i, c in enumerate(cust_order)}
    curs = sorted(set(key_currency))
    kindex = {c: i for i, c in enumerate(curs)}
    # Free spans of the subscriptions with steps only (as the one-subscription walk).
    fkeep = remap[w.free_sub] >= 0
    f_sub = w.free_sub[fkeep].tolist()
    free_customer = np.array([cindex[subs[i].customer_id] for i in f_sub], dtype=np.int32)
    steps = Steps(
        digits=digits,
        customer_ids=tuple(cust_order),
        currencies=tuple(curs),
        stream_keys=tuple(keys),
        stream_customer=np.array([cindex[c] for c in key_customer], dtype=np.int32),
        stream_currency=np.array([kindex[c] for c in key_currency], dtype=np.int16),
        stream=s_stream,
        at=s_at,
        value=value_arr,
        rate_day=rate_day,
        free_customer=free_customer,
        free_start=w.free_start[fkeep],
        free_end=w.free_end[fkeep],
    )
    return steps, Services.of(st, len(subs), remap)


def _units_array(units: Sequence[int] | npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Units as int64 when every one fits, else as Python ints (the exact slow path)."""
    value = np.array(units, dtype=object)
    return norm(value) if value.size else np.zeros(0, dtype=np.int64)


def _rate_digits(fx: FxRates, currency: str, codes: Iterable[str]) -> int:
    """Decimal places of the rates that can convert ``codes`` into ``currency`` (direct,
    or the reciprocal of a reverse rate, as :meth:`FxRates.rate` looks them up)."""
    foreign = set(codes) - {currency}
    if not foreign:
        return 0
    rates = [r for _, s, t, r in fx.items() if t == currency and s in foreign]
    rates += [divide(Decimal(1), r) for _, s, t, r in fx.items() if s == currency and t in foreign]
    return rate_places(rates)


def _analysis(
    steps: Steps,
    *,
    fx: FxRates,
    currency: str,
    policy: MetricsPolicy,
    source: MrrSource,
    horizon: datetime,
    services: Services | None = None,
) -> MrrAnalysis:
    return MrrAnalysis(
        currency=currency,
        policy=policy,
        source=source,
        horizon=horizon,
        fx=fx,
        _steps=steps,
        _ledger=build_events(steps, fx, currency),
        _prefix=build_sweep(steps, fx, currency),
        _services=services,
    )


def analyse_lines(
    columns: LineColumns,
    *,
    currency: str,
    policy: MetricsPolicy = DEFAULT_POLICY,
    fx: FxRates | None = None,
    horizon: date | datetime | None = None,
) -> MrrAnalysis:
    """Analyse recurring invoice lines given as columns (the invoice source, no ``Book``).

    The same figures as ``analyse(book, source="invoices")`` on a book holding these lines.
    ``horizon`` defaults to a year after the latest service period start (it only bounds
    the renewals of the subscription source; invoice lines carry their own periods).
    """
    check_currency(currency)
    rates = fx if fx is not None else FxRates.empty()
    if horizon is not None:
        h = as_of_moment(horizon, "horizon")
    elif len(columns):
        h = _add_months(_moment(int(columns.start.max())), 12)
    else:
        h = _add_months(as_moment(date(2000, 1, 1), "horizon"), 12)
    fixed_rule = policy.fx_date is FxDateRule.SERVICE_PERIOD_START
    foreign = [fixed_rule and c != currency for c in columns.currencies]
    steps = steps_from_lines(
        columns,
        foreign,
        _rate_digits(rates, currency, columns.currencies),
        spreading=policy.spreading.value,
        zone=policy.timezone,
    )
    return _analysis(
        steps, fx=rates, currency=currency, policy=policy, source=MrrSource.INVOICES, horizon=h
    )


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
    if src is MrrSource.INVOICES:
        return analyse_lines(
            _lines_of(book), currency=currency, policy=policy, fx=book.fx, horizon=h
        )
    with decimal.localcontext(EXACT_CONTEXT), _no_gc():
        steps, services = _subscription_ledger(book, policy, currency, h)
    return _analysis(
        steps,
        fx=book.fx,
        currency=currency,
        policy=policy,
        source=src,
        horizon=h,
        services=services,
    )


def _lines_of(book: Book) -> LineColumns:
    """The book's recurring lines as columns; amounts beyond int64 (or beyond 18 decimal
    places) as Python ints, which every ledger operation accepts (the exact slow path)."""
    try:
        return LineColumns.from_book(book)
    except ValidationError:
        pass
    rows = []
    for inv in book.invoices:
        if inv.status in (InvoiceStatus.VOID, InvoiceStatus.DRAFT):
            continue
        for idx, line in enumerate(inv.lines):
            if line.kind is LineKind.RECURRING:
                assert line.period_start is not None
                assert line.period_end is not None
                key = line.subscription_id or f"{inv.id}#{idx}"
                rows.append((inv.customer_id, key, inv.currency, line, line.net.amount))
    scale = max([places(r[4]) for r in rows] + [Money.zero(r[2]).minor_units for r in rows])
    customers = {c: i for i, c in enumerate(dict.fromkeys(r[0] for r in rows))}
    streams = {k: i for i, k in enumerate(dict.fromkeys(r[1] for r in rows))}
    codes = {c: i for i, c in enumerate(dict.fromkeys(r[2] for r in rows))}
    exact = EXACT_CONTEXT
    return LineColumns(
        customer_ids=tuple(customers),
        stream_ids=tuple(streams),
        currencies=tuple(codes),
        customer=np.array([customers[r[0]] for r in rows], dtype=np.int32),
        stream=np.array([streams[r[1]] for r in rows], dtype=np.int32),
        currency=np.array([codes[r[2]] for r in rows], dtype=np.int16),
        start=np.array([_us(cast(datetime, r[3].period_start)) for r in rows], dtype=np.int64),
        end=np.array([_us(cast(datetime, r[3].period_end)) for r in rows], dtype=np.int64),
        net=np.array([int(r[4].scaleb(scale, exact)) for r in rows], dtype=object),
        scale=scale,
        cycle=book_cycles(book),
    )


def _default_horizon(book: Book) -> datetime:
    # A subscription's last change is its current state's as_of (read by map: no Python
    # frame per record).
    latest = [
        max(map(attrgetter("as_of"), map(attrgetter("current"), book.subscriptions)), default=None),
        max(map(attrgetter("issued_at"), book.invoices), default=None),
        max(map(attrgetter("at"), book.transactions), default=None),
    ]
    found = [t for t in latest if t is not None]
    base = max(found) if found else as_moment(date(2000, 1, 1), "horizon")
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
