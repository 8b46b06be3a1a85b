"""The SQL store's ledger tables (schema 7): reads equal the engine, upkeep equals a rebuild.

* Every ledger read (MRR at a moment, for some customers, just before a moment, series by
  month and week, waterfalls) equals :class:`~revcrm.metrics.MrrAnalysis` of the same book
  under the same policy, reporting currency and horizon, exactly, on SQLite and
  PostgreSQL; a missing rate fails both.
* Rows kept up by writes (records in any order, in pieces, rates last, appended changes,
  a customer deleted) equal the rows a full rebuild writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs
import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm._money import FxRates
from revcrm._subscription import ChangeKind, SubscriptionChange
from revcrm.errors import MissingRateError, ValidationError
from revcrm.metrics import ChurnRecognition, FxDateRule, MetricsPolicy, analyse
from revcrm.storage import SQLStore
from revcrm.storage import _reference as ref
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.testing import strategies
from revcrm.testing.contract import AS_OF, sample_book

_T = TypeVar("_T")

POLICIES = [
    MetricsPolicy(),
    MetricsPolicy.stripe(),
    MetricsPolicy.baremetrics(),
    MetricsPolicy(
        fx_date=FxDateRule.TRANSACTION_DATE,
        grouping_window=timedelta(days=40),
        reactivation_window_days=30,
        churn_recognition=ChurnRecognition.WHEN_SCHEDULED,
        past_due_churn_after_days=0,
    ),
]

_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _outcome(fn: Callable[[], _T]) -> _T | type[Exception]:
    try:
        return fn()
    except MissingRateError:
        return MissingRateError


def _wipe(store: SQLStore) -> None:
    schema = store._schema
    with store.engine.begin() as conn:
        for table in reversed(schema.all_tables):
            if table is not schema.schema_version:
                conn.execute(table.delete())
    store.migrate()  # the settings again (policy fingerprint), on an empty store


def _dump(store: SQLStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with store.engine.connect() as conn:
        for t in store._schema.ledger_tables:
            out[t.name] = [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
    return out


def check_reads_equal_engine(store: SQLStore, book: Book, data: st.DataObject) -> None:
    codes = sorted({s.currency for s in book.subscriptions} | {"USD"})
    currency = data.draw(st.sampled_from(codes), label="currency")
    store.rebuild_ledger(currency=currency)
    store.import_book(book)
    horizon = store.ledger_horizon()
    policy = store.policy
    reads = LedgerReads(store)
    engine = _outcome(lambda: analyse(book, currency=currency, policy=policy, horizon=horizon))
    moments = data.draw(st.lists(strategies.moments(), min_size=1, max_size=3), label="moments")
    start = min(moments)
    end = start + relativedelta(months=data.draw(st.integers(0, 30), label="months"), days=1)
    within = horizon is None or start <= horizon
    assert reads.covers(currency, start) == (engine is not MissingRateError and within)
    assert not reads.covers("XTS", start)
    if engine is MissingRateError:
        # The engine lacks a rate for some customer's history: so does the ledger.
        with pytest.raises(MissingRateError):
            reads.mrr(start)
        with pytest.raises(MissingRateError):
            reads.waterfalls(start, end)
        return
    assert not isinstance(engine, type)
    ids = [c.id for c in book.customers]
    for at in moments:
        some = sorted(set(data.draw(st.lists(st.sampled_from(ids), max_size=3), label="ids")))

        def both(read: Callable[[Any], Any], at: datetime = at) -> None:
            assert _outcome(lambda: read(reads)(at)) == _outcome(lambda: read(engine)(at))

        both(lambda r: r.mrr)
        both(lambda r: r.mrr_before)

        def of_some(r: Any, some: list[str] = some) -> Callable[[datetime], Any]:
            return lambda t: r.mrr(t, customer_ids=some)

        both(of_some)
    every = data.draw(st.sampled_from(["month", "week"]), label="every")
    assert _outcome(lambda: reads.series(start, end, every)) == _outcome(
        lambda: engine.series(start, end, every)
    )
    assert _outcome(lambda: reads.waterfalls(start, end)) == _outcome(
        lambda: engine.waterfalls(start, end)
    )
    a, b = sorted(moments[:2] if len(moments) > 1 else [start, end])
    assert _outcome(lambda: reads.waterfall(a, b)) == _outcome(lambda: engine.waterfall(a, b))
    assert reads.paying_customers(a) == len(ref.paying_customer_ids(book, at=a, policy=policy))
    assert reads.customer_flow(a, b) == ref.customer_flow(book, start=a, end=b, policy=policy)


@settings(_SETTINGS, max_examples=min(25, settings().max_examples))
@given(book=strategies.books(), policy=st.sampled_from(POLICIES), data=st.data())
def test_sqlite_ledger_reads_equal_the_engine(
    book: Book, policy: MetricsPolicy, data: st.DataObject
) -> None:
    store = SQLStore("sqlite://", policy=policy)
    store.create_schema()
    try:
        check_reads_equal_engine(store, book, data)
    finally:
        store.close()


@pytest.fixture(scope="module")
def pg_stores(postgres_url: str) -> Iterator[list[SQLStore]]:
    stores = [
        SQLStore(postgres_url, prefix=f"l{uuid.uuid4().hex[:10]}_", policy=p) for p in POLICIES
    ]
    for s in stores:
        s.create_schema()
    yield stores
    for s in stores:
        s.drop_schema()
        s.close()


@pytest.mark.postgres
@settings(_SETTINGS, max_examples=min(25, settings().max_examples))
@given(book=strategies.books(), which=st.integers(0, len(POLICIES) - 1), data=st.data())
def test_postgres_ledger_reads_equal_the_engine(
    pg_stores: list[SQLStore], book: Book, which: int, data: st.DataObject
) -> None:
    store = pg_stores[which]
    _wipe(store)
    check_reads_equal_engine(store, book, data)


def _piecewise(store: SQLStore, book: Book, data: st.DataObject) -> None:
    """The book written as a sync would: records in pieces, rates last, then changes."""
    store.customers.upsert_many(book.customers)
    store.products.upsert_many(book.products)
    store.plans.upsert_many(book.plans)
    subs = list(book.subscriptions)
    cut = data.draw(st.integers(0, len(subs)), label="cut")
    store.subscriptions.upsert_many(subs[:cut])
    if data.draw(st.booleans(), label="rates early"):
        store.fx.put_many(book.fx)
    store.subscriptions.upsert_many(subs[cut:])
    store.invoices.upsert_many(book.invoices)
    store.transactions.upsert_many(book.transactions)
    store.credits.upsert_many(book.credits)
    store.fx.put_many(book.fx)


@settings(_SETTINGS, max_examples=min(25, settings().max_examples))
@given(book=strategies.books(), policy=st.sampled_from(POLICIES), data=st.data())
def test_rows_kept_up_by_writes_equal_a_rebuild(
    book: Book, policy: MetricsPolicy, data: st.DataObject
) -> None:
    store = SQLStore("sqlite://", policy=policy)
    store.create_schema()
    try:
        if data.draw(st.booleans(), label="one import"):
            store.import_book(book)  # into an empty store: rows from the book itself
        else:
            _piecewise(store, book, data)
        delete = data.draw(st.booleans(), label="delete one")
        if book.customers and delete:
            store.customers.delete(book.customers[0].id, cascade=True)
        kept = _dump(store)
        if not delete:
            lacking = {r[0] for r in kept[store._schema.ledger_cash_missing.name]}
            cash = [t for t in book.transactions if t.succeeded] + list(book.credits)
            owned = [e for e in cash if e.customer_id not in lacking]
            assert len(kept[store._schema.ledger_cash.name]) == len(owned)
        store.rebuild_ledger()
        assert _dump(store) == kept
    finally:
        store.close()


def test_an_appended_change_rebuilds_its_customer_in_the_write() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    book = sample_book()
    store.import_book(book)
    reads = LedgerReads(store)
    before = reads.mrr(AS_OF)
    sub = next(s for s in book.subscriptions if s.id == "s1")
    at = AS_OF - timedelta(days=1)
    store.subscriptions.append(
        sub.id, SubscriptionChange(kind=ChangeKind.CANCELLED, at=at, ends_at=at)
    )
    changed = store.subscriptions.get(sub.id)
    others = Book(
        subscriptions=tuple(changed if s.id == sub.id else s for s in book.subscriptions),
        fx=book.fx,
    )
    engine = analyse(others, currency="USD", policy=store.policy, horizon=store.ledger_horizon())
    assert reads.mrr(AS_OF) == engine.mrr(AS_OF) != before


def test_a_rate_written_later_builds_the_customers_it_converts() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    book = sample_book()
    store.import_book(attrs.evolve(book, fx=FxRates.empty()))  # s2 is in EUR
    reads = LedgerReads(store)
    with pytest.raises(MissingRateError):
        reads.mrr(AS_OF)
    store.fx.put_many(book.fx)
    engine = analyse(book, currency="USD", policy=store.policy, horizon=store.ledger_horizon())
    assert reads.mrr(AS_OF) == engine.mrr(AS_OF)


def test_a_reporting_currency_change_rebuilds_every_customer_with_progress() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    book = sample_book()
    store.import_book(book)
    heard: list[tuple[str, int, int]] = []
    store.rebuild_ledger(currency="EUR", progress=lambda *a: heard.append(a))
    owners = len({s.customer_id for s in book.subscriptions})
    payers = len({t.customer_id for t in book.transactions} | {c.customer_id for c in book.credits})
    ordered = len(
        {s.customer_id for s in book.subscriptions} | {i.customer_id for i in book.invoices}
    )
    assert heard == [
        ("ledger", 0, owners),
        ("ledger", owners, owners),
        ("cash", payers, payers),
        ("services", ordered, ordered),
    ]
    assert store.ledger_currency() == "EUR"
    engine = analyse(book, currency="EUR", policy=store.policy, horizon=store.ledger_horizon())
    reads = LedgerReads(store)
    assert reads.mrr(AS_OF) == engine.mrr(AS_OF)
    with pytest.raises(ValidationError, match="EUR"):
        reads.mrr(AS_OF, currency="USD")


def test_the_horizon_follows_the_records() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    assert store.ledger_horizon() is None
    book = sample_book()
    store.import_book(book)
    latest = max(t.at for t in book.transactions)
    horizon = store.ledger_horizon()
    assert horizon is not None
    assert horizon >= latest + relativedelta(months=12)
    # Long after every record: MRR equals the engine's with a horizon later still.
    late = horizon + relativedelta(years=1)
    engine = analyse(book, currency="USD", policy=store.policy, horizon=late)
    assert LedgerReads(store).mrr(datetime(2025, 6, 1, tzinfo=UTC)) == engine.mrr(
        datetime(2025, 6, 1, tzinfo=UTC)
    )
