"""Schema version 9: the daily cash totals and the spans' billing calendar are gone (read
by nothing), and the renewing rows carry their billing calendar and MRR.

A database left as a revcrm at version 8 wrote it (the calendar columns and month
indexes on the spans, the daily cash table, renewing rows holding encoded states)
migrates on SQLite and PostgreSQL: the spans keep their rows, the renewing rows are
rebuilt as a rebuild writes them, and the dashboard equals the in-memory store's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from revcrm._records import Transaction
from revcrm.storage import InMemoryStore, SQLStore
from revcrm.storage._schema import LATEST_VERSION
from revcrm.storage._sql_ledger_build import _cut
from revcrm.testing.contract import AS_OF, sample_book

_LEGACY_SPAN_COLUMNS = (
    ("anchor", "BIGINT"),
    ("cycle_count", "INTEGER"),
    ("cycle_unit", "VARCHAR(8)"),
    ("start_day", "INTEGER"),
    ("start_month", "INTEGER"),
    ("end_month", "INTEGER"),
    ("anchor_us", "BIGINT"),
    ("anchor_month", "INTEGER"),
    ("anchor_day", "INTEGER"),
    ("anchor_tod", "BIGINT"),
    ("cycle_months", "INTEGER"),
    ("cycle_us", "BIGINT"),
)


def _rows(store: SQLStore, table: sa.Table) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key))]


def _leave_at_8(store: SQLStore) -> None:
    """Make the store's database look as a revcrm at version 8 left it."""
    s = store._schema
    q = store.engine.dialect.identifier_preparer.quote
    p = s.prefix
    with store.engine.begin() as conn:
        conn.execute(s.schema_version.delete().where(s.schema_version.c.version > 8))
        for name, kind in _LEGACY_SPAN_COLUMNS:
            conn.exec_driver_sql(
                f"ALTER TABLE {q(s.spans.name)} ADD COLUMN {name} {kind} NOT NULL DEFAULT 0"
            )
        conn.exec_driver_sql(f"CREATE INDEX {p}span_start_month ON {q(s.spans.name)} (start_month)")
        conn.exec_driver_sql(f"CREATE INDEX {p}span_end_month ON {q(s.spans.name)} (end_month)")
        conn.exec_driver_sql(
            f"CREATE TABLE {p}cash_daily (day INTEGER NOT NULL, currency VARCHAR(3) NOT NULL,"
            " kind VARCHAR(16) NOT NULL, amount TEXT NOT NULL, count INTEGER NOT NULL,"
            " PRIMARY KEY (day, currency, kind))"
        )
        s.ledger_renewals.drop(conn)
        conn.exec_driver_sql(
            f"CREATE TABLE {p}ledger_renewals (customer_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " subscription_id TEXT NOT NULL, start_at BIGINT NOT NULL, end_at BIGINT,"
            " state TEXT NOT NULL, PRIMARY KEY (customer_id, seq))"
        )


def _check_migrates_from_8(store: SQLStore) -> None:
    book = sample_book()
    store.create_schema()
    store.import_book(book)
    s = store._schema
    spans = _rows(store, s.spans)
    renewals = _rows(store, s.ledger_renewals)
    assert spans
    assert renewals
    _leave_at_8(store)
    fresh = SQLStore(store.engine, prefix=s.prefix)
    assert fresh.schema_version() == 8
    heard: list[tuple[str, int, int]] = []
    assert fresh.migrate(progress=lambda *a: heard.append(a)) == LATEST_VERSION == 9
    owners = len({sub.customer_id for sub in book.subscriptions})
    assert heard == [("renewals", owners, owners)]
    with fresh.engine.connect() as conn:
        inspector = sa.inspect(conn)
        columns = {c["name"] for c in inspector.get_columns(s.spans.name)}
        indexes = {i["name"] for i in inspector.get_indexes(s.spans.name)}
        assert not inspector.has_table(f"{s.prefix}cash_daily")
    assert columns == {c.name for c in s.spans.columns}
    assert indexes == {i.name for i in s.spans.indexes}
    assert _rows(fresh, s.spans) == spans  # kept, not rebuilt
    assert _rows(fresh, s.ledger_renewals) == renewals  # as the write path built them
    memory = InMemoryStore()
    memory.import_book(book)
    for at in (AS_OF, AS_OF - timedelta(days=45)):
        got = fresh.dashboard(as_of=at, currency="USD", trend_months=2)
        assert got == memory.dashboard(as_of=at, currency="USD", trend_months=2)
    # Writes and deletes after the migration (no daily totals to keep).
    payment = Transaction(
        id="t_after_9",
        customer_id=book.customers[0].id,
        kind="payment",
        status="succeeded",
        amount=book.transactions[0].amount,
        method="card",
        at=datetime(2024, 5, 2, tzinfo=UTC),
    )
    fresh.transactions.upsert(payment)
    memory.transactions.upsert(payment)
    fresh.subscriptions.upsert_many(book.subscriptions)
    assert fresh.dashboard(as_of=AS_OF, currency="USD") == memory.dashboard(
        as_of=AS_OF, currency="USD"
    )
    victim = book.customers[0].id
    assert fresh.customers.delete(victim, cascade=True) == memory.customers.delete(
        victim, cascade=True
    )
    assert fresh.dashboard(as_of=AS_OF, currency="USD") == memory.dashboard(
        as_of=AS_OF, currency="USD"
    )
    for t in s.ledger_tables:
        assert all(r[0] != victim for r in _rows(fresh, t))


def test_a_version_8_sqlite_database_migrates(tmp_path: Any) -> None:
    store = SQLStore(f"sqlite:///{tmp_path}/revcrm.db")
    try:
        _check_migrates_from_8(store)
    finally:
        store.close()


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[SQLStore]:
    store = SQLStore(postgres_url, prefix=f"m{uuid.uuid4().hex[:10]}_")
    yield store
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {store.prefix}cash_daily")
    store.drop_schema()
    store.close()


@pytest.mark.postgres
def test_a_version_8_postgres_database_migrates(pg_store: SQLStore) -> None:
    _check_migrates_from_8(pg_store)


def test_a_renewing_state_is_cut_where_its_step_changes() -> None:
    d = [datetime(2024, m, 1, tzinfo=UTC) for m in range(1, 8)]
    a = {"start_at": d[1], "end_at": d[2]}
    b = {"start_at": d[3], "end_at": None}
    assert _cut(d[0], d[5], [a, b]) == [
        (d[0], d[1], None),
        (d[1], d[2], a),
        (d[2], d[3], None),
        (d[3], d[5], b),
    ]
    assert _cut(d[0], None, [a]) == [(d[0], d[1], None), (d[1], d[2], a), (d[2], None, None)]
    assert _cut(d[4], None, [a, b]) == [(d[4], None, b)]
    assert _cut(d[2], d[3], [a, b]) == [(d[2], d[3], None)]
    assert _cut(d[0], d[1], []) == [(d[0], d[1], None)]
