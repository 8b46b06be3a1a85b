"""The Active rule's service facts in the SQL store are the rule's, materialised: the
steps of how far a service's invoices reach (``service_reach``) equal the line-by-line
definition at every moment, and the SQL store reads them (and each service's billing
calendar) from its ledger rows alone, never from the invoice lines or the states.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm._records import Invoice, InvoiceStatus
from revcrm.segments import Segment, segmentation
from revcrm.segments._rules import reach_at, service_reach
from revcrm.storage import SQLStore
from revcrm.testing import strategies

from .._builders import customer, invoice, service, t, usd

_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def _line_by_line(
    subscription_id: str, at: datetime, invoices: Iterable[Invoice]
) -> tuple[datetime | None, datetime | None]:
    """``billed_through`` / ``paid_through`` as ``ServiceFacts`` defines them, per line."""
    billed: datetime | None = None
    paid: datetime | None = None
    for inv in invoices:
        if inv.issued_at > at or inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            continue
        is_paid = inv.status is InvoiceStatus.PAID and (inv.paid_at is None or inv.paid_at <= at)
        for line in inv.lines:
            if (
                line.subscription_id != subscription_id
                or line.period_start is None
                or line.period_end is None
                or line.period_start > at
            ):
                continue
            billed = line.period_end if billed is None else max(billed, line.period_end)
            if is_paid:
                paid = line.period_end if paid is None else max(paid, line.period_end)
    return billed, paid


def _edges(invoices: Iterable[Invoice]) -> Iterator[datetime]:
    for inv in invoices:
        yield inv.issued_at
        if inv.paid_at is not None:
            yield inv.paid_at
        for line in inv.lines:
            if line.period_start is not None:
                yield line.period_start


@settings(_SETTINGS, max_examples=min(60, settings().max_examples))
@given(book=st.one_of(strategies.books(max_customers=4), strategies.busy_books()), data=st.data())
def test_the_reach_steps_equal_the_line_by_line_definition(book: Book, data: st.DataObject) -> None:
    invoices = book.invoices
    edges = sorted(set(_edges(invoices)))
    moments = data.draw(st.lists(strategies.moments_near(book), max_size=3), label="moments")
    if edges:
        edge = data.draw(st.sampled_from(edges), label="edge")
        moments += [edge - timedelta(microseconds=1), edge, edge + timedelta(microseconds=1)]
    for sub in book.subscriptions:
        steps = service_reach(sub.id, invoices)
        assert [s.start for s in steps] == sorted(s.start for s in steps)
        for at in moments:
            step = reach_at(steps, at)
            got = (None, None) if step is None else (step.billed_through, step.paid_through)
            assert got == _line_by_line(sub.id, at, invoices), (sub.id, at)


def _paid_by_invoice_only() -> Book:
    """A monthly service whose current period's invoice is paid, with no payment recorded:
    Active by its invoice alone (without the invoice, no payment would make it Active)."""
    return Book.of(
        customers=[customer("a")],
        subscriptions=[service("s", "a", usd(10), at=t(2024, 1, 10))],
        invoices=[
            invoice("i1", "a", usd(10), issued=t(2024, 3, 10), subscription_id="s"),
            invoice(
                "i2",
                "a",
                usd(10),
                issued=t(2024, 4, 10),
                subscription_id="s",
                status=InvoiceStatus.OPEN,
            ),
        ],
    )


def _check_reads_the_ledger_alone(store: SQLStore) -> None:
    book = _paid_by_invoice_only()
    store.import_book(book)
    march, april = t(2024, 3, 20), t(2024, 4, 20)

    def expected(b: Book, at: datetime) -> frozenset[Segment]:
        return segmentation(b, as_of=at, currency="USD", policy=store.policy).segments_of("a")

    assert Segment.ACTIVE in expected(book, march)  # paid by its invoice
    assert Segment.ACTIVE not in expected(book, april)  # the April invoice is open
    for at in (march, april):
        assert store.segments_of(["a"], as_of=at, currency="USD")["a"] == expected(book, at)
    # An invoice write keeps the reach rows up in its transaction.
    paid = attrs.evolve(book.invoices[1], status=InvoiceStatus.PAID, paid_at=t(2024, 4, 12))
    store.invoices.upsert(paid)
    book = attrs.evolve(book, invoices=(book.invoices[0], paid))
    assert Segment.ACTIVE in expected(book, april)
    s = store._schema
    with store.engine.begin() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(s.ledger_reach)).scalar()
        assert n == 3  # i1 billed and paid at once; i2 billed, then paid
        # What the query must not read: the lines and the states' billing calendars.
        conn.execute(s.lines.delete())
        conn.execute(s.states.update().values(anchor=t(2024, 1, 25), cycle_unit="year"))
    for at in (march, april, t(2024, 4, 11)):
        assert store.segments_of(["a"], as_of=at, currency="USD")["a"] == expected(book, at), at


@pytest.fixture
def sqlite_store() -> Iterator[SQLStore]:
    store = SQLStore("sqlite://")
    store.create_schema()
    yield store
    store.close()


def test_sqlite_reads_the_active_facts_from_the_ledger_alone(sqlite_store: SQLStore) -> None:
    _check_reads_the_ledger_alone(sqlite_store)


@pytest.mark.postgres
def test_postgres_reads_the_active_facts_from_the_ledger_alone(postgres_url: str) -> None:
    store = SQLStore(postgres_url, prefix=f"f{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    try:
        _check_reads_the_ledger_alone(store)
    finally:
        store.drop_schema()
        store.close()


def _check_ordered_reads_the_ledger_alone(store: SQLStore) -> None:
    """Never Purchased by invoice: a draft or void invoice is no order, an open one is;
    the SQL store reads when each customer first ordered by invoice from its ledger rows
    (kept up by invoice writes), not the invoices' statuses."""
    book = Book.of(
        customers=[customer("d"), customer("o"), customer("l")],
        invoices=[
            invoice("d1", "d", usd(5), issued=t(2024, 2, 1), status=InvoiceStatus.DRAFT),
            invoice("d2", "d", usd(5), issued=t(2024, 2, 1), status=InvoiceStatus.VOID),
            invoice("o1", "o", usd(5), issued=t(2024, 2, 1), status=InvoiceStatus.OPEN),
            invoice("l1", "l", usd(5), issued=t(2024, 2, 1), status=InvoiceStatus.DRAFT),
        ],
    )
    store.import_book(book)
    at = t(2024, 3, 1)
    pure = segmentation(book, as_of=at, currency="USD", policy=store.policy)
    assert Segment.NEVER_PURCHASED in pure.segments_of("d")
    assert Segment.NEVER_PURCHASED not in pure.segments_of("o")
    s = store._schema
    with store.engine.begin() as conn:  # what the query must not read
        conn.execute(s.invoices.update().values(status="paid").where(s.invoices.c.id.like("d%")))
        conn.execute(s.invoices.update().values(status="void").where(s.invoices.c.id == "o1"))
    got = store.segments_of(["d", "o"], as_of=at, currency="USD")
    assert got == {"d": pure.segments_of("d"), "o": pure.segments_of("o")}
    before = store.segments_of(["o"], as_of=t(2024, 1, 31), currency="USD")["o"]
    assert Segment.NEVER_PURCHASED in before  # not issued yet
    assert Segment.NEVER_PURCHASED in store.segments_of(["l"], as_of=at, currency="USD")["l"]
    # An invoice write keeps the rows up in its transaction.
    draft = next(inv for inv in book.invoices if inv.id == "l1")
    store.invoices.upsert(attrs.evolve(draft, status=InvoiceStatus.OPEN))
    assert Segment.NEVER_PURCHASED not in store.segments_of(["l"], as_of=at, currency="USD")["l"]


