"""The SQLite customer list sorted by MRR on integers (``SQLCustomerList._mrr_page``):
the same pages and cursors as the exact Python aggregates and the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from revcrm import BillingCycle, Book, FxRates, Money
from revcrm.storage import CustomerSort, Direction, InMemoryStore, SQLStore, Store
from revcrm.storage import _reference as ref
from tests._builders import customer, service, t, usd

from .test_pushdown import SHARED_SECRET

AS_OF = datetime(2024, 3, 20, tzinfo=UTC)


def _book(rate: str) -> Book:
    # Quarterly and yearly prices make MRRs with 40 significant digits (every fraction
    # limb in use); ties in MRR (b and c; the customers without a service) go by id.
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
        ],
        fx=FxRates.from_rates(
            [
                (t(2023, 1, 1).date(), "EUR", "USD", rate),
                (t(2023, 1, 1).date(), "GBP", "USD", "1.2058"),
            ]
        ),
    )


def _walk(store: Store, direction: Direction, limit: int) -> list[list[tuple[str, Money]]]:
    pages, cursor = [], None
    while True:
        page = store.customers.page(
            as_of=AS_OF,
            currency="USD",
            sort=CustomerSort.MRR,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        pages.append([(r.id, r.mrr) for r in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


def _sqlite(book: Book) -> SQLStore:
    store = SQLStore("sqlite://", cursor_secret=SHARED_SECRET)
    store.create_schema()
    store.import_book(book)
    return store


@pytest.mark.parametrize("rate", ["1.0052", "1.5", "2"])
def test_the_integer_mrr_sort_pages_as_the_exact_one(rate: str) -> None:
    book = _book(rate)
    store = _sqlite(book)
    memory = InMemoryStore(cursor_secret=SHARED_SECRET)
    memory.import_book(book)
    with store._session(write=False) as conn:
        rates = ref.list_rates(store._currencies(conn), store._rates(conn), "USD", AS_OF.date())
        assert store._mrr_scale(conn, rates) is not None  # the integer path is the one run
    for direction in Direction:
        for limit in (1, 2, 3, 10):
            assert _walk(store, direction, limit) == _walk(memory, direction, limit)
    store.close()


def test_a_rate_or_amount_out_of_the_integer_range_takes_the_exact_path() -> None:
    store = _sqlite(_book("1.00523456789"))  # a rate with too many digits
    with store._session(write=False) as conn:
        rates = ref.list_rates(store._currencies(conn), store._rates(conn), "USD", AS_OF.date())
        assert store._mrr_scale(conn, rates) is None
    big = Book.of(
        customers=[customer("a"), customer("b")],
        subscriptions=[
            service("sa", "a", Money("2000000000.5", "USD")),
            service("sb", "b", usd(5)),
        ],
    )
    large = _sqlite(big)
    with large._session(write=False) as conn:
        rates = ref.list_rates(large._currencies(conn), large._rates(conn), "USD", AS_OF.date())
        assert large._mrr_scale(conn, rates) is None
    memory = InMemoryStore(cursor_secret=SHARED_SECRET)
    memory.import_book(big)
    assert _walk(large, Direction.DESC, 1) == _walk(memory, Direction.DESC, 1)
    store.close()
    large.close()
