"""The customer status from the ledger (issue 13): the service-state rows containing a
moment and the customer facts there (troubled, active and ended services, overdue
invoices), fed to the rule's one definition, equal :func:`revcrm.crm.customer_status`
over the customer's records. The memory store's status filter reads the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm._ledger._cash import cash_columns
from revcrm._ledger._facts import LedgerRows, customer_statuses, fact_columns
from revcrm._ledger._services import service_columns
from revcrm.crm import CustomerStatus, customer_status
from revcrm.storage import InMemoryStore
from revcrm.testing import strategies as rs


def _ledger(book: Book, at: datetime) -> LedgerRows:
    """The ledger's cash, service and fact columns at ``at`` (no MRR: the status does not
    read it, and an analysis would only slow the property down)."""
    ids = tuple(c.id for c in book.customers)
    cash = cash_columns(book, "USD", customer_ids=ids, through=None, credits=False)
    services = service_columns(book, customer_ids=ids, horizon=at)
    facts, now = fact_columns(
        book, as_of=at, cash=cash, services=services, mrr={}, mrr_digits=0, first_paid={}
    )
    return LedgerRows(cash=cash, services=services, services_at=now, facts=facts)


def _by_records(book: Book, at: datetime) -> list[CustomerStatus]:
    subs, invoices = book.subscriptions_by_customer, book.invoices_by_customer
    return [customer_status(subs.get(c.id, ()), invoices.get(c.id, ()), at) for c in book.customers]


@st.composite
def _book_and_moments(draw: st.DrawFn) -> tuple[Book, list[datetime]]:
    book = draw(st.one_of(rs.busy_books(), rs.books(currencies=["USD"])))
    return book, draw(st.lists(rs.moments_near(book), min_size=1, max_size=4))


@settings(max_examples=40, deadline=None)
@given(_book_and_moments())
def test_ledger_status_equals_customer_status_over_the_records(
    case: tuple[Book, list[datetime]],
) -> None:
    book, moments = case
    for at in moments:
        assert customer_statuses(_ledger(book, at)) == _by_records(book, at)


@settings(max_examples=10, deadline=None)
@given(rs.busy_books(), st.integers(0, 900))
def test_memory_store_status_filter_reads_the_ledger(book: Book, days: int) -> None:
    at = datetime(2023, 1, 1, tzinfo=book.customers[0].registered_at.tzinfo) + timedelta(days=days)
    store = InMemoryStore()
    store.import_book(book)
    want = _by_records(book, at)
    for status in CustomerStatus:
        page = store.customers.page(as_of=at, currency="USD", status=status, limit=1000)
        expected = {c.id for c, s in zip(book.customers, want, strict=True) if s is status}
        assert {r.id for r in page.items} == expected
