"""The SQL store: SQLAlchemy Core 2 over SQLite (embedded default) or PostgreSQL.

Design notes (details in docs/storage.md):

* Units of work. Every public call runs in one database transaction; ``with
  store.transaction():`` makes the calls inside it one transaction (per thread), and
  each write inside it is a savepoint, so a failed call leaves the block usable. On
  SQLite write units start with ``BEGIN IMMEDIATE`` (writers queue on the busy timeout
  instead of failing to upgrade a read lock); on PostgreSQL rows about to change are
  locked with ``SELECT ... FOR UPDATE`` and multi-statement reads run at REPEATABLE READ.
* Writes are decided in Python first (references, external ids, versions, fingerprints)
  and then written in bulk, so a batch either fails before writing or writes everything.
* Exact money: PostgreSQL sums ``NUMERIC`` natively; on SQLite, money is decimal text
  and the few aggregate functions (exact sum, sum of products, a sortable key) are
  registered on each connection and run inside SQLite's query engine.
* MRR pushdown: every subscription write materialises its spans (see ``_spans``), so
  MRR, series, counts and the customer list are aggregates over indexed tables.

Modules by job: ``_sql_db`` (the database object: engine, units of work, locks),
``_sql_decimal`` (exact money in SQL), ``_sql_base`` (state and record reads),
``_sql_migrate`` (schema and derived tables), ``_sql_write`` (writes), ``_sql_segments``
and ``_sql_customers`` (the customer list and segments), ``_sql_metrics`` and ``_sql_dashboard`` (metric
aggregates), ``_sql_delete`` (deletes) and ``_sql_repos`` (the repositories).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from revcrm.metrics import MetricsPolicy
from revcrm.storage._sql_core import SQLCore
from revcrm.storage._sql_decimal import decimal_key
from revcrm.storage._sql_repos import (
    SQLCredits,
    SQLCustomers,
    SQLFx,
    SQLInvoices,
    SQLPlans,
    SQLProducts,
    SQLSubscriptions,
    SQLTransactions,
)

__all__ = ["SQLStore", "decimal_key"]


class SQLStore(SQLCore):
    """A :class:`~revcrm.storage.Store` in a SQL database through SQLAlchemy Core 2.

    ``SQLStore("sqlite:///revcrm.db")`` (the embedded default; ``"sqlite://"`` keeps it in
    memory), ``SQLStore("postgresql+psycopg://user@host/db")``, or
    ``SQLStore(engine)`` to live in the host application's own database. Every table
    name starts with ``prefix``. Call :meth:`create_schema` once (it is idempotent) and
    :meth:`migrate` after upgrading revcrm.

    ``policy`` decides the MRR materialised on every subscription write; opening a
    database with another policy than the one it was built with raises
    :class:`~revcrm.errors.PolicyError` until :meth:`migrate` rebuilds the spans.

    ``cursor_secret`` signs listing cursors (random per store unless given: processes
    serving one listing pass the same one). ``wal`` puts an SQLite file in WAL mode at
    :meth:`create_schema` (default: only when the store created the engine; a host's
    engine is never switched unless asked). On a host's engine revcrm's SQLite settings
    hold only for revcrm's own units of work (see docs/storage.md).
    """

    def __init__(
        self,
        url_or_engine: str | sa.URL | Engine,
        *,
        prefix: str = "revcrm_",
        policy: MetricsPolicy | None = None,
        busy_timeout: float = 30.0,
        cursor_secret: bytes | str | None = None,
        wal: bool | None = None,
    ) -> None:
        super().__init__(
            url_or_engine,
            prefix=prefix,
            policy=policy,
            busy_timeout=busy_timeout,
            cursor_secret=cursor_secret,
            wal=wal,
        )
        self.customers = SQLCustomers(self, "customer")
        self.products = SQLProducts(self, "product")
        self.plans = SQLPlans(self, "plan")
        self.subscriptions = SQLSubscriptions(self, "subscription")
        self.invoices = SQLInvoices(self, "invoice")
        self.transactions = SQLTransactions(self, "transaction")
        self.credits = SQLCredits(self, "credit")
        self.fx = SQLFx(self)

    @classmethod
    def from_url(cls, url: str | sa.URL, **options: Any) -> SQLStore:
        return cls(url, **options)

    @classmethod
    def from_engine(cls, engine: Engine, **options: Any) -> SQLStore:
        return cls(engine, **options)
