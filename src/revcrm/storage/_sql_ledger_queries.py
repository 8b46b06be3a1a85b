"""Reads over the SQL store's ledger tables: plain aggregations, no rule in SQL.

* MRR at a moment: the steps live at the moment, summed (reporting currency), plus the
  native sums of the measured steps (transaction-date FX rule) per currency converted at
  the moment's rate by :meth:`FxRates.rate`, as the engine's sweep does.
* Series and waterfall levels: the delta method, each step's start and end bucketed by
  the period bounds, which come from :func:`revcrm._calendar.period_bounds` in the policy's
  time zone (never month arithmetic in SQL); cumulative sums in Python.
* Movements per period: the stored kinds of the natural grouping, summed per period and
  kind; a customer with two events within the grouping window around a period bound
  (where a bound could split a group) is reclassified from its stored events by the
  engine's classifier (:func:`revcrm._ledger._classify.classify`).

Every figure equals :class:`~revcrm.metrics.MrrAnalysis` on the same book (same policy,
reporting currency and horizon) exactly; ``tests/storage/test_sql_ledger.py`` checks it on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs
import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._calendar import Frequency, period_bounds
from revcrm._ledger._classify import KINDS, classify
from revcrm._ledger._events import Events
from revcrm._ledger._fixed import norm, places
from revcrm._money import EXACT_CONTEXT, Money
from revcrm._time import as_moment
from revcrm.errors import MissingRateError, ValidationError
from revcrm.metrics._engine import MovementKind, MrrPoint, Waterfall
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._query import CustomerFlow
from revcrm.storage._schema import Exact
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import _dec, _rate_case
from revcrm.storage._sql_ledger import NO_HORIZON, SQLLedger

__all__ = ["LedgerReads", "PageValues"]

_DAY_US: Final = 86_400_000_000
_US: Final = timedelta(microseconds=1)
_EPOCH_DAY: Final = date(1970, 1, 1)
_ZERO: Final = Decimal(0)


def _us(t: datetime) -> int:
    return moment_value(t)


def _moment(value: object) -> datetime | None:
    """A moment from a raw aggregate column (SQLite gives its stored microseconds)."""
    return None if value is None else _as_moment(value)


def _as_moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment_from_value(int(str(value)))


@attrs.define
class PageValues:
    """One customer's list-row figures at a moment (reporting currency, exact)."""

    mrr: Decimal = _ZERO
    total_paid: Decimal = _ZERO
    refunded: Decimal = _ZERO
    credit_balance: Decimal = _ZERO
    active_services: int = 0
    last_payment_at: datetime | None = None