def test_sqlite_reads_ordered_from_the_ledger_alone(sqlite_store: SQLStore) -> None:
    _check_ordered_reads_the_ledger_alone(sqlite_store)


@pytest.mark.postgres
def test_postgres_reads_ordered_from_the_ledger_alone(postgres_url: str) -> None:
    store = SQLStore(postgres_url, prefix=f"f{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    try:
        _check_ordered_reads_the_ledger_alone(store)
    finally:
        store.drop_schema()
        store.close()


def _check_subscriber_since_reads_the_ledger(store: SQLStore) -> None:
    """Churned needs a first-paid moment: the SQL store reads it from the ledger's
    first-paid rows (the engine's ``first_paid``), not the spans."""
    gone = service("s", "c", usd(10), at=t(2024, 1, 10)).cancel(
        t(2024, 2, 1), ends_at=t(2024, 2, 10)
    )
    book = Book.of(customers=[customer("c"), customer("n")], subscriptions=[gone])
    store.import_book(book)
    at = t(2024, 3, 1)
    pure = segmentation(book, as_of=at, currency="USD", policy=store.policy)
    assert Segment.CHURNED in pure.segments_of("c")
    with store.engine.begin() as conn:  # what the query must not read
        conn.execute(store._schema.spans.delete())
    got = store.segments_of(["c", "n"], as_of=at, currency="USD")
    assert got == {"c": pure.segments_of("c"), "n": pure.segments_of("n")}
    assert Segment.CHURNED not in store.segments_of(["c"], as_of=t(2024, 1, 9), currency="USD")["c"]


def test_sqlite_reads_subscriber_since_from_the_ledger(sqlite_store: SQLStore) -> None:
    _check_subscriber_since_reads_the_ledger(sqlite_store)


@pytest.mark.postgres
def test_postgres_reads_subscriber_since_from_the_ledger(postgres_url: str) -> None:
    store = SQLStore(postgres_url, prefix=f"f{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    try:
        _check_subscriber_since_reads_the_ledger(store)
    finally:
        store.drop_schema()
        store.close()
