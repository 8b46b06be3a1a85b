"""The SQL store's reliability rules (issues 11.4 and 12): a host's engine keeps its own
settings, bad options and lost races are revcrm errors, ``lock`` serialises units on
PostgreSQL, and ``scrub`` leaves no erased value in the SQLite files."""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from revcrm import BillingCycle, Book, Customer, Money, Product, Subscription, Transaction
from revcrm.errors import StorageError, TransientError, ValidationError
from revcrm.storage import SQLStore
from revcrm.storage._schema import LATEST_VERSION
from revcrm.testing.contract import sample_book

AS_OF = datetime(2024, 6, 20, 12, tzinfo=UTC)


# -- a host's engine keeps its settings (11.4) ------------------------------------------------


class _Base(DeclarativeBase):
    pass


class _Panel(_Base):
    __tablename__ = "panel_users"
    id: Mapped[int] = mapped_column(primary_key=True)


class _Service(_Base):
    __tablename__ = "panel_services"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("panel_users.id"))


def _host_insert(engine: sa.Engine, service_id: int) -> None:
    """What the host's ORM did before revcrm came: a service whose user row is missing
    (its tables rely on SQLite's default of foreign keys off)."""
    with Session(engine) as session:
        session.add(_Service(id=service_id, user_id=999))
        session.commit()


def _pragmas(engine: sa.Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("foreign_keys", "secure_delete", "journal_mode", "busy_timeout")
        }