class LedgerReads:
    """The ledger aggregates of one SQL store (in its ledger's reporting currency)."""

    def __init__(self, store: SQLLedger) -> None:
        self._store = store
        self._s = store._schema

    # -- public reads -----------------------------------------------------------------------

    def mrr(
        self,
        at: date | datetime,
        *,
        currency: str | None = None,
        customer_ids: Iterable[str] | None = None,
    ) -> Money:
        """MRR at ``at`` (changes at ``at`` included), as ``MrrAnalysis.mrr``."""
        t = as_moment(at, "at")
        ids = None if customer_ids is None else sorted(set(customer_ids))

        def run(conn: Connection) -> Money:
            code = self._currency(conn, currency)
            self._check_rates(conn, ids)
            return Money(self._levels(conn, code, [t], inclusive=True, ids=ids)[0], code)

        return self._store._run(False, run)

    def mrr_before(self, at: date | datetime, *, currency: str | None = None) -> Money:
        """MRR just before ``at`` (the close of a period ending at ``at``)."""
        t = as_moment(at, "at")

        def run(conn: Connection) -> Money:
            code = self._currency(conn, currency)
            self._check_rates(conn, None)
            return Money(self._levels(conn, code, [t], inclusive=False)[0], code)

        return self._store._run(False, run)

    def series(
        self,
        start: date | datetime,
        end: date | datetime,
        every: Frequency | str = Frequency.MONTH,
        *,
        currency: str | None = None,
    ) -> list[MrrPoint]:
        """MRR at the close of each calendar period, as ``MrrAnalysis.series``."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        periods = period_bounds(Frequency(every), a, b, self._store.policy.timezone)
        clipped = [(max(p, a), min(q, b)) for p, q in periods]

        def run(conn: Connection) -> list[MrrPoint]:
            code = self._currency(conn, currency)
            if not clipped:
                return []
            self._check_rates(conn, None)
            values = self._levels(conn, code, [q for _, q in clipped], inclusive=False)
            return [
                MrrPoint(start=p, end=q, mrr=Money(v, code))
                for (p, q), v in zip(clipped, values, strict=True)
            ]

        return self._store._run(False, run)

    def waterfall(
        self, start: date | datetime, end: date | datetime, *, currency: str | None = None
    ) -> Waterfall:
        """The MRR bridge over ``[start, end)``, as ``MrrAnalysis.waterfall``."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        return self._waterfalls([a, b], currency)[0]

    def waterfalls(
        self,
        start: date | datetime,
        end: date | datetime,
        every: Frequency | str = Frequency.MONTH,
        *,
        currency: str | None = None,
    ) -> list[Waterfall]:
        """One waterfall per calendar period, as ``MrrAnalysis.waterfalls``."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        periods = period_bounds(Frequency(every), a, b, self._store.policy.timezone)
        if not periods:
            return []
        return self._waterfalls([a] + [p[0] for p in periods[1:]] + [b], currency)

    def paying_customers(self, at: date | datetime) -> int:
        """Customers with MRR above zero at ``at`` (some stream live), as the store's."""
        t = as_moment(at, "at")

        def run(conn: Connection) -> int:
            self._check_rates(conn, None)
            return self._paying_count(conn, t)

        return self._store._run(False, run)

    def customer_flow(self, start: date | datetime, end: date | datetime) -> CustomerFlow:
        """Paying customers at ``start`` and ``end`` and the flow between, as the store's."""
        a, b = as_moment(start, "start"), as_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")

        def run(conn: Connection) -> CustomerFlow:
            self._check_rates(conn, None)
            return self._flow(conn, a, b)

        return self._store._run(False, run)

    def _live(self, t: datetime) -> ColumnElement[bool]:
        st = self._s.ledger_steps
        return sa.and_(st.c.start_at <= t, sa.or_(st.c.end_at.is_(None), st.c.end_at > t))

    def _cash_upto(self, t: datetime) -> ColumnElement[bool]:
        """Cash entries at or before ``t``. SQLite is kept off the moment index: a read up
        to a moment covers most entries, and its plan through the index (a row lookup
        per entry) was several times slower than a scan (450 ms against 30 ms for the
        entries of 20k customers)."""
        lc = self._s.ledger_cash
        if not self._store._ops.sqlite:
            return lc.c.at <= t
        at = sa.type_coerce(sa.literal_column(f"+{lc.name}.at"), lc.c.at.type)
        return at <= t

    def _cash_moment(self, conn: Connection, a: datetime, b: datetime) -> ColumnElement[Any]:
        """The cash entries' moment column for a read of ``[a, b)``: on SQLite kept off
        its index when the range spans over a quarter of the entries' time (the first
        and last moments, two index probes, bound it): the index serves a few months of
        many years (the dashboard's two), a scan the rest (36 months of three years: 150
        ms against 415 for 20k customers' entries)."""
        lc = self._s.ledger_cash
        if not self._store._ops.sqlite:
            return lc.c.at
        first = conn.execute(sa.select(sa.func.min(lc.c.at))).scalar()
        last = conn.execute(sa.select(sa.func.max(lc.c.at))).scalar()
        if first is None or last is None:
            return lc.c.at
        lo, hi = _us(max(a, _as_moment(first))), _us(min(b, _as_moment(last)))
        span = _us(_as_moment(last)) - _us(_as_moment(first))
        if 4 * (hi - lo) <= span:
            return lc.c.at
        return sa.type_coerce(sa.literal_column(f"+{lc.name}.at"), lc.c.at.type)

    def _paying_count(self, conn: Connection, t: datetime) -> int:
        """Customers with a step live at ``t``, counted in SQL."""
        st = self._s.ledger_steps
        stmt = sa.select(sa.func.count(sa.distinct(st.c.customer_id))).where(self._live(t))
        return int(conn.execute(stmt).scalar() or 0)

    def _flow(self, conn: Connection, a: datetime, b: datetime) -> CustomerFlow:
        """The flow between ``a`` and ``b`` in one pass: per customer, live at ``a`` and/or
        at ``b``; then the counts (no ids leave the database)."""
        st = self._s.ledger_steps
        at_a, at_b = self._live(a), self._live(b)
        per_customer = (
            sa.select(
                sa.func.max(sa.case((at_a, 1), else_=0)).label("a"),
                sa.func.max(sa.case((at_b, 1), else_=0)).label("b"),
            )
            .where(sa.or_(at_a, at_b))
            .group_by(st.c.customer_id)
            .subquery()
        )
        pc = per_customer.c
        counts = sa.select(
            sa.func.coalesce(sa.func.sum(pc.a), 0),
            sa.func.coalesce(sa.func.sum(pc.b), 0),
            sa.func.coalesce(sa.func.sum(pc.a * pc.b), 0),
        )
        n_a, n_b, kept = (int(v) for v in conn.execute(counts).one())
        return CustomerFlow.of_counts(a, b, at_start=n_a, at_end=n_b, retained=kept)

    def covers(
        self,
        currency: str,
        until: date | datetime,
        *,
        customer_ids: Iterable[str] | None = None,
    ) -> bool:
        """Whether the ledger answers exactly as the store's own rules would: kept in
        ``currency``, its horizon not before ``until`` (the latest moment asked), and every
        customer in scope built (none lacking a rate). A store switching a read to the
        ledger falls back to its other path when this is False."""
        t = as_moment(until, "until")
        ids = None if customer_ids is None else sorted(set(customer_ids))

        return self._store._run(False, lambda conn: self._covered(conn, currency, t, ids))

    def _covered(
        self,
        conn: Connection,
        currency: str | None,
        t: datetime,
        ids: Sequence[str] | None,
        *,
        missing_raises: bool = False,
    ) -> bool:
        """:meth:`covers` on an open connection (``currency`` None: the ledger's own).
        ``missing_raises``: a customer lacking a rate raises MissingRateError, as the
        engine's analysis of the whole book would, instead of answering False."""
        if not self._kept(conn, currency, t):
            return False
        if missing_raises:
            self._check_rates(conn, ids)
            return True
        try:
            self._check_rates(conn, ids)
        except MissingRateError:
            return False
        return True

    # -- reads of a store switching to the ledger when covered ------------------------------
    #
    # Each checks :meth:`covers` and reads in the same transaction (one snapshot), and
    # answers None when not covered: the store then takes its other path.

    def mrr_if_covered(
        self, t: datetime, currency: str, customer_ids: Sequence[str] | None
    ) -> tuple[Money, list[str]] | None:
        """:meth:`mrr` at ``t`` of the customers in scope the ledger built, and those it
        could not (lacking a rate: no rows, so the store adds their MRR from their own
        records); None when the ledger does not cover the read (another currency, past
        its horizon)."""

        def run(conn: Connection) -> tuple[Money, list[str]] | None:
            if not self._kept(conn, currency, t):
                return None
            levels = self._levels(conn, currency, [t], inclusive=True, ids=customer_ids)
            return Money(levels[0], currency), self._lacking(conn, customer_ids)

        return self._store._run(False, run)

    def closes_if_covered(self, closes: Sequence[datetime], currency: str) -> list[Decimal] | None:
        """MRR just before each of the sorted ``closes`` (a series' period ends), or None
        when the ledger does not cover the read. A customer lacking a rate raises
        MissingRateError: a series is the engine's analysis of the whole book, which
        converts every movement of its history (the in-memory store's too)."""

        def run(conn: Connection) -> list[Decimal] | None:
            if not closes:
                return None
            if not self._covered(conn, currency, closes[-1], None, missing_raises=True):
                return None
            return self._levels(conn, currency, closes, inclusive=False)

        return self._store._run(False, run)

    def paying_if_covered(self, t: datetime) -> tuple[int, list[str]] | None:
        """:meth:`paying_customers` at ``t`` among the customers the ledger built, and
        those lacking a rate (counted by the store from their records); None when the
        ledger does not reach ``t``."""

        def run(conn: Connection) -> tuple[int, list[str]] | None:
            if not self._kept(conn, None, t):
                return None
            return self._paying_count(conn, t), self._lacking(conn, None)

        return self._store._run(False, run)

    def flow_if_covered(self, a: datetime, b: datetime) -> tuple[CustomerFlow, list[str]] | None:
        """:meth:`customer_flow` over ``[a, b]`` (``a <= b``) among the customers the
        ledger built, and those lacking a rate; None when the ledger does not reach ``b``."""

        def run(conn: Connection) -> tuple[CustomerFlow, list[str]] | None:
            if not self._kept(conn, None, max(a, b)):
                return None
            return self._flow(conn, a, b), self._lacking(conn, None)

        return self._store._run(False, run)

    def keeps(self, conn: Connection, currency: str) -> bool:
        """Whether the ledger is built and kept in ``currency`` (what the cash entries
        need to answer: they hold every entry converted at its own date)."""
        if not self._store._ledger_ready_cached(conn):
            return False
        return self._store._ledger_currency(conn) == currency

    def cash_sums(
        self, conn: Connection, bounds: Sequence[datetime]
    ) -> tuple[list[Decimal], list[Decimal], list[int], list[str]]:
        """Per period ``[bounds[i], bounds[i + 1])``: the gross payments, refunds and
        payment count of the ledger's cash entries (each converted at its own date when
        it was built, in the ledger's currency: see :meth:`keeps`), bucketed by the
        bounds and summed in SQL; and the customers lacking a rate for one of their
        entries (they have none in the table: the store reads their transactions)."""
        lc, ops = self._s.ledger_cash, self._store._ops
        k = len(bounds) - 1
        gross, refunds, counts = [_ZERO] * k, [_ZERO] * k, [0] * k
        if k <= 0:
            return gross, refunds, counts, []
        at = self._cash_moment(conn, bounds[0], bounds[-1])
        region = _region(at, bounds).label("region")
        inner = (
            sa.select(region, lc.c.kind, *_amount_cols(lc, ops, "reporting"))
            .where(lc.c.kind.in_(("payment", "refund")), at >= bounds[0], at < bounds[-1])
            .subquery()
        )
        stmt = sa.select(
            inner.c.region, inner.c.kind, ops.dsum(inner.c, "reporting"), sa.func.count()
        ).group_by(inner.c.region, inner.c.kind)
        for r, kind, value, n in conn.execute(stmt):
            if kind == "payment":
                gross[int(r)] += _dec(value)
                counts[int(r)] += int(n)
            else:
                refunds[int(r)] += _dec(value)
        lm = self._s.ledger_cash_missing
        lacking = sorted(str(c) for (c,) in conn.execute(sa.select(lm.c.customer_id)))
        return gross, refunds, counts, lacking

    # -- per customer: the customer list's sort columns -------------------------------------

    def list_covered(self, conn: Connection, currency: str, t: datetime) -> bool:
        """Whether the ledger's steps give every customer's MRR at ``t`` in ``currency``
        exactly (no customer lacking a rate: one would fail the engine's analysis)."""
        return self._covered(conn, currency, t, None)

    def cash_covered(self, conn: Connection, currency: str) -> bool:
        """Whether the ledger's cash entries give every customer's payments in
        ``currency`` (kept in it, none lacking a rate)."""
        if not self.keeps(conn, currency):
            return False
        lm = self._s.ledger_cash_missing
        return conn.execute(sa.select(lm.c.customer_id).limit(1)).first() is None

    def customer_mrr_values(self, t: datetime, rates: Mapping[str, Decimal] | None) -> sa.Subquery:
        """Per paying customer (``customer_id``, ``v``) the MRR at ``t`` (changes at ``t``
        included): the steps live at ``t`` summed; the measured ones (transaction-date FX
        rule) per currency times ``rates`` (each currency's rate on ``t``'s date, as
        :meth:`mrr` converts them; None: no measured step to convert)."""
        st, ops = self._s.ledger_steps, self._store._ops
        live = self._live(t)
        if rates is None:
            stmt = sa.select(st.c.customer_id, ops.dsum(st.c).label("v")).where(live)
            return stmt.group_by(st.c.customer_id).subquery()
        per_currency = (
            sa.select(st.c.customer_id, st.c.measured, st.c.currency, ops.dsum(st.c).label("s"))
            .where(live)
            .group_by(st.c.customer_id, st.c.measured, st.c.currency)
            .subquery()
        )
        pc = per_currency.c
        one = sa.literal(Decimal(1), Exact())
        factor = sa.case((pc.measured, _rate_case(pc.currency, rates)), else_=one)
        return (
            sa.select(pc.customer_id, ops.dsum_times(pc.s, factor).label("v"))
            .group_by(pc.customer_id)
            .subquery()
        )

    def customer_cash_values(self, t: datetime, *, net: bool) -> sa.Subquery:
        """Per customer (``customer_id``, ``v``) the payments up to ``t`` (``net``: less
        the refunds, the LTV), each entry as converted at its own date."""
        lc, ops = self._s.ledger_cash, self._store._ops
        payment = lc.c.kind == "payment"
        kinds: ColumnElement[bool] = payment
        sign: ColumnElement[Any] | None = None
        if net:
            sign = sa.case((payment, 1), else_=-1)
            kinds = lc.c.kind.in_(("payment", "refund"))
        value = ops.dsum(lc.c, "reporting", sign=sign).label("v")
        stmt = sa.select(lc.c.customer_id, value).where(kinds, self._cash_upto(t))
        return stmt.group_by(lc.c.customer_id).subquery()

    def customer_limb_sums(self, t: datetime, *, cash: bool, net: bool = False) -> sa.Subquery:
        """SQLite: the sums of the money limbs of :meth:`customer_mrr_values` without
        measured steps (``cash`` False) or of :meth:`customer_cash_values` (``cash``),
        integers summed in C, per customer and sign: ``customer_id``, ``neg`` (1: the
        refunds, to take off), ``s0`` .. ``s6`` and ``bare``, the rows in scope whose
        amounts have no limbs (when one has any, the exact sums must answer)."""
        if cash:
            lc = self._s.ledger_cash
            kinds = ("payment", "refund") if net else ("payment",)
            limbs = [lc.c[f"reporting_l{k}"] for k in range(7)]
            neg: ColumnElement[Any] = sa.case((lc.c.kind == "refund", 1), else_=0)
            scope = sa.and_(lc.c.kind.in_(kinds), self._cash_upto(t))
            group = [lc.c.customer_id, lc.c.kind]
        else:
            st = self._s.ledger_steps
            limbs = [st.c[f"amount_l{k}"] for k in range(7)]
            neg, scope, group = sa.literal(0), self._live(t), [st.c.customer_id]
        sums = [sa.func.sum(x).label(f"s{k}") for k, x in enumerate(limbs)]
        bare = (sa.func.count() - sa.func.count(limbs[0])).label("bare")
        stmt = sa.select(group[0], neg.label("neg"), *sums, bare).where(scope).group_by(*group)
        return stmt.subquery()

    # -- per customer: the customer list's page rows ---------------------------------------

    def page_values(
        self, conn: Connection, ids: Sequence[str], t: datetime, currency: str
    ) -> tuple[dict[str, PageValues], list[str]] | None:
        """The list-row figures at ``t`` of the customers ``ids`` from the ledger tables:
        one grouped query per table, restricted to those ids (MRR from the steps live at
        ``t``, the measured ones converted at ``t``'s rate as :meth:`mrr` does; total
        paid, refunds, last payment and the reporting currency's credit balance from the
        cash entries; active services from the service-state rows). Customers without a
        row have zero figures. Also those of ``ids`` the ledger could not build (lacking
        a rate: their rows come from their records). None when the ledger does not cover
        the read (another currency, past its horizon)."""
        if not self._kept(conn, currency, t):
            return None
        out: dict[str, PageValues] = {}
        lacking: list[str] = []
        for chunk in _chunks(sorted(set(ids))):
            lacking += self._page_chunk(conn, list(chunk), t, currency, out)
        return out, sorted(set(lacking))

    def _page_chunk(
        self,
        conn: Connection,
        ids: list[str],
        t: datetime,
        currency: str,
        out: dict[str, PageValues],
    ) -> list[str]:
        s, ops = self._s, self._store._ops
        lcu, lm = s.ledger_customers, s.ledger_cash_missing
        lacking = [
            str(c)
            for (c,) in conn.execute(
                sa.union(
                    sa.select(lcu.c.customer_id).where(
                        lcu.c.customer_id.in_(ids), lcu.c.missing.is_not(None)
                    ),
                    sa.select(lm.c.customer_id).where(lm.c.customer_id.in_(ids)),
                )
            )
        ]

        def of(cid: object) -> PageValues:
            key = str(cid)
            found = out.get(key)
            if found is None:
                found = out[key] = PageValues()
            return found

        for cid in ids:
            of(cid)
        st = s.ledger_steps
        native: dict[str, list[tuple[str, Decimal]]] = defaultdict(list)
        steps = (
            sa.select(st.c.customer_id, st.c.measured, st.c.currency, ops.dsum(st.c))
            .where(self._live(t), st.c.customer_id.in_(ids))
            .group_by(st.c.customer_id, st.c.measured, st.c.currency)
        )
        for cid, measured, cur, value in conn.execute(steps):
            if measured:
                native[str(cur)].append((str(cid), _dec(value)))
            else:
                v = of(cid)
                v.mrr = EXACT_CONTEXT.add(v.mrr, _dec(value))
        if native:
            fx = self._store._ledger_rates(conn, set(native))
            day = _EPOCH_DAY + timedelta(days=_us(t) // _DAY_US)
            for cur, parts in sorted(native.items()):
                rate = fx.rate(cur, currency, day)
                for cid, level in parts:
                    v = of(cid)
                    v.mrr = EXACT_CONTEXT.add(v.mrr, EXACT_CONTEXT.multiply(level, rate))
        lc = s.ledger_cash
        own_credit = sa.and_(lc.c.kind == "credit", lc.c.currency == currency)
        cash = (
            sa.select(
                lc.c.customer_id,
                lc.c.kind,
                ops.dsum(lc.c, "reporting"),
                sa.func.max(lc.c.at),
            )
            .where(
                lc.c.customer_id.in_(ids),
                lc.c.at <= t,
                sa.or_(lc.c.kind.in_(("payment", "refund")), own_credit),
            )
            .group_by(lc.c.customer_id, lc.c.kind)
        )
        for cid, kind, value, latest in conn.execute(cash):
            v = of(cid)
            if kind == "payment":
                v.total_paid, v.last_payment_at = _dec(value), _moment(latest)
            elif kind == "refund":
                v.refunded = _dec(value)
            else:
                # A credit entry in the reporting currency: ``reporting`` is its amount.
                v.credit_balance = _dec(value)
        sv = s.ledger_services
        services = (
            sa.select(sv.c.customer_id, sa.func.count())
            .where(
                sv.c.customer_id.in_(ids),
                sv.c.start_at <= t,
                sa.or_(sv.c.end_at.is_(None), sv.c.end_at > t),
                sv.c.active,
            )
            .group_by(sv.c.customer_id)
        )
        for cid, n in conn.execute(services):
            of(cid).active_services = int(n)
        return lacking

    def last_payments(self, t: datetime) -> sa.Subquery:
        """Per customer who paid by ``t`` (``customer_id``, ``v``): the latest successful
        payment's moment, from the cash entries (see :meth:`cash_complete`)."""
        lc = self._s.ledger_cash
        stmt = sa.select(lc.c.customer_id, sa.func.max(lc.c.at).label("v")).where(
            lc.c.kind == "payment", self._cash_upto(t)
        )
        return stmt.group_by(lc.c.customer_id).subquery()

    def cash_complete(self, conn: Connection) -> bool:
        """Whether the cash entries hold every successful payment and refund (the ledger
        built, no customer lacking a rate for one: such a customer has none in the
        table), whatever the currency they were converted into."""
        if not self._store._ledger_ready_cached(conn):
            return False
        lm = self._s.ledger_cash_missing
        return conn.execute(sa.select(lm.c.customer_id).limit(1)).first() is None

    def paying_cond(
        self, conn: Connection, t: datetime, customer_id: ColumnElement[Any]
    ) -> ColumnElement[bool] | None:
        """Whether the customer (``customer_id`` of the enclosing query) has MRR above
        zero at ``t``: a step live at ``t`` (as :meth:`paying_customers` counts), among
        the customers the ledger built; None when the ledger does not reach ``t`` or
        some customer lacks a rate (the store reads its spans then)."""
        if not self._kept(conn, None, t) or self._lacking(conn, None):
            return None
        st = self._s.ledger_steps
        return customer_id.in_(sa.select(st.c.customer_id).where(self._live(t)))

    # -- checks -----------------------------------------------------------------------------

    def _kept(self, conn: Connection, currency: str | None, t: datetime) -> bool:
        """Built, kept in ``currency`` (None: any) and reaching ``t`` (its horizon)."""
        if not self._store._ledger_ready_cached(conn):
            return False
        if currency is not None and self._store._ledger_currency(conn) != currency:
            return False
        horizon = self._store._ledger_horizon(conn)
        return horizon == NO_HORIZON or horizon >= t  # no records yet: nothing to miss

    def _lacking(self, conn: Connection, ids: Sequence[str] | None) -> list[str]:
        """The customers (in ``ids``) whose rows could not be built for a missing rate."""
        t = self._s.ledger_customers
        stmt = sa.select(t.c.customer_id).where(t.c.missing.is_not(None))
        if ids is not None:
            stmt = stmt.where(t.c.customer_id.in_(ids))
        return sorted(str(c) for (c,) in conn.execute(stmt))

    def _currency(self, conn: Connection, currency: str | None) -> str:
        code = self._store._ledger_currency(conn)
        if currency is not None and currency != code:
            raise ValidationError(
                "currency", currency, f"the ledger is kept in {code} (rebuild_ledger(currency=))"
            )
        return code

    def _check_rates(self, conn: Connection, ids: Sequence[str] | None) -> None:
        """A customer whose rows lack a rate fails the read as the engine's analysis would."""
        t = self._s.ledger_customers
        stmt = sa.select(t.c.missing).where(t.c.missing.is_not(None))
        if ids is not None:
            stmt = stmt.where(t.c.customer_id.in_(ids))
        missing = conn.execute(stmt.order_by(t.c.customer_id).limit(1)).scalar()
        if missing is not None:
            source, target, on = str(missing).split(" ")
            raise MissingRateError(source, target, date.fromisoformat(on))

    # -- levels -----------------------------------------------------------------------------

    def _levels(
        self,
        conn: Connection,
        code: str,
        moments: Sequence[datetime],
        *,
        inclusive: bool,
        ids: Sequence[str] | None = None,
    ) -> list[Decimal]:
        """MRR at each moment (``inclusive``: changes at it count), reporting currency.

        Delta method: each step adds its amount to the buckets from its start's on and
        takes it off from its end's on; a moment's level is the running total.
        """
        st = self._s.ledger_steps
        us = [_us(m) for m in moments]
        k = len(us)
        ops = self._store._ops

        def bucket(col: ColumnElement[Any]) -> ColumnElement[Any]:
            # The first (sorted) moment the edge counts for (``edge <= m`` when inclusive,
            # else ``edge < m``), k if none: a binary search of CASEs, log2(k) tests a row.
            def search(lo: int, hi: int) -> ColumnElement[Any]:
                if lo == hi:
                    return sa.literal(lo)
                mid = (lo + hi) // 2
                m = moments[mid]
                reached = (col <= m) if inclusive else (col < m)
                return sa.case((reached, search(lo, mid)), else_=search(mid + 1, hi))

            return search(0, k)

        def edge(col: ColumnElement[Any]) -> list[tuple[int, bool, str, Decimal]]:
            # Sums per bucket of the edges that count for the last moment at least.
            last = moments[-1]
            b = bucket(col).label("b")
            sub = sa.select(b, st.c.measured, st.c.currency, *_amount_cols(st, ops)).where(
                (col <= last) if inclusive else (col < last)
            )
            if ids is not None:
                sub = sub.where(st.c.customer_id.in_(ids))
            q = sub.subquery()
            stmt = sa.select(q.c.b, q.c.measured, q.c.currency, ops.dsum(q.c)).group_by(
                q.c.b, q.c.measured, q.c.currency
            )
            return [(int(bk), bool(me), str(cur), _dec(v)) for bk, me, cur, v in conn.execute(stmt)]

        def live(t: datetime) -> list[tuple[int, bool, str, Decimal]]:
            # One moment: the steps live at it, in one pass.
            if inclusive:
                cond = sa.and_(st.c.start_at <= t, sa.or_(st.c.end_at.is_(None), st.c.end_at > t))
            else:
                cond = sa.and_(st.c.start_at < t, sa.or_(st.c.end_at.is_(None), st.c.end_at >= t))
            if ids is not None:
                cond = sa.and_(cond, st.c.customer_id.in_(ids))
            stmt = (
                sa.select(st.c.measured, st.c.currency, ops.dsum(st.c))
                .where(cond)
                .group_by(st.c.measured, st.c.currency)
            )
            return [(0, bool(me), str(cur), _dec(v)) for me, cur, v in conn.execute(stmt)]

        fixed = [_ZERO] * (k + 1)
        native: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO] * (k + 1))
        edges = (
            [(1, live(moments[0]))]
            if k == 1
            else [
                (1, edge(st.c.start_at)),
                (-1, edge(st.c.end_at)),
            ]
        )
        for sign, rows in edges:
            for bk, measured, cur, value in rows:
                v = value if sign > 0 else -value
                if measured:
                    native[cur][bk] += v
                else:
                    fixed[bk] += v
        out = _running(fixed, k)
        if native:
            fx = self._store._ledger_rates(conn, set(native))
            for cur, deltas in sorted(native.items()):
                levels = _running(deltas, k)
                for j, level in enumerate(levels):
                    if level != 0:
                        day = _EPOCH_DAY + timedelta(days=us[j] // _DAY_US)
                        rate = fx.rate(cur, code, day)
                        out[j] = EXACT_CONTEXT.add(out[j], EXACT_CONTEXT.multiply(level, rate))
        return out

    # -- movements --------------------------------------------------------------------------

    def _waterfalls(self, bounds: list[datetime], currency: str | None) -> list[Waterfall]:
        def run(conn: Connection) -> list[Waterfall]:
            code = self._currency(conn, currency)
            self._check_rates(conn, None)
            levels = self._levels(conn, code, bounds, inclusive=False)
            totals, counts = self._movement_totals(conn, bounds)
            out = []
            for r in range(len(bounds) - 1):
                t = totals[r]
                moved = sum(t.values(), _ZERO)
                fx_impact = levels[r + 1] - levels[r] - moved

                def of(kind: MovementKind, t: dict[str, Decimal] = t) -> Money:
                    return Money(t.get(kind.value, _ZERO), code)

                out.append(
                    Waterfall(
                        start=bounds[r],
                        end=bounds[r + 1],
                        start_mrr=Money(levels[r], code),
                        new=of(MovementKind.NEW),
                        expansion=of(MovementKind.EXPANSION),
                        reactivation=of(MovementKind.REACTIVATION),
                        contraction=of(MovementKind.CONTRACTION),
                        churn=of(MovementKind.CHURN),
                        fx_impact=Money(fx_impact, code),
                        end_mrr=Money(levels[r + 1], code),
                        movement_count=counts[r],
                    )
                )
            return out

        return self._store._run(False, run)

    def _movement_totals(
        self, conn: Connection, bounds: Sequence[datetime]
    ) -> tuple[list[dict[str, Decimal]], list[int]]:
        """Per period ``[bounds[r], bounds[r + 1])``: movement amounts by kind, and counts."""
        it = self._s.ledger_intervals
        ops = self._store._ops
        k = len(bounds) - 1
        totals: list[dict[str, Decimal]] = [defaultdict(lambda: _ZERO) for _ in range(k)]
        counts = [0] * k
        if k <= 0:
            return totals, counts
        # Customers a bound may split a group of: two events within the window around it.
        near = sa.or_(*(sa.and_(it.c.start_at < b, it.c.joins_next_at >= b) for b in bounds))
        split = sorted(
            r[0]
            for r in conn.execute(
                sa.select(it.c.customer_id).distinct().where(it.c.joins_next_at.is_not(None), near)
            )
        )
        whens = [(it.c.start_at < b, sa.literal(r)) for r, b in enumerate(bounds[1:])]
        region = sa.case(*whens, else_=sa.literal(k)).label("region")
        sub = sa.select(region, it.c.kind, *_amount_cols(it, ops)).where(
            it.c.kind.is_not(None), it.c.start_at >= bounds[0], it.c.start_at < bounds[-1]
        )
        if split:
            sub = sub.where(it.c.customer_id.not_in(split))
        q = sub.subquery()
        stmt = sa.select(q.c.region, q.c.kind, ops.dsum(q.c), sa.func.count()).group_by(
            q.c.region, q.c.kind
        )
        for r, kind, value, n in conn.execute(stmt):
            totals[int(r)][str(kind)] += _dec(value)
            counts[int(r)] += int(n)
        if split:
            self._reclassify(conn, split, bounds, totals, counts)
        return totals, counts

    def _reclassify(
        self,
        conn: Connection,
        customer_ids: Sequence[str],
        bounds: Sequence[datetime],
        totals: list[dict[str, Decimal]],
        counts: list[int],
    ) -> None:
        """Movements of these customers by the engine's classifier over their events."""
        it = self._s.ledger_intervals
        rows = conn.execute(
            sa.select(it.c.customer_id, it.c.start_at, it.c.before, it.c.mrr, it.c.free_after)
            .where(it.c.customer_id.in_(list(customer_ids)))
            .order_by(it.c.customer_id, it.c.seq)
        ).all()
        values = [(_dec(r[2]), _dec(r[3])) for r in rows]
        digits = max((places(v) for pair in values for v in pair), default=0)
        scale = Decimal(1).scaleb(digits)

        def units(v: Decimal) -> int:
            return int(EXACT_CONTEXT.multiply(v, scale))

        index = {c: i for i, c in enumerate(customer_ids)}
        cust = np.array([index[r[0]] for r in rows], dtype=np.int32)
        at = np.array([_us(r[1]) for r in rows], dtype=np.int64)
        before = norm(np.array([units(b) for b, _ in values], dtype=object))
        after = norm(np.array([units(a) for _, a in values], dtype=object))
        n = len(rows)
        zeros = np.zeros(n, dtype=np.int64)
        ev = Events(
            customer=cust,
            at=at,
            before=before,
            after=after,
            free_after=np.array([bool(r[4]) for r in rows], dtype=bool),
            ptr=np.searchsorted(cust, np.arange(len(customer_ids) + 1)).astype(np.int64),
            row_lo=zeros,
            row_hi=zeros,
            row_stream=np.zeros(n, dtype=np.int32),
            level_change=zeros,
        )
        policy = self._store.policy
        window = policy.grouping_window
        days = policy.reactivation_window_days
        m = classify(
            ev,
            np.array([_us(b) for b in bounds], dtype=np.int64),
            window_us=None if window is None else window // _US,
            reactivation_us=None if days is None else days * _DAY_US,
            keep_free=not policy.free_plans_churn,
        )
        for r, kind, amount in zip(
            m.region.tolist(), m.kind.tolist(), m.amount.tolist(), strict=True
        ):
            value = Decimal(int(amount)).scaleb(-digits, context=EXACT_CONTEXT)
            totals[int(r)][KINDS[int(kind)]] += value
            counts[int(r)] += 1


def _amount_cols(table: sa.Table, ops: Any, name: str = "amount") -> list[sa.Column[Any]]:
    """The money column ``name`` and, on SQLite, its limbs (what ``dsum`` reads)."""
    cols = [table.c[name]]
    if ops.sqlite:
        cols += [table.c[f"{name}_l{k}"] for k in range(7)]
    return cols


def _region(col: ColumnElement[Any], bounds: Sequence[datetime]) -> ColumnElement[Any]:
    """The ``r`` with ``bounds[r] <= col < bounds[r + 1]``, for ``col`` within the bounds:
    a binary search of CASEs over the (reporting calendar's) bounds, log2 tests a row."""

    def search(lo: int, hi: int) -> ColumnElement[Any]:  # bounds[lo] <= col < bounds[hi]
        if hi - lo == 1:
            return sa.literal(lo)
        mid = (lo + hi) // 2
        return sa.case((col < bounds[mid], search(lo, mid)), else_=search(mid, hi))

    return search(0, len(bounds) - 1)


def _running(deltas: list[Decimal], k: int) -> list[Decimal]:
    """Levels at moments ``0..k-1``: an edge in bucket ``b`` counts from moment ``b`` on,
    so the level at moment ``j`` is the sum of the deltas of buckets ``0..j``."""
    out: list[Decimal] = []
    total = _ZERO
    for j in range(k):
        total = EXACT_CONTEXT.add(total, deltas[j])
        out.append(total)
    return out
