"""The SQL store's ledger upkeep: the rows of the customers a write touches, rebuilt in the
write's own transaction by the engine's classifier (see ``_sql_ledger_build``).

* A write of a customer's subscriptions, invoices, transactions or credits rebuilds that
  customer's rows (``_ledger_refresh``); an FX write rebuilds the customers holding a
  subscription in a currency the written pairs convert into the reporting currency.
* The ledger depends on the store's policy, its reporting currency and its horizon (the
  end of the renewals generated for foreign subscriptions under the service-period FX
  rule, as ``analyse(horizon=)``). They are settings of the database; a change of any
  rebuilds every customer, in chunks, reporting progress.
* The horizon follows the records: two years after the latest record when first built,
  and when a write brings a record within a year of it, it moves to two years after that
  record and the customers with foreign subscriptions are rebuilt (under the
  service-period rule; nothing else depends on it). So MRR at any moment up to a year
  after the latest record equals the engine's with any later horizon.
* Schema 8: the service-state rows and the status intervals of a customer (from its
  subscriptions, invoices and the plans they name) are rebuilt with its MRR rows, on an
  invoice write, on a plan write (its customers), and, for the customers with an open
  scheduled cancellation (cut up to the horizon), when the horizon moves.
* Schema 9: the renewing rows (a state that may renew, with its billing calendar and its
  stream's MRR) are built with the MRR rows, from their steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._book import Book
from revcrm._cycles import add_months
from revcrm._money import FxRates, check_currency
from revcrm._records import CreditEntry, Invoice, Plan, Transaction
from revcrm._subscription import Subscription
from revcrm.metrics import FxDateRule
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._sql_base import SQLBase, _day
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_ledger_build import (
    build_cash_rows,
    build_renewal_rows,
    build_rows,
    build_service_rows,
)

__all__ = [
    "LEDGER_CURRENCY_KEY",
    "LEDGER_HORIZON_KEY",
    "NO_HORIZON",
    "LedgerTouch",
    "Progress",
    "SQLLedger",
]

#: ``progress(step, done, total)``: a long rebuild's progress (customers done of total).
Progress = Callable[[str, int, int], None]

LEDGER_CURRENCY_KEY: Final = "ledger_currency"
LEDGER_HORIZON_KEY: Final = "ledger_horizon"
#: The reporting currency of a ledger built without one chosen (documented default).
DEFAULT_LEDGER_CURRENCY: Final = "USD"
#: Customers per chunk of a whole rebuild (bounds the memory of one analysis).
_REBUILD_CHUNK: Final = 2000
#: The horizon is kept at least this many months after the latest record (twice that
#: when it moves), as ``analyse``'s default horizon is a year after it.
_HORIZON_MONTHS: Final = 12
#: The horizon of a ledger without records yet: before any record, so the first write
#: sets it.
NO_HORIZON: Final = datetime(1970, 1, 1, tzinfo=UTC)


@attrs.define
class LedgerTouch:
    """What a batch of writes asks of the ledger, rebuilt once at its end: the customers
    whose MRR rows change, and the latest moment written (the horizon follows it);
    ``cash``: whose cash rows change; ``services``: whose service and status rows change
    (besides those of ``customers``, which always do)."""

    customers: set[str] = attrs.field(factory=set)
    latest: datetime | None = None
    cash: set[str] = attrs.field(factory=set)
    services: set[str] = attrs.field(factory=set)

    def add(
        self,
        customers: Iterable[str],
        latest: datetime | None,
        cash: Iterable[str] = (),
        services: Iterable[str] = (),
    ) -> None:
        self.customers.update(customers)
        self.cash.update(cash)
        self.services.update(services)
        if latest is not None and (self.latest is None or latest > self.latest):
            self.latest = latest


@attrs.frozen
class _Owned:
    """A book's subscriptions, invoices, transactions and credit entries by customer, and
    its plans."""

    subscriptions: dict[str, list[Subscription]]
    transactions: dict[str, list[Transaction]]
    credits: dict[str, list[CreditEntry]]
    invoices: dict[str, list[Invoice]]
    plans: tuple[Plan, ...]

    @classmethod
    def of(cls, book: Book) -> _Owned:
        subs: dict[str, list[Subscription]] = defaultdict(list)
        txs: dict[str, list[Transaction]] = defaultdict(list)
        credits: dict[str, list[CreditEntry]] = defaultdict(list)
        invoices: dict[str, list[Invoice]] = defaultdict(list)
        for sub in book.subscriptions:
            subs[sub.customer_id].append(sub)
        for t in book.transactions:
            txs[t.customer_id].append(t)
        for c in book.credits:
            credits[c.customer_id].append(c)
        for inv in book.invoices:
            invoices[inv.customer_id].append(inv)
        return cls(dict(subs), dict(txs), dict(credits), dict(invoices), book.plans)


class SQLLedger(SQLBase):
    """Building and refreshing the ledger tables."""

    _ledger_progress: Progress | None = None

    # -- settings -----------------------------------------------------------------------

    def _ledger_ready(self, conn: Connection) -> bool:
        return sa.inspect(conn).has_table(self._schema.ledger_customers.name)

    def _services_ready(self, conn: Connection) -> bool:
        """Whether the service and status tables (schema 8) exist."""
        return self._ready or sa.inspect(conn).has_table(self._schema.ledger_status.name)

    def _ledger_currency(self, conn: Connection) -> str:
        return self._setting(conn, LEDGER_CURRENCY_KEY) or DEFAULT_LEDGER_CURRENCY

    def _ledger_horizon(self, conn: Connection) -> datetime:
        stored = self._setting(conn, LEDGER_HORIZON_KEY)
        return NO_HORIZON if stored is None else moment_from_value(int(stored))

    def ledger_horizon(self) -> datetime | None:
        """Where the ledger's renewals of foreign subscriptions end (None: no records yet)."""
        h = self._run(False, self._ledger_horizon)
        return None if h == NO_HORIZON else h

    def _ledger_latest_record(self, conn: Connection) -> datetime | None:
        """The latest moment among the stored records, as ``analyse``'s default horizon
        reads them: subscription changes, invoices, transactions."""
        s = self._schema
        found = [
            conn.execute(sa.select(sa.func.max(col))).scalar()
            for col in (s.changes.c.at, s.invoices.c.issued_at, s.transactions.c.at)
        ]
        moments = [_moment(v) for v in found if v is not None]
        return max(moments) if moments else None

    def ledger_currency(self) -> str:
        """The reporting currency the ledger tables hold MRR in."""
        return self._run(False, self._ledger_currency)

    def rebuild_ledger(
        self,
        *,
        currency: str | None = None,
        horizon: datetime | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Rebuild every customer's ledger rows (optionally in another reporting currency
        or up to another horizon), in one transaction, reporting ``progress``."""
        if currency is not None:
            check_currency(currency)

        def run(conn: Connection) -> None:
            if currency is not None:
                self._put_setting(conn, LEDGER_CURRENCY_KEY, currency)
            if horizon is not None:
                self._put_setting(conn, LEDGER_HORIZON_KEY, str(moment_value(horizon)))
            self._ledger_rebuild_all(conn, progress)

        self._run(True, run)

    # -- rebuilds -----------------------------------------------------------------------

    def _ledger_rebuild_all(self, conn: Connection, progress: Progress | None = None) -> None:
        """Every customer's rows from the records (migrations, policy and setting changes)."""
        s = self._schema
        report = progress if progress is not None else self._ledger_progress
        if self._setting(conn, LEDGER_CURRENCY_KEY) is None:
            self._put_setting(conn, LEDGER_CURRENCY_KEY, DEFAULT_LEDGER_CURRENCY)
        latest = self._ledger_latest_record(conn)
        if latest is not None and add_months(latest, _HORIZON_MONTHS) > self._ledger_horizon(conn):
            wanted = add_months(latest, 2 * _HORIZON_MONTHS)
            self._put_setting(conn, LEDGER_HORIZON_KEY, str(moment_value(wanted)))
        services = self._services_ready(conn)
        for t in reversed(s.ledger_tables if services else s.ledger_v7_tables):
            conn.execute(t.delete())
        owners = self._ledger_owners(conn, (s.subscriptions,))
        cash_owners = self._ledger_owners(conn, (s.transactions, s.credits))
        fx = self._ledger_rates(conn, None)
        total = len(owners)
        if report is not None:
            report("ledger", 0, total)
        done = 0
        for chunk in _chunks(owners, _REBUILD_CHUNK):
            self._ledger_insert(conn, chunk, fx)
            done += len(chunk)
            if report is not None:
                report("ledger", done, total)
        for chunk in _chunks(cash_owners, _REBUILD_CHUNK):
            self._ledger_insert_cash(conn, chunk, fx)
        if report is not None and cash_owners:
            report("cash", len(cash_owners), len(cash_owners))
        if services:  # else a migration to version 7 only
            self._ledger_rebuild_services(conn, report, fresh=True)

    def _ledger_rebuild_services(
        self, conn: Connection, progress: Progress | None = None, *, fresh: bool = False
    ) -> None:
        """Every customer's service and status rows (``fresh``: none are stored)."""
        s = self._schema
        report = progress if progress is not None else self._ledger_progress
        if not fresh:
            for t in self._ledger_service_tables:
                conn.execute(t.delete())
            # A ledger built at version 7 lacks the first-paid and renewing rows built
            # with its MRR rows.
            for t in self._ledger_mrr_later:
                conn.execute(t.delete())
            fx = self._ledger_rates(conn, None)
            for chunk in _chunks(self._ledger_owners(conn, (s.subscriptions,)), _REBUILD_CHUNK):
                self._ledger_insert(conn, chunk, fx, first_paid_only=True)
        owners = self._ledger_owners(conn, (s.subscriptions, s.invoices))
        for chunk in _chunks(owners, _REBUILD_CHUNK):
            self._ledger_insert_services(conn, chunk)
        if report is not None and owners:
            report("services", len(owners), len(owners))

    def _ledger_owners(
        self, conn: Connection, tables: Sequence[sa.Table], codes: Sequence[str] | None = None
    ) -> list[str]:
        """The customers owning rows of these tables (in these currencies), in id order."""
        found: set[str] = set()
        for t in tables:
            stmt = sa.select(t.c.customer_id).distinct()
            if codes is not None:
                stmt = stmt.where(t.c.currency.in_(codes))
            found.update(r[0] for r in conn.execute(stmt))
        return sorted(found)

    def _ledger_refresh(
        self,
        conn: Connection,
        customer_ids: Iterable[str],
        *,
        latest: datetime | None = None,
        cash: Iterable[str] = (),
        services: Iterable[str] = (),
        source: Book | None = None,
    ) -> None:
        """Rebuild the MRR, service and status rows of these customers (a write changed
        what they are built from), the cash rows of ``cash`` and the service and status
        rows of ``services``; ``latest``: the latest moment among the records written,
        which may move the horizon (and then the customers whose rows it ends are rebuilt
        too). ``source``: a book holding every record of the store (an import into an
        empty store), read instead of the tables."""
        if not self._ledger_ready_cached(conn):
            return
        customer_ids = set(customer_ids)
        mrr_more, service_more = self._ledger_advance(conn, latest, customer_ids)
        ids = sorted(customer_ids | mrr_more)
        cash_ids = sorted(set(cash))
        service_ids: list[str] = []
        if self._services_ready(conn):
            service_ids = sorted(set(ids) | set(services) | service_more)
        later = self._ledger_mrr_later if self._services_ready(conn) else ()
        for tables, chosen in (
            (self._ledger_mrr_tables + later, ids),
            (self._ledger_cash_tables, cash_ids),
            (self._ledger_service_tables, service_ids),
        ):
            for chunk in _chunks(chosen):
                for t in tables:
                    conn.execute(t.delete().where(t.c.customer_id.in_(chunk)))
        owned = None if source is None else _Owned.of(source)
        fx = None if source is None else source.fx
        for chunk in _chunks(ids, _REBUILD_CHUNK):
            self._ledger_insert(conn, chunk, fx, owned)
        for chunk in _chunks(cash_ids, _REBUILD_CHUNK):
            self._ledger_insert_cash(conn, chunk, fx, owned)
        for chunk in _chunks(service_ids, _REBUILD_CHUNK):
            self._ledger_insert_services(conn, chunk, owned)

    def _ledger_cash_entries(
        self, conn: Connection, kind: str, records: Sequence[Any], moved: set[str]
    ) -> None:
        """A transaction or credit write: only the written entries are rebuilt (an entry
        depends on its own record and its day's rate alone); a customer lacking a rate,
        or one a record moved from or to, is rebuilt whole."""
        if not records or not self._ledger_ready_cached(conn):
            return
        s = self._schema
        lm, lc = s.ledger_cash_missing, s.ledger_cash
        owners = sorted({r.customer_id for r in records})
        whole = set(moved)
        for chunk in _chunks(owners):
            stmt = sa.select(lm.c.customer_id).where(lm.c.customer_id.in_(chunk))
            whole.update(r[0] for r in conn.execute(stmt))
        single = [r for r in records if r.customer_id not in whole]
        kinds = ("payment", "refund") if kind == "transaction" else ("credit",)
        for part in _chunks(single):
            conn.execute(
                lc.delete().where(
                    lc.c.customer_id.in_(sorted({r.customer_id for r in part})),
                    lc.c.kind.in_(kinds),
                    lc.c.entry_id.in_([r.id for r in part]),
                )
            )
        if single:
            rows, missing = build_cash_rows(
                single if kind == "transaction" else [],
                single if kind == "credit" else [],
                self._ledger_rates(conn, {r.amount.currency for r in single}),
                currency=self._ledger_currency(conn),
                customer_ids=sorted({r.customer_id for r in single}),
                limbs=self._sqlite,
            )
            lacking = {m["customer_id"] for m in missing}
            self._insert(conn, lc, [r for r in rows if r["customer_id"] not in lacking])
            whole |= lacking
        if whole:
            self._ledger_refresh(conn, (), cash=whole)

    @property
    def _ledger_mrr_tables(self) -> tuple[sa.Table, ...]:
        s = self._schema
        return (s.ledger_intervals, s.ledger_steps, s.ledger_customers)

    @property
    def _ledger_mrr_later(self) -> tuple[sa.Table, ...]:
        """The tables of version 8 built with the MRR rows (from their steps)."""
        s = self._schema
        return (s.ledger_renewals, s.ledger_first_paid)

    @property
    def _ledger_cash_tables(self) -> tuple[sa.Table, ...]:
        s = self._schema
        return (s.ledger_cash_missing, s.ledger_cash)

    @property
    def _ledger_service_tables(self) -> tuple[sa.Table, ...]:
        s = self._schema
        return (
            s.ledger_overdue,
            s.ledger_status,
            s.ledger_reach,
            s.ledger_invoiced,
            s.ledger_services,
        )

    def _ledger_insert_services(
        self, conn: Connection, customer_ids: Sequence[str], source: _Owned | None = None
    ) -> None:
        """The service-state and status rows of these customers (none stored yet)."""
        s = self._schema
        if source is not None:
            subs = [sub for cid in customer_ids for sub in source.subscriptions.get(cid, ())]
            invoices = [inv for cid in customer_ids for inv in source.invoices.get(cid, ())]
            plans: Sequence[Plan] = source.plans
        else:
            subs = self._load(conn, "subscription", s.subscriptions.c.customer_id.in_(customer_ids))
            invoices = self._load(conn, "invoice", s.invoices.c.customer_id.in_(customer_ids))
            named = sorted({st.plan_id for sub in subs for st in sub.states if st.plan_id})
            plans = []
            for chunk in _chunks(named):
                plans.extend(self._load(conn, "plan", s.plans.c.id.in_(chunk)))
        if not subs and not invoices:
            return
        services, status, overdue, reach, invoiced = build_service_rows(
            subs,
            invoices,
            plans,
            customer_ids=customer_ids,
            horizon=self._ledger_horizon(conn),
        )
        self._insert(conn, s.ledger_services, services)
        self._insert(conn, s.ledger_reach, reach)
        self._insert(conn, s.ledger_invoiced, invoiced)
        self._insert(conn, s.ledger_status, status)
        self._insert(conn, s.ledger_overdue, overdue)

    def _ledger_insert_cash(
        self,
        conn: Connection,
        customer_ids: Sequence[str],
        fx: FxRates | None,
        source: _Owned | None = None,
        *,
        first_paid_only: bool = False,
    ) -> None:
        """The MRR rows of these customers (none stored yet); ``first_paid_only``: only
        their first-paid rows (a migration to version 8 of a version-7 ledger)."""
        s = self._schema
        if source is not None:
            txs = [t for cid in customer_ids for t in source.transactions.get(cid, ())]
            credits = [c for cid in customer_ids for c in source.credits.get(cid, ())]
        else:
            txs = self._load(conn, "transaction", s.transactions.c.customer_id.in_(customer_ids))
            credits = self._load(conn, "credit", s.credits.c.customer_id.in_(customer_ids))
        if not txs and not credits:
            return
        if fx is None:
            codes = {t.amount.currency for t in txs} | {c.amount.currency for c in credits}
            fx = self._ledger_rates(conn, codes)
        rows, missing = build_cash_rows(
            txs,
            credits,
            fx,
            currency=self._ledger_currency(conn),
            customer_ids=customer_ids,
            limbs=self._sqlite,
        )
        self._insert(conn, s.ledger_cash, rows)
        self._insert(conn, s.ledger_cash_missing, missing)

    def _ledger_advance(
        self, conn: Connection, latest: datetime | None, written: set[str]
    ) -> tuple[set[str], set[str]]:
        """Keep the horizon a year past ``latest``: when it is not, move it two years past
        and return the customers whose MRR rows it changes (foreign subscriptions under
        the service-period rule; a rare, larger write) and those whose service rows it
        changes (an open scheduled cancellation, cut up to the horizon)."""
        horizon = self._ledger_horizon(conn)
        if latest is None or add_months(latest, _HORIZON_MONTHS) <= horizon:
            return set(), set()
        wanted = add_months(latest, 2 * _HORIZON_MONTHS)
        self._put_setting(conn, LEDGER_HORIZON_KEY, str(moment_value(wanted)))
        if horizon == NO_HORIZON:
            return set(), set()
        st = self._schema.states
        scheduled = (
            sa.select(st.c.customer_id)
            .distinct()
            .where(st.c.to_at.is_(None), st.c.cancel_at_period_end)
        )
        service = {r[0] for r in conn.execute(scheduled)} - written
        if self._policy.fx_date is not FxDateRule.SERVICE_PERIOD_START:
            return set(), service
        subs = self._schema.subscriptions
        currency = self._ledger_currency(conn)
        stmt = sa.select(subs.c.customer_id).distinct().where(subs.c.currency != currency)
        return {r[0] for r in conn.execute(stmt)}, service

    def _ledger_refresh_rates(
        self,
        conn: Connection,
        pairs: Iterable[tuple[str, str]],
        touched: LedgerTouch | None = None,
        *,
        source: Book | None = None,
    ) -> None:
        """Rebuild the customers whose conversions written rates can change: those with a
        subscription (MRR rows) or a transaction or credit (cash rows) in a currency one of
        ``pairs`` converts into the reporting one; with ``touched`` (a batch's) too."""
        pairs = list(pairs)
        extra = touched if touched is not None else LedgerTouch()
        codes = self._ledger_rate_codes(conn, pairs)
        s = self._schema
        mrr = self._ledger_owners(conn, (s.subscriptions,), codes) if codes else []
        cash = self._ledger_owners(conn, (s.transactions, s.credits), codes) if codes else []
        self._ledger_refresh(
            conn,
            extra.customers | set(mrr),
            latest=extra.latest,
            cash=extra.cash | set(cash),
            services=extra.services,
            source=source,
        )

    def _ledger_rate_codes(self, conn: Connection, pairs: Sequence[tuple[str, str]]) -> list[str]:
        if not pairs or not self._ledger_ready_cached(conn):
            return []
        currency = self._ledger_currency(conn)
        return sorted(
            {src if tgt == currency else tgt for src, tgt in pairs if currency in (src, tgt)}
            - {currency}
        )

    def _ledger_ready_cached(self, conn: Connection) -> bool:
        # Once the store checked its schema is the latest, the ledger tables exist.
        return self._ready or self._ledger_ready(conn)

    def _ledger_insert(
        self,
        conn: Connection,
        customer_ids: Sequence[str],
        fx: FxRates | None,
        source: _Owned | None = None,
        *,
        first_paid_only: bool = False,
    ) -> None:
        """The MRR rows of these customers (none stored yet), with their first-paid and
        renewing rows; ``first_paid_only``: only those two (a migration to version 8 of a
        version-7 ledger)."""
        s = self._schema
        if source is not None:
            subs = [sub for cid in customer_ids for sub in source.subscriptions.get(cid, ())]
        else:
            subs = self._load(conn, "subscription", s.subscriptions.c.customer_id.in_(customer_ids))
        if not subs:
            return
        currency = self._ledger_currency(conn)
        if fx is None:
            fx = self._ledger_rates(conn, {sub.currency for sub in subs})
        rows = build_rows(
            subs,
            fx,
            currency=currency,
            policy=self._policy,
            horizon=self._ledger_horizon(conn),
            limbs=self._sqlite,
        )
        if not first_paid_only:
            self._insert(conn, s.ledger_customers, rows.customers)
            self._insert(conn, s.ledger_steps, rows.steps)
            self._insert(conn, s.ledger_intervals, rows.intervals)
        if self._services_ready(conn):  # else a migration to version 7, before 8
            self._insert(conn, s.ledger_first_paid, rows.first_paid)
            self._insert(conn, s.ledger_renewals, build_renewal_rows(subs, rows.steps))

    def _ledger_rebuild_renewals(self, conn: Connection, progress: Progress | None = None) -> None:
        """Every customer's renewing rows, from its subscriptions and its stored steps (a
        migration to version 9: the steps are as they were)."""
        s = self._schema
        st = s.ledger_steps
        report = progress if progress is not None else self._ledger_progress
        conn.execute(s.ledger_renewals.delete())
        owners = self._ledger_owners(conn, (s.subscriptions,))
        cols = [st.c.stream_id, st.c.start_at, st.c.end_at, st.c.measured, st.c.currency]
        for chunk in _chunks(owners, _REBUILD_CHUNK):
            subs = self._load(conn, "subscription", s.subscriptions.c.customer_id.in_(chunk))
            stmt = sa.select(*cols, st.c.amount).where(st.c.customer_id.in_(chunk))
            steps = [dict(r._mapping) for r in conn.execute(stmt)]
            self._insert(conn, s.ledger_renewals, build_renewal_rows(subs, steps))
        if report is not None and owners:
            report("renewals", len(owners), len(owners))

    def _ledger_rates(self, conn: Connection, codes: set[str] | None) -> FxRates:
        """The stored rates (``codes``: only those between these currencies and the
        reporting one, which are all ``FxRates.rate`` reads for them)."""
        t = self._schema.fx_rates
        stmt = sa.select(t.c.day, t.c.source, t.c.target, t.c.rate)
        if codes is not None:
            currency = self._ledger_currency(conn)
            foreign = sorted(codes - {currency})
            if not foreign:
                return FxRates.empty()
            stmt = stmt.where(
                sa.or_(
                    sa.and_(t.c.source.in_(foreign), t.c.target == currency),
                    sa.and_(t.c.source == currency, t.c.target.in_(foreign)),
                )
            )
        return FxRates.from_rates([(_day(d), a, b, r) for d, a, b, r in conn.execute(stmt)])


def _moment(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment_from_value(int(str(value)))
