"""Hypothesis strategies for leads.

Kept here until the shared module (revcrm.testing.strategies) takes them over.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from revcrm import Money
from revcrm.leads import TRANSITIONS, Lead, LeadStage, ReferralKind, ReferralSource

LOST_REASONS = ("price", "no budget", "chose a competitor", "no answer")
STAFF = ("staff-1", "staff-2", "staff-3")
CURRENCIES = ("EUR", "USD", "JPY")

_START = datetime(2023, 1, 1, tzinfo=UTC)


@functools.cache
def moments(
    min_value: datetime = _START, max_value: datetime = datetime(2026, 1, 1, tzinfo=UTC)
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
def gaps() -> st.SearchStrategy[timedelta]:
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
def money(currencies: tuple[str, ...] = CURRENCIES) -> st.SearchStrategy[Money]:
    return st.builds(
        Money,
        st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False),
        st.sampled_from(currencies),
    )


@functools.cache
def emails() -> st.SearchStrategy[str]:
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
    currencies: tuple[str, ...] = CURRENCIES,
) -> Lead:
    """A lead just created (stage New, empty history)."""
    return Lead(
        id=lead_id
        if lead_id is not None
        else draw(st.from_regex(r"lead-[0-9a-f]{1,6}", fullmatch=True)),
        email=draw(emails()),
        created_at=draw(moments()),
        name=draw(st.sampled_from(["", "Ann Lee", "Bob Ray"])),
        company=draw(st.none() | st.just("Acme")),
        phone=draw(st.none() | st.just("+44 20 7946 0000")),
        source=draw(st.none() | referral_sources()),
        owner_id=draw(st.none() | st.sampled_from(STAFF)),
        expected_value=draw(st.none() | money(currencies)),
        notes=draw(st.sampled_from(["", "met at a trade fair"])),
    )


@st.composite
def walks(draw: st.DrawFn, lead: Lead, max_moves: int = 6) -> Lead:
    """``lead`` moved along legal moves of the table, in time order."""
    for i in range(draw(st.integers(0, max_moves))):
        targets = sorted(TRANSITIONS[lead.stage])
        if not targets:
            break
        to = draw(st.sampled_from(targets))
        at = lead.last_moved_at + draw(gaps())
        lead = lead.move(
            to,
            at=at,
            staff_id=draw(st.none() | st.sampled_from(STAFF)),
            note=draw(st.sampled_from(["", "called"])),
            lost_reason=draw(st.sampled_from(LOST_REASONS)) if to is LeadStage.LOST else None,
            customer_id=f"cus-{lead.id}-{i}" if to is LeadStage.CONVERTED else None,
        )
    return lead


@st.composite
def leads(
    draw: st.DrawFn,
    lead_id: str | None = None,
    max_moves: int = 6,
    currencies: tuple[str, ...] = CURRENCIES,
) -> Lead:
    """A lead at any stage with a legal history."""
    return draw(walks(draw(new_leads(lead_id, currencies)), max_moves))


def lead_lists(
    max_size: int = 12, currencies: tuple[str, ...] = CURRENCIES
) -> st.SearchStrategy[list[Lead]]:
    """Leads with distinct ids (emails may repeat)."""
    return st.integers(0, max_size).flatmap(
        lambda n: st.tuples(*(leads(f"lead-{i}", currencies=currencies) for i in range(n))).map(
            list
        )
    )
