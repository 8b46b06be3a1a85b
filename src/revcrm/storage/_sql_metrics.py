"""The SQL store's metric aggregates: MRR at a moment and series, cash by month,
paying customers and customer flow (the dashboard over them: ``_sql_dashboard``).

MRR at a moment and series, paying customers and customer flow read the ledger tables
(:class:`~revcrm.storage._sql_ledger_queries.LedgerReads`) whenever the ledger covers the
read (kept in the asked currency, its horizon not before the latest moment asked, no
customer in scope lacking a rate); otherwise the older span aggregates below answer (they
raise MissingRateError only for the rates a read actually needs, and convert past the
ledger's horizon at each billing period's own rate).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._money import FxRates, Money, check_currency
from revcrm._time import as_of_moment
from revcrm.errors import (
    ValidationError,
)
from revcrm.metrics import FxDateRule, MrrPoint
from revcrm.storage import _reference as ref
from revcrm.storage._codec import (
    moment_value,
)
from revcrm.storage._memory import _id_list
from revcrm.storage._query import (
    CashMonth,
    CustomerFlow,
)
from revcrm.storage._schema import (
    LIMBS,
)
from revcrm.storage._sql_base import (
    _DAY_US,
    _ONE_MICRO,
    EPOCH_DATE,
    _day_start,
    _days_in,
    _month_index,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import (
    _ZERO,
    _dec,
    _split,
    _units_value,
)
from revcrm.storage._sql_ledger import SQLLedger
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.storage._sql_segments import SQLSegments

__all__ = ["SQLMetrics"]

_T = TypeVar("_T")
_THIRTY_DAYS = timedelta(days=30)


def _bucket(x: Any, closes: Sequence[datetime]) -> Any:
    """The number of ``closes`` at or before ``x`` for ``closes[0] <= x < closes[-1]``: a
    CASE searching the reporting calendar's month bounds in halves (no SQL calendar
    arithmetic, so every zone's months bucket the same way)."""

    def search(lo: int, hi: int) -> Any:  # closes[lo] <= x < closes[hi]
        if hi - lo == 1:
            return sa.literal(lo + 1)
        mid = (lo + hi) // 2
        return sa.case((x < closes[mid], search(lo, mid)), else_=search(mid, hi))

    return search(0, len(closes) - 1)


def _utc_midnight(t: datetime) -> bool:
    return moment_value(t) % _DAY_US == 0


