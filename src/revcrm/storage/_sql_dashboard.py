"""The SQL store's dashboard: :func:`revcrm.metrics.compose_dashboard` over the store's
aggregates (MRR, closes, cash and paying customers from :class:`SQLMetrics`; churn,
customers and renewals from the pure functions over the live customers' subscriptions).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._book import Book
from revcrm._calendar import local_moment, month_start, shift
from revcrm._money import Money, check_currency
from revcrm._subscription import Subscription
from revcrm._time import ONE_DAY, as_of_moment
from revcrm.metrics import ChurnRate, Dashboard, analyse
from revcrm.metrics._dashboard import (
    CashRevenue,
    DashboardInputs,
    check_trend_months,
    compose_dashboard,
    dashboard_inputs,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_metrics import SQLMetrics

__all__ = ["SQLDashboard"]

_THIRTY_DAYS = timedelta(days=30)


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
        ids = [str(c) for (c,) in conn.execute(live)]
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

    def customers(self, at: datetime) -> int:
        return self._book_inputs(at).customers(at)

    def paying_customers(self, at: datetime) -> int:
        return self._store.paying_customers(at=at)

    def churn(self, start: datetime, end: datetime) -> ChurnRate:
        return self._book_inputs(end).churn(start, end)

    def renewals(self, at: datetime, horizon: datetime) -> tuple[int, Money]:
        return self._book_inputs(horizon).renewals(at, horizon)
