"""The SQL store's segment queries and the customer-list filters they share.

Status, product and segment membership at a moment as SQL conditions over the states,
spans and payments tables; segment counts, members and the LTV baseline.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._money import FxRates, Money, check_currency
from revcrm._time import as_of_moment
from revcrm.crm._services import CustomerStatus
from revcrm.errors import (
    NotFoundError,
)
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._rules import SegmentInputs, ServiceFacts, memberships, service_paid_up
from revcrm.segments._segments import LtvBaseline, SegmentCounts
from revcrm.storage._codec import (
    moment_value,
)
from revcrm.storage._memory import (
    _check_baseline,
    _check_config,
    _id_list,
)
from revcrm.storage._query import (
    CustomerQuery,
)
from revcrm.storage._schema import (
    Exact,
    Moment,
)
from revcrm.storage._sql_base import (
    _DAY_US,
    _ENDED,
    _NAMED,
    _RUNNING,
    _TROUBLED,
    EPOCH_DATE,
    _as_moment,
    _literal_ids,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import (
    _ZERO,
    _dec,
)
from revcrm.storage._sql_service_upkeep import SQLServiceUpkeep

__all__ = ["SQLSegments"]

_T = TypeVar("_T")


class SQLSegments(SQLServiceUpkeep):
    """Status, product and segment conditions at a moment; segment counts and members."""

    def _contains(self, t: datetime, *, scan: bool = False) -> ColumnElement[bool]:
        """Spans running at ``t``. With ``scan`` (aggregates over every customer) SQLite is
        kept off the start/end indexes: most spans start before any recent ``t``, and one
        sequential pass beats a lookup per index entry several times over."""
        start, end = self._span_moment("start_at", scan), self._span_moment("end_at", scan)
        return sa.and_(start <= t, sa.or_(end.is_(None), end > t))

    def _span_moment(self, name: str, scan: bool) -> Any:
        sp = self._schema.spans
        if scan and self._sqlite:
            # ``+col`` is SQLite's documented way to disqualify a column from index use.
            return sa.type_coerce(sa.literal_column(f"+{sp.name}.{name}"), Moment())
        return sp.c[name]

    def _owners(
        self, table: sa.Table, *conds: ColumnElement[bool], ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """Whether the customer (of the enclosing query) owns a row of ``table`` matching
        ``conds``. Uncorrelated: the database finds the owners once (PostgreSQL hashes
        them, SQLite builds an ephemeral index) instead of probing per customer, which
        an OR of several conditions would otherwise force. ``ids`` narrows the search to
        those customers (the rows of one page)."""
        owners = sa.select(table.c.customer_id).where(*conds)
        if ids is not None:
            owners = owners.where(table.c.customer_id.in_(list(ids)))
        return self._schema.customers.c.id.in_(owners)

    def _states_at(
        self, t: datetime, *conds: ColumnElement[bool], ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """Whether the customer has a subscription whose state at ``t`` matches ``conds``."""
        st = self._schema.states
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        return self._owners(st, running, *conds, ids=ids)

    def _active_state(self, t: datetime) -> ColumnElement[bool]:
        """``is_active_service``: running, or cancelled with the paid period still going."""
        st = self._schema.states
        return sa.or_(
            st.c.status.in_(_RUNNING), sa.and_(st.c.status == "cancelled", st.c.ended_at > t)
        )

    def _overdue(self, t: datetime, ids: Sequence[str] | None = None) -> ColumnElement[bool]:
        """``invoice_overdue`` for some invoice of the customer."""
        inv = self._schema.invoices
        unpaid = sa.or_(
            inv.c.status == "open",
            sa.and_(inv.c.status == "paid", inv.c.paid_at.is_not(None), inv.c.paid_at > t),
        )
        return self._owners(inv, inv.c.issued_at <= t, unpaid, inv.c.due_date < t.date(), ids=ids)

    def _paid(
        self, since: datetime | None, t: datetime, ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """A successful payment of the customer in ``[since, t]`` (any time up to ``t``)."""
        tx = self._schema.transactions
        conds = [tx.c.status == "succeeded", tx.c.kind == "payment", tx.c.at <= t]
        if since is not None:
            conds.append(tx.c.at >= since)
        return self._owners(tx, *conds, ids=ids)

    def _ledger_holds(
        self, table: sa.Table, t: datetime, *conds: ColumnElement[bool]
    ) -> ColumnElement[bool]:
        """Whether the customer has a row of the ledger table ``table`` (an interval
        ``[start_at, end_at)``) containing ``t`` and matching ``conds``."""
        running = sa.and_(
            table.c.start_at <= t, sa.or_(table.c.end_at.is_(None), table.c.end_at > t)
        )
        return self._owners(table, running, *conds)

    def _status_cond(self, t: datetime, status: CustomerStatus) -> ColumnElement[bool]:
        """``customer_status(...) is status`` at ``t``: a lookup of the status intervals
        the rule computed at write time (``lead`` wherever none holds)."""
        ls = self._schema.ledger_status
        if status is CustomerStatus.LEAD:
            return ~self._ledger_holds(ls, t)
        return self._ledger_holds(ls, t, ls.c.status == status.value)

    def _product_cond(self, t: datetime, product_id: str) -> ColumnElement[bool]:
        """An active service of the product at ``t`` (the service-state rows: their
        product is the service's own, else its plan's)."""
        sv = self._schema.ledger_services
        return self._ledger_holds(sv, t, sv.c.active, sv.c.product_id == product_id)

    def _payment_days(
        self, conn: Connection, t: datetime, currency: str, fx: FxRates
    ) -> dict[str, tuple[int, int]]:
        """First and last UTC day of the successful transactions up to ``t`` per foreign
        currency (from the daily cash totals; the last may be ``t``'s day even if its
        transactions come later that day); MissingRateError if one lacks a rate into
        ``currency`` on its day (the pure functions convert every one of them, each at
        its own date)."""
        daily = self._schema.cash_daily
        today = moment_value(t) // _DAY_US
        stmt = (
            sa.select(daily.c.currency, sa.func.min(daily.c.day), sa.func.max(daily.c.day))
            .where(daily.c.day < today, daily.c.currency != currency)
            .group_by(daily.c.currency)
        )
        found: dict[str, list[int]] = {
            str(cur): [int(lo), int(hi)] for cur, lo, hi in conn.execute(stmt)
        }
        tx = self._schema.transactions
        same_day = (
            sa.select(tx.c.currency)
            .where(
                tx.c.status == "succeeded",
                tx.c.at_day == today,
                tx.c.at <= t,
                tx.c.currency != currency,
            )
            .distinct()
        )
        for (cur,) in conn.execute(same_day):
            span = found.setdefault(str(cur), [today, today])
            span[1] = today
        for cur, (lo, _) in found.items():
            # A rate known on some day stays known on every later day, so the first is
            # the one that can be missing.
            fx.rate(cur, currency, EPOCH_DATE + timedelta(days=lo))
        return {cur: (lo, hi) for cur, (lo, hi) in found.items()}

    def _payment_days_of(
        self, conn: Connection, t: datetime, currency: str, fx: FxRates, ids: Sequence[str]
    ) -> dict[str, tuple[int, int]]:
        """``_payment_days`` of these customers' transactions alone (one indexed lookup
        per customer): all that their High Value test converts, when the baseline is
        given and so needs no pass over the whole book."""
        tx = self._schema.transactions
        stmt = (
            sa.select(tx.c.currency, sa.func.min(tx.c.at_day), sa.func.max(tx.c.at_day))
            .where(
                tx.c.customer_id.in_(list(ids)),
                tx.c.status == "succeeded",
                tx.c.at <= t,
                tx.c.currency != currency,
            )
            .group_by(tx.c.currency)
        )
        found = {str(cur): (int(lo), int(hi)) for cur, lo, hi in conn.execute(stmt)}
        for cur, (lo, _) in found.items():
            fx.rate(cur, currency, EPOCH_DATE + timedelta(days=lo))
        return found

    def _day_rates(
        self, conn: Connection, days: Mapping[str, tuple[int, int]], fx: FxRates, currency: str
    ) -> Any:
        """Every day's rate into ``currency`` over the days of ``days``, so each
        transaction converts at its own date.

        PostgreSQL: a relation (cur, day, rate, neg) for an equality (hash) join, inlined
        as VALUES (codes are checked ISO codes, the rest numbers). SQLite would scan such
        a relation once per transaction, so there the rates become the connection's
        ``rc_fx(currency, day, is_payment)`` function for the next statements, and the
        relation returned is None."""
        table: dict[tuple[str, int], tuple[str, str]] = {}
        for cur, (lo, hi) in sorted(days.items()):
            check_currency(cur)
            for d in range(lo, hi + 1):
                rate = fx.rate(cur, currency, EPOCH_DATE + timedelta(days=d))
                table[(cur, d)] = (str(rate), str(-rate))
        if self._sqlite:

            def rc_fx(cur: object, day: object, payment: object) -> str | None:
                pair = table.get((str(cur), int(day)))  # type: ignore[call-overload]
                return None if pair is None else pair[0 if payment else 1]

            conn.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
                "rc_fx", 3, rc_fx, deterministic=True
            )
            return None
        rows = ", ".join(f"('{cur}', {d}, '{r}', '{n}')" for (cur, d), (r, n) in table.items())
        text = (
            "SELECT column1 AS cur, column2 AS day, CAST(column3 AS NUMERIC) AS rate, "
            f"CAST(column4 AS NUMERIC) AS neg FROM (VALUES {rows}) AS day_rates"
        )
        return (
            sa.text(text)
            .columns(
                sa.column("cur", sa.String()),
                sa.column("day", sa.Integer()),
                sa.column("rate", Exact()),
                sa.column("neg", Exact()),
            )
            .subquery("fxr")
        )

    def _baseline(self, conn: Connection, t: datetime, currency: str, fx: FxRates) -> LtvBaseline:
        """The LTV baseline: net payments (each converted at its own date) of the
        customers registered by ``t`` with a successful payment by ``t``, and their count.

        Every payment counts (whoever pays is a payer) except those of customers who
        register later, so the payments come from the daily cash totals (plus the
        transactions of ``t``'s own day); only refunds (few, found by kind) need to know
        whether their customer paid. No pass over every transaction."""
        tx, c, daily = self._schema.transactions, self._schema.customers, self._schema.cash_daily
        ops = self._ops
        other = tx.alias("paid_tx")  # the refunds' own transactions table is ``tx``
        paid = (
            sa.select(other.c.id)
            .where(
                other.c.customer_id == c.c.id,
                other.c.status == "succeeded",
                other.c.kind == "payment",
                other.c.at <= t,
            )
            .exists()
        )
        n = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(c).where(c.c.registered_at <= t, paid)
            ).scalar()
            or 0
        )
        if n == 0:
            return LtvBaseline(total=Money.zero(currency), paying_customers=0)
        today = moment_value(t) // _DAY_US
        succeeded = [tx.c.status == "succeeded", tx.c.at <= t]
        sums: list[tuple[str, int, Any, int]] = []  # (currency, day, amount, sign)
        for cur, d, value in conn.execute(
            sa.select(daily.c.currency, daily.c.day, daily.c.amount).where(
                daily.c.kind == "payment", daily.c.day < today
            )
        ):
            sums.append((cur, int(d), value, 1))
        parts: list[tuple[list[ColumnElement[bool]], Any, int]] = [
            # t's own day, up to t:
            ([*succeeded, tx.c.kind == "payment", tx.c.at_day == today], tx, 1),
            # payments of customers registered after t:
            (
                [
                    *succeeded,
                    tx.c.kind == "payment",
                    tx.c.customer_id.in_(sa.select(c.c.id).where(c.c.registered_at > t)),
                ],
                tx,
                -1,
            ),
            # refunds of the customers who count:
            (
                [*succeeded, tx.c.kind == "refund", c.c.registered_at <= t, paid],
                tx.join(c, c.c.id == tx.c.customer_id),
                -1,
            ),
        ]
        for conds, source, sign in parts:
            stmt = (
                sa.select(tx.c.currency, tx.c.at_day, ops.dsum(tx.c))
                .select_from(source)
                .where(*conds)
                .group_by(tx.c.currency, tx.c.at_day)
            )
            sums.extend((cur, int(d), value, sign) for cur, d, value in conn.execute(stmt))
        total = _ZERO
        for cur, d, value, sign in sums:
            amount = _dec(value)
            if not amount:
                continue
            if cur != currency:
                amount *= fx.rate(cur, currency, EPOCH_DATE + timedelta(days=d))
            total += amount if sign > 0 else -amount
        return LtvBaseline(total=Money(total, currency), paying_customers=n)

    def _high_value(
        self,
        t: datetime,
        currency: str,
        baseline: LtvBaseline,
        day_rates: Any,
        ids: Sequence[str] | None,
        *,
        foreign: bool,
    ) -> Any:
        """Ids of the customers whose LTV (net payments up to ``t``, each converted at its
        own date) exceeds the baseline exactly: ``ltv * paying_customers > total``.
        ``foreign``: some of those payments are in other currencies (see _day_rates)."""
        tx = self._schema.transactions
        ops = self._ops
        payment = tx.c.kind == "payment"
        conds = [tx.c.status == "succeeded", tx.c.at <= t]
        if ids is not None:
            conds.append(tx.c.customer_id.in_(list(ids)))
        source: Any = tx
        n = sa.literal(baseline.paying_customers, sa.Integer())
        total = sa.literal(baseline.total.amount, Exact())
        if self._sqlite:
            own_sign = sa.case(
                (sa.and_(tx.c.currency == currency, payment), 1),
                (tx.c.currency == currency, -1),
                else_=0,
            )
            own = ops.dsum(tx.c, sign=own_sign)
            others: ColumnElement[Any] = sa.literal_column("'0'")
            if foreign:
                factor = sa.func.rc_fx(tx.c.currency, tx.c.at_day, payment)
                others = sa.func.coalesce(
                    sa.func.rc_dsumx(tx.c.amount, factor), sa.literal_column("'0'")
                )
            test: ColumnElement[Any] = sa.func.rc_dover(own, others, n, total) == 1
        else:
            sign: ColumnElement[Any] = sa.case((payment, 1), else_=-1)
            if foreign:
                source = tx.outerjoin(
                    day_rates,
                    sa.and_(day_rates.c.cur == tx.c.currency, day_rates.c.day == tx.c.at_day),
                )
                converted = sa.case((payment, day_rates.c.rate), else_=day_rates.c.neg)
                sign = sa.func.coalesce(converted, sign)
            test = sa.func.sum(tx.c.amount * sign) * n > total
        return (
            sa.select(tx.c.customer_id)
            .select_from(source)
            .where(*conds)
            .group_by(tx.c.customer_id)
            .having(test)
        )

    def _scheduled(
        self, conn: Connection, t: datetime, horizon: datetime, ids: Sequence[str] | None
    ) -> set[str]:
        """Customers with a cancellation scheduled for the end of the billing period
        running at ``t`` that ends by ``horizon``: few rows, so the period end is
        computed here with :class:`~revcrm.BillingCycle` itself."""
        st = self._schema.states
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        stmt = sa.select(st.c.customer_id, st.c.anchor, st.c.cycle_count, st.c.cycle_unit).where(
            running, st.c.cancel_at_period_end, st.c.status.not_in(_ENDED)
        )
        if ids is not None:
            stmt = stmt.where(st.c.customer_id.in_(list(ids)))
        out: set[str] = set()
        for cid, anchor, count, unit in conn.execute(stmt):
            if cid in out:
                continue
            cycle = BillingCycle(int(count), CycleUnit(unit))
            if cycle.period_containing(_as_moment(anchor), t)[1] <= horizon:
                out.add(cid)
        return out

    def _scheduled_ends(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, datetime]:
        """Per customer, the earliest end of a billing period running at ``t`` for which a
        cancellation is scheduled (``pending_cancellation``; computed with BillingCycle)."""
        st = self._schema.states
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        stmt = sa.select(st.c.customer_id, st.c.anchor, st.c.cycle_count, st.c.cycle_unit).where(
            running, st.c.cancel_at_period_end, st.c.status.not_in(_ENDED)
        )
        if ids is not None:
            stmt = stmt.where(st.c.customer_id.in_(list(ids)))
        out: dict[str, datetime] = {}
        for cid, anchor, count, unit in conn.execute(stmt):
            end = BillingCycle(int(count), CycleUnit(unit)).period_containing(
                _as_moment(anchor), t
            )[1]
            if cid not in out or end < out[cid]:
                out[cid] = end
        return out

    def _service_facts(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, list[ServiceFacts]]:
        """The raw facts the cycle-aware Active rule reads, per customer: for each service
        active at ``t`` its cycle and current period (computed here with BillingCycle) and
        how far its (paid) invoices reach (one grouped pass over the invoice lines). The
        rule itself is ``revcrm.segments._rules.service_paid_up``."""
        s = self._schema
        st, inv, ln = s.states, s.invoices, s.lines
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        stmt = sa.select(
            st.c.customer_id, st.c.subscription_id, st.c.anchor, st.c.cycle_count, st.c.cycle_unit
        ).where(running, self._active_state(t))
        if ids is not None:
            stmt = stmt.where(st.c.customer_id.in_(list(ids)))
        rows = list(conn.execute(stmt))
        if not rows:
            return {}
        active = sa.select(st.c.subscription_id).where(running, self._active_state(t))
        if ids is not None:
            active = active.where(st.c.customer_id.in_(list(ids)))
        paid = sa.and_(inv.c.status == "paid", sa.or_(inv.c.paid_at.is_(None), inv.c.paid_at <= t))
        reach: dict[str, tuple[datetime | None, datetime | None]] = {}
        for sub_id, billed, paid_end in conn.execute(
            sa.select(
                ln.c.subscription_id,
                sa.func.max(ln.c.period_end),
                sa.func.max(sa.case((paid, ln.c.period_end), else_=None)),
            )
            .select_from(ln.join(inv, inv.c.id == ln.c.invoice_id))
            .where(
                ln.c.subscription_id.in_(active),
                ln.c.period_start.is_not(None),
                ln.c.period_start <= t,
                inv.c.issued_at <= t,
                inv.c.status.not_in(("draft", "void")),
            )
            .group_by(ln.c.subscription_id)
        ):
            reach[str(sub_id)] = (
                None if billed is None else _as_moment(billed),
                None if paid_end is None else _as_moment(paid_end),
            )
        cycles: dict[tuple[int, str], BillingCycle] = {}
        out: dict[str, list[ServiceFacts]] = defaultdict(list)
        for cid, sub_id, anchor, count, unit in sorted(rows, key=lambda r: (r[0], r[1])):
            key = (int(count), str(unit))
            cycle = cycles.get(key)
            if cycle is None:
                cycle = cycles[key] = BillingCycle(key[0], CycleUnit(key[1]))
            start, end = cycle.period_containing(_as_moment(anchor), t)
            billed, paid_end = reach.get(sub_id, (None, None))
            out[cid].append(
                ServiceFacts(
                    subscription_id=sub_id,
                    cycle=cycle,
                    period_start=start,
                    period_end=end,
                    billed_through=billed,
                    paid_through=paid_end,
                )
            )
        return out

    def _last_payments(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, datetime]:
        """Each customer's last successful payment up to ``t``."""
        tx = self._schema.transactions
        stmt = (
            sa.select(tx.c.customer_id, sa.func.max(tx.c.at))
            .where(tx.c.status == "succeeded", tx.c.kind == "payment", tx.c.at <= t)
            .group_by(tx.c.customer_id)
        )
        if ids is not None:
            stmt = stmt.where(tx.c.customer_id.in_(list(ids)))
        return {str(cid): _as_moment(at) for cid, at in conn.execute(stmt)}

    def _paid_up(
        self, conn: Connection, t: datetime, config: SegmentConfig, ids: Sequence[str] | None
    ) -> set[str]:
        """Customers with an active service whose current period is paid at ``t``, by the
        rule of ``revcrm.segments`` applied to the facts read here."""
        services = self._service_facts(conn, t, ids)
        if not services:
            return set()
        last = self._last_payments(conn, t, ids)
        return {
            cid
            for cid, facts in services.items()
            if any(service_paid_up(f, last.get(cid), t, config) for f in facts)
        }

    def _segment_conds(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        config: SegmentConfig,
        ids: Sequence[str] | None = None,
        wanted: Segment | None = None,
        baseline: LtvBaseline | None = None,
    ) -> dict[Segment, ColumnElement[bool]]:
        """Membership of each built-in segment at ``t`` as a condition on the customers
        table (the rules of ``revcrm.segments._rules.memberships``; the cycle-aware Active
        rule is applied in Python to the facts of ``_service_facts``). With ``ids``
        only those customers' conditions are meant to be true to the definition (the
        per-customer parts are computed for them alone). With ``wanted`` only that
        segment's condition is (the LTV baseline is computed only when it needs it, and
        not at all when the caller gives it as ``baseline``)."""
        s = self._schema
        c, st, sp, inv = s.customers, s.states, s.spans, s.invoices
        every = wanted is None or wanted is Segment.OTHER
        registered = c.c.registered_at <= t
        active_service = self._states_at(t, self._active_state(t), ids=ids)
        horizon = t + timedelta(days=config.at_risk_cancellation_days)
        risks = [
            self._overdue(t, ids),
            self._states_at(t, st.c.status.in_(_TROUBLED), ids=ids),
            self._states_at(
                t,
                st.c.status == "cancelled",
                st.c.ended_at > t,
                st.c.ended_at <= horizon,
                ids=ids,
            ),
        ]
        if every or wanted is Segment.AT_RISK:
            scheduled = self._scheduled(conn, t, horizon, ids)
            if scheduled:
                risks.append(c.c.id.in_(_literal_ids(scheduled)))
        high: ColumnElement[bool] = sa.false()
        if every or wanted is Segment.HIGH_VALUE:
            fx = self._rates(conn)
            if baseline is None or ids is None:
                days = self._payment_days(conn, t, currency, fx)
            else:
                days = self._payment_days_of(conn, t, currency, fx, ids)
            if baseline is None:
                baseline = self._ledger_baseline(conn, t, currency)
            if baseline is None:
                baseline = self._baseline(conn, t, currency, fx)
            if baseline.paying_customers:
                rates = self._day_rates(conn, days, fx, currency) if days else None
                above = self._high_value(t, currency, baseline, rates, ids, foreign=bool(days))
                exceeds: ColumnElement[bool] = c.c.id.in_(above)
                if baseline.total.amount < 0:
                    # Refunds outweigh payments: an LTV of zero (no cash at all) is above.
                    tx = s.transactions
                    cash = self._owners(tx, tx.c.status == "succeeded", tx.c.at <= t, ids=ids)
                    exceeds = sa.or_(exceeds, ~cash)
                high = sa.and_(active_service, exceeds)
        active: ColumnElement[bool] = sa.false()
        if config.active_payment_days is not None:
            since = t - timedelta(days=config.active_payment_days)
            active = sa.and_(active_service, self._paid(since, t, ids))
        elif every or wanted is Segment.ACTIVE:
            # The rule is cycle-aware: applied in Python to the facts (few per customer).
            paid_up = self._paid_up(conn, t, config, ids)
            if paid_up:
                active = c.c.id.in_(_literal_ids(paid_up))
        subscribed = self._owners(sp, sp.c.positive, sp.c.start_at <= t, ids=ids)
        started = self._owners(st, st.c.from_at <= t, ids=ids)
        invoiced = self._owners(
            inv, inv.c.issued_at <= t, inv.c.status.not_in(("draft", "void")), ids=ids
        )
        named: dict[Segment, ColumnElement[bool]] = {
            Segment.AT_RISK: sa.or_(*risks),
            Segment.HIGH_VALUE: high,
            Segment.NEW: c.c.registered_at >= t - timedelta(days=config.new_customer_days),
            Segment.ACTIVE: active,
            Segment.CHURNED: sa.and_(subscribed, ~active_service),
            Segment.NEVER_PURCHASED: ~sa.or_(started, invoiced, self._paid(None, t, ids)),
        }
        out = {seg: sa.and_(registered, cond) for seg, cond in named.items()}
        out[Segment.OTHER] = sa.and_(registered, ~sa.or_(*named.values()))
        return out

    def _service_filters(self, conn: Connection, q: CustomerQuery) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if q.status is not None:
            conds.append(self._status_cond(q.as_of, q.status))
        if q.product_id is not None:
            conds.append(self._product_cond(q.as_of, q.product_id))
        if q.segment is not None:
            segs = self._segment_conds(
                conn, q.as_of, q.currency, q.segment_config, wanted=q.segment
            )
            conds.append(segs[q.segment])
        return conds

    def _segment_flags(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        config: SegmentConfig,
        ids: Sequence[str] | None,
        baseline: LtvBaseline | None = None,
    ) -> sa.Select[Any]:
        """One row per registered customer (of ``ids``): its id and a 0/1 per named segment."""
        c = self._schema.customers
        conds = self._segment_conds(conn, t, currency, config, ids, baseline=baseline)
        flags = [sa.case((conds[seg], 1), else_=0).label(seg.value) for seg in _NAMED]
        stmt = sa.select(c.c.id, *flags).where(c.c.registered_at <= t)
        if ids is not None:
            stmt = stmt.where(c.c.id.in_(list(ids)))
        return stmt

    def _all_segments(
        self, conn: Connection, t: datetime, currency: str, config: SegmentConfig
    ) -> Iterator[frozenset[Segment]]:
        """The segments of every customer registered by ``t``, from one grouped pass over
        each table (states, invoices, transactions, spans, invoice lines) turned into each
        customer's facts and classified by ``revcrm.segments._rules.memberships`` (the one
        definition): a handful of scans in all, where one condition per segment
        would scan the same tables again and again."""
        s = self._schema
        c, st, inv, tx, sp = s.customers, s.states, s.invoices, s.transactions, s.spans
        ops = self._ops
        fx = self._rates(conn)
        days = self._payment_days(conn, t, currency, fx)

        def flag(cond: ColumnElement[bool]) -> ColumnElement[Any]:
            return sa.func.max(sa.case((cond, 1), else_=0))

        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        ending = sa.and_(st.c.status == "cancelled", st.c.ended_at > t)
        services: dict[str, tuple[int, datetime | None, int]] = {
            cid: (int(troubled), None if ends is None else _as_moment(ends), int(active))
            for cid, troubled, ends, active in conn.execute(
                sa.select(
                    st.c.customer_id,
                    sa.func.sum(sa.case((st.c.status.in_(_TROUBLED), 1), else_=0)),
                    sa.func.min(sa.case((ending, st.c.ended_at), else_=None)),
                    sa.func.sum(sa.case((self._active_state(t), 1), else_=0)),
                )
                .where(running)
                .group_by(st.c.customer_id)
            )
        }
        scheduled = self._scheduled_ends(conn, t, None)
        service_facts = self._service_facts(conn, t, None)
        unpaid = sa.or_(
            inv.c.status == "open",
            sa.and_(inv.c.status == "paid", inv.c.paid_at.is_not(None), inv.c.paid_at > t),
        )
        invoices = {
            cid: (int(overdue), int(issued))
            for cid, overdue, issued in conn.execute(
                sa.select(
                    inv.c.customer_id,
                    flag(sa.and_(unpaid, inv.c.due_date < t.date())),
                    flag(inv.c.status.not_in(("draft", "void"))),
                )
                .where(inv.c.issued_at <= t)
                .group_by(inv.c.customer_id)
            )
        }
        payment = tx.c.kind == "payment"
        own_sign = sa.case(
            (sa.and_(tx.c.currency == currency, payment), 1),
            (tx.c.currency == currency, -1),
            else_=0,
        )
        columns: list[ColumnElement[Any]] = [
            tx.c.customer_id,
            flag(payment),
            sa.func.max(sa.case((payment, tx.c.at), else_=None)),
            ops.dsum(tx.c, sign=own_sign),
        ]
        source: Any = tx
        if days:
            rates = self._day_rates(conn, days, fx, currency)
            if self._sqlite:
                factor = sa.func.rc_fx(tx.c.currency, tx.c.at_day, payment)
                columns.append(sa.func.rc_dsumx(tx.c.amount, factor))
            else:
                source = tx.outerjoin(
                    rates, sa.and_(rates.c.cur == tx.c.currency, rates.c.day == tx.c.at_day)
                )
                converted = sa.case((payment, rates.c.rate), else_=rates.c.neg)
                columns.append(sa.func.sum(tx.c.amount * converted))
        cash: dict[str, tuple[int, datetime | None, Decimal]] = {}
        stmt = (
            sa.select(*columns)
            .select_from(source)
            .where(tx.c.status == "succeeded", tx.c.at <= t)
            .group_by(tx.c.customer_id)
        )
        for row in conn.execute(stmt):
            cid, paid, last, own, *foreign = tuple(row)
            ltv = _dec(own) + (_dec(foreign[0]) if foreign else _ZERO)
            cash[cid] = (int(paid), None if last is None else _as_moment(last), ltv)
        subscribed = {
            cid: _as_moment(since)
            for cid, since in conn.execute(
                sa.select(sp.c.customer_id, sa.func.min(sp.c.start_at))
                .where(sp.c.positive, sp.c.start_at <= t)
                .group_by(sp.c.customer_id)
            )
        }
        registered = {
            cid: _as_moment(at)
            for cid, at in conn.execute(
                sa.select(c.c.id, c.c.registered_at).where(c.c.registered_at <= t)
            )
        }
        # The High Value baseline: net payments of the registered customers who paid.
        payers = [cash[cid][2] for cid in registered if cid in cash and cash[cid][0]]
        baseline = LtvBaseline(
            total=Money(sum(payers, _ZERO), currency), paying_customers=len(payers)
        )
        for cid, registered_at in registered.items():
            troubled, ends, active = services.get(cid, (0, None, 0))
            overdue, issued = invoices.get(cid, (0, 0))
            paid, last, ltv = cash.get(cid, (0, None, _ZERO))
            scheduled_end = scheduled.get(cid)
            if ends is None or (scheduled_end is not None and scheduled_end < ends):
                ends = scheduled_end
            facts = SegmentInputs(
                as_of=t,
                registered_at=registered_at,
                ltv=Money(ltv, currency),
                last_payment_at=last,
                active_services=active,
                troubled_services=troubled,
                overdue_invoices=overdue,
                next_cancellation_at=ends,
                subscriber_since=subscribed.get(cid),
                ordered=bool(cid in services or issued or paid),
                services=tuple(service_facts.get(cid, ())),
            )
            yield memberships(facts, config, baseline)

    def _ledger_baseline(self, conn: Connection, t: datetime, currency: str) -> LtvBaseline | None:
        """The LTV baseline from the ledger's cash entries (each converted at its own
        date when built): the net payments up to ``t`` of the customers registered by
        ``t`` with a payment by ``t``, and their count; None when the ledger does not
        hold it (another currency, or a customer lacking a rate: the other path raises
        as the pure function does)."""
        s = self._schema
        lc, c, ops = s.ledger_cash, s.customers, self._ops
        if not self._ledger_ready_cached(conn) or self._ledger_currency(conn) != currency:
            return None
        if not self._empty(conn, s.ledger_cash_missing):
            return None
        payers = (
            sa.select(lc.c.customer_id)
            .join(c, c.c.id == lc.c.customer_id)
            .where(lc.c.kind == "payment", lc.c.at <= t, c.c.registered_at <= t)
            .distinct()
        )
        n = int(
            conn.execute(sa.select(sa.func.count()).select_from(payers.subquery())).scalar() or 0
        )
        if n == 0:
            return LtvBaseline(total=Money.zero(currency), paying_customers=0)
        stmt = (
            sa.select(lc.c.kind, ops.dsum(lc.c, "reporting"))
            .where(
                lc.c.kind.in_(("payment", "refund")),
                lc.c.at <= t,
                lc.c.customer_id.in_(payers),
            )
            .group_by(lc.c.kind)
        )
        total = _ZERO
        for kind, value in conn.execute(stmt):
            total += _dec(value) if kind == "payment" else -_dec(value)
        return LtvBaseline(total=Money(total, currency), paying_customers=n)

    def ltv_baseline(self, *, as_of: date | datetime, currency: str) -> LtvBaseline:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)

        def run(conn: Connection) -> LtvBaseline:
            from_ledger = self._ledger_baseline(conn, t, currency)
            if from_ledger is not None:
                return from_ledger
            fx = self._rates(conn)
            self._payment_days(conn, t, currency, fx)  # MissingRateError as the pure function
            return self._baseline(conn, t, currency, fx)

        return self._run(False, run)

    def segment_counts(
        self, *, as_of: date | datetime, currency: str, config: SegmentConfig = DEFAULT_CONFIG
    ) -> SegmentCounts:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)

        def run(conn: Connection) -> SegmentCounts:
            members: Counter[Segment] = Counter()
            primary: Counter[Segment] = Counter()
            customers = 0
            for segs, n in Counter(self._all_segments(conn, t, currency, config)).items():
                for seg in segs:
                    members[seg] += n
                primary[next(p for p in config.precedence if p in segs)] += n
                customers += n
            return SegmentCounts(
                customers=customers,
                members=MappingProxyType({seg: members[seg] for seg in Segment}),
                primary=MappingProxyType({seg: primary[seg] for seg in Segment}),
                custom=MappingProxyType({}),
            )

        return self._run(False, run)

    def segments_of(
        self,
        customer_ids: Iterable[str],
        *,
        as_of: date | datetime,
        currency: str,
        config: SegmentConfig = DEFAULT_CONFIG,
        ltv_baseline: LtvBaseline | None = None,
    ) -> dict[str, frozenset[Segment]]:
        wanted = _id_list(customer_ids)
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)
        _check_baseline(ltv_baseline, currency)

        def run(conn: Connection) -> dict[str, frozenset[Segment]]:
            c = self._schema.customers
            unique = sorted(set(wanted))
            known = self._existing_ids(conn, "customer", unique)
            for cid in wanted:
                if cid not in known:
                    raise NotFoundError("customer", cid)
            found: dict[str, frozenset[Segment]] = {}
            for chunk in _chunks(unique):
                stmt = self._segment_flags(conn, t, currency, config, chunk, ltv_baseline)
                for row in conn.execute(stmt):
                    cid, *bits = tuple(row)
                    segs = {seg for seg, bit in zip(_NAMED, bits, strict=True) if bit}
                    found[cid] = frozenset(segs or {Segment.OTHER})
            del c
            return {cid: found.get(cid, frozenset()) for cid in wanted}

        return self._run(False, run)
