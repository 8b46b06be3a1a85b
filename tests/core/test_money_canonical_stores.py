"""The same amount reads the same from every store (issue 16: on SQLite ``str`` of a $10
plan was ``10.000000000000000000000000000000000000000000000000 USD``, in memory ``10 USD``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from revcrm import BillingCycle, Book, CreditEntry, Customer, Money, Plan, Product, Subscription
from revcrm.storage import InMemoryStore, SQLStore, Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
AS_OF = datetime(2024, 2, 15, tzinfo=UTC)


def _book() -> Book:
    plan = Plan(
        id="basic",
        product_id="hosting",
        name="Basic",
        price=Money("10", "USD"),
        cycle=BillingCycle.MONTHLY,
    )
    sub = Subscription.start(
        id="s1",
        customer_id="c1",
        at=T0,
        price=Money("10.00", "USD"),
        cycle=BillingCycle.MONTHLY,
        plan_id="basic",
    )
    credit = CreditEntry(id="k1", customer_id="c1", amount=Money("2.50", "USD"), reason="x", at=T0)
    return Book.of(
        customers=[Customer(id="c1", registered_at=T0)],
        products=[Product(id="hosting", name="Hosting")],
        plans=[plan],
        subscriptions=[sub],
        credits=[credit],
    )


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    sql = SQLStore(url, prefix=f"t{uuid.uuid4().hex[:12]}_")
    sql.create_schema()
    try:
        yield sql
    finally:
        sql.drop_schema()
        sql.close()


def test_amounts_read_back_canonical(store: Store) -> None:
    store.import_book(_book())
    assert str(store.plans.get("basic").price) == "10 USD"
    assert str(store.subscriptions.get("s1").states[0].price) == "10 USD"
    assert str(store.credits.get("k1").amount) == "2.5 USD"
    assert str(store.mrr(at=AS_OF, currency="USD")) == "10 USD"
    assert repr(store.credits.balance("c1", "USD")) == "Money('2.5', 'USD')"
