"""The ledger's customer-status intervals (schema 8): the rule's answer, materialised.

* At any moment, the interval holding it says what ``customer_status`` says (``lead``
  where none holds), and an invoice's overdue pieces what ``invoice_overdue`` says, for
  any book (pure, no store).
* An invoice write alone (an invoice becoming overdue, then paid) changes the SQL
  store's status filter in the write's own transaction.
* A plan write moving the plan to another product moves its services in the product
  filter (the service rows name the plan's product).
* The segments' service facts from the stored rows equal those built from the
  subscriptions for the moment (the path past the ledger's horizon).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from revcrm import BillingCycle, Book, InvoiceStatus, Plan, Product
from revcrm._ledger._status import overdue_intervals, status_intervals
from revcrm.crm import CustomerStatus, customer_status, invoice_overdue
from revcrm.storage import SQLStore
from revcrm.storage._query import CustomerQuery
from revcrm.testing import strategies
from revcrm.testing.contract import sample_book

from .._builders import customer, invoice, service, t, usd

_NO, _LATER = timedelta(0), timedelta(days=20)


def _status_at(book: Book, cid: str, at: datetime) -> CustomerStatus:
    subs = book.subscriptions_by_customer.get(cid, ())
    invs = book.invoices_by_customer.get(cid, ())
    for piece in status_intervals(cid, subs, invs):
        if piece.start <= at and (piece.end is None or at < piece.end):
            return piece.status
    return CustomerStatus.LEAD


@settings(
    deadline=None,
    max_examples=min(40, settings().max_examples),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), book=strategies.books())
def test_the_interval_holding_a_moment_is_the_rules_answer(book: Book, data: st.DataObject) -> None:
    for _ in range(4):
        at = data.draw(strategies.moments_near(book), label="at")
        for c in book.customers:
            subs = book.subscriptions_by_customer.get(c.id, ())
            invs = book.invoices_by_customer.get(c.id, ())
            assert _status_at(book, c.id, at) is customer_status(subs, invs, at), (c.id, at)
        for inv in book.invoices:
            held = any(lo <= at and (hi is None or at < hi) for lo, hi in overdue_intervals(inv))
            assert held is invoice_overdue(inv, at), (inv.id, at)


def test_an_invoice_write_changes_the_status_filter() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    due = invoice("i1", "c1", usd(10), issued=t(2024, 1, 1), status=InvoiceStatus.OPEN)
    store.import_book(
        Book.of(
            customers=[customer("c1")],
            subscriptions=[service("s1", "c1", usd(10))],
            invoices=[due],
        )
    )

    def ids(status: CustomerStatus) -> list[str]:
        q = CustomerQuery(as_of=t(2024, 3, 1), currency="USD", status=status)
        return [r.customer.id for r in store.customers.query(q)]

    assert ids(CustomerStatus.PAST_DUE) == ["c1"]
    store.invoices.upsert(attrs.evolve(due, status=InvoiceStatus.PAID, paid_at=t(2024, 2, 1)))
    assert ids(CustomerStatus.PAST_DUE) == []
    assert ids(CustomerStatus.ACTIVE) == ["c1"]


def test_service_facts_past_the_horizon_are_the_rows_built_for_the_moment() -> None:
    # Within the horizon the stored service rows answer; past it the same rows are
    # built from the subscriptions for the moment: both agree where both may answer.
    store = SQLStore("sqlite://")
    store.create_schema()
    book = sample_book()
    store.import_book(book)
    moments = [c.at + d for s in book.subscriptions for c in s.history for d in (_NO, _LATER)]

    def both(conn: Connection) -> None:
        for at in moments:
            stored = store._services_at(conn, at, None)
            assert stored == store._services_from_records(conn, at, None), at

    store._run(False, both)


def test_a_plan_moved_to_another_product_moves_its_services_in_the_product_filter() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    plan = Plan(id="pl", product_id="p1", name="Basic", price=usd(10), cycle=BillingCycle.MONTHLY)
    store.import_book(
        Book.of(
            customers=[customer("c1")],
            products=[Product(id="p1", name="One"), Product(id="p2", name="Two")],
            plans=[plan],
            subscriptions=[service("s1", "c1", usd(10), plan_id="pl")],
        )
    )

    def ids(product: str) -> list[str]:
        q = CustomerQuery(as_of=t(2024, 3, 1), currency="USD", product_id=product)
        return [r.customer.id for r in store.customers.query(q)]

    assert (ids("p1"), ids("p2")) == (["c1"], [])
    store.plans.upsert(attrs.evolve(plan, product_id="p2"))
    assert (ids("p1"), ids("p2")) == ([], ["c1"])
