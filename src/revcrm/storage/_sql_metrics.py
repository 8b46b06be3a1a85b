"""The SQL store's metric aggregates: MRR at a moment and series, cash by month,
paying customers and customer flow (the dashboard over them: ``_sql_dashboard``).

Every figure is a plain aggregation over the ledger tables
(:class:`~revcrm.storage._sql_ledger_queries.LedgerReads`) whenever the ledger covers the
read: kept in the asked currency, its horizon not before the latest moment asked, no
customer in scope lacking a rate. Otherwise the stored records are loaded and the one
definition answers: the engine's analysis (:func:`revcrm.metrics.analyse`) or the pure
functions it is checked against (:func:`revcrm.metrics.mrr`,
:func:`revcrm.metrics.subscription_mrr`, ``cash_by_period``). No rule of the billing
calendar or the FX dates is restated in SQL here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._book import Book
from revcrm._money import Money, check_currency
from revcrm._records import Transaction
from revcrm._subscription import Subscription
from revcrm._time import as_of_moment
from revcrm.errors import ValidationError
from revcrm.metrics import MrrPoint, analyse, mrr, subscription_mrr
from revcrm.metrics._dashboard import cash_by_period
from revcrm.storage import _reads as ref
from revcrm.storage._memory import _id_list
from revcrm.storage._query import CashMonth, CustomerFlow
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_ledger import SQLLedger
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.storage._sql_segments import SQLSegments

__all__ = ["SQLMetrics"]

_ONE_MICRO: Final = timedelta(microseconds=1)


def _paying_ids(subs: Iterable[Subscription], t: datetime, policy: Any) -> set[str]:
    """Customers with MRR above zero at ``t`` (the pure definition the contract checks)."""
    return {s.customer_id for s in subs if subscription_mrr(s, t, policy=policy).amount > 0}


class SQLMetrics(SQLSegments):
    """MRR, series, cash, customer flow and the dashboard as SQL aggregates."""

    def _ledger_reads(self) -> LedgerReads:
        # Every SQL store is also an SQLLedger (SQLCore); this class only reads it.
        return LedgerReads(cast(SQLLedger, self))

    # -- the records the one definition reads when the ledger does not cover a read --------

    def _subscription_book(
        self, conn: Connection, ids: Sequence[str] | None, moments: Sequence[datetime] = ()
    ) -> Book:
        """The subscriptions (of these customers) and the rates, as a book; with
        ``moments``, only the subscriptions with MRR at one of them (the stored spans, a
        materialisation of the subscriptions' MRR, say which: the others add nothing to
        a figure at those moments, and loading records is the cost of this path)."""
        head, sp = self._head("subscription"), self._schema.spans
        where: list[Any] = []
        if moments:
            live = sa.or_(*(self._contains(t) for t in moments))
            where.append(head.c.id.in_(sa.select(sp.c.subscription_id).where(sp.c.positive, live)))
        subs: list[Subscription] = []
        for chunk in [None] if ids is None else list(_chunks(ids)):
            conds = where if chunk is None else [*where, head.c.customer_id.in_(chunk)]
            subs.extend(self._load(conn, "subscription", sa.and_(sa.true(), *conds)))
        return Book(subscriptions=tuple(sorted(subs, key=lambda s: s.id)), fx=self._rates(conn))

    # -- MRR at a moment --------------------------------------------------------------------

    def mrr(
        self, *, at: date | datetime, currency: str, customer_ids: Iterable[str] | None = None
    ) -> Money:
        t = as_of_moment(at, "at")
        check_currency(currency)
        ids = None if customer_ids is None else sorted(set(_id_list(customer_ids)))
        from_ledger = self._ledger_reads().mrr_if_covered(t, currency, ids)
        if from_ledger is None:
            return self._engine_mrr(t, currency, ids)
        value, lacking = from_ledger
        return value + self._engine_mrr(t, currency, lacking) if lacking else value

    def _engine_mrr(self, t: datetime, currency: str, ids: Sequence[str] | None) -> Money:
        """MRR (of ``ids``) by the pure function over the stored subscriptions (the ledger
        does not cover the read, or these customers lack a rate): it converts, and so
        needs, only the rates at ``t``."""

        def run(conn: Connection) -> Money:
            book = self._subscription_book(conn, ids, [t])
            return mrr(book, at=t, currency=currency, policy=self._policy, customer_ids=ids)

        return self._run(False, run)

    # -- series -----------------------------------------------------------------------------

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
        if levels is None:
            levels = self._engine_series(closes, currency)
        return tuple(
            MrrPoint(start=p[0], end=p[1], mrr=Money(v, currency))
            for p, v in zip(months, levels, strict=True)
        )

    def _engine_series(self, closes: Sequence[datetime], currency: str) -> list[Decimal]:
        """MRR just before each close by the engine's analysis of the stored subscriptions
        (horizon at the last close, as ``mrr_series`` of the function API): it converts
        every movement of the history, so it needs every rate of it, as the in-memory
        store's series does."""

        def run(conn: Connection) -> list[Decimal]:
            book = self._subscription_book(conn, None)
            analysis = analyse(book, currency=currency, policy=self._policy, horizon=closes[-1])
            return [analysis.mrr_before(c).amount for c in closes]

        return self._run(False, run)

    # -- cash -------------------------------------------------------------------------------

    def cash_by_month(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[CashMonth, ...]:
        a, b = ref.reporting_range(start, end, self._policy.timezone)
        check_currency(currency)
        months = ref.month_bounds(a, b, self._policy.timezone)
        if not months:
            return ()
        bounds = [months[0][0], *(m[1] for m in months)]

        def run(conn: Connection) -> tuple[CashMonth, ...]:
            sums = self._ledger_cash(conn, bounds, currency)
            if sums is None:
                sums = self._engine_cash(conn, bounds, currency, None)
            gross, refunds, counts = sums
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

    def _ledger_cash(
        self, conn: Connection, bounds: Sequence[datetime], currency: str
    ) -> tuple[list[Decimal], list[Decimal], list[int]] | None:
        """Gross, refunds and payment counts per period from the ledger's cash entries
        (:meth:`LedgerReads.cash_sums`); the customers lacking a rate for an entry (who
        have none in the table) from their own transactions. None when the ledger is kept
        in another currency."""
        reads = self._ledger_reads()
        if not reads.keeps(conn, currency):
            return None
        gross, refunds, counts, lacking = reads.cash_sums(conn, bounds)
        if lacking:
            g, r, c = self._engine_cash(conn, bounds, currency, lacking)
            for i in range(len(gross)):
                gross[i] += g[i]
                refunds[i] += r[i]
                counts[i] += c[i]
        return gross, refunds, counts

    def _engine_cash(
        self,
        conn: Connection,
        bounds: Sequence[datetime],
        currency: str,
        ids: Sequence[str] | None,
    ) -> tuple[list[Decimal], list[Decimal], list[int]]:
        """The pure cash figures (``cash_by_period``) over the stored successful
        transactions (of these customers) in the range: each converted at its own date,
        so only the rates of the entries in range are needed."""
        tx = self._schema.transactions
        conds = [tx.c.status == "succeeded", tx.c.at >= bounds[0], tx.c.at < bounds[-1]]
        found: list[Transaction] = []
        for chunk in [None] if ids is None else list(_chunks(ids)):
            where = (
                sa.and_(*conds) if chunk is None else sa.and_(*conds, tx.c.customer_id.in_(chunk))
            )
            found.extend(self._load(conn, "transaction", where))
        book = Book(fx=self._rates(conn))
        cash = cash_by_period(found, list(bounds), currency=currency, book=book)
        return (
            [c.gross.amount for c in cash],
            [c.refunds.amount for c in cash],
            [c.payments for c in cash],
        )

    # -- customers --------------------------------------------------------------------------

    def paying_customers(self, *, at: date | datetime) -> int:
        t = as_of_moment(at, "at")
        from_ledger = self._ledger_reads().paying_if_covered(t)
        if from_ledger is None:
            return self._engine_paying(t, None)
        count, lacking = from_ledger
        return count + self._engine_paying(t, lacking) if lacking else count

    def _engine_paying(self, t: datetime, ids: Sequence[str] | None) -> int:
        """Paying customers (of ``ids``) by the pure MRR of the stored subscriptions."""

        def run(conn: Connection) -> int:
            book = self._subscription_book(conn, ids, [t])
            return len(_paying_ids(book.subscriptions, t, self._policy))

        return self._run(False, run)

    def customer_flow(self, *, start: date | datetime, end: date | datetime) -> CustomerFlow:
        a, b = as_of_moment(start, "start"), as_of_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        from_ledger = self._ledger_reads().flow_if_covered(a, b)
        if from_ledger is None:
            return self._engine_flow(a, b, None)
        flow, lacking = from_ledger
        if not lacking:
            return flow
        more = self._engine_flow(a, b, lacking)  # other customers: the counts add up
        return flow.plus(more)

    def _engine_flow(self, a: datetime, b: datetime, ids: Sequence[str] | None) -> CustomerFlow:
        """The flow (of ``ids``) by the pure MRR of the stored subscriptions at ``a``, ``b``."""

        def run(conn: Connection) -> CustomerFlow:
            subs = self._subscription_book(conn, ids, [a, b]).subscriptions
            at_a, at_b = _paying_ids(subs, a, self._policy), _paying_ids(subs, b, self._policy)
            return CustomerFlow.of_sets(a, b, at_a, at_b)

        return self._run(False, run)
