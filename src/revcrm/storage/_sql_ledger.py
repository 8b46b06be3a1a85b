"""The SQL store's ledger upkeep: the rows of the customers a write touches, rebuilt in the
write's own transaction by the engine's classifier (see ``_sql_ledger_build``).

* A write of a customer's subscriptions, invoices, transactions or credits rebuilds that
  customer's rows (``_ledger_refresh``); an FX write rebuilds the customers holding a
  subscription in a currency the written pairs convert into the reporting currency.
* The ledger depends on the store's policy, its reporting currency and its horizon (the
  end of the renewals generated for foreign subscriptions under the service-period FX
  rule, as ``analyse(horizon=)``). They are settings of the database; a change of any
  rebuilds every customer, in chunks, reporting progress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._cycles import add_months
from revcrm._money import FxRates, check_currency
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._sql_base import SQLBase, _day
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_ledger_build import build_rows

__all__ = ["LEDGER_CURRENCY_KEY", "LEDGER_HORIZON_KEY", "Progress", "SQLLedger"]

#: ``progress(step, done, total)``: a long rebuild's progress (customers done of total).
Progress = Callable[[str, int, int], None]

LEDGER_CURRENCY_KEY: Final = "ledger_currency"
LEDGER_HORIZON_KEY: Final = "ledger_horizon"
#: The reporting currency of a ledger built without one chosen (documented default).
DEFAULT_LEDGER_CURRENCY: Final = "USD"
#: Customers per chunk of a whole rebuild (bounds the memory of one analysis).
_REBUILD_CHUNK: Final = 2000


class SQLLedger(SQLBase):
    """Building and refreshing the ledger tables."""

    _progress: Progress | None = None

    # -- settings -----------------------------------------------------------------------

    def _ledger_ready(self, conn: Connection) -> bool:
        return sa.inspect(conn).has_table(self._schema.ledger_customers.name)

    def _ledger_currency(self, conn: Connection) -> str:
        return self._setting(conn, LEDGER_CURRENCY_KEY) or DEFAULT_LEDGER_CURRENCY

    def _ledger_horizon(self, conn: Connection) -> datetime:
        stored = self._setting(conn, LEDGER_HORIZON_KEY)
        if stored is None:
            return self._default_horizon(conn)
        return moment_from_value(int(stored))

    def _default_horizon(self, conn: Connection) -> datetime:
        """``analyse``'s default horizon over the stored records: a year after the last."""
        s = self._schema
        latest = [
            conn.execute(sa.select(sa.func.max(s.changes.c.at))).scalar(),
            conn.execute(sa.select(sa.func.max(s.invoices.c.issued_at))).scalar(),
            conn.execute(sa.select(sa.func.max(s.transactions.c.at))).scalar(),
        ]
        moments = [_moment(v) for v in latest if v is not None]
        base = max(moments) if moments else datetime(2000, 1, 1, tzinfo=UTC)
        return add_months(base, 12)

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
        report = progress if progress is not None else self._progress
        if self._setting(conn, LEDGER_CURRENCY_KEY) is None:
            self._put_setting(conn, LEDGER_CURRENCY_KEY, DEFAULT_LEDGER_CURRENCY)
        if self._setting(conn, LEDGER_HORIZON_KEY) is None:
            horizon = self._default_horizon(conn)
            self._put_setting(conn, LEDGER_HORIZON_KEY, str(moment_value(horizon)))
        for t in reversed(s.ledger_tables):
            conn.execute(t.delete())
        subs = s.subscriptions
        owners = [
            r[0]
            for r in conn.execute(
                sa.select(subs.c.customer_id).distinct().order_by(subs.c.customer_id)
            )
        ]
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

    def _ledger_refresh(self, conn: Connection, customer_ids: Iterable[str]) -> None:
        """Rebuild the rows of these customers (a write touched their records)."""
        ids = sorted(set(customer_ids))
        if not ids or not self._ledger_ready_cached(conn):
            return
        s = self._schema
        for chunk in _chunks(ids):
            for t in reversed(s.ledger_tables):
                conn.execute(t.delete().where(t.c.customer_id.in_(chunk)))
        for chunk in _chunks(ids, _REBUILD_CHUNK):
            self._ledger_insert(conn, chunk, None)

    def _ledger_rate_owners(self, conn: Connection, pairs: Iterable[tuple[str, str]]) -> set[str]:
        """The customers whose conversions written rates can change: those with a
        subscription in a currency one of ``pairs`` converts into the reporting one."""
        pairs = list(pairs)
        if not pairs or not self._ledger_ready_cached(conn):
            return set()
        currency = self._ledger_currency(conn)
        codes = sorted(
            {src if tgt == currency else tgt for src, tgt in pairs if currency in (src, tgt)}
            - {currency}
        )
        if not codes:
            return set()
        subs = self._schema.subscriptions
        stmt = sa.select(subs.c.customer_id).distinct().where(subs.c.currency.in_(codes))
        return {r[0] for r in conn.execute(stmt)}

    def _ledger_ready_cached(self, conn: Connection) -> bool:
        # Once the store checked its schema is the latest, the ledger tables exist.
        return self._ready or self._ledger_ready(conn)

    def _ledger_insert(
        self, conn: Connection, customer_ids: Sequence[str], fx: FxRates | None
    ) -> None:
        s = self._schema
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
        self._insert(conn, s.ledger_customers, rows.customers)
        self._insert(conn, s.ledger_steps, rows.steps)
        self._insert(conn, s.ledger_intervals, rows.intervals)

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
