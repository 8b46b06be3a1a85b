"""Books of :mod:`revcrm.testing.strategies`: small valid books, books busy around
segment thresholds, and the moments near a book's own; import them from there."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from revcrm._book import Book
from revcrm._records import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceStatus,
    Plan,
    Product,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription, SubscriptionStatus
from revcrm.testing.strategies._billing import (
    _billed_periods,
    _invoices,
    _transactions,
    credit_entries,
    invoices,
    transactions,
)
from revcrm.testing.strategies._catalogue import customers, plans, subscriptions
from revcrm.testing.strategies._money_time import (
    DEFAULT_CURRENCIES,
    EARLIEST,
    LATEST,
    fx_rates,
    moments,
)


@st.composite
def _books(
    draw: st.DrawFn,
    given: tuple[str, ...] | None,
    single_currency: bool,
    max_customers: int,
    max_subscriptions: int,
    max_invoices: int,
    earliest: datetime,
    latest: datetime,
) -> Book:
    pool = given if given is not None else DEFAULT_CURRENCIES
    if single_currency:
        codes: tuple[str, ...] = (draw(st.sampled_from(pool)),)
    elif given is not None:
        codes = given
    else:
        codes = tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)))
    code = st.sampled_from(codes)
    product_list = [
        Product(id=f"prod_{i}", name=f"Product {i}") for i in range(draw(st.integers(1, 2)))
    ]
    plan_list: list[Plan] = []
    for p in product_list:
        for _ in range(draw(st.integers(1, 2))):
            plan_list.append(
                draw(plans(product_id=p.id, id=f"plan_{len(plan_list)}", currency=code))
            )
    customer_list: list[Customer] = []
    sub_list: list[Subscription] = []
    invoice_list: list[Invoice] = []
    txn_list: list[Transaction] = []
    credit_list: list[CreditEntry] = []
    window = moments(min_value=earliest, max_value=latest)
    for i in range(draw(st.integers(1, max_customers))):
        cid = f"cus_{i}"
        customer = draw(customers(id=cid, registered=window))
        customer_list.append(customer)
        for _ in range(draw(st.integers(0, max_subscriptions))):
            sid = f"sub_{len(sub_list)}"
            start = moments(min_value=customer.registered_at, max_value=latest)
            sub = draw(
                subscriptions(
                    cid,
                    id=sid,
                    currency=code,
                    plans=plan_list,
                    start=start,
                    until=latest,
                    max_changes=5,
                )
            )
            sub_list.append(sub)
            periods = _billed_periods(sub, latest)
            if periods and max_invoices:
                chosen = draw(
                    st.lists(
                        st.sampled_from(range(len(periods))),
                        max_size=max_invoices,
                        unique=True,
                    )
                )
                for k in sorted(chosen):
                    invoice_list.append(
                        draw(
                            _invoices(
                                st.just(cid),
                                st.just(f"inv_{len(invoice_list)}"),
                                code,
                                sub,
                                periods[k],
                                2,
                            )
                        )
                    )
        if draw(st.integers(0, 2)) == 0:
            invoice_list.append(
                draw(invoices(cid, id=f"inv_{len(invoice_list)}", currency=code, max_lines=2))
            )
        for _ in range(draw(st.integers(0, 2))):
            credit_list.append(
                draw(
                    credit_entries(
                        cid,
                        id=f"cred_{len(credit_list)}",
                        currency=code,
                        at=moments(min_value=customer.registered_at, max_value=latest),
                    )
                )
            )
    for inv in invoice_list:
        if inv.status is InvoiceStatus.PAID and inv.total.amount > 0:
            txn_list.append(
                draw(
                    _transactions(
                        st.just(inv.customer_id), st.just(f"txn_{len(txn_list)}"), code, inv
                    )
                )
            )
    if draw(st.booleans()):
        txn_list.append(
            draw(
                transactions(
                    st.sampled_from([c.id for c in customer_list]),
                    id=f"txn_{len(txn_list)}",
                    currency=code,
                )
            )
        )
    # Some records draw moments from the whole default range, whatever the window: the
    # rates must cover that range too.
    since = date(min(earliest, EARLIEST).year - 4, 1, 1)
    fx = draw(fx_rates(codes, since=since, until=latest.date(), max_changes=2))
    return Book.of(
        customers=customer_list,
        products=product_list,
        plans=plan_list,
        subscriptions=sub_list,
        invoices=invoice_list,
        transactions=txn_list,
        credits=credit_list,
        fx=fx,
    )


def books(
    *,
    currencies: Iterable[str] | None = None,
    single_currency: bool = False,
    max_customers: int = 4,
    max_subscriptions: int = 2,
    max_invoices: int = 2,
    earliest: datetime = EARLIEST,
    latest: datetime = LATEST,
) -> SearchStrategy[Book]:
    """Small valid books built with :meth:`Book.of` (so ids are unique and references
    resolve).

    * Currencies: ``currencies`` when given (all of them, or one with
      ``single_currency``), else one to three of :data:`DEFAULT_CURRENCIES` (one with
      ``single_currency``). Every record's money is in one of them.
    * One or two products with one or two plans each (some free, some one-off).
    * 1..``max_customers`` customers ``cus_0``, ``cus_1``... registered in
      ``[earliest, latest]``, each with 0..``max_subscriptions`` subscriptions
      (:func:`subscriptions`, starting after registration, often on the book's plans).
    * Up to ``max_invoices`` invoices per subscription, each for a distinct billed
      service period (a sample of the periods, not all of them), plus an occasional
      one-off invoice per customer; a succeeded payment (or a refund) per paid invoice
      with a positive total; an occasional free-standing transaction; up to two credit
      entries per customer.
    * ``fx``: rates between every pair of the book's currencies from January 1st four
      years before ``earliest`` (see :func:`fx_rates`), so ``mrr(book, currency=c)``
      works for any of them.
    """
    given = None
    if currencies is not None:
        given = tuple(dict.fromkeys(currencies))
        if not given:
            raise ValueError("books(currencies=...) needs at least one code")
    return _books(
        given, single_currency, max_customers, max_subscriptions, max_invoices, earliest, latest
    )


# -- segments and CRM: books busy around segment thresholds ---------------------------------

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
    return st.one_of(near, near, near, moments())


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


_BUSY_START = datetime(2023, 1, 1, tzinfo=UTC)
_BUSY_END = datetime(2025, 12, 31, tzinfo=UTC)
_BUSY_PAYING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


def _billing_dates(sub: Subscription, until: datetime, limit: int) -> list[tuple[datetime, int]]:
    """(moment, index of the state) of each billing date while the service was paying."""
    out: list[tuple[datetime, int]] = []
    changes = sub.history
    for i, s in enumerate(sub.states):
        if s.status not in _BUSY_PAYING:
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
    some linked to the subscription, some refunded), and invoice_list_ for some billed
    periods (paid, open or void), so every segment and profile section is met."""
    customer_list_: list[Customer] = []
    subs: list[Subscription] = []
    invoice_list_: list[Invoice] = []
    txns: list[Transaction] = []
    for i in range(draw(st.integers(1, max_customers))):
        cid = f"cus_{i}"
        c = draw(customers(id=cid, registered=moments(min_value=_BUSY_START, max_value=_BUSY_END)))
        customer_list_.append(c)
        for _ in range(draw(st.integers(0, 2))):
            sid = f"sub_{len(subs)}"
            sub = draw(
                subscriptions(
                    cid,
                    id=sid,
                    currency=st.sampled_from(("USD", "EUR")),
                    start=moments(min_value=c.registered_at, max_value=_BUSY_END),
                    until=_BUSY_END,
                    max_changes=4,
                )
            )
            subs.append(sub)
            for at, k in _billing_dates(sub, _BUSY_END, 30):
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
                    invoices(cid, id=f"inv_{len(invoice_list_)}", subscription=sub, max_lines=2)
                )
                invoice_list_.append(inv)
    fx = draw(fx_rates(("USD", "EUR"), since=date(2014, 1, 1), until=_BUSY_END.date()))
    return Book.of(
        customers=customer_list_,
        subscriptions=subs,
        invoices=invoice_list_,
        transactions=txns,
        fx=fx,
    )
