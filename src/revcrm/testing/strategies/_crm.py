"""CRM records of :mod:`revcrm.testing.strategies`: leads and their walks along the
stage table, referral sources, tag changes; import them from there."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from revcrm._book import Book
from revcrm._money import Money
from revcrm.crm import TagChange
from revcrm.leads import TRANSITIONS, Lead, LeadStage, ReferralKind, ReferralSource
from revcrm.testing.strategies._money_time import moments

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
