"""The SQL store's dashboard: :func:`revcrm.metrics.compose_dashboard` over the store's
aggregates (MRR, closes, cash and paying customers from :class:`SQLMetrics`; customers
and churn from the ledger tables; renewals from the pure functions over the live
customers' subscriptions).

When the ledger covers the dashboard (its currency, horizon, no rate missing):

* customers at ``t``: a count of the ledger intervals holding ``t`` that count as a
  customer (``counted``, the engine's own answer stored at write time);
* churn over a period: the engine's churn over the customers who may have a new or churn
  movement in it (one stored with the natural grouping, or a group a period bound may
  split), with the customers at its start counted in SQL like the customers card (just
  before the start); every other customer only adds to that count, and the denominator
  grows with it one for one under each rule.

* renewals due in ``(t, h]``: the active and past-due states without a scheduled
  cancellation holding ``t`` (``ledger_renewals``, with their billing calendar), their
  next renewals after ``t`` computed at once by the one calendar rule
  (``_ledger._renewals``); their MRR is their streams' ledger steps live at ``t``
  (stored on the same rows), converted as the MRR card converts (native amounts at
  ``t``'s day's rate under the transaction-date FX rule).

Otherwise the pure functions run over the subscriptions of every customer with a span
left at the earliest moment the dashboard reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import attrs
import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._book import Book
from revcrm._calendar import local_moment, month_start, shift
from revcrm._ledger._walk import next_renewal_after
from revcrm._money import EXACT_CONTEXT, Money, check_currency
from revcrm._subscription import Subscription
from revcrm._time import ONE_DAY, as_of_moment
from revcrm.metrics import ChurnDenominator, ChurnRate, Dashboard, analyse, customer_churn_rate
from revcrm.metrics._churn import _rate
from revcrm.metrics._dashboard import (
    CashRevenue,
    DashboardInputs,
    check_trend_months,
    compose_dashboard,
    dashboard_inputs,
)
from revcrm.storage._codec import moment_value
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import _ZERO, _dec
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.storage._sql_metrics import SQLMetrics

__all__ = ["SQLDashboard"]

_THIRTY_DAYS = timedelta(days=30)
#: How far before a period's end ``START_30_DAY`` starts it (thirty days of the reporting
#: zone, an hour more across a DST change): the events read.
_CHURN_REACH = timedelta(days=31)


class SQLDashboard(SQLMetrics):
    """The dashboard of an SQL store."""

    def _live_subscriptions(self, conn: Connection, since: datetime) -> Book:
        """A book of the whole subscription history (and the rates) of every customer
        with a span running at or after ``since``: the subscription source's MRR ledger
        from ``since`` on, without the invoices, payments and credits."""
        sp = self._schema.spans
        live = (
            sa.select(sp.c.customer_id)
            .where(sa.or_(sp.c.end_at.is_(None), sp.c.end_at >= since))
            .distinct()
            .order_by(sp.c.customer_id)
        )
        return self._subscriptions_of(conn, [str(c) for (c,) in conn.execute(live)])

    def _counted_at(self, conn: Connection, t: datetime, *, inclusive: bool) -> int:
        """Customers counted at ``t`` (``inclusive``: changes at ``t`` count, else just
        before it), from the ledger intervals' stored ``counted``."""
        it = self._schema.ledger_intervals
        if inclusive:
            holds = sa.and_(it.c.start_at <= t, sa.or_(it.c.end_at.is_(None), it.c.end_at > t))
        else:
            holds = sa.and_(it.c.start_at < t, sa.or_(it.c.end_at.is_(None), it.c.end_at >= t))
        stmt = sa.select(sa.func.count()).select_from(it).where(holds, it.c.counted)
        return int(conn.execute(stmt).scalar() or 0)

    def _churn_candidates(self, conn: Connection, start: datetime, end: datetime) -> list[str]:
        """The customers who may have a new or churn movement in a period within
        ``[start, end)``: one of the natural grouping there, or a group a period bound
        may split (two events within the grouping window around a moment of the range),
        whose kinds only the engine's classifier over the period's bounds knows."""
        it = self._schema.ledger_intervals
        natural = sa.and_(
            it.c.start_at >= start, it.c.start_at < end, it.c.kind.in_(("new", "churn"))
        )
        split = sa.and_(
            it.c.joins_next_at.is_not(None), it.c.start_at < end, it.c.joins_next_at >= start
        )
        stmt = (
            sa.select(it.c.customer_id)
            .where(sa.or_(natural, split))
            .distinct()
            .order_by(it.c.customer_id)
        )
        return [str(c) for (c,) in conn.execute(stmt)]

    def _renewals_due(
        self, conn: Connection, t: datetime, horizon: datetime, currency: str
    ) -> tuple[int, Money]:
        """Services renewing in ``(t, horizon]`` and their MRR at ``t`` (see the module
        docstring), from the ledger's renewing rows holding ``t`` (at most one per
        subscription: its state then, within one step of its stream)."""
        rn = self._schema.ledger_renewals
        holding = sa.and_(rn.c.start_at <= t, sa.or_(rn.c.end_at.is_(None), rn.c.end_at > t))
        stmt = sa.select(
            rn.c.anchor_us,
            rn.c.months,
            rn.c.length_us,
            rn.c.measured,
            rn.c.currency,
            # Decoded only for the rows due (on SQLite the text; PostgreSQL's NUMERIC).
            sa.type_coerce(rn.c.amount, sa.Text) if self._sqlite else rn.c.amount,
        ).where(holding)
        rows = conn.execute(stmt).all()
        if not rows:
            return 0, Money.zero(currency)
        anchor, months, length_us = (
            np.fromiter((r[k] for r in rows), dtype=np.int64, count=len(rows)) for k in range(3)
        )
        t_us = np.full(len(rows), moment_value(t), dtype=np.int64)
        # ``SubscriptionState.next_renewal``'s rule, as the engine's ``renewing`` reads it.
        nxt = next_renewal_after(anchor, months, length_us, t_us)
        due = np.flatnonzero(nxt <= moment_value(horizon)).tolist()
        fixed = _ZERO
        native: dict[str, Decimal] = defaultdict(lambda: _ZERO)
        for i in due:
            _, _, _, measured, code, amount = rows[i]
            if amount is None:
                continue
            if measured:
                native[str(code)] = EXACT_CONTEXT.add(native[str(code)], _dec(amount))
            else:
                fixed = EXACT_CONTEXT.add(fixed, _dec(amount))
        if native:
            fx = self._ledger_rates(conn, set(native))
            for code, amount in sorted(native.items()):
                rate = fx.rate(code, currency, t.astimezone(UTC).date())
                fixed = EXACT_CONTEXT.add(fixed, EXACT_CONTEXT.multiply(amount, rate))
        return len(due), Money(fixed, currency)

    def _subscriptions_of(self, conn: Connection, ids: Sequence[str]) -> Book:
        head = self._head("subscription")
        subs: list[Subscription] = []
        for chunk in _chunks(ids, 5000):
            subs.extend(self._load(conn, "subscription", head.c.customer_id.in_(chunk)))
        return Book(subscriptions=tuple(sorted(subs, key=lambda r: r.id)), fx=self._rates(conn))

    def dashboard(
        self, *, as_of: date | datetime, currency: str, trend_months: int = 12
    ) -> Dashboard:
        """:func:`revcrm.metrics.compose_dashboard` over this store's aggregates: MRR,
        closes, cash and paying customers pushed down to SQL; customer churn, customers
        and renewals from the pure functions over the stored book (analysed once)."""
        t = as_of_moment(local_moment(as_of, self._policy.timezone), "as_of")
        check_currency(currency)
        check_trend_months(trend_months)
        zone = self._policy.timezone
        # Churn, customers and renewals read the subscriptions of the customers with any
        # span left at the earliest moment they look at (the month's start, or 30 days
        # back), less the grouping window and a day; everyone else has no say in them.
        grouping = self._policy.grouping_window or timedelta(0)
        since = min(month_start(t, zone), shift(t, -_THIRTY_DAYS, zone)) - grouping - ONE_DAY
        with self._snapshot():
            return compose_dashboard(
                _SQLInputs(self, currency, since),
                as_of=t,
                currency=currency,
                zone=self._policy.timezone,
                trend_months=trend_months,
            )