class SQLMetrics(SQLSegments):
    """MRR, series, cash, customer flow and the dashboard as SQL aggregates."""

    def _money(self, cols: Any, name: str = "amount") -> list[ColumnElement[Any]]:
        """A money column and its limbs, to carry through a subquery."""
        out = [cols[name]]
        if self._sqlite:
            out += [cols[f"{name}_l{k}"] for k in range(LIMBS)]
        return out

    def _period_keys(self, sp: Any, t: datetime, *, before_anchor_starts: bool) -> list[Any]:
        """Group keys from which the start date of the billing period running at ``t``
        follows (``BillingCycle.period_containing``), cheap to compute per row in SQL:

        * (0, months per cycle, anchor month modulo the cycle, anchor day, anchor later in
          its day than ``t``) for month and year cycles: the few combinations are finished
          in Python (``_period_day``);
        * (1, start day, ...) for week and day cycles, computed here in integers;
        * (2, span start day, ...) before the anchor when ``before_anchor_starts``.
        """
        big = sa.BigInteger()
        t_us = moment_value(t)
        us = sa.literal(t_us, big)
        day_us = sa.literal(_DAY_US, big)
        monthly = sp.cycle_months.is_not(None)
        step = sp.cycle_us
        phase = ((us - sp.anchor_us) % step + step) % step  # floor modulo: SQL's % truncates
        since = us - phase
        step_day = sa.case((since >= 0, since // day_us), else_=-((day_us - 1 - since) // day_us))
        later = sa.case((sp.anchor_tod > sa.literal(t_us % _DAY_US, big), 1), else_=0)
        keys = [
            sa.case((monthly, 0), else_=1),
            sa.case((monthly, sp.cycle_months), else_=step_day),
            sa.case((monthly, sp.anchor_month % sp.cycle_months), else_=sa.null()),
            sa.case((monthly, sp.anchor_day), else_=sa.null()),
            sa.case((monthly, later), else_=sa.null()),
        ]
        if before_anchor_starts:
            early = sp.anchor_us > us
            keys = [
                sa.case((early, 2), else_=keys[0]),
                sa.case((early, sp.start_day), else_=keys[1]),
                *(sa.case((early, sa.null()), else_=k) for k in keys[2:]),
            ]
        return keys

    @staticmethod
    def _period_day(keys: Sequence[Any], t: datetime) -> date:
        kind, x, residue, day, later = keys
        if int(kind) != 0:
            return EPOCH_DATE + timedelta(days=int(x))
        c, anchor_day = int(x), int(day)
        now = _month_index(t)
        k = now - (now - int(residue)) % c  # the latest month <= t's with the anchor's phase
        d = min(anchor_day, _days_in(k))
        if k == now and (d > t.day or (d == t.day and later)):
            k -= c  # that month's billing moment is still ahead of t
            d = min(anchor_day, _days_in(k))
        return date(k // 12, k % 12 + 1, d)

    def _billing_class(self, sp: Any) -> list[Any]:
        """What decides a span's conversion date at a month-start close, per span:

        * (0, months per cycle, anchor month modulo the cycle, anchor day) for month and
          year cycles;
        * (1, cycle in microseconds, anchor phase within the cycle, 0) for week and day
          cycles;
        * (2, start day, 0, 0) for spans before their anchor (converted at their start).

        Every span of a class converts on the same date at a given close, so levels are
        summed per class in SQL and only (class, close) pairs are converted here.
        """
        monthly = sp.cycle_months.is_not(None)
        early = sp.start_at < sp.anchor
        step = sp.cycle_us
        phase = (sp.anchor_us % step + step) % step
        return [
            sa.case((early, 2), (monthly, 0), else_=1),
            sa.case((early, sp.start_day), (monthly, sp.cycle_months), else_=step),
            sa.case((early, 0), (monthly, sp.anchor_month % sp.cycle_months), else_=phase),
            sa.case((early, 0), (monthly, sp.anchor_day), else_=0),
        ]

    @staticmethod
    def _class_day(cls: tuple[int, int, int, int], t: datetime) -> date:
        kind, x, y, z = cls
        if kind == 2:
            return EPOCH_DATE + timedelta(days=x)
        if kind == 1:
            t_us = moment_value(t)
            return EPOCH_DATE + timedelta(days=(t_us - (t_us - y) % x) // _DAY_US)
        return SQLMetrics._period_day((0, x, y, z, 0), t)

    def _foreign_series(
        self, conn: Connection, closes: Sequence[datetime], currency: str
    ) -> list[Decimal]:
        """Foreign MRR just before each month-start close under the service-period rule:
        levels per (currency, billing class) by the delta method, then converted."""
        if not closes:
            return []
        sp = self._schema.spans
        classes = self._billing_class(sp.c)
        names = ["c0", "c1", "c2", "c3"]
        foreign = [sp.c.positive, sp.c.currency != currency]
        first, last = closes[0], closes[-1]
        n = len(closes)
        # Per (currency, class) and bucket: exact amounts as integer units of 1e-48 (from
        # SQLite's limbs) plus an exact Decimal rest, so the hot loop adds integers.
        Class = tuple[int, int, int, int]
        units: dict[tuple[str, Class], list[int]] = defaultdict(lambda: [0] * n)
        rests: dict[tuple[str, Class], list[Decimal]] = {}
        queries: list[tuple[Any, list[ColumnElement[bool]], int]] = [
            (sa.literal(0), [self._contains(first - _ONE_MICRO, scan=True)], 1)
        ]
        for at, sign in (
            (self._span_moment("start_at", True), 1),
            (self._span_moment("end_at", True), -1),
        ):
            if n > 1:
                queries.append((_bucket(at, closes), [at >= first, at < last], sign))
        for bucket, conds, sign in queries:
            inner = (
                sa.select(
                    sp.c.currency.label("cur"),
                    *(c.label(n) for c, n in zip(classes, names, strict=True)),
                    bucket.label("b"),
                    *self._money(sp.c),
                )
                .where(*foreign, *conds)
                .subquery()
            )
            group = [inner.c.cur, *(inner.c[n] for n in names), inner.c.b]
            stmt: sa.Select[Any] = sa.select(*group, self._ops.dsum(inner.c)).group_by(*group)
            for row in conn.execute(stmt):
                values: Any = tuple(row)
                key = (values[0], (int(values[1]), int(values[2]), int(values[3]), int(values[4])))
                whole, rest = _split(values[6])
                units[key][int(values[5])] += sign * whole
                if rest:
                    rests.setdefault(key, [_ZERO] * n)[int(values[5])] += sign * rest
        per_day: list[dict[tuple[str, date], list[Any]]] = [{} for _ in closes]
        days: dict[tuple[Class, int], date] = {}  # currencies share classes
        for key, deltas in units.items():
            cur, cls = key
            extra = rests.get(key)
            level, level_rest = 0, _ZERO
            for i in range(n):
                level += deltas[i]
                if extra is not None:
                    level_rest += extra[i]
                if level == 0 and level_rest == 0:
                    continue
                day = days.get((cls, i))
                if day is None:
                    day = self._class_day(cls, closes[i] - _ONE_MICRO)
                    days[(cls, i)] = day
                slot = per_day[i].setdefault((cur, day), [0, _ZERO])
                slot[0] += level
                slot[1] += level_rest
        fx: FxRates | None = None
        out = []
        for i in range(n):
            total = _ZERO
            for (cur, day), (whole, rest) in per_day[i].items():
                value = _units_value(whole) + rest
                if value != 0:
                    fx = fx or self._rates(conn)
                    total += value * fx.rate(cur, currency, day)
            out.append(total)
        return out

    def _foreign_mrr(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        conds: Sequence[ColumnElement[bool]],
        *,
        before_anchor_starts: bool,
        measured_on: date,
        include_own: bool = False,
    ) -> Decimal:
        """MRR of the spans matching ``conds`` in other currencies (and in ``currency`` too
        with ``include_own``), converted under the policy: at the start of each billing
        period, or on ``measured_on``. Summed per currency and billing calendar in one
        pass in SQL; the groups are converted here."""
        sp = self._schema.spans
        by_period = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
        cols: list[ColumnElement[Any]] = [sp.c.currency.label("cur"), *self._money(sp.c)]
        names = ["k0", "k1", "k2", "k3", "k4"]
        if by_period:
            keys = self._period_keys(sp.c, t, before_anchor_starts=before_anchor_starts)
            own = sp.c.currency == currency
            # Amounts already in ``currency`` need no date: one group per query.
            cols += [
                sa.case((own, sa.null()), else_=k).label(n)
                for k, n in zip(keys, names, strict=True)
            ]
        which = [] if include_own else [sp.c.currency != currency]
        inner = sa.select(*cols).where(*which, *conds).subquery()
        group: list[ColumnElement[Any]] = [inner.c.cur]
        if by_period:
            group += [inner.c[n] for n in names]
        stmt: sa.Select[Any] = sa.select(*group, self._ops.dsum(inner.c)).group_by(*group)
        sums: dict[tuple[str, date | None], list[Any]] = {}
        for row in conn.execute(stmt):
            values: Any = tuple(row)
            cur = values[0]
            day = None
            if cur != currency:
                day = self._period_day(values[1:6], t) if by_period else measured_on
            whole, rest = _split(values[-1])
            slot = sums.setdefault((cur, day), [0, _ZERO])
            slot[0] += whole
            slot[1] += rest
        fx: FxRates | None = None
        total = _ZERO
        for (cur, day), (whole, rest) in sums.items():
            value = _units_value(whole) + rest
            if value == 0:
                continue
            if day is None:
                total += value
            else:
                fx = fx or self._rates(conn)
                total += value * fx.rate(cur, currency, day)
        return total

    def _ledger_reads(self) -> LedgerReads:
        # Every SQL store is also an SQLLedger (SQLCore); this class only reads it.
        return LedgerReads(cast(SQLLedger, self))

    def mrr(
        self, *, at: date | datetime, currency: str, customer_ids: Iterable[str] | None = None
    ) -> Money:
        t = as_of_moment(at, "at")
        check_currency(currency)
        ids = None if customer_ids is None else sorted(set(_id_list(customer_ids)))
        from_ledger = self._ledger_reads().mrr_if_covered(t, currency, ids)
        if from_ledger is not None:
            return from_ledger
        return self._sql_mrr(t, currency, ids)

    def _sql_mrr(self, t: datetime, currency: str, ids: Sequence[str] | None) -> Money:
        """MRR from the spans (the fallback when the ledger does not cover the read)."""

        def run(conn: Connection) -> Money:
            sp = self._schema.spans
            chunks: list[Sequence[str] | None] = [None] if ids is None else list(_chunks(ids))
            total = _ZERO
            for chunk in chunks:
                conds = [sp.c.positive, self._contains(t, scan=chunk is None)]
                if chunk is not None:
                    conds.append(sp.c.customer_id.in_(chunk))
                total += self._foreign_mrr(
                    conn,
                    t,
                    currency,
                    conds,
                    before_anchor_starts=False,
                    measured_on=t.date(),
                    include_own=True,
                )
            return Money(total, currency)

        return self._run(False, run)

    def mrr_series(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[MrrPoint, ...]:
        a, b = ref.reporting_range(start, end, self._policy.timezone)
        check_currency(currency)
        months = ref.month_bounds(a, b, self._policy.timezone)
        if not months:
            return ()
        closes = [m[1] for m in months]
        levels = self._ledger_reads().closes_if_covered(closes, currency)
        if levels is not None:
            return tuple(
                MrrPoint(start=p[0], end=p[1], mrr=Money(v, currency))
                for p, v in zip(months, levels, strict=True)
            )
        return self._sql_mrr_series(months, currency)

    def _sql_mrr_series(
        self, months: Sequence[tuple[datetime, datetime]], currency: str
    ) -> tuple[MrrPoint, ...]:
        """The series from the spans (the fallback when the ledger does not cover it)."""
        closes = [m[1] for m in months]

        def run(conn: Connection) -> tuple[MrrPoint, ...]:
            sp = self._schema.spans
            by_period = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
            levels: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO] * len(closes))
            # Amounts not converted per billing period: deltas (+amount at each span start,
            # -amount at its end) bucketed by the first close after them, summed in one
            # pass, then accumulated here.
            native = sp.c.currency == currency if by_period else sa.true()
            first = closes[0]
            # The level at the first close: spans running just before it.
            before = (
                sa.select(sp.c.currency, self._ops.dsum(sp.c))
                .where(sp.c.positive, native, self._contains(first - _ONE_MICRO, scan=True))
                .group_by(sp.c.currency)
            )
            for cur, value in conn.execute(before):
                levels[cur][0] += _dec(value)
            # Then the changes up to each later close (all but the last close are month
            # starts): +amount where a span starts, -amount where one ends, bucketed by
            # month in one pass each.
            last = closes[-1]
            for at, sign in (
                (self._span_moment("start_at", True), 1),
                (self._span_moment("end_at", True), -1),
            ):
                if len(closes) < 2:
                    break
                inner = (
                    sa.select(
                        sp.c.currency.label("cur"),
                        _bucket(at, closes).label("b"),
                        *self._money(sp.c),
                    )
                    .where(sp.c.positive, native, at >= first, at < last)
                    .subquery()
                )
                stmt = sa.select(inner.c.cur, inner.c.b, self._ops.dsum(inner.c)).group_by(
                    inner.c.cur, inner.c.b
                )
                for cur, i, value in conn.execute(stmt):
                    levels[cur][int(i)] += sign * _dec(value)
            fx: FxRates | None = None
            totals = [_ZERO] * len(closes)
            for cur, deltas in sorted(levels.items()):
                level = _ZERO
                for i, d in enumerate(deltas):
                    level += d
                    if level == 0:
                        continue
                    if cur == currency:
                        totals[i] += level
                    else:
                        fx = fx or self._rates(conn)
                        totals[i] += level * fx.rate(cur, currency, closes[i].date())
            if by_period:
                # Foreign currencies under the service-period rule: each close converts at
                # the start of the billing period running just before it. Closes at UTC
                # midnight go through billing classes in one pass (no anchor can be later
                # in its day than the close's last microsecond); any other close (a
                # clipped last one, a month start of another zone) gets its own query.
                k = 0
                while k < len(closes) and _utc_midnight(closes[k]):
                    k += 1
                regular = closes[:k]
                for i, value in enumerate(self._foreign_series(conn, regular, currency)):
                    totals[i] += value
                for i in range(len(regular), len(closes)):
                    just_before = closes[i] - _ONE_MICRO
                    conds = [
                        sp.c.positive,
                        sp.c.start_at <= just_before,
                        sa.or_(sp.c.end_at.is_(None), sp.c.end_at > just_before),
                    ]
                    totals[i] += self._foreign_mrr(
                        conn,
                        just_before,
                        currency,
                        conds,
                        before_anchor_starts=True,
                        measured_on=closes[i].date(),
                    )
            return tuple(
                MrrPoint(start=p[0], end=p[1], mrr=Money(v, currency))
                for p, v in zip(months, totals, strict=True)
            )

        return self._run(False, run)

    def cash_by_month(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[CashMonth, ...]:
        a, b = ref.reporting_range(start, end, self._policy.timezone)
        check_currency(currency)
        months = ref.month_bounds(a, b, self._policy.timezone)
        if not months:
            return ()
        # Whole UTC days inside one month come from the daily totals; the rest of each
        # month (a month of another zone starts within a UTC day) from the transactions.
        whole: list[tuple[int, int, int]] = []  # (month, first day, end day)
        edges: list[tuple[int, datetime, datetime]] = []  # (month, from, to)
        for i, (lo, hi) in enumerate(months):
            day0 = -(-moment_value(lo) // _DAY_US)
            day1 = moment_value(hi) // _DAY_US
            if day0 < day1:
                whole.append((i, day0, day1))
                edges += [(i, lo, _day_start(day0)), (i, _day_start(day1), hi)]
            else:
                edges.append((i, lo, hi))
        edges = [e for e in edges if e[1] < e[2]]

        def run(conn: Connection) -> tuple[CashMonth, ...]:
            rows: list[tuple[int, int, str, str, Any, int]] = []  # (month, day, cur, kind, ...)
            daily = self._schema.cash_daily
            if whole:
                first_day, end_day = whole[0][1], whole[-1][2]
                starts = [w[1] for w in whole]
                stmt = sa.select(
                    daily.c.day, daily.c.currency, daily.c.kind, daily.c.amount, daily.c.count
                ).where(daily.c.day >= first_day, daily.c.day < end_day)
                for d, c, k, amount, n in conn.execute(stmt):
                    w = whole[bisect.bisect_right(starts, int(d)) - 1]
                    if int(d) < w[2]:  # days split between two months come from the edges
                        rows.append((w[0], int(d), c, k, amount, int(n)))
            tx = self._schema.transactions
            for i, lo, hi in edges:
                inner = (
                    sa.select(
                        tx.c.at_day.label("d"),
                        tx.c.currency.label("cur"),
                        tx.c.kind.label("kind"),
                        *self._money(tx.c),
                    )
                    .where(tx.c.status == "succeeded", tx.c.at >= lo, tx.c.at < hi)
                    .subquery()
                )
                group = [inner.c.d, inner.c.cur, inner.c.kind]
                grouped: sa.Select[Any] = sa.select(
                    *group, self._ops.dsum(inner.c), sa.func.count()
                )
                for d, c, k, amount, n in conn.execute(grouped.group_by(*group)):
                    rows.append((i, int(d), c, k, amount, int(n)))
            gross = [_ZERO] * len(months)
            refunds = [_ZERO] * len(months)
            counts = [0] * len(months)
            fx: FxRates | None = None
            for i, d, cur, kind, value, n in rows:
                amount = _dec(value)
                if cur != currency:
                    fx = fx or self._rates(conn)
                    amount = amount * fx.rate(cur, currency, EPOCH_DATE + timedelta(days=d))
                if kind == "payment":
                    gross[i] += amount
                    counts[i] += n
                else:
                    refunds[i] += amount
            return tuple(
                CashMonth(
                    start=m[0],
                    end=m[1],
                    gross=Money(gross[i], currency),
                    refunds=Money(refunds[i], currency),
                    net=Money(gross[i] - refunds[i], currency),
                    payments=counts[i],
                )
                for i, m in enumerate(months)
            )

        return self._run(False, run)

    def paying_customers(self, *, at: date | datetime) -> int:
        t = as_of_moment(at, "at")
        from_ledger = self._ledger_reads().paying_if_covered(t)
        if from_ledger is not None:
            return from_ledger
        return self._sql_paying_customers(t)

    def _sql_paying_customers(self, t: datetime) -> int:
        """Paying customers from the spans (the fallback when the ledger does not cover it)."""
        sp = self._schema.spans
        stmt = sa.select(sa.func.count(sa.distinct(sp.c.customer_id))).where(
            sp.c.positive, self._contains(t, scan=True)
        )
        return self._run(False, lambda conn: int(conn.execute(stmt).scalar() or 0))

    def customer_flow(self, *, start: date | datetime, end: date | datetime) -> CustomerFlow:
        a, b = as_of_moment(start, "start"), as_of_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        from_ledger = self._ledger_reads().flow_if_covered(a, b)
        if from_ledger is not None:
            return from_ledger
        return self._sql_customer_flow(a, b)

    def _sql_customer_flow(self, a: datetime, b: datetime) -> CustomerFlow:
        """The flow from the spans (the fallback when the ledger does not cover it)."""
        sp = self._schema.spans
        at_a = sa.case((self._contains(a, scan=True), 1), else_=0)
        at_b = sa.case((self._contains(b, scan=True), 1), else_=0)
        # One pass: per customer, paying at a and/or at b; then the counts.
        per_customer = (
            sa.select(sa.func.max(at_a).label("a"), sa.func.max(at_b).label("b"))
            .where(
                sp.c.positive, sa.or_(self._contains(a, scan=True), self._contains(b, scan=True))
            )
            .group_by(sp.c.customer_id)
            .subquery()
        )
        counts = sa.select(
            sa.func.coalesce(sa.func.sum(per_customer.c.a), 0),
            sa.func.coalesce(sa.func.sum(per_customer.c.b), 0),
            sa.func.coalesce(sa.func.sum(per_customer.c.a * per_customer.c.b), 0),
        )

        def run(conn: Connection) -> CustomerFlow:
            n_a, n_b, n_k = (int(v) for v in conn.execute(counts).one())
            return CustomerFlow(
                start=a,
                end=b,
                at_start=n_a,
                at_end=n_b,
                retained=n_k,
                gained=n_b - n_k,
                lost=n_a - n_k,
            )

        return self._run(False, run)