@pytest.mark.parametrize("pool", ["queue", "static"])
def test_a_host_engine_keeps_its_connection_settings(tmp_path: Path, pool: str) -> None:
    if pool == "static":
        engine = sa.create_engine(
            "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = sa.create_engine(f"sqlite:///{tmp_path}/panel.db")
    _Base.metadata.create_all(engine)
    _host_insert(engine, 1)
    settings_before = _pragmas(engine)

    store = SQLStore(engine)
    store.create_schema()
    store.import_book(sample_book())
    assert store.customers.page(as_of=AS_OF, currency="USD").items
    with store.transaction():
        store.customers.upsert(Customer(id="h1", registered_at=AS_OF, name="Host user"))
    store.customers.delete("h1")
    store.scrub()

    _host_insert(engine, 2)  # raised IntegrityError once revcrm had used the connection
    assert _pragmas(engine) == settings_before
    assert settings_before["journal_mode"] != "wal"  # WAL only when asked for
    store.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM panel_services")).scalar() == 2


def test_revcrm_units_on_a_host_engine_still_enforce_references(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/panel.db")
    store = SQLStore(engine)
    store.create_schema()
    store.import_book(sample_book())
    with store.connection() as conn:  # a revcrm unit: its own settings
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_wal_is_an_explicit_opt_in_on_a_host_engine(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/panel.db")
    SQLStore(engine, wal=True).create_schema()
    assert _pragmas(engine)["journal_mode"] == "wal"
    own = SQLStore(f"sqlite:///{tmp_path}/own.db")
    own.create_schema()
    assert _pragmas(own.engine)["journal_mode"] == "wal"  # its own file: WAL by default
    own.close()


# -- options and paths ------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [math.nan, -1, math.inf, -0.5, True, "30", 10**9])
def test_busy_timeout_must_be_a_sane_number(timeout: object) -> None:
    with pytest.raises(ValidationError) as err:
        SQLStore("sqlite://", busy_timeout=timeout)  # type: ignore[arg-type]
    assert err.value.field == "busy_timeout"


def test_create_schema_in_a_missing_folder_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "revcrm.db"
    store = SQLStore(f"sqlite:///{path}")
    with pytest.raises(ValidationError) as err:
        store.create_schema()
    assert str(path) in str(err.value)
    with pytest.raises(StorageError):  # any other use: a revcrm error, not SQLAlchemy's
        store.customers.count()


@pytest.mark.parametrize("secret", [b"short", "", 42])
def test_cursor_secret_is_checked(secret: object) -> None:
    with pytest.raises(ValidationError):
        SQLStore("sqlite://", cursor_secret=secret)  # type: ignore[arg-type]


def test_stores_sharing_a_cursor_secret_accept_each_others_cursors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    one = SQLStore(url, cursor_secret="a secret shared by every worker")
    one.create_schema()
    one.import_book(sample_book())
    two = SQLStore(url, cursor_secret="a secret shared by every worker")
    first = one.customers.page(as_of=AS_OF, currency="USD", limit=2)
    assert first.next_cursor is not None
    rest = two.customers.page(as_of=None, currency="USD", limit=2, cursor=first.next_cursor)
    assert [r.id for r in rest] == ["c1", "c2"]
    with pytest.raises(ValidationError):  # a worker with its own random key refuses it
        SQLStore(url).customers.page(as_of=None, currency="USD", cursor=first.next_cursor)


def test_version_3_databases_learn_the_services_product(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/v3.db"
    old = SQLStore(url)
    old.migrate(to=3)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with old.engine.begin() as conn:  # a version 3 table has no product column
        conn.exec_driver_sql("ALTER TABLE revcrm_service_states DROP COLUMN product_id")
    book = Book.of(
        customers=[Customer(id="a", registered_at=t0, name="A")],
        products=[Product(id="p1", name="Hosting")],
        subscriptions=[
            Subscription.start(
                id="s",
                customer_id="a",
                at=t0,
                price=Money("5", "USD"),
                cycle=BillingCycle.MONTHLY,
                product_id="p1",
            )
        ],
    )
    store = SQLStore(url)
    assert store.migrate() == LATEST_VERSION
    store.import_book(book)
    rows = store.customers.page(as_of=AS_OF, currency="USD", product_id="p1")
    assert [r.id for r in rows] == ["a"]


# -- scrub: nothing erased left in the SQLite files --------------------------------------------


def test_scrub_leaves_no_erased_value_in_the_sqlite_files(tmp_path: Path) -> None:
    db = tmp_path / "erase.db"
    store = SQLStore(f"sqlite:///{db}")
    store.create_schema()
    secret_email = "victim-4a1f@example.com"
    secret_name = "Victim Fourafone"
    book = sample_book()
    victim = attrs.evolve(
        book.customers[0],
        id="cv",
        external_id=None,
        email=secret_email,
        name=secret_name,
        username="victim4a1f",
    )
    store.import_book(book)
    store.customers.upsert(victim)
    # Overwritten: the old value must go; deleted: the whole record must go.
    store.customers.upsert(attrs.evolve(victim, email="x@example.com", name="Someone"))
    other = attrs.evolve(
        victim, id="cw", email="gone-77@example.com", name="Gone Seventyseven", username="gone77"
    )
    store.customers.upsert(other)
    store.customers.delete("cw")
    reader = SQLStore(f"sqlite:///{db}")  # the application keeps connections open
    assert reader.customers.count() == store.customers.count()
    store.scrub()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("erase.db")]
    assert files
    for needle in (secret_email, secret_name, "gone-77@example.com", "Gone Seventyseven"):
        for path in files:
            assert needle.encode() not in path.read_bytes(), (needle, path.name)
            assert needle.casefold().encode() not in path.read_bytes(), (needle, path.name)
    assert store.customers.get("cv").name == "Someone"
    reader.close()
    store.close()


# -- PostgreSQL: lost races and locks -----------------------------------------------------------


@pytest.fixture
def pg_pair(postgres_url: str) -> Iterator[tuple[SQLStore, SQLStore]]:
    prefix = f"r{uuid.uuid4().hex[:12]}_"
    one = SQLStore(postgres_url, prefix=prefix)
    one.create_schema()
    one.import_book(sample_book())
    two = SQLStore(postgres_url, prefix=prefix)
    try:
        yield one, two
    finally:
        two.close()
        one.drop_schema()
        one.close()


def _renamed(store: SQLStore, cid: str, name: str) -> None:
    store.customers.upsert(attrs.evolve(store.customers.get(cid), name=name))


@pytest.mark.postgres
def test_a_deadlock_is_a_transient_error_and_rolls_everything_back(
    pg_pair: tuple[SQLStore, SQLStore],
) -> None:
    one, two = pg_pair
    both = threading.Barrier(2, timeout=20)
    errors: dict[str, BaseException] = {}

    def unit(store: SQLStore, first: str, second: str, tag: str) -> None:
        try:
            with store.transaction():
                _renamed(store, first, f"{tag} first")
                both.wait()
                with contextlib.suppress(TransientError):  # the outermost block still fails
                    _renamed(store, second, f"{tag} second")
        except BaseException as e:
            errors[tag] = e

    threads = [
        threading.Thread(target=unit, args=(one, "c1", "c2", "A")),
        threading.Thread(target=unit, args=(two, "c2", "c1", "B")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1, errors
    ((loser, error),) = errors.items()
    assert isinstance(error, TransientError)
    winner = "B" if loser == "A" else "A"
    names = {one.customers.get(c).name for c in ("c1", "c2")}
    assert names == {f"{winner} first", f"{winner} second"}  # nothing of the loser's kept


@pytest.mark.postgres
def test_lock_serialises_two_connections(pg_pair: tuple[SQLStore, SQLStore]) -> None:
    one, two = pg_pair
    held = threading.Event()
    times: dict[str, float] = {}

    def first() -> None:
        with one.transaction():
            one.lock(["c1", "c2"])
            held.set()
            time.sleep(0.5)
            times["released"] = time.monotonic()

    def second() -> None:
        assert held.wait(20)
        with two.transaction():
            two.lock(["c2"])
            times["acquired"] = time.monotonic()

    def payment() -> None:  # a store write of c1's rows takes c1's lock first
        assert held.wait(20)
        two.transactions.upsert(
            Transaction(
                id="t-locked",
                customer_id="c1",
                kind="payment",
                status="succeeded",
                amount=Money("3.00", "USD"),
                method="card",
                at=AS_OF,
            )
        )
        times["paid"] = time.monotonic()

    threads = [threading.Thread(target=f) for f in (first, second, payment)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(times) == {"released", "acquired", "paid"}
    assert times["acquired"] >= times["released"]
    assert times["paid"] >= times["released"]


@pytest.mark.postgres
def test_scrub_on_postgres_vacuums_outside_transactions(
    pg_pair: tuple[SQLStore, SQLStore],
) -> None:
    one, _two = pg_pair
    one.customers.delete("c4")
    one.scrub()
    with pytest.raises(ValidationError), one.transaction():
        one.scrub()
    assert one.customers.find("c4") is None


@pytest.mark.postgres
def test_a_merge_under_locks_cannot_deadlock_with_arriving_payments(
    pg_pair: tuple[SQLStore, SQLStore],
) -> None:
    """The deadlock of issue 12.1 at store level: a merge moves c2's records to c1 and
    deletes c2 while a payment for c2 arrives on a day whose cash row the merge holds.
    Payments take c2's lock first, so they wait for the merge instead of deadlocking."""
    one, two = pg_pair
    moving = threading.Event()
    outcome: dict[str, object] = {}

    def merge() -> None:
        try:
            with one.transaction():
                one.lock(["c1", "c2"])
                repos: list[Any] = [one.subscriptions, one.invoices, one.transactions, one.credits]
                for repo in repos:
                    for record in repo.for_customer("c2"):
                        repo.upsert(attrs.evolve(record, customer_id="c1"))
                moving.set()
                time.sleep(0.5)  # the payment arrives now
                one.customers.delete("c2")
            outcome["merge"] = "done"
        except BaseException as e:
            outcome["merge"] = e
            moving.set()

    def pay() -> None:
        assert moving.wait(20)
        t2 = two.transactions.get("t2")
        try:
            two.transactions.upsert(
                attrs.evolve(t2, id="t-late", customer_id="c2", invoice_id=None)
            )
            outcome["payment"] = "stored"
        except BaseException as e:
            outcome["payment"] = e

    threads = [threading.Thread(target=merge), threading.Thread(target=pay)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcome["merge"] == "done", outcome
    # After the merge c2 is gone: the late payment is a named error, never a deadlock.
    assert type(outcome["payment"]).__name__ == "UnknownReferenceError", outcome
    assert one.customers.find("c2") is None
    assert {t.id for t in one.transactions.for_customer("c1")} >= {"t2", "t3"}


def test_sqlite_units_that_read_then_write_are_serialised(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/units.db"
    first = SQLStore(url)
    first.create_schema()
    first.import_book(sample_book())
    second = SQLStore(url)
    errors: list[BaseException] = []

    def unit(store: SQLStore, tag: str) -> None:
        try:
            with store.transaction():
                store.lock(["c1"])
                name = store.customers.get("c1").name  # read ...
                time.sleep(0.2)
                _renamed(store, "c1", f"{name} {tag}")  # ... then write: no lost update
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=unit, args=(s, t)) for s, t in ((first, "A"), (second, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(first.customers.get("c1").name.split()[-2:]) == ["A", "B"]
    first.close()
    second.close()
