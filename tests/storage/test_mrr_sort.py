"""The SQL customer list sorted by MRR, total paid and LTV from the ledger tables when
the ledger covers the list: on SQLite by integer keys, each customer's sums of the money
limbs made one exact integer (``customer_limb_sums``), else by exact sums (``customer_mrr_values``,
``customer_cash_values``: PostgreSQL, measured steps to convert); when the ledger does
not cover the list, the customers' own ledger facts sorted (``_facts_page``). Every way
gives the same pages and cursors as the in-memory store."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from revcrm import BillingCycle, Book, FxRates, Money, Transaction
from revcrm.metrics import FxDateRule, MetricsPolicy
from revcrm.storage import CustomerSort, Direction, InMemoryStore, SQLStore, Store
from revcrm.storage._sql_customers import SQLCustomerList
from revcrm.storage._sql_ledger_queries import LedgerReads
from tests._builders import customer, service, t, usd

from .test_pushdown import SHARED_SECRET

AS_OF = datetime(2024, 3, 20, tzinfo=UTC)
_PATHS = (
    "customer_limb_sums",
    "customer_mrr_values",
    "customer_cash_values",
    "_facts_page",
)


def _book(rate: str) -> Book:
    # Quarterly and yearly prices make MRRs with 40 significant digits (every fraction
    # limb in use); ties in MRR (b and c; the customers without a service) go by id.
    def paid(i: str, who: str, amount: Money, kind: str = "payment") -> Transaction:
        return Transaction(
            id=i,
            customer_id=who,
            amount=amount,
            at=t(2024, 2, 1),
            kind=kind,
            status="succeeded",
            method="card",
        )

    return Book.of(
        customers=[customer(x) for x in "abcdefgh"],
        subscriptions=[
            service("sa", "a", usd(100), cycle=BillingCycle.QUARTERLY),
            service("sb", "b", Money("20", "EUR")),
            service("sc", "c", Money("20", "EUR")),
            service("sd", "d", Money("17.01", "GBP"), cycle=BillingCycle.ANNUAL),
            service("sd2", "d", usd(3), cycle=BillingCycle.QUARTERLY),
            service("se", "e", usd("33.33")),
            service("sf", "f", Money("1000", "EUR"), cycle=BillingCycle.ANNUAL, at=t(2024, 6, 1)),
            service("sg", "g", Money("2000000000.5", "USD")),
        ],
        transactions=[
            paid("p1", "a", usd("300")),
            paid("p2", "b", Money("20", "EUR")),
            paid("p3", "c", Money("20.01", "EUR")),
            paid("r3", "c", Money("5", "EUR"), "refund"),
            paid("p4", "d", Money("17.01", "GBP")),
        ],
        fx=FxRates.from_rates(
            [
                (t(2023, 1, 1).date(), "EUR", "USD", rate),
                (t(2023, 1, 1).date(), "GBP", "USD", "1.2058"),
                (t(2023, 1, 1).date(), "USD", "EUR", "0.9"),
                (t(2023, 1, 1).date(), "GBP", "EUR", "1.17"),
            ]
        ),
    )


def _walk(
    store: Store, sort: CustomerSort, direction: Direction, limit: int, currency: str = "USD"
) -> list[list[tuple[Any, ...]]]:
    pages, cursor = [], None
    while True:
        page = store.customers.page(
            as_of=AS_OF,
            currency=currency,
            sort=sort,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        pages.append([(r.id, r.mrr, r.ltv, r.total_paid) for r in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    seen: Counter[str] = Counter()
    for name in _PATHS:
        owner: type = SQLCustomerList if name == "_facts_page" else LedgerReads
        real = getattr(owner, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            seen[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)
    return seen


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite://"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.mark.parametrize(
    ("rate", "rule"),
    [
        ("1.0052", FxDateRule.SERVICE_PERIOD_START),
        ("1.00523456789", FxDateRule.TRANSACTION_DATE),
        ("2", FxDateRule.TRANSACTION_DATE),
    ],
)
def test_the_money_sorts_page_as_the_memory_store(
    rate: str, rule: FxDateRule, backend: str, calls: Counter[str]
) -> None:
    book = _book(rate)
    policy = MetricsPolicy(fx_date=rule)
    prefix = f"m{uuid.uuid4().hex[:10]}_"
    store = SQLStore(backend, cursor_secret=SHARED_SECRET, policy=policy, prefix=prefix)
    store.create_schema()
    try:
        _check(store, book, policy, calls, sqlite=backend.startswith("sqlite"))
    finally:
        if not backend.startswith("sqlite"):
            store.drop_schema()
        store.close()


def _check(
    store: SQLStore, book: Book, policy: MetricsPolicy, calls: Counter[str], *, sqlite: bool
) -> None:
    store.import_book(book)
    memory = InMemoryStore(cursor_secret=SHARED_SECRET, policy=policy)
    memory.import_book(book)
    sorts = (CustomerSort.MRR, CustomerSort.TOTAL_PAID, CustomerSort.LTV)
    for sort in sorts:
        for direction in Direction:
            for limit in (1, 3, 10):
                assert _walk(store, sort, direction, limit) == _walk(memory, sort, direction, limit)
    assert calls["_facts_page"] == 0  # the ledger covers the list in its own currency
    measured = policy.fx_date is FxDateRule.TRANSACTION_DATE  # foreign MRR to convert
    assert bool(calls["customer_mrr_values"]) == (not sqlite or measured)
    assert bool(calls["customer_limb_sums"]) == sqlite
    assert bool(calls["customer_cash_values"]) == (not sqlite)
    # In another currency the ledger does not cover the list: the facts are sorted.
    for sort in sorts:
        assert _walk(store, sort, Direction.DESC, 2, "EUR") == _walk(
            memory, sort, Direction.DESC, 2, "EUR"
        )
    assert calls["_facts_page"] > 0