class _SQLInputs:
    """:class:`revcrm.metrics.DashboardInputs` of an SQL store."""

    def __init__(self, store: SQLDashboard, currency: str, since: datetime) -> None:
        self._store = store
        self._currency = currency
        self._since = since
        self._pure: DashboardInputs | None = None
        self._ledger: dict[datetime, bool] = {}  # whether the ledger covers reads up to

    def _book_inputs(self, horizon: datetime) -> DashboardInputs:
        if self._pure is None:
            s = self._store
            book = s._run(False, lambda conn: s._live_subscriptions(conn, self._since))
            a = analyse(book, currency=self._currency, policy=s.policy, horizon=horizon)
            self._pure = dashboard_inputs(book, a)
        return self._pure

    def mrr(self, at: datetime) -> Money:
        return self._store.mrr(at=at, currency=self._currency)

    def month_closes(self, start: datetime, end: datetime) -> Sequence[Money]:
        return [
            p.mrr for p in self._store.mrr_series(start=start, end=end, currency=self._currency)
        ]

    def cash_by_month(self, start: datetime, end: datetime) -> Sequence[CashRevenue]:
        return [
            CashRevenue(
                start=c.start,
                end=c.end,
                gross=c.gross,
                refunds=c.refunds,
                net=c.net,
                payments=c.payments,
            )
            for c in self._store.cash_by_month(start=start, end=end, currency=self._currency)
        ]

    def _covered(self, until: datetime) -> bool:
        if until not in self._ledger:
            self._ledger[until] = LedgerReads(self._store).covers(self._currency, until)
        return self._ledger[until]

    def customers(self, at: datetime) -> int:
        if not self._covered(at):
            return self._book_inputs(at).customers(at)
        s = self._store
        return s._run(False, lambda conn: s._counted_at(conn, at, inclusive=True))

    def paying_customers(self, at: datetime) -> int:
        return self._store.paying_customers(at=at)

    def churn(self, start: datetime, end: datetime) -> ChurnRate:
        if not self._covered(end):
            return self._book_inputs(end).churn(start, end)
        s = self._store

        # The period the rule reads: ``[start, end)``, or the thirty days before ``end``.
        thirty = s.policy.churn_denominator is ChurnDenominator.START_30_DAY
        lo = end - _CHURN_REACH if thirty else start

        def run(conn: Connection) -> ChurnRate:
            ids = s._churn_candidates(conn, lo, end)
            book = s._subscriptions_of(conn, ids)
            a = analyse(book, currency=self._currency, policy=s.policy, horizon=end)
            part = customer_churn_rate(a, start, end)
            at_start = s._counted_at(conn, part.start, inclusive=False)
            denominator = part.denominator + at_start - part.customers_at_start
            return attrs.evolve(
                part,
                customers_at_start=at_start,
                denominator=denominator,
                rate=_rate(part.churned, denominator),
            )

        return s._run(False, run)

    def renewals(self, at: datetime, horizon: datetime) -> tuple[int, Money]:
        if not self._covered(at):
            return self._book_inputs(horizon).renewals(at, horizon)
        s = self._store
        return s._run(False, lambda conn: s._renewals_due(conn, at, horizon, self._currency))
