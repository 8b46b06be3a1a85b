"""Hypothesis strategies for every revcrm model, valid and invalid.

One module, so every new model extends it and every test (revcrm's own, other helpers',
a host application's) draws the same realistic data. All strategies are pure functions
returning a :class:`~hypothesis.strategies.SearchStrategy`; keyword options narrow them.

Valid values:

* :func:`currencies`, :func:`amounts`, :func:`money`, :func:`billing_cycles`,
  :func:`discounts`, :func:`moments`, :func:`dates`, :func:`ids`
* :func:`customers`, :func:`products`, :func:`plans`, :func:`subscriptions`,
  :func:`invoice_lines`, :func:`invoices`, :func:`transactions`, :func:`credit_entries`,
  :func:`fx_rates`, :func:`books`

Invalid values (each must be rejected by the model that receives it):

* :func:`negative_amounts`, :func:`negative_money`, :func:`non_positive_quantities`,
  :func:`invalid_quantities`, :func:`naive_datetimes`, :func:`float_amounts`,
  :func:`unknown_currency_codes`, :func:`invalid_amount_strings`

Hostile values (a public call must refuse each with a :class:`~revcrm.errors.RevcrmError`
or accept it, never crash; defined in :mod:`revcrm.testing._hostile`):

* :func:`hostile_text`, :func:`wrong_types`, :func:`hostile_text_or_wrong_type`,
  :func:`hostile_numbers`, :func:`hostile_decimals`, :func:`hostile_ints`,
  :func:`hostile_dates`, :func:`hostile_mappings`, :func:`forged_cursors`,
  :func:`hostile_values`

Every moment drawn is an aware UTC datetime between :data:`EARLIEST` and :data:`LATEST`
unless the caller passes other bounds. Books stay small (a few customers, a few changes
per subscription) so properties over them run in milliseconds per example.

Requires hypothesis (the ``test`` extra); importing this module has no other effect.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone

from hypothesis import strategies as st

from revcrm._book import Book
from revcrm._money import Money
from revcrm._records import (
    Customer,
    Invoice,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription, SubscriptionStatus
from revcrm.crm import TagChange
from revcrm.leads import TRANSITIONS, Lead, LeadStage, ReferralKind, ReferralSource
from revcrm.testing._hostile import (
    HOSTILE_CHARACTERS,
    LONG_TEXT_LENGTH,
    forged_cursors,
    hostile_dates,
    hostile_decimals,
    hostile_ints,
    hostile_mappings,
    hostile_numbers,
    hostile_text,
    hostile_text_or_wrong_type,
    hostile_values,
    wrong_types,
)
from revcrm.testing._record_strategies import (
    DEFAULT_CURRENCIES,
    EARLIEST,
    LATEST,
    NAMED_CYCLES,
    amounts,
    billing_cycles,
    books,
    credit_entries,
    currencies,
    customers,
    dates,
    discounts,
    float_amounts,
    fx_rates,
    ids,
    invalid_amount_strings,
    invalid_quantities,
    invoice_lines,
    invoices,
    minor_units,
    moments,
    money,
    naive_datetimes,
    negative_amounts,
    negative_money,
    non_positive_quantities,
    plans,
    products,
    subscriptions,
    transactions,
    unknown_currency_codes,
)
from revcrm.testing._sync_strategies import service_observations

__all__ = [
    "DEFAULT_CURRENCIES",
    "EARLIEST",
    "HOSTILE_CHARACTERS",
    "LATEST",
    "LONG_TEXT_LENGTH",
    "NAMED_CYCLES",
    "amounts",
    "billing_cycles",
    "books",
    "credit_entries",
    "currencies",
    "customers",
    "dates",
    "discounts",
    "float_amounts",
    "forged_cursors",
    "fx_rates",
    "hostile_dates",
    "hostile_decimals",
    "hostile_ints",
    "hostile_mappings",
    "hostile_numbers",
    "hostile_text",
    "hostile_text_or_wrong_type",
    "hostile_values",
    "ids",
    "invalid_amount_strings",
    "invalid_quantities",
    "invoice_lines",
    "invoices",
    "minor_units",
    "moments",
    "money",
    "naive_datetimes",
    "negative_amounts",
    "negative_money",
    "non_positive_quantities",
    "plans",
    "products",
    "service_observations",
    "subscriptions",
    "transactions",
    "unknown_currency_codes",
    "wrong_types",
]

# -- leads ----------------------------------------------------------------------------------

LEAD_LOST_REASONS = ("price", "no budget", "chose a competitor", "no answer")
LEAD_STAFF = ("staff-1", "staff-2", "staff-3")
LEAD_CURRENCIES = ("EUR", "USD", "JPY")

_LEAD_START = datetime(2023, 1, 1, tzinfo=UTC)


@functools.cache
def lead_moments(
    min_value: datetime = _LEAD_START, max_value: datetime = datetime(2026, 1, 1, tzinfo=UTC)
) -> st.SearchStrategy[datetime]:
    """Aware instants; some carry a non-UTC offset, which revcrm must normalise."""
    offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))])
    return st.builds(
        lambda naive, tz: naive.replace(tzinfo=UTC).astimezone(tz),
        st.datetimes(
            min_value=min_value.replace(tzinfo=None), max_value=max_value.replace(tzinfo=None)
        ),
        offsets,
    )


@functools.cache
def lead_gaps() -> st.SearchStrategy[timedelta]:
    """Time between two moves; zero happens (two moves in the same instant)."""
    return st.one_of(
        st.just(timedelta(0)),
        st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=60)),
    )


@functools.cache
def referral_sources() -> st.SearchStrategy[ReferralSource]:
    detail = st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="-_:"),
        min_size=1,
        max_size=12,
    )
    return st.one_of(
        st.just(ReferralSource.direct()),
        detail.map(ReferralSource.referral),
        st.builds(ReferralSource.custom, detail),
        *(
            st.builds(ReferralSource, kind=st.just(kind), detail=st.none() | detail)
            for kind in (ReferralKind.CAMPAIGN, ReferralKind.SOCIAL, ReferralKind.SEARCH)
        ),
    )


@functools.cache
def lead_money(currencies: tuple[str, ...] = LEAD_CURRENCIES) -> st.SearchStrategy[Money]:
    return st.builds(
        Money,
        st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False),
        st.sampled_from(currencies),
    )


@functools.cache
def lead_emails() -> st.SearchStrategy[str]:
    """A few local parts so that generated leads share emails now and then."""
    return st.builds(
        lambda local, domain, upper: (
            (local + "@" + domain).upper() if upper else local + "@" + domain
        ),
        st.sampled_from(["ann", "bob", "cy", "dee", "eve"]),
        st.sampled_from(["example.com", "example.org"]),
        st.booleans(),
    )


@st.composite
def new_leads(
    draw: st.DrawFn,
    lead_id: str | None = None,
    currencies: tuple[str, ...] = LEAD_CURRENCIES,
) -> Lead:
    """A lead just created (stage New, empty history)."""
    return Lead(
        id=lead_id
        if lead_id is not None
        else draw(st.from_regex(r"lead-[0-9a-f]{1,6}", fullmatch=True)),
        email=draw(lead_emails()),
        created_at=draw(lead_moments()),
        name=draw(st.sampled_from(["", "Ann Lee", "Bob Ray"])),
        company=draw(st.none() | st.just("Acme")),
        phone=draw(st.none() | st.just("+44 20 7946 0000")),
        source=draw(st.none() | referral_sources()),
        owner_id=draw(st.none() | st.sampled_from(LEAD_STAFF)),
        expected_value=draw(st.none() | lead_money(currencies)),
        notes=draw(st.sampled_from(["", "met at a trade fair"])),
    )


@st.composite
def lead_walks(draw: st.DrawFn, lead: Lead, max_moves: int = 6) -> Lead:
    """``lead`` moved along legal moves of the table, in time order."""
    for i in range(draw(st.integers(0, max_moves))):
        targets = sorted(TRANSITIONS[lead.stage])
        if not targets:
            break
        to = draw(st.sampled_from(targets))
        at = lead.last_moved_at + draw(lead_gaps())
        lead = lead.move(
            to,
            at=at,
            staff_id=draw(st.none() | st.sampled_from(LEAD_STAFF)),
            note=draw(st.sampled_from(["", "called"])),
            lost_reason=draw(st.sampled_from(LEAD_LOST_REASONS)) if to is LeadStage.LOST else None,
            customer_id=f"cus-{lead.id}-{i}" if to is LeadStage.CONVERTED else None,
        )
    return lead


@st.composite
def leads(
    draw: st.DrawFn,
    lead_id: str | None = None,
    max_moves: int = 6,
    currencies: tuple[str, ...] = LEAD_CURRENCIES,
) -> Lead:
    """A lead at any stage with a legal history."""
    return draw(lead_walks(draw(new_leads(lead_id, currencies)), max_moves))


def lead_lists(
    max_size: int = 12, currencies: tuple[str, ...] = LEAD_CURRENCIES
) -> st.SearchStrategy[list[Lead]]:
    """Leads with distinct ids (emails may repeat)."""
    return st.integers(0, max_size).flatmap(
        lambda n: st.tuples(*(leads(f"lead-{i}", currencies=currencies) for i in range(n))).map(
            list
        )
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


_TAGS = ("VIP", "vip", "Reseller", "late payer", "Partner")


def book_tag_logs(book: Book) -> st.SearchStrategy[list[TagChange]]:
    """Tag additions and removals for the book's customer_list_ (names in several cases)."""
    ids = [c.id for c in book.customers]
    change = st.builds(
        lambda cid, tag, added, at: (TagChange.added if added else TagChange.removed)(
            customer_id=cid, tag=tag, at=at
        ),
        st.sampled_from(ids),
        st.sampled_from(_TAGS),
        st.booleans(),
        moments(),
    )
    return st.lists(change, max_size=12)


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


@st.composite
def tag_change_logs(
    draw: st.DrawFn,
    customers: Sequence[str] = ("c1", "c2", "c3"),
    names: Sequence[str] = ("VIP", "Trial", "vip", "TRIAL", "ViP"),
    start: datetime = datetime(2024, 1, 1, 9, 0, tzinfo=UTC),
    max_size: int = 12,
) -> list[TagChange]:
    """A log of tag changes over a few customers and tag names (spellings varied, so that
    case-insensitive names are exercised), on the hour within ``max_size`` hours of
    ``start``, ties included."""
    size = draw(st.integers(min_value=0, max_value=max_size))
    return [
        TagChange(
            customer_id=draw(st.sampled_from(tuple(customers))),
            tag=draw(st.sampled_from(tuple(names))),
            action=draw(st.sampled_from(("added", "removed"))),
            at=start + timedelta(hours=draw(st.integers(min_value=0, max_value=max_size))),
            staff_id=draw(st.none() | st.just("s1")),
        )
        for _ in range(size)
    ]
