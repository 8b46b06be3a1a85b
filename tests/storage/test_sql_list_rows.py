"""The SQL customer list's rows from the ledger tables: a page the ledger covers reads
the figures of its customers from the steps, cash entries and service rows (one grouped
query each over the page's ids) and decodes no billing record but the customers; the
last-payment sort reads the cash entries and the paying filter the live steps. Every
page equals the in-memory store's. A customer whose ledger rows lack a rate is read from
its own records (as before: it raises MissingRateError when its page needs the rate),
and the last-payment sort then reads the transactions."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from revcrm import Book, CreditEntry, FxRates, Money
from revcrm.errors import MissingRateError
from revcrm.storage import CustomerSort, Direction, InMemoryStore, SQLStore, Store
from revcrm.storage._sql_base import SQLBase
from tests._builders import customer, eur, payment, service, t, usd

from .test_pushdown import SHARED_SECRET

AS_OF = datetime(2024, 3, 20, tzinfo=UTC)
_RECORDS = ("subscriptions", "invoices", "transactions", "credits", "spans")


def _book(*, lacking: bool = False) -> Book:
    """Customers with services, payments, refunds and credits in two currencies; with
    ``lacking``, customer ``z`` also paid in GBP before any GBP rate (the ledger cannot
    convert that payment, so it has no cash entries for ``z``)."""
    customers = [customer(x) for x in "abcdefg"]
    subscriptions = [
        service("sa", "a", usd(100)),
        service("sb", "b", eur("20.5")),
        service("sc", "c", usd("33.33"), at=t(2024, 6, 1)),  # not started by AS_OF
        service("sd", "d", eur(7)),
        service("sd2", "d", usd(3)),
        service("se", "e", usd(50)).cancel(at=t(2024, 2, 1)),
    ]
    transactions = [
        payment("p1", "a", usd(300), t(2024, 2, 1)),
        payment("p2", "a", usd(100), t(2024, 3, 1, 12)),
        payment("p3", "b", eur("20.5"), t(2024, 1, 15)),
        payment("r3", "b", eur(5), t(2024, 2, 15), kind="refund"),
        payment("p4", "d", eur(7), t(2024, 3, 2)),
        payment("p5", "d", usd("0.01"), t(2024, 3, 25)),  # after AS_OF
        payment("p6", "e", usd(50), t(2024, 1, 1), status="failed"),
        payment("p7", "f", usd(12), t(2023, 6, 1)),
    ]
    credits = [
        CreditEntry(id="k1", customer_id="a", amount=usd(15), reason="goodwill", at=t(2024, 1, 1)),
        CreditEntry(id="k2", customer_id="a", amount=eur(4), reason="goodwill", at=t(2024, 1, 1)),
        CreditEntry(id="k3", customer_id="g", amount=usd(-2), reason="spent", at=t(2024, 2, 1)),
    ]
    rates = [
        (t(2023, 1, 1).date(), "EUR", "USD", "1.0852"),
        (t(2024, 2, 1).date(), "EUR", "USD", "1.1"),
    ]
    if lacking:
        customers.append(customer("z"))
        transactions.append(payment("pz", "z", Money(9, "GBP"), t(2023, 2, 1)))
        rates.append((t(2023, 6, 1).date(), "GBP", "USD", "1.25"))
    return Book.of(
        customers=customers,
        subscriptions=subscriptions,
        transactions=transactions,
        credits=credits,
        fx=FxRates.from_rates(rates),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite://"
    else:
        yield request.getfixturevalue("postgres_url")


def _store(backend: str, book: Book) -> Iterator[SQLStore]:
    store = SQLStore(backend, cursor_secret=SHARED_SECRET, prefix=f"r{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    try:
        store.import_book(book)
        yield store
    finally:
        if not backend.startswith("sqlite"):
            store.drop_schema()
        store.close()


class _Reads:
    """The record kinds the store decodes and the record tables its statements read."""

    def __init__(self, store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kinds: Counter[str] = Counter()
        self.tables: Counter[str] = Counter()
        real = SQLBase._load

        def load(this: Any, conn: Any, kind: str, *args: Any, **kwargs: Any) -> Any:
            self.kinds[kind] += 1
            return real(this, conn, kind, *args, **kwargs)

        monkeypatch.setattr(SQLBase, "_load", load)
        names = {f"{store.prefix}{name}": name for name in _RECORDS}

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if " min(" in statement:  # the stored currencies: one index probe each
                return
            for full, name in names.items():
                if f"FROM {full}\n" in statement or f"FROM {full} " in statement:
                    self.tables[name] += 1

        sa.event.listen(store.engine, "before_cursor_execute", seen)

    def clear(self) -> None:
        self.kinds.clear()
        self.tables.clear()


def _rows(store: Store, **options: Any) -> list[list[tuple[Any, ...]]]:
    pages, cursor = [], None
    while True:
        page = store.customers.page(as_of=AS_OF, currency="USD", limit=3, cursor=cursor, **options)
        pages.append(
            [
                (
                    r.id,
                    str(r.mrr.amount),
                    str(r.ltv.amount),
                    str(r.total_paid.amount),
                    str(r.credit_balance.amount),
                    r.active_services,
                    r.last_payment_at,
                )
                for r in page.items
            ]
        )
        cursor = page.next_cursor
        if cursor is None:
            return pages


_OPTIONS: list[dict[str, Any]] = [
    *({"sort": s, "direction": d} for s in CustomerSort for d in Direction),
    {"paying": True},
    {"paying": False, "sort": CustomerSort.LAST_PAYMENT},
    {"has_active_services": True, "sort": CustomerSort.MRR, "direction": Direction.DESC},
    {"status": "active"},
    {"search": "a"},
]


def test_a_covered_page_reads_the_ledger_not_the_records(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = _book()
    memory = InMemoryStore(cursor_secret=SHARED_SECRET)
    memory.import_book(book)
    for store in _store(backend, book):
        reads = _Reads(store, monkeypatch)
        for options in _OPTIONS:
            reads.clear()
            # The rows as the in-memory store shows them (the figures' text included).
            assert _rows(store, **options) == _rows(memory, **options), options
            assert set(reads.kinds) <= {"customer"}, options
            # The credit-balance sort sums the credit entries (no record decoded).
            expected = {"credits"} if options.get("sort") is CustomerSort.CREDIT_BALANCE else set()
            assert set(reads.tables) == expected, options


def test_a_customer_lacking_a_rate_reads_its_records(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = InMemoryStore(cursor_secret=SHARED_SECRET)
    without.import_book(_book())
    others = frozenset("abcdefg")
    for store in _store(backend, _book(lacking=True)):
        reads = _Reads(store, monkeypatch)
        for sort in (CustomerSort.ID, CustomerSort.LAST_PAYMENT):
            reads.clear()
            options = {"sort": sort, "direction": Direction.DESC}
            # z's records do not change the others' rows.
            assert _rows(store, customer_ids=others, **options) == _rows(without, **options)
            if sort is CustomerSort.LAST_PAYMENT:
                # z has no cash entries: the sort reads the transactions.
                assert reads.tables["transactions"] > 0
        # z's row comes from its records (the ledger has none of its cash), which need
        # the GBP rate of its payment: missing, as the in-memory store finds.
        reads.clear()
        with pytest.raises(MissingRateError):
            store.customers.page(as_of=AS_OF, currency="USD", customer_ids=["z", "a"])
        assert reads.kinds["transaction"] > 0


def test_an_amount_without_limbs_sorts_by_the_exact_sums(backend: str) -> None:
    # 50 decimal places: no money limbs on SQLite, so the limb sort gives way to the
    # exact sums (the page of the in-memory store either way).
    fine = Money("1." + "0" * 49 + "1", "USD")
    book = _book()
    book = Book.of(
        customers=book.customers,
        subscriptions=book.subscriptions,
        transactions=(*book.transactions, payment("px", "c", fine, t(2024, 3, 3))),
        credits=book.credits,
        fx=book.fx,
    )
    memory = InMemoryStore(cursor_secret=SHARED_SECRET)
    memory.import_book(book)
    for store in _store(backend, book):
        for sort in (CustomerSort.LTV, CustomerSort.TOTAL_PAID):
            for direction in Direction:
                options = {"sort": sort, "direction": direction}
                assert _rows(store, **options) == _rows(memory, **options)
