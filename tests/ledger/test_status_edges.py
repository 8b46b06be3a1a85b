"""The ledger's customer-status pieces (:func:`status_intervals`, which walks the rule's
moments with a pointer per subscription and a count of open overdue pieces) say what
:func:`revcrm.crm.customer_status` says over the records:

* at every rule moment and every piece edge, and a microsecond either side of each;
* piece for piece, the pieces of the rule asked afresh at every moment (the former
  evaluation: ``customer_status`` at each moment, neighbours of one status merged).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings

from revcrm import Book, Invoice, InvoiceStatus, Subscription
from revcrm._ledger._status import (
    StatusInterval,
    overdue_intervals,
    rule_moments,
    status_intervals,
)
from revcrm.crm import CustomerStatus, customer_status
from revcrm.testing import strategies

from .._builders import customer, invoice, service, t, usd

_TICK = timedelta(microseconds=1)


def _held(pieces: list[StatusInterval], at: datetime) -> CustomerStatus:
    for p in pieces:
        if p.start <= at and (p.end is None or at < p.end):
            return p.status
    return CustomerStatus.LEAD


def _asked_afresh(
    cid: str, subs: Sequence[Subscription], invs: Sequence[Invoice]
) -> list[StatusInterval]:
    out: list[StatusInterval] = []
    current, opened = CustomerStatus.LEAD, None
    for at in rule_moments(subs, invs):
        status = customer_status(subs, invs, at)
        if status is current:
            continue
        if current is not CustomerStatus.LEAD and opened is not None:
            out.append(StatusInterval(customer_id=cid, start=opened, end=at, status=current))
        current, opened = status, at
    if current is not CustomerStatus.LEAD and opened is not None:
        out.append(StatusInterval(customer_id=cid, start=opened, end=None, status=current))
    return out


def _check(book: Book) -> None:
    for c in book.customers:
        subs = book.subscriptions_by_customer.get(c.id, ())
        invs = book.invoices_by_customer.get(c.id, ())
        pieces = status_intervals(c.id, subs, invs)
        assert pieces == _asked_afresh(c.id, subs, invs), c.id
        spans = [(i, lo, hi) for i in invs for lo, hi in overdue_intervals(i)]
        assert status_intervals(c.id, subs, invs, spans) == pieces, c.id
        edges = set(rule_moments(subs, invs))
        edges |= {p.start for p in pieces} | {p.end for p in pieces if p.end is not None}
        for edge in sorted(edges):
            for at in (edge - _TICK, edge, edge + _TICK):
                assert _held(pieces, at) is customer_status(subs, invs, at), (c.id, at)


@settings(
    deadline=None,
    max_examples=min(30, settings().max_examples),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(book=strategies.books(max_customers=3, max_subscriptions=3, max_invoices=3))
def test_the_pieces_are_the_rules_answer_around_every_edge(book: Book) -> None:
    _check(book)


def test_overlapping_overdue_invoices_and_a_cancelled_service() -> None:
    # Two overdue invoices overlap (the first paid while the second is still overdue),
    # the service is cancelled with its paid period running on, a third invoice stays
    # open and a second service starts while it is overdue.
    s1 = service("s1", "c1", usd(10), at=t(2024, 1, 1)).cancel(
        t(2024, 3, 10), ends_at=t(2024, 4, 1)
    )
    s2 = service("s2", "c1", usd(10), at=t(2024, 6, 1))
    paid = InvoiceStatus.PAID
    invs = [
        invoice(
            "i1", "c1", usd(10), issued=t(2024, 1, 1), due=date(2024, 1, 15), paid_at=t(2024, 3, 1)
        ),
        invoice(
            "i2", "c1", usd(10), issued=t(2024, 2, 1), due=date(2024, 2, 10), paid_at=t(2024, 3, 20)
        ),
        invoice(
            "i3",
            "c1",
            usd(10),
            issued=t(2024, 4, 15),
            due=date(2024, 5, 1),
            status=InvoiceStatus.OPEN,
        ),
    ]
    assert all(i.status is paid for i in invs[:2])
    _check(Book.of(customers=[customer("c1")], subscriptions=[s1, s2], invoices=invs))
    got = [(p.start, p.end, p.status) for p in status_intervals("c1", [s1, s2], invs)]
    S = CustomerStatus
    assert got == [
        (t(2024, 1, 1), t(2024, 1, 16), S.ACTIVE),
        (t(2024, 1, 16), t(2024, 3, 20), S.PAST_DUE),
        (t(2024, 3, 20), t(2024, 4, 1), S.ACTIVE),
        (t(2024, 4, 1), t(2024, 5, 2), S.CANCELLED),
        (t(2024, 5, 2), None, S.PAST_DUE),
    ]
