"""What only the SQL store has: schema versions and migrations, table prefixes, host
engines, driver-error conversion, exact storage types, indexes and lazy import."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from revcrm import BillingCycle, Customer, Money, Subscription, Transaction
from revcrm.crm import CustomerStatus
from revcrm.errors import PolicyError, StorageError, ValidationError
from revcrm.metrics import MetricsPolicy, mrr
from revcrm.storage import InMemoryStore, SQLStore
from revcrm.storage._codec import (
    encode_customer,
    encode_subscription,
    encode_transaction,
    fingerprint,
    search_folds,
    to_limbs,
)
from revcrm.storage._schema import LATEST_VERSION
from revcrm.storage._sql import decimal_key
from revcrm.testing.contract import AS_OF, assert_same_book, sample_book

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/revcrm.db"


def test_schema_version_and_idempotent_create(db: str) -> None:
    store = SQLStore(db)
    assert store.schema_version() == 0
    assert store.create_schema() == LATEST_VERSION == 9
    assert store.create_schema() == 9  # idempotent
    assert store.migrate() == 9
    assert store.schema_version() == LATEST_VERSION
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT version, description FROM revcrm_schema_version ORDER BY version")
        ).all()
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert mode == "wal"
    store.close()


def test_using_a_store_before_its_schema_exists_says_what_to_do(db: str) -> None:
    store = SQLStore(db)
    with pytest.raises(StorageError, match=r"call create_schema\(\) or migrate\(\)"):
        store.customers.count()
    store.migrate(to=1)
    with pytest.raises(StorageError, match="version 1"):
        store.customers.count()
    with pytest.raises(ValidationError):
        store.migrate(to=LATEST_VERSION + 1)


def test_forward_migration_backfills_the_derived_spans(db: str) -> None:
    store = SQLStore(db)
    store.migrate(to=1)
    customer = Customer(id="c", registered_at=T0, name="Old Row")
    sub = Subscription.start(
        id="s", customer_id="c", at=T0, price=Money("30", "USD"), cycle=BillingCycle.QUARTERLY
    )
    head, changes = encode_subscription(sub)
    row = encode_customer(customer)
    # Rows as a revcrm at schema version 1 wrote them (no spans table yet).
    with store.engine.begin() as conn:
        schema = store._schema
        conn.execute(
            schema.customers.insert(),
            [{**row, **search_folds(customer), "version": 1, "digest": fingerprint(row)}],
        )
        conn.execute(
            schema.subscriptions.insert(),
            [{**head, "version": 1, "digest": fingerprint(head, changes)}],
        )
        conn.execute(schema.changes.insert(), changes)
        payment = Transaction(
            id="t",
            customer_id="c",
            kind="payment",
            status="succeeded",
            amount=Money("30", "USD"),
            method="card",
            at=T0,
        )
        tx_row = encode_transaction(payment)
        limbs = dict(
            zip([f"amount_l{k}" for k in range(7)], to_limbs(payment.amount.amount), strict=True)
        )
        conn.execute(
            schema.transactions.insert(),
            [
                {
                    **tx_row,
                    **limbs,
                    "at_day": 19723,
                    "version": 1,
                    "digest": fingerprint(tx_row),
                }
            ],
        )
    assert store.migrate() == LATEST_VERSION
    assert store.mrr(at=AS_OF, currency="USD") == Money("10", "USD")
    (january,) = store.cash_by_month(start=T0, end=datetime(2024, 2, 1, tzinfo=UTC), currency="USD")
    assert (january.gross, january.payments) == (Money("30", "USD"), 1)
    assert store.subscriptions.get("s") == sub
    assert store.customers.get_versioned("c").version == 1


def test_migration_from_version_4_materialises_current_states(db: str) -> None:
    book = sample_book()
    old = SQLStore(db)
    old.create_schema()
    old.import_book(book)
    # Leave the database as a revcrm at version 4 did: no current-state column.
    with old.engine.begin() as conn:
        versions = old._schema.schema_version
        conn.execute(versions.delete().where(versions.c.version >= 5))
        conn.exec_driver_sql("ALTER TABLE revcrm_subscriptions DROP COLUMN current_state")
    assert old.schema_version() == 4
    store = SQLStore(db)
    with pytest.raises(StorageError, match="version 4"):
        store.subscriptions.count()
    assert store.migrate() == LATEST_VERSION
    memory = InMemoryStore()
    memory.import_book(book)
    ids = [s.id for s in book.subscriptions]
    assert ids
    assert store.subscriptions.current_states(ids) == memory.subscriptions.current_states(ids)
    with store.engine.connect() as conn:
        empty = conn.exec_driver_sql(
            "SELECT count(*) FROM revcrm_subscriptions WHERE current_state IS NULL"
        ).scalar()
    assert empty == 0


def test_migration_from_version_5_indexes_invoice_lines_by_subscription(db: str) -> None:
    book = sample_book()
    old = SQLStore(db)
    old.create_schema()
    old.import_book(book)
    # Leave the database as a revcrm at version 5 did: no index of lines by subscription.
    with old.engine.begin() as conn:
        versions = old._schema.schema_version
        conn.execute(versions.delete().where(versions.c.version >= 6))
        conn.exec_driver_sql("DROP INDEX revcrm_line_subscription")
    assert old.schema_version() == 5
    store = SQLStore(db)
    with pytest.raises(StorageError, match="version 5"):
        store.customers.count()
    assert store.migrate() == LATEST_VERSION
    with store.engine.connect() as conn:
        names = {i["name"] for i in sa.inspect(conn).get_indexes("revcrm_invoice_lines")}
        plan = " ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT max(period_end) FROM revcrm_invoice_lines "
                "WHERE subscription_id = 's'"
            )
        )
    assert "revcrm_line_subscription" in names
    assert "revcrm_line_subscription" in plan
    memory = InMemoryStore()
    memory.import_book(book)
    ids = [c.id for c in book.customers]
    assert store.segments_of(ids, as_of=AS_OF, currency="USD") == memory.segments_of(
        ids, as_of=AS_OF, currency="USD"
    )


def test_current_states_without_a_materialised_state_replay_the_history(db: str) -> None:
    book = sample_book()
    store = SQLStore(db)
    store.create_schema()
    store.import_book(book)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE revcrm_subscriptions SET current_state = NULL")
    memory = InMemoryStore()
    memory.import_book(book)
    ids = [s.id for s in book.subscriptions]
    assert store.subscriptions.current_states(ids) == memory.subscriptions.current_states(ids)


def test_migration_from_version_2_backfills_the_service_states(db: str) -> None:
    book = sample_book()
    old = SQLStore(db)
    old.create_schema()
    old.import_book(book)
    # Leave the database as a revcrm at version 2 did: the same records, spans and cash,
    # no states table and no version 3.
    with old.engine.begin() as conn:
        versions = old._schema.schema_version
        conn.execute(versions.delete().where(versions.c.version >= 3))
        old._schema.states.drop(conn)
        conn.exec_driver_sql("DROP INDEX revcrm_inv_unpaid")
        conn.exec_driver_sql("DROP INDEX revcrm_txn_refund")
    assert old.schema_version() == 2
    store = SQLStore(db)
    with pytest.raises(StorageError, match="version 2"):
        store.customers.count()
    assert store.migrate() == LATEST_VERSION
    memory = InMemoryStore()
    memory.import_book(book)
    ids = [c.id for c in book.customers]
    for at in (AS_OF, datetime(2023, 6, 1, tzinfo=UTC)):
        assert store.segments_of(ids, as_of=at, currency="USD") == memory.segments_of(
            ids, as_of=at, currency="USD"
        )
        for status in CustomerStatus:
            page = store.customers.page(as_of=at, currency="USD", status=status, limit=100)
            pure = memory.customers.page(as_of=at, currency="USD", status=status, limit=100)
            assert page == pure
    assert sum(store.segment_counts(as_of=AS_OF, currency="USD").members.values()) > 0
    with store.engine.connect() as conn:
        inspector = sa.inspect(conn)
        names = {
            i["name"]
            for t in ("invoices", "transactions")
            for i in inspector.get_indexes(f"revcrm_{t}")
        }
    assert {"revcrm_inv_unpaid", "revcrm_txn_refund"} <= names


def test_a_newer_schema_is_refused(db: str) -> None:
    store = SQLStore(db)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(
            store._schema.schema_version.insert().values(
                version=99, description="future", applied_at=T0
            )
        )
    fresh = SQLStore(db)
    with pytest.raises(StorageError, match="newer than this revcrm"):
        fresh.customers.count()
    with pytest.raises(StorageError, match="newer"):
        fresh.migrate()


def test_another_policy_needs_a_rebuild(db: str) -> None:
    book = sample_book()
    chartmogul = SQLStore(db)
    chartmogul.create_schema()
    chartmogul.import_book(book)
    policy = MetricsPolicy.stripe()
    stripe = SQLStore(db, policy=policy)
    with pytest.raises(PolicyError, match="migrate"):
        stripe.mrr(at=AS_OF, currency="USD")
    stripe.migrate()  # rebuilds the spans under the Stripe conventions
    at = datetime(2024, 6, 16, tzinfo=UTC)  # after c2's cancellation was recorded
    assert stripe.mrr(at=at, currency="USD") == mrr(book, at=at, currency="USD", policy=policy)
    assert stripe.mrr(at=at, currency="USD") != mrr(book, at=at, currency="USD")
    with pytest.raises(PolicyError):
        SQLStore(db).customers.count()


def test_prefixes_keep_stores_apart_inside_the_hosts_database(db: str) -> None:
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id TEXT PRIMARY KEY, note TEXT)")
        conn.exec_driver_sql("INSERT INTO customers VALUES ('host-1', 'the host''s own row')")
    first = SQLStore(engine, prefix="crm_")
    second = SQLStore(engine, prefix="crm2_")
    for store in (first, second):
        store.create_schema()
    first.import_book(sample_book())
    assert first.customers.count() == 4
    assert second.customers.count() == 0
    second.drop_schema()
    first.close()  # the host's engine is not disposed of: it is the host's
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT note FROM customers").scalar() == "the host's own row"
        names = set(sa.inspect(conn).get_table_names())
    assert "crm_customers" in names
    assert not any(n.startswith("crm2_") for n in names)
    assert_same_book(first.book(), sample_book())


@pytest.mark.parametrize("prefix", ["", "1abc", "a-b", "x" * 31, "a b", 'a"; DROP'])
def test_bad_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(ValidationError):
        SQLStore("sqlite://", prefix=prefix)


def test_urls() -> None:
    with pytest.raises(ValidationError):
        SQLStore("mysql://user@localhost/db")
    with pytest.raises(ValidationError):
        SQLStore("not a url")
    pg = SQLStore("postgresql://user@127.0.0.1:1/db")  # no connection is made yet
    assert pg.engine.url.drivername == "postgresql+psycopg"
    assert "secret" not in repr(SQLStore("postgresql://user:secret@127.0.0.1:1/db"))


def test_driver_errors_become_storage_errors_with_the_cause(db: str) -> None:
    store = SQLStore(db)
    store.create_schema()
    store.import_book(sample_book())
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE revcrm_credits")
    with pytest.raises(StorageError) as err:
        store.credits.balance("c1", "USD")
    assert isinstance(err.value.__cause__, sa.exc.OperationalError)
    with pytest.raises(StorageError):
        store.import_book(sample_book())
    unreachable = SQLStore("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(StorageError) as err:
        unreachable.customers.count()
    assert isinstance(err.value.__cause__, sa.exc.OperationalError)


def test_money_is_stored_as_exact_text_on_sqlite(db: str) -> None:
    store = SQLStore(db)
    store.create_schema()
    store.customers.upsert(Customer(id="c", registered_at=T0))
    amount = "98765432109876543210.0123456789012345678901234567890123456789"
    sub = Subscription.start(
        id="s", customer_id="c", at=T0, price=Money(amount, "EUR"), cycle=BillingCycle.MONTHLY
    )
    store.subscriptions.upsert(sub)
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT price, typeof(price), at FROM revcrm_subscription_changes"
        ).one()
    assert stored[0] == amount
    assert stored[1] == "text"
    assert stored[2] == 1_704_067_200_000_000  # microseconds since 1970 UTC: sorts in time order
    assert str(store.subscriptions.get("s").history[0].price.amount) == amount  # type: ignore[union-attr]
    assert store.mrr(at=AS_OF, currency="EUR") == Money(amount, "EUR")


def test_queries_use_their_indexes(db: str) -> None:
    store = SQLStore(db)
    store.create_schema()
    inspector = sa.inspect(store.engine)
    indexed = {
        table: {tuple(ix["column_names"]) for ix in inspector.get_indexes(f"revcrm_{table}")}
        for table in (
            "customers",
            "subscriptions",
            "transactions",
            "credits",
            "invoices",
            "subscription_spans",
        )
    }
    assert ("name_fold", "id") in indexed["customers"]
    assert ("email_fold", "id") in indexed["customers"]
    assert ("registered_at", "id") in indexed["customers"]
    assert ("customer_id", "at") in indexed["transactions"]
    assert ("at", "id") in indexed["transactions"]
    assert ("currency",) in indexed["transactions"]
    assert ("customer_id", "currency", "at") in indexed["credits"]
    assert ("customer_id", "start_at") in indexed["subscription_spans"]
    assert ("start_at",) in indexed["subscription_spans"]
    with store.engine.connect() as conn:
        plan = " ".join(
            str(r[-1])
            for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM revcrm_customers ORDER BY name_fold, id LIMIT 51"
            )
        )
        per_customer = " ".join(
            str(r[-1])
            for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT max(at) FROM revcrm_transactions WHERE customer_id = 'c' AND at <= 'x'"
            )
        )
    assert "revcrm_cus_name" in plan
    assert "revcrm_txn_customer" in per_customer


@given(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
)
def test_decimal_sort_keys_order_like_the_numbers(a: Decimal, b: Decimal) -> None:
    ka, kb = decimal_key(a), decimal_key(b)
    assert (ka < kb) == (a < b)
    assert (ka == kb) == (a == b)


def test_import_without_sqlalchemy_installed() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "import revcrm.storage as s\n"
        "store = s.InMemoryStore()\n"
        "try:\n    s.SQLStore\nexcept ImportError:\n    print('lazy')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "lazy"


def test_two_connections_on_one_sqlite_file_see_each_others_commits(db: str) -> None:
    first = SQLStore(db)
    first.create_schema()
    second = SQLStore(db)
    with first.transaction():
        first.customers.upsert(Customer(id="a", registered_at=T0))
        assert second.customers.find("a") is None  # not committed yet: never a dirty read
    assert second.customers.find("a") is not None
    first.close()
    second.close()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[SQLStore]:
    store = SQLStore(postgres_url, prefix=f"s{uuid.uuid4().hex[:12]}_")
    store.create_schema()
    yield store
    store.drop_schema()
    store.close()


@pytest.mark.postgres
def test_postgres_column_types(pg: SQLStore) -> None:
    with pg.engine.connect() as conn:
        columns = {
            c["name"]: c["type"] for c in sa.inspect(conn).get_columns(f"{pg.prefix}transactions")
        }
        collation = conn.execute(
            sa.text(
                "SELECT collation_name FROM information_schema.columns WHERE table_name = :t AND column_name = 'id'"
            ),
            {"t": f"{pg.prefix}customers"},
        ).scalar()
    assert isinstance(columns["amount"], sa.Numeric)
    assert isinstance(columns["at"], sa.TIMESTAMP)
    assert columns["at"].timezone
    assert collation == "C"


@pytest.mark.postgres
def test_postgres_two_connections_see_only_commits(pg: SQLStore, postgres_url: str) -> None:
    other = SQLStore(postgres_url, prefix=pg.prefix)
    with pg.transaction():
        pg.customers.upsert(Customer(id="a", registered_at=T0))
        assert other.customers.find("a") is None
    assert other.customers.find("a") is not None
    other.close()


@pytest.mark.postgres
def test_postgres_driver_errors_are_converted(pg: SQLStore) -> None:
    with pg.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {pg.prefix}credits")
    with pytest.raises(StorageError) as err:
        pg.credits.count()
    assert isinstance(err.value.__cause__, sa.exc.ProgrammingError)


def test_an_update_never_sets_the_key_of_a_row(tmp_path: Path) -> None:
    """Setting a referenced key, even to itself, makes SQLite check every referencing row
    (an unindexed scan of invoice lines and transactions per subscription update): one
    service change cost 100 ms at 100k customers. No UPDATE revcrm issues sets ``id``."""
    store = SQLStore(f"sqlite:///{tmp_path / 'u.db'}")
    store.create_schema()
    store.import_book(sample_book())
    statements: list[str] = []

    def seen(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        s1 = store.subscriptions.get("s1")
        store.subscriptions.upsert(attrs.evolve(s1, details=(("server", "web-2"),)))
        store.customers.upsert(attrs.evolve(store.customers.get("c1"), name="Renamed"))
        store.transactions.upsert(attrs.evolve(store.transactions.get("t1"), method="paypal"))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
        store.close()
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert updates, statements
    for statement in updates:
        head, _, _ = statement.partition(" WHERE ")
        assert '"id" =' not in head, statement
        assert " id =" not in head, statement
