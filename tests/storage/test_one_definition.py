"""One definition of the customer figures: the list row, the customer summary, the
segment facts and the MRR analysis agree on every backend (issue 13, item 4).

MRR follows the policy's FX rule (the analysis'), total paid and LTV convert each
payment and refund at its own date, and "active services" is
:func:`revcrm.crm.is_active_service`. The books are multi-currency with daily rates, so
the as-of rate and the service-period rule differ (the list used the as-of rate before).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from revcrm import Book
from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm.metrics import MetricsPolicy, analyse
from revcrm.segments import Segmentation, segmentation
from revcrm.storage import CustomerRow, CustomerSort, InMemoryStore, SQLStore, Store

MOMENTS = (DEMO_AS_OF, DEMO_AS_OF - timedelta(days=200, hours=5))


@pytest.fixture(scope="module")
def book() -> Book:
    b = demo_book(customers=36, seed=11, months=24)
    assert len({s.currency for s in b.subscriptions}) > 1
    return b


_BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _store_maker(
    request: pytest.FixtureRequest, kind: str
) -> tuple[Callable[[], Store], list[SQLStore]]:
    made: list[SQLStore] = []

    def new() -> Store:
        if kind == "memory":
            return InMemoryStore()
        if kind == "sqlite":
            store = SQLStore("sqlite://")
        else:
            url = request.getfixturevalue("postgres_url")
            store = SQLStore(url, prefix=f"t{uuid.uuid4().hex[:12]}_")
            made.append(store)
        store.create_schema()
        return store

    return new, made


def _drop(made: list[SQLStore]) -> None:
    for store in made:
        store.drop_schema()
        store.close()


@pytest.fixture(params=_BACKENDS)
def make(request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    new, made = _store_maker(request, request.param)
    yield new
    _drop(made)


@pytest.fixture(scope="module", params=_BACKENDS)
def loaded(request: pytest.FixtureRequest, book: Book) -> Iterator[Store]:
    # Every test reading it only reads: one import of the book per backend.
    new, made = _store_maker(request, request.param)
    store = new()
    store.import_book(book)
    yield store
    _drop(made)


def _rows(store: Store, at: datetime, currency: str) -> dict[str, CustomerRow]:
    out: dict[str, CustomerRow] = {}
    cursor: str | None = None
    while True:
        page = store.customers.page(as_of=at, currency=currency, limit=1000, cursor=cursor)
        out.update((r.id, r) for r in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


def _pure(book: Book, at: datetime, currency: str) -> Segmentation:
    return segmentation(book, as_of=at, currency=currency, policy=MetricsPolicy())


@pytest.mark.parametrize("at", MOMENTS)
def test_list_row_mrr_equals_segment_fact_mrr_equals_analysis_mrr(
    loaded: Store, book: Book, at: datetime
) -> None:
    currency = "USD"
    seg = _pure(book, at, currency)
    analysis = analyse(book, currency=currency, policy=MetricsPolicy(), horizon=at + timedelta(1))
    rows = _rows(loaded, at, currency)
    assert set(seg.facts) <= set(rows)
    foreign = 0
    for cid, facts in seg.facts.items():
        row = rows[cid]
        assert row.mrr == facts.mrr == analysis.customer_mrr(cid, at), cid
        assert row.total_paid == facts.total_paid, cid
        assert row.ltv == facts.ltv, cid
        assert row.active_services == facts.active_services, cid
        assert row.last_payment_at == facts.last_payment_at, cid
        foreign += any(s.currency != currency for s in book.subscriptions_by_customer.get(cid, ()))
    assert foreign > 0  # the FX rule is exercised


@pytest.mark.parametrize("at", MOMENTS)
def test_segments_counts_and_baseline_equal_the_pure_segmentation(
    loaded: Store, book: Book, at: datetime
) -> None:
    seg = _pure(book, at, "USD")
    ids = [c.id for c in book.customers]
    got = loaded.segments_of(ids, as_of=at, currency="USD")
    assert got == {cid: seg.segments_of(cid) for cid in ids}
    counts, expected = loaded.segment_counts(as_of=at, currency="USD"), seg.counts()
    assert (counts.customers, dict(counts.members), dict(counts.primary)) == (
        expected.customers,
        dict(expected.members),
        dict(expected.primary),
    )
    assert loaded.ltv_baseline(as_of=at, currency="USD") == seg.ltv_baseline


def test_summary_row_is_the_list_row(loaded: Store, book: Book) -> None:
    rows = _rows(loaded, DEMO_AS_OF, "USD")
    for c in book.customers[:8]:
        summary = loaded.customer_summary(c.id, as_of=DEMO_AS_OF, currency="USD")
        assert summary.row == rows[c.id]


@pytest.mark.parametrize("sort", [CustomerSort.MRR, CustomerSort.LTV, CustomerSort.ACTIVE_SERVICES])
def test_sorted_pages_follow_the_one_definition(
    loaded: Store, book: Book, sort: CustomerSort
) -> None:
    rows = _rows(loaded, DEMO_AS_OF, "USD")

    def value(r: CustomerRow) -> object:
        if sort is CustomerSort.MRR:
            return r.mrr.amount
        if sort is CustomerSort.LTV:
            return r.ltv.amount
        return r.active_services

    expected = sorted(rows.values(), key=lambda r: (value(r), r.id), reverse=True)
    got: list[CustomerRow] = []
    cursor: str | None = None
    while True:
        page = loaded.customers.page(
            as_of=DEMO_AS_OF, currency="USD", sort=sort, direction="desc", limit=7, cursor=cursor
        )
        got.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r.id for r in got] == [r.id for r in expected]
    active = loaded.customers.page(
        as_of=DEMO_AS_OF, currency="USD", has_active_services=True, limit=1000
    )
    assert {r.id for r in active.items} == {r.id for r in rows.values() if r.active_services > 0}


def test_worked_example_of_the_contract_book(make: Callable[[], Store]) -> None:
    """c2 pays EUR 20 on 2024-02-10 (rate 1.10 then) and is refunded EUR 5 on 2024-03-01
    (1.08); its quarterly service is cancelled but paid until 2024-08-10, so it is still
    active at AS_OF (the list counted only active and past-due statuses before, and
    converted the cash at AS_OF's 1.08: 21.60 and 16.20)."""
    from revcrm import Money
    from revcrm.testing._contract_book import AS_OF, sample_book

    store = make()
    store.import_book(sample_book())
    rows = _rows(store, AS_OF, "USD")
    c2 = rows["c2"]
    assert c2.total_paid == Money("22.00", "USD")
    assert c2.ltv == Money("16.60", "USD")
    assert c2.active_services == 1
    assert rows["c1"].active_services == 2
    assert store.customer_summary("c2", as_of=AS_OF, currency="USD").row == c2
