"""The CRM records: validation naming the field, the note audit log, tag replay, typed
attributes, and record round trips."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm.crm import (
    AttributeDefinition,
    AttributeType,
    Contact,
    CustomAttribute,
    LoggedCall,
    Note,
    NoteAction,
    NoteRevision,
    Tag,
    TagAction,
    TagChange,
    TicketRef,
    attribute_type,
    check_attributes,
    custom_attributes,
    tag_key,
    tags_at,
)
from revcrm.errors import ValidationError
from revcrm.testing import strategies as rs
from tests._builders import t


def _note() -> Note:
    return Note.create(
        id="n1", customer_id="c1", author_id="alice", body=" Called. ", at=t(2024, 1, 1)
    )


def test_a_note_keeps_an_append_only_audit_log() -> None:
    note = _note()
    assert note.body == "Called."
    log = [note.created()]
    note, entry = note.edit("Called twice.", at=t(2024, 1, 2), staff_id="bob")
    log.append(entry)
    note, entry = note.pin(at=t(2024, 1, 3), staff_id="alice")
    log.append(entry)
    note, entry = note.delete(at=t(2024, 1, 4), staff_id="alice")
    log.append(entry)
    note, entry = note.restore(at=t(2024, 1, 5), staff_id="carol")
    log.append(entry)
    assert [e.revision for e in log] == [1, 2, 3, 4, 5]
    assert [e.action for e in log] == [
        NoteAction.CREATED,
        NoteAction.EDITED,
        NoteAction.PINNED,
        NoteAction.DELETED,
        NoteAction.RESTORED,
    ]
    assert [e.body for e in log] == ["Called.", "Called twice.", *["Called twice."] * 3]
    assert log[3].deleted
    assert not log[4].deleted
    assert note.edited_at == t(2024, 1, 2)
    assert note.revision == 5
    assert note.pinned
    assert not note.deleted
    assert note.author_id == "alice"  # editing never changes the author


def test_note_changes_are_checked() -> None:
    note = _note()
    deleted, _ = note.delete(at=t(2024, 1, 2), staff_id="a")
    with pytest.raises(ValidationError, match="deleted"):
        deleted.edit("again", at=t(2024, 1, 3), staff_id="a")
    with pytest.raises(ValidationError, match="deleted"):
        note.restore(at=t(2024, 1, 3), staff_id="a")
    with pytest.raises(ValidationError, match=r"^at="):
        deleted.restore(at=t(2024, 1, 1), staff_id="a")
    with pytest.raises(ValidationError, match=r"^body="):
        note.edit("   ", at=t(2024, 1, 3), staff_id="a")
    with pytest.raises(ValidationError, match=r"^body="):
        note.edit("x" * 20_001, at=t(2024, 1, 3), staff_id="a")
    with pytest.raises(ValidationError, match=r"^created_at="):
        Note.create(id="n", customer_id="c", author_id="a", body="b", at=datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match=r"^edited_at="):
        Note(
            id="n",
            customer_id="c",
            author_id="a",
            body="b",
            created_at=t(2024, 1, 2),
            edited_at=t(2024, 1, 1),
        )
    with pytest.raises(ValidationError, match=r"^customer_id="):
        Note.create(id="n", customer_id="", author_id="a", body="b", at=t(2024, 1, 1))
    with pytest.raises(ValidationError, match=r"^pinned="):
        Note(id="n", customer_id="c", author_id="a", body="b", created_at=t(2024, 1, 1), pinned=1)


def test_tags_compare_case_insensitively_and_colours_are_checked() -> None:
    tag = Tag.of("  VIP   client ", "#ff8800")
    assert tag.name == "VIP client"
    assert tag.colour == "#FF8800"
    assert tag.key == tag_key("vip CLIENT") == "vip client"
    assert Tag.of("vip").colour == "#808080"
    for bad in ("red", "#ff880", "#ff88000", "ff8800", "#gg8800", 0xFF8800):
        with pytest.raises(ValidationError, match=r"^colour="):
            Tag.of("x", bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^name="):
        Tag.of("")
    with pytest.raises(ValidationError, match=r"^name="):
        Tag.of("x" * 51)
    with pytest.raises(ValidationError, match=r"^name="):
        Tag.of("tab\there")
    with pytest.raises(ValidationError, match=r"^tag="):
        TagChange.added(customer_id="c", tag=" ", at=t(2024, 1, 1))


def test_tags_at_replays_the_log() -> None:
    log = [
        TagChange.added(customer_id="c1", tag="VIP", at=t(2024, 1, 1), staff_id="a"),
        TagChange.added(customer_id="c1", tag=Tag.of("Reseller"), at=t(2024, 1, 2)),
        TagChange.removed(customer_id="c1", tag="vip", at=t(2024, 2, 1)),
        TagChange.added(customer_id="c2", tag="vip", at=t(2024, 3, 1)),
        TagChange.added(customer_id="c2", tag="Vip", at=t(2024, 3, 2)),
    ]
    assert tags_at(log, as_of=t(2024, 1, 15)) == {"c1": {"VIP", "Reseller"}}
    assert tags_at(log, as_of=t(2024, 6, 1)) == {"c1": {"Reseller"}, "c2": {"Vip"}}
    assert tags_at(reversed(log), as_of=t(2024, 6, 1)) == tags_at(log, as_of=t(2024, 6, 1))
    assert log[2].action is TagAction.REMOVED


_NAMES = st.sampled_from(("VIP", "vip", "Vip", "Reseller", "reseller", "late payer"))


@given(
    st.lists(
        st.tuples(st.sampled_from(("c1", "c2")), _NAMES, st.booleans(), st.integers(0, 20)),
        max_size=20,
    ),
    st.integers(0, 21),
)
def test_tags_at_equals_a_set_replay(raw: list[tuple[str, str, bool, int]], day: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    log = [
        TagChange(
            customer_id=cid,
            tag=name,
            action=TagAction.ADDED if added else TagAction.REMOVED,
            at=start + timedelta(days=d),
        )
        for cid, name, added, d in raw
    ]
    as_of = start + timedelta(days=day)
    expected: dict[str, set[str]] = {}
    for change in sorted(log, key=lambda c: c.at):
        if change.at > as_of:
            continue
        keys = expected.setdefault(change.customer_id, set())
        if change.action is TagAction.ADDED:
            keys.add(change.tag.lower())
        else:
            keys.discard(change.tag.lower())
    got = tags_at(log, as_of=as_of)
    assert {c: {n.lower() for n in names} for c, names in got.items()} == {
        c: keys for c, keys in expected.items() if keys
    }


def test_contacts_calls_and_tickets_validate_their_fields() -> None:
    contact = Contact(
        id="k1", customer_id="c1", name=" Ana ", title="CTO", email=" ana@example.com", phone=""
    )
    assert (contact.name, contact.email, contact.phone) == ("Ana", "ana@example.com", None)
    with pytest.raises(ValidationError, match=r"^email="):
        Contact(id="k1", customer_id="c1", name="Ana", email="not-an-email")
    with pytest.raises(ValidationError, match=r"^name="):
        Contact(id="k1", customer_id="c1", name=" ")
    call = LoggedCall(
        id="l1",
        customer_id="c1",
        at=t(2024, 1, 1),
        summary="Renewal",
        duration=timedelta(minutes=5),
    )
    assert call.to_record()["duration_seconds"] == 300
    with pytest.raises(ValidationError, match=r"^duration="):
        LoggedCall(id="l1", customer_id="c1", at=t(2024, 1, 1), duration=timedelta(seconds=-1))
    with pytest.raises(ValidationError, match=r"^at="):
        LoggedCall(id="l1", customer_id="c1", at=datetime(2024, 1, 1))
    ticket = TicketRef(id="T-7", subject="Server down", status="open", updated_at=t(2024, 1, 1))
    assert ticket.url is None
    with pytest.raises(ValidationError, match=r"^status="):
        TicketRef(id="T-7", subject="x", status="", updated_at=t(2024, 1, 1))


def test_records_round_trip_through_their_columns() -> None:
    note, revision = _note().edit("Edited", at=t(2024, 2, 1), staff_id="bob")
    assert Note.from_record(note.to_record()) == note
    assert NoteRevision.from_record(revision.to_record()) == revision
    tag = Tag.of("VIP", "#00ff00")
    assert Tag.from_record(tag.to_record()) == tag
    change = TagChange.added(customer_id="c", tag=tag, at=t(2024, 1, 1), staff_id="a")
    assert TagChange.from_record(change.to_record()) == change
    assert change.to_record()["tag_key"] == "vip"
    contact = Contact(id="k", customer_id="c", name="Ana", notes="prefers email")
    assert Contact.from_record(contact.to_record()) == contact
    for duration in (None, timedelta(seconds=90)):
        call = LoggedCall(id="l", customer_id="c", at=t(2024, 1, 1), duration=duration)
        assert LoggedCall.from_record(call.to_record()) == call


@given(
    rs.moments(),
    st.lists(st.sampled_from(("edit", "pin", "unpin", "delete", "restore")), max_size=8),
)
def test_a_note_round_trips_at_every_revision(start: datetime, moves: list[str]) -> None:
    note = Note.create(id="n", customer_id="c", author_id="a", body="b", at=start)
    log = [note.created()]
    at = start
    for i, move in enumerate(moves):
        at += timedelta(hours=1)
        try:
            if move == "edit":
                note, entry = note.edit(f"body {i}", at=at, staff_id="s")
            else:
                note, entry = getattr(note, move)(at=at, staff_id="s")
        except ValidationError:
            continue  # editing a deleted note, restoring a live one
        log.append(entry)
        assert Note.from_record(note.to_record(), changed_at=entry.at) == note
    assert [e.revision for e in log] == list(range(1, len(log) + 1))
    assert note.revision == len(log)
    assert log[-1].body == note.body
    assert log[-1].deleted == note.deleted


def test_custom_attributes_are_typed() -> None:
    assert attribute_type("x") is AttributeType.STRING
    assert attribute_type(3) is AttributeType.NUMBER
    assert attribute_type(Decimal("1.5")) is AttributeType.NUMBER
    assert attribute_type(True) is AttributeType.BOOLEAN
    assert attribute_type(date(2024, 1, 1)) is AttributeType.DATE
    for bad in (1.5, datetime(2024, 1, 1, tzinfo=UTC), None, [1], Decimal("NaN")):
        with pytest.raises(ValidationError, match=r"^seats="):
            attribute_type(bad, "seats")
    attrs_ = custom_attributes({"vip": True, "seats": 3, "since": date(2020, 1, 2), "tier": "gold"})
    assert [(a.key, a.type, a.text) for a in attrs_] == [
        ("seats", AttributeType.NUMBER, "3"),
        ("since", AttributeType.DATE, "2020-01-02"),
        ("tier", AttributeType.STRING, "gold"),
        ("vip", AttributeType.BOOLEAN, "true"),
    ]
    with pytest.raises(ValidationError, match=r"custom_attributes\[seats\]"):
        CustomAttribute(key="seats", type=AttributeType.STRING, value=3)
    assert CustomAttribute.parse("vip", "boolean", " Yes ").value is True
    assert CustomAttribute.parse("n", AttributeType.NUMBER, "42").value == 42
    assert CustomAttribute.parse("n", AttributeType.NUMBER, "4.20").value == Decimal("4.20")
    with pytest.raises(ValidationError, match=r"custom_attributes\[n\]"):
        CustomAttribute.parse("n", AttributeType.NUMBER, "Infinity")
    with pytest.raises(ValidationError, match=r"custom_attributes\[d\]"):
        CustomAttribute.parse("d", AttributeType.DATE, "01/02/2024")
    with pytest.raises(ValidationError, match=r"custom_attributes\[b\]"):
        CustomAttribute.parse("b", AttributeType.BOOLEAN, "maybe")
    with pytest.raises(ValidationError, match=r"^type="):
        CustomAttribute.parse("b", "colour", "red")


_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=10),
    st.integers(-(10**12), 10**12),
    rs.amounts(min_value=-1000, max_value=1000),
    st.booleans(),
    st.dates(),
)


@given(_VALUES)
def test_attribute_text_parses_back(value: Any) -> None:
    a = CustomAttribute.of("k", value)
    back = CustomAttribute.parse("k", a.type, a.text)
    assert back.type is a.type
    assert back.value == a.value


def test_check_attributes_against_definitions() -> None:
    defs = [
        AttributeDefinition.of("tier", "string", label="Tier", required=True),
        AttributeDefinition.of("seats", AttributeType.NUMBER),
    ]
    assert check_attributes({"tier": "gold", "seats": 2}, defs) == {"tier": "gold", "seats": 2}
    with pytest.raises(ValidationError, match=r"custom_attributes\[seats\]"):
        check_attributes({"tier": "gold", "seats": "2"}, defs)
    with pytest.raises(ValidationError, match=r"custom_attributes\[tier\]"):
        check_attributes({"seats": 2}, defs)
    with pytest.raises(ValidationError, match=r"custom_attributes\[vip\]"):
        check_attributes({"tier": "g", "vip": True}, defs)
    assert check_attributes({"tier": "g", "vip": True}, defs, allow_unknown=True)["vip"] is True
    with pytest.raises(ValidationError, match="definitions"):
        check_attributes({}, [*defs, defs[0]])


def test_records_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        _note().body = "changed"  # type: ignore[misc]
