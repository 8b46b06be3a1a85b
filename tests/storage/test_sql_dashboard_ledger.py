"""The SQL dashboard's customers, churn and renewals cards from the ledger tables equal
the pure dashboard's: on the demo book at a moment in each of its last months (churn,
new customers and renewals in every one), and on random books at moments just after
their changes, under every churn denominator and a grouping window that a period bound
can split; the ledger path is the one taken (it covers those moments)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm._demo import demo_book
from revcrm.errors import MissingRateError
from revcrm.metrics import ChurnDenominator, MetricsPolicy, dashboard
from revcrm.storage import SQLStore
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.testing import strategies

POLICIES = [
    MetricsPolicy(),
    MetricsPolicy.stripe(),
    MetricsPolicy.baremetrics(),
    MetricsPolicy(
        grouping_window=timedelta(days=20),
        churn_denominator=ChurnDenominator.START_PLUS_NEW,
        reactivation_window_days=30,
        free_plans_churn=False,
    ),
]


@pytest.fixture(scope="module")
def stores() -> Iterator[list[SQLStore]]:
    made = [SQLStore("sqlite://", policy=p) for p in POLICIES]
    for s in made:
        s.create_schema()
    yield made
    for s in made:
        s.close()


def _wipe(store: SQLStore) -> None:
    schema = store._schema
    with store.engine.begin() as conn:
        for table in reversed(schema.all_tables):
            if table is not schema.schema_version:
                conn.execute(table.delete())
    store.migrate()  # the settings again: a fresh ledger horizon for the next book


@settings(
    deadline=None,
    max_examples=min(15, settings().max_examples),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    book=strategies.books(currencies=["USD", "EUR"], max_customers=6),
    which=st.integers(0, len(POLICIES) - 1),
    data=st.data(),
)
def test_customers_churn_and_renewals_equal_the_pure_dashboard(
    stores: list[SQLStore], book: Book, which: int, data: st.DataObject
) -> None:
    store = stores[which]
    _wipe(store)
    store.import_book(book)
    changes = [c.at for sub in book.subscriptions for c in sub.history]
    ends = [s.ended_at for sub in book.subscriptions for s in sub.states if s.ended_at]
    if not changes:
        return
    after = st.builds(timedelta, days=st.integers(0, 25), hours=st.integers(0, 23))
    pick_end: bool = bool(ends) and data.draw(st.booleans(), label="an end")
    moments = ends if pick_end else changes
    at = data.draw(st.sampled_from(moments), label="event") + data.draw(after, label="by")
    if not LedgerReads(store).covers("USD", at + timedelta(days=1)):
        return  # past the horizon or a rate missing: the pure path, tested elsewhere
    try:
        want = dashboard(book, as_of=at, currency="USD", policy=store.policy, trend_months=1)
    except MissingRateError:
        return
    got = store.dashboard(as_of=at, currency="USD", trend_months=1)
    assert (got.customers, got.churn) == (want.customers, want.churn)
    assert (got.renewals_count, got.renewals_mrr) == (want.renewals_count, want.renewals_mrr)


@pytest.mark.parametrize("which", [2, 3])
def test_the_demo_books_cards_month_by_month(stores: list[SQLStore], which: int) -> None:
    store = stores[which]
    _wipe(store)
    book = demo_book(60, months=14)
    store.import_book(book)
    last = max(c.at for sub in book.subscriptions for c in sub.history)
    churned = 0
    for k in range(1, 13):
        at = last - timedelta(days=30 * k + 3 * k, hours=5 * k)
        assert LedgerReads(store).covers("USD", at)
        want = dashboard(book, as_of=at, currency="USD", policy=store.policy, trend_months=1)
        got = store.dashboard(as_of=at, currency="USD", trend_months=1)
        assert (got.customers, got.churn) == (want.customers, want.churn), at
        assert (got.renewals_count, got.renewals_mrr) == (want.renewals_count, want.renewals_mrr)
        churned += want.churn.churned
    assert churned > 0
