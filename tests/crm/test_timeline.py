"""The activity timeline: every kind of entry in time order, cut at as_of."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import Book, FxRates, InvoiceStatus, Money
from revcrm.crm import (
    LoggedCall,
    Note,
    TagChange,
    TimelineKind,
    activity_timeline,
    format_timeline,
)
from revcrm.errors import NotFoundError, ValidationError
from revcrm.leads import Lead
from revcrm.metrics import analyse
from revcrm.testing import strategies as rs
from revcrm.testing.strategies import book_tag_logs, busy_books, moments_near
from tests._builders import customer, invoice, payment, service, t, usd

AS_OF = t(2024, 6, 15)
TICK = timedelta(microseconds=1)


def _book() -> Book:
    sub = service("s1", "c1", usd(30), at=t(2024, 2, 1)).change_plan(t(2024, 4, 1), price=usd(50))
    return Book.of(
        customers=[customer("c1", t(2024, 1, 20))],
        subscriptions=[sub],
        invoices=[
            invoice("i1", "c1", usd(30), issued=t(2024, 2, 1), subscription_id="s1"),
            invoice("i2", "c1", usd(50), issued=t(2024, 6, 20), status=InvoiceStatus.OPEN),
        ],
        transactions=[
            payment("p1", "c1", usd(30), t(2024, 2, 1), invoice_id="i1"),
            payment("p2", "c1", usd(50), t(2024, 5, 1), status="failed"),
        ],
    )


def _lead() -> Lead:
    lead = Lead(id="L1", email="ana@example.com", created_at=t(2024, 1, 5), owner_id="alice")
    lead = lead.contact(at=t(2024, 1, 8), staff_id="alice", note="left a voicemail")
    return lead.convert("c1", at=t(2024, 1, 20), staff_id="alice")


def test_every_kind_in_time_order() -> None:
    note = Note.create(
        id="n1", customer_id="c1", author_id="bob", body="Asked for\nan upgrade", at=t(2024, 3, 30)
    )
    gone, _ = Note.create(
        id="n2", customer_id="c1", author_id="bob", body="x", at=t(2024, 3, 1)
    ).delete(at=t(2024, 3, 2), staff_id="bob")
    call = LoggedCall(
        id="k1", customer_id="c1", at=t(2024, 3, 31), staff_id="bob", summary="Upgrade call"
    )
    tags = [
        TagChange.added(customer_id="c1", tag="VIP", at=t(2024, 4, 2), staff_id="alice"),
        TagChange.removed(customer_id="c1", tag="vip", at=t(2024, 7, 1), staff_id="alice"),
    ]
    entries = activity_timeline(
        _book(),
        "c1",
        as_of=AS_OF,
        currency="USD",
        notes=[note, gone],
        calls=[call],
        lead=_lead(),
        tag_changes=tags,
    )
    got = [(e.at, e.kind, e.summary) for e in entries]
    assert got == [
        (t(2024, 1, 5), TimelineKind.LEAD_EVENT, "Lead created"),
        (
            t(2024, 1, 8),
            TimelineKind.LEAD_EVENT,
            "Lead moved from new to contacted: left a voicemail",
        ),
        (t(2024, 1, 20), TimelineKind.REGISTERED, "Registered"),
        (t(2024, 1, 20), TimelineKind.LEAD_EVENT, "Lead moved from contacted to converted"),
        (t(2024, 2, 1), TimelineKind.INVOICE, "Invoice INV-i1 issued, due 2024-02-15"),
        (t(2024, 2, 1), TimelineKind.TRANSACTION, "Payment succeeded via stripe for invoice i1"),
        (t(2024, 2, 1), TimelineKind.MRR_MOVEMENT, "MRR new"),
        (t(2024, 3, 30), TimelineKind.NOTE, "Note: Asked for"),
        (t(2024, 3, 31), TimelineKind.CALL, "Call logged: Upgrade call"),
        (t(2024, 4, 1), TimelineKind.MRR_MOVEMENT, "MRR expansion"),
        (t(2024, 4, 2), TimelineKind.TAG_CHANGE, "Tag 'VIP' added"),
        (t(2024, 5, 1), TimelineKind.TRANSACTION, "Payment failed via stripe"),
    ]
    movement = entries[6]
    assert movement.amount == usd(30)
    assert movement.ref == "s1"
    assert entries[9].amount == usd(20)
    assert entries[5].amount == entries[5].original_amount == usd(30)
    assert entries[8].staff_id == "bob"
    assert entries[0].ref == "L1"
    text = format_timeline(entries, locale="en_US")
    assert "2024-04-01 00:00 mrr_movement MRR expansion $20.00" in text
    assert len(text.splitlines()) == len(entries)


def test_amounts_are_converted_at_their_dates() -> None:
    fx = FxRates.from_rates(
        [(date(2024, 1, 1), "EUR", "USD", "1.10"), (date(2024, 5, 1), "EUR", "USD", "1.20")]
    )
    book = Book.of(
        customers=[customer("c1")],
        transactions=[
            payment("p1", "c1", Money("100", "EUR"), t(2024, 2, 1)),
            payment("p2", "c1", Money("100", "EUR"), t(2024, 5, 2)),
        ],
        fx=fx,
    )
    entries = activity_timeline(book, "c1", as_of=AS_OF, currency="USD")
    cash = [e.amount for e in entries if e.kind is TimelineKind.TRANSACTION]
    assert cash == [usd(110), usd(120)]


def test_lead_events_may_come_loose() -> None:
    lead = _lead()
    entries = activity_timeline(
        _book(), "c1", as_of=AS_OF, currency="USD", lead_events=lead.history
    )
    assert [e.summary for e in entries if e.kind is TimelineKind.LEAD_EVENT] == [
        "Lead moved from new to contacted: left a voicemail",
        "Lead moved from contacted to converted",
    ]
    with pytest.raises(ValidationError, match="lead_events"):
        activity_timeline(
            _book(), "c1", as_of=AS_OF, currency="USD", lead=lead, lead_events=lead.history
        )


def test_inputs_are_checked() -> None:
    book = _book()
    with pytest.raises(NotFoundError):
        activity_timeline(book, "c9", as_of=AS_OF, currency="USD")
    call = LoggedCall(id="k", customer_id="c2", at=t(2024, 1, 1))
    with pytest.raises(ValidationError, match=r"calls\[0\]\.customer_id"):
        activity_timeline(book, "c1", as_of=AS_OF, currency="USD", calls=[call])
    with pytest.raises(ValidationError, match="analysis"):
        activity_timeline(
            book, "c1", as_of=AS_OF, currency="USD", analysis=analyse(Book.of(), currency="EUR")
        )
    with pytest.raises(ValidationError, match="currency"):
        activity_timeline(book, "c1", as_of=AS_OF, currency="usd")


@given(st.data())
def test_the_timeline_is_complete_ordered_and_cut_at_as_of(data: st.DataObject) -> None:
    book = data.draw(st.one_of(rs.books(currencies=("USD", "EUR")), busy_books()))
    at = data.draw(moments_near(book))
    cid = data.draw(st.sampled_from([c.id for c in book.customers]))
    changes = [c for c in data.draw(book_tag_logs(book)) if c.customer_id == cid]
    notes = [
        Note.create(id=f"n{i}", customer_id=cid, author_id="a", body="b", at=when)
        for i, when in enumerate(data.draw(st.lists(rs.moments(), max_size=3)))
    ]
    entries = activity_timeline(
        book, cid, as_of=at, currency="USD", notes=notes, tag_changes=changes
    )
    assert [e.sort_key for e in entries] == sorted(e.sort_key for e in entries)
    assert all(e.at <= at for e in entries)

    def count(kind: TimelineKind) -> int:
        return sum(1 for e in entries if e.kind is kind)

    assert count(TimelineKind.REGISTERED) == (book.customer(cid).registered_at <= at)
    assert count(TimelineKind.TRANSACTION) == sum(
        1 for x in book.transactions if x.customer_id == cid and x.at <= at
    )
    assert count(TimelineKind.INVOICE) == sum(
        1 for i in book.invoices if i.customer_id == cid and i.issued_at <= at
    )
    assert count(TimelineKind.TAG_CHANGE) == sum(1 for c in changes if c.at <= at)
    assert count(TimelineKind.NOTE) == sum(1 for n in notes if n.created_at <= at)
    analysis = analyse(book, currency="USD", horizon=at + TICK)
    moves = [
        m
        for m in analysis.movements(rs.EARLIEST - timedelta(days=3650), at + TICK)
        if m.customer_id == cid
    ]
    assert [e.record for e in entries if e.kind is TimelineKind.MRR_MOVEMENT] == moves
