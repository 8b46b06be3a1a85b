"""Signed keyset cursors: what a store issues decodes to exactly its values, and anything
else a client sends back (bytes, text, edits, another key's cursor) is a ValidationError."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import Book, Customer
from revcrm.errors import ValidationError
from revcrm.segments import DEFAULT_CONFIG, SegmentConfig
from revcrm.storage import InMemoryStore, cursor_as_of
from revcrm.storage._query import (
    CustomerQuery,
    SortValue,
    cursor_secret,
    decode_cursor,
    encode_cursor,
    query_as_of,
)

KEY = cursor_secret(b"0123456789abcdef")
SCOPE = "0123456789abcdef"
#: Text a store can hold (records refuse lone surrogates and NUL).
_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

sort_values = st.one_of(
    st.integers(-(10**20), 10**20),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, max_value=10**12, min_value=-(10**12)
    ),
    st.datetimes(timezones=st.just(UTC)),  # year 1 included: sorts use it for "never"
    st.text(_TEXT, max_size=40),
)
ids = st.text(_TEXT, max_size=20)
moments = st.none() | st.datetimes(timezones=st.just(UTC))


@given(value=sort_values, key=ids, as_of=moments)
def test_a_cursor_decodes_to_its_values(value: SortValue, key: str, as_of: datetime | None) -> None:
    cursor = encode_cursor(SCOPE, value, key, secret=KEY, as_of=as_of)
    got, got_key = decode_cursor(cursor, SCOPE, secret=KEY)
    assert (got, got_key) == (value, key)
    assert type(got) is type(value)
    assert cursor_as_of(cursor) == as_of


def _refused(cursor: str) -> None:
    with pytest.raises(ValidationError) as err:
        decode_cursor(cursor, SCOPE, secret=KEY)
    assert err.value.field == "cursor"


@given(st.binary(max_size=300))
def test_random_bytes_are_refused(raw: bytes) -> None:
    text = base64.urlsafe_b64encode(raw).decode()
    _refused(text)
    _refused(text + "." + text[:22])
    with contextlib.suppress(ValidationError):
        cursor_as_of(text)


@given(st.text(max_size=300))
def test_random_text_is_refused(text: str) -> None:
    _refused(text)
    with contextlib.suppress(ValidationError):
        cursor_as_of(text)


@given(value=sort_values, key=ids, data=st.data())
def test_an_edited_cursor_is_refused(value: SortValue, key: str, data: st.DataObject) -> None:
    cursor = encode_cursor(SCOPE, value, key, secret=KEY)
    i = data.draw(st.integers(0, len(cursor) - 1))
    c = data.draw(st.characters(exclude_characters=cursor[i]))
    edited = cursor[:i] + c + cursor[i + 1 :]
    try:
        same = decode_cursor(edited, SCOPE, secret=KEY)
    except ValidationError:
        return
    # base64 padding bits: a different text for the same bytes is the same cursor.
    assert same == (value, key)


def test_a_cursor_of_another_key_or_query_is_refused() -> None:
    cursor = encode_cursor(SCOPE, Decimal("1.5"), "c1", secret=KEY)
    with pytest.raises(ValidationError):
        decode_cursor(cursor, SCOPE, secret=cursor_secret())
    with pytest.raises(ValidationError, match="different query"):
        decode_cursor(cursor, "another scope", secret=KEY)


def test_the_list_moment_comes_from_the_cursor_or_is_required() -> None:
    t = datetime(2024, 6, 20, tzinfo=UTC)
    cursor = encode_cursor(SCOPE, 1, "c1", secret=KEY, as_of=t)
    assert query_as_of(None, cursor) == t
    assert query_as_of(t.date(), cursor) == t.date()
    with pytest.raises(ValidationError, match="as_of"):
        query_as_of(None, None)
    with pytest.raises(ValidationError, match="cursor"):
        query_as_of(None, encode_cursor(SCOPE, 1, "c1", secret=KEY))


def test_a_segment_cursor_belongs_to_every_threshold_of_its_config() -> None:
    """A cursor of the segment filter made under one SegmentConfig is refused under another
    whose thresholds differ (the grace decides the cycle-aware Active rule); precedence
    never changes membership, so it does not change the query."""
    base = CustomerQuery(
        as_of=datetime(2024, 6, 1, tzinfo=UTC), currency="USD", segment="active", secret=KEY
    )
    changes: dict[str, object] = {
        "active_payment_days": 30,
        "active_grace_days": 0,
        "at_risk_cancellation_days": 3,
        "new_customer_days": 5,
    }
    names = {f.name for f in attrs.fields(SegmentConfig)} - {"precedence"}
    assert names == set(changes)  # a new threshold must be part of the cursor's query too
    cursor = base.next_cursor("Ada", "c1")
    for name, value in changes.items():
        other = attrs.evolve(base, segment_config=SegmentConfig(**{name: value}))  # type: ignore[arg-type]
        assert other.scope != base.scope, name
        with pytest.raises(ValidationError, match="different query"):
            attrs.evolve(other, cursor=cursor).after()
    reordered = SegmentConfig(precedence=tuple(reversed(DEFAULT_CONFIG.precedence)))
    assert attrs.evolve(base, segment_config=reordered).scope == base.scope


def test_a_store_refuses_a_segment_cursor_of_another_grace() -> None:
    store = InMemoryStore()
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    store.import_book(
        Book.of(customers=[Customer(id=f"c{i}", registered_at=t0, name=f"N{i}") for i in range(3)])
    )
    as_of = datetime(2024, 6, 1, tzinfo=UTC)
    first = store.customers.page(
        as_of=as_of,
        currency="USD",
        segment="never_purchased",
        limit=1,
        segment_config=SegmentConfig(active_grace_days=7),
    )
    assert first.next_cursor is not None
    with pytest.raises(ValidationError, match="different query"):
        store.customers.page(
            as_of=as_of,
            currency="USD",
            segment="never_purchased",
            limit=1,
            segment_config=SegmentConfig(active_grace_days=0),
            cursor=first.next_cursor,
        )
