"""Hypothesis strategies for the segment and CRM tests.

Kept here until the shared module (revcrm.testing.strategies) takes them over:
:func:`busy_books` (books whose customers pay every billing period, with open and
overdue invoices, in a short window so customers overlap), :func:`moments_near`
(moments at and around a book's own moments and the segment thresholds) and
:func:`tag_logs` (tag change logs for a book's customers).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import strategies as st

from revcrm import (
    Book,
    Customer,
    Invoice,
    Subscription,
    SubscriptionStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm.crm import TagChange
from revcrm.testing import strategies as rs

_TICK = timedelta(microseconds=1)
# Threshold lengths of the default SegmentConfig and of the configs the tests draw.
DAYS = (0, 1, 14, 30, 35, 90, 365, 400)


def _offsets(days: tuple[int, ...]) -> tuple[timedelta, ...]:
    edges = (-_TICK, timedelta(0), _TICK)
    return tuple(
        sorted({sign * (timedelta(days=d) + e) for d in days for e in edges for sign in (1, -1)})
    )


def _anchors(book: Book) -> list[datetime]:
    out = [c.registered_at for c in book.customers]
    out += [t.at for t in book.transactions]
    out += [i.issued_at for i in book.invoices]
    out += [datetime.combine(i.due_date, time(0), tzinfo=UTC) for i in book.invoices]
    for sub in book.subscriptions:
        out += [c.at for c in sub.history]
        for s in sub.states:
            if s.ended_at is not None:
                out.append(s.ended_at)
            if s.cancel_at_period_end and s.cancel_requested_at is not None:
                out.append(s.service_period(s.cancel_requested_at)[1])
    return out


def moments_near(book: Book, days: tuple[int, ...] = DAYS) -> st.SearchStrategy[datetime]:
    """A moment of the book shifted by one of ``days`` (give or take a microsecond, either
    way), or any moment of the default range."""
    near = st.builds(
        lambda a, d: a + d, st.sampled_from(_anchors(book)), st.sampled_from(_offsets(days))
    )
    return st.one_of(near, near, near, rs.moments())


def edges(
    book: Book, *, active_days: int, cancellation_days: int, new_days: int
) -> dict[str, list[datetime]]:
    """The moments at which a segment rule may flip for this book and these thresholds,
    by rule: a payment leaving the Active window, a cancellation entering the At Risk
    window, a registration leaving New, an invoice becoming overdue, a service ending."""
    cancellations, ends = [], []
    for sub in book.subscriptions:
        for s in sub.states:
            if s.ended_at is not None:
                ends.append(s.ended_at)
                cancellations.append(s.ended_at - timedelta(days=cancellation_days))
            if s.cancel_at_period_end and s.cancel_requested_at is not None:
                end = s.service_period(s.cancel_requested_at)[1]
                cancellations.append(end - timedelta(days=cancellation_days))
    return {
        "new": [c.registered_at + timedelta(days=new_days) for c in book.customers],
        "active": [
            t.at + timedelta(days=active_days)
            for t in book.transactions
            if t.succeeded and t.kind is TransactionKind.PAYMENT
        ],
        "overdue": [
            datetime.combine(i.due_date + timedelta(days=1), time(0), tzinfo=UTC)
            for i in book.invoices
        ],
        "cancellation": cancellations,
        "service end": ends,
    }


def around(moment: datetime) -> tuple[datetime, datetime, datetime]:
    """A microsecond before, at, and a microsecond after ``moment``."""
    return (moment - _TICK, moment, moment + _TICK)


_TAGS = ("VIP", "vip", "Reseller", "late payer", "Partner")


def tag_logs(book: Book) -> st.SearchStrategy[list[TagChange]]:
    """Tag additions and removals for the book's customers (names in several cases)."""
    ids = [c.id for c in book.customers]
    change = st.builds(
        lambda cid, tag, added, at: (TagChange.added if added else TagChange.removed)(
            customer_id=cid, tag=tag, at=at
        ),
        st.sampled_from(ids),
        st.sampled_from(_TAGS),
        st.booleans(),
        rs.moments(),
    )
    return st.lists(change, max_size=12)


_START = datetime(2023, 1, 1, tzinfo=UTC)
_END = datetime(2025, 12, 31, tzinfo=UTC)
_PAYING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


def _billing_dates(sub: Subscription, until: datetime, limit: int) -> list[tuple[datetime, int]]:
    """(moment, index of the state) of each billing date while the service was paying."""
    out: list[tuple[datetime, int]] = []
    changes = sub.history
    for i, s in enumerate(sub.states):
        if s.status not in _PAYING:
            continue
        stop = min(changes[i + 1].at if i + 1 < len(changes) else until, until)
        at = max(changes[i].at, s.billing_anchor)
        while at < stop and len(out) < limit:
            out.append((at, i))
            at = s.service_period(at)[1]
    return out


@st.composite
def busy_books(draw: st.DrawFn, max_customers: int = 5) -> Book:
    """Customers registered in 2023-2025 with 0-2 subscriptions each (USD or EUR), a
    payment attempt on each billing date while paying (mostly succeeded, some failed,
    some linked to the subscription, some refunded), and invoices for some billed
    periods (paid, open or void), so every segment and profile section is met."""
    customers: list[Customer] = []
    subs: list[Subscription] = []
    invoices: list[Invoice] = []
    txns: list[Transaction] = []
    for i in range(draw(st.integers(1, max_customers))):
        cid = f"cus_{i}"
        c = draw(rs.customers(id=cid, registered=rs.moments(min_value=_START, max_value=_END)))
        customers.append(c)
        for _ in range(draw(st.integers(0, 2))):
            sid = f"sub_{len(subs)}"
            sub = draw(
                rs.subscriptions(
                    cid,
                    id=sid,
                    currency=st.sampled_from(("USD", "EUR")),
                    start=rs.moments(min_value=c.registered_at, max_value=_END),
                    until=_END,
                    max_changes=4,
                )
            )
            subs.append(sub)
            for at, k in _billing_dates(sub, _END, 30):
                amount = sub.states[k].list_amount()
                if amount.is_zero():
                    continue
                ok = draw(st.integers(0, 5)) > 0
                linked = draw(st.booleans())
                tid = f"txn_{len(txns)}"
                txns.append(
                    Transaction(
                        id=tid,
                        customer_id=cid,
                        kind=TransactionKind.PAYMENT,
                        status=TransactionStatus.SUCCEEDED if ok else TransactionStatus.FAILED,
                        amount=amount,
                        method="card",
                        at=at,
                        subscription_id=sid if linked else None,
                    )
                )
                if ok and draw(st.integers(0, 9)) == 0:
                    txns.append(
                        Transaction(
                            id=f"txn_{len(txns)}",
                            customer_id=cid,
                            kind=TransactionKind.REFUND,
                            status=TransactionStatus.SUCCEEDED,
                            amount=amount,
                            method="card",
                            at=at + timedelta(days=3),
                            subscription_id=sid if linked else None,
                        )
                    )
            for _ in range(draw(st.integers(0, 2))):
                inv: Invoice = draw(
                    rs.invoices(cid, id=f"inv_{len(invoices)}", subscription=sub, max_lines=2)
                )
                invoices.append(inv)
    fx = draw(rs.fx_rates(("USD", "EUR"), since=date(2014, 1, 1), until=_END.date()))
    return Book.of(
        customers=customers, subscriptions=subs, invoices=invoices, transactions=txns, fx=fx
    )
