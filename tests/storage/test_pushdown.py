"""Differential tests: every aggregate the SQL store pushes down equals the pure functions.

Books come from ``revcrm.testing.strategies.books``; each example is imported into a SQL
store (SQLite in memory, and PostgreSQL when a server is available) and every figure is
compared with :mod:`revcrm.metrics` (or plain Python over the book where revcrm.metrics
has no such function) and with the in-memory store, exactly (hence also to the cent).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import Book, Customer
from revcrm.errors import MissingRateError
from revcrm.metrics import (
    ChurnRecognition,
    DiscountPolicy,
    MetricsPolicy,
    analyse,
    cash_revenue,
    mrr,
    subscription_mrr,
)
from revcrm.storage import CustomerSort, Direction, InMemoryStore, Page, SQLStore
from revcrm.storage._schema import LATEST_VERSION
from revcrm.testing import strategies
from revcrm.testing.contract import assert_same_book

#: One cursor key for the stores compared here, so their cursors are comparable too.
SHARED_SECRET = "differential tests compare cursors"

_T = TypeVar("_T")

POLICIES = [
    MetricsPolicy(),
    MetricsPolicy.stripe(),
    MetricsPolicy.baremetrics(),
    MetricsPolicy(
        count_trials=True,
        count_suspended=True,
        churn_recognition=ChurnRecognition.WHEN_SCHEDULED,
        discounts=DiscountPolicy.RECURRING_ONLY,
        past_due_churn_after_days=0,
    ),
]


def wipe(store: SQLStore) -> None:
    """Delete every row (children first), keeping the schema: a cheap fresh store."""
    schema = store._schema
    with store.engine.begin() as conn:
        for table in reversed(schema.all_tables):
            if table is not schema.schema_version and table is not schema.settings:
                conn.execute(table.delete())


def _outcome(fn: Callable[[], _T]) -> _T | type[Exception]:
    """The value, or the class of the revcrm error raised: both backends must agree."""
    try:
        return fn()
    except MissingRateError:
        return MissingRateError


def _pages(fetch: Callable[[str | None], Page[_T]]) -> list[Page[_T]]:
    out: list[Page[_T]] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        out.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return out


def check_store_equals_pure(store: SQLStore, book: Book, data: st.DataObject) -> None:
    policy = store.policy
    memory = InMemoryStore(policy=policy, cursor_secret=SHARED_SECRET)
    memory.import_book(book)
    store.import_book(book)
    assert_same_book(store.book(), book)
    currencies = sorted(
        {s.currency for s in book.subscriptions}
        | {t.amount.currency for t in book.transactions}
        | {"USD"}
    )
    currency = data.draw(st.sampled_from(currencies), label="currency")
    moments = data.draw(st.lists(strategies.moments(), min_size=1, max_size=3), label="moments")
    ids = [c.id for c in book.customers]

    def at_moment(at: datetime, some: list[str]) -> None:
        assert _outcome(lambda: store.mrr(at=at, currency=currency)) == _outcome(
            lambda: mrr(book, at=at, currency=currency, policy=policy)
        )
        assert _outcome(lambda: store.mrr(at=at, currency=currency, customer_ids=some)) == _outcome(
            lambda: mrr(
                book, at=at, currency=currency, policy=policy, customer_ids=sorted(set(some))
            )
        )
        paying = {
            s.customer_id
            for s in book.subscriptions
            if subscription_mrr(s, at, policy=policy).amount > 0
        }
        assert store.paying_customers(at=at) == len(paying)

    for at in moments:
        at_moment(at, data.draw(st.lists(st.sampled_from(ids), max_size=3), label="customer_ids"))

    start = moments[0]
    end = start + relativedelta(months=data.draw(st.integers(0, 30), label="months"), days=1)
    series = _outcome(lambda: store.mrr_series(start=start, end=end, currency=currency))
    assert series == _outcome(lambda: memory.mrr_series(start=start, end=end, currency=currency))
    engine = _outcome(
        lambda: tuple(
            analyse(book, currency=currency, policy=policy, horizon=end).series(start, end)
        )
    )
    # The engine converts every movement of the whole history up front, so it may lack a
    # rate the series itself never needs; whenever it answers, the numbers agree.
    if engine is not MissingRateError:
        assert series == engine

    cash = _outcome(lambda: store.cash_by_month(start=start, end=end, currency=currency))
    if cash is not MissingRateError:
        assert isinstance(cash, tuple)
        for month in cash:
            pure = cash_revenue(
                book.transactions, month.start, month.end, currency=currency, book=book
            )
            assert (month.gross, month.refunds, month.payments) == (
                pure.gross,
                pure.refunds,
                pure.payments,
            )
            assert month.net == month.gross - month.refunds
    else:
        assert (
            _outcome(lambda: memory.cash_by_month(start=start, end=end, currency=currency))
            is MissingRateError
        )

    a, b = sorted(moments[:2] if len(moments) > 1 else [start, end])
    assert store.customer_flow(start=a, end=b) == memory.customer_flow(start=a, end=b)

    as_of = moments[-1]
    sort = data.draw(st.sampled_from(list(CustomerSort)), label="sort")
    direction = data.draw(st.sampled_from(list(Direction)), label="direction")
    limit = data.draw(st.integers(1, 4), label="limit")
    search = data.draw(st.none() | st.sampled_from(["a", "O", "example", "zz"]), label="search")

    def listing(s: Any) -> Any:
        return _outcome(
            lambda: _pages(
                lambda c: s.customers.page(
                    as_of=as_of,
                    currency=currency,
                    sort=sort,
                    direction=direction,
                    limit=limit,
                    cursor=c,
                    search=search,
                )
            )
        )

    # Pages, rows and cursors are identical to the in-memory store's (which computes
    # every figure in Python from the book).
    assert listing(store) == listing(memory)
    assert _outcome(
        lambda: store.dashboard(as_of=as_of, currency=currency, trend_months=4)
    ) == _outcome(lambda: memory.dashboard(as_of=as_of, currency=currency, trend_months=4))
    who = data.draw(st.sampled_from(ids), label="summary customer")
    assert _outcome(
        lambda: store.customer_summary(who, as_of=as_of, currency=currency)
    ) == _outcome(lambda: memory.customer_summary(who, as_of=as_of, currency=currency))


_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@settings(_SETTINGS, max_examples=min(25, settings().max_examples))
@given(book=strategies.books(), policy=st.sampled_from(POLICIES), data=st.data())
def test_sqlite_aggregates_equal_the_pure_functions(
    book: Book, policy: MetricsPolicy, data: st.DataObject
) -> None:
    store = SQLStore("sqlite://", policy=policy, cursor_secret=SHARED_SECRET)
    store.create_schema()
    try:
        check_store_equals_pure(store, book, data)
    finally:
        store.close()


@pytest.fixture(scope="module")
def pg_stores(postgres_url: str) -> Iterator[list[SQLStore]]:
    stores = [
        SQLStore(
            postgres_url, prefix=f"d{uuid.uuid4().hex[:10]}_", policy=p, cursor_secret=SHARED_SECRET
        )
        for p in POLICIES
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
def test_postgres_aggregates_equal_the_pure_functions(
    pg_stores: list[SQLStore], book: Book, which: int, data: st.DataObject
) -> None:
    store = pg_stores[which]
    wipe(store)
    check_store_equals_pure(store, book, data)


def test_wipe_empties_a_store_but_keeps_its_schema() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    store.customers.upsert(Customer(id="c", registered_at=datetime(2024, 1, 1, tzinfo=UTC)))
    wipe(store)
    assert store.customers.count() == 0
    assert store.schema_version() == LATEST_VERSION
