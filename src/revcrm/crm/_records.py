"""The CRM's own records: notes and their audit log, tags, contacts, calls, tickets, and
typed custom attributes.

Every record is a small frozen value with keyword-only fields, validated when built (a
bad value raises :class:`~revcrm.errors.ValidationError` naming the field). Changes
return new values; notes also return the audit entry to append, so a store writes both
in one transaction. Each persisted type has ``to_record()`` and ``from_record()`` with
plain column values, so a backend never couples a class to its table layout.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, TypedDict

import attrs

from revcrm._checks import (
    MAX_COUNT,
    as_enum,
    check_bool,
    check_count,
    check_text,
    reads_record,
)

# A tag's identity and an attribute's type are defined below revcrm.crm, in
# revcrm._crm_records: the segments read them too, and never import the CRM layer.
from revcrm._crm_records import (
    MAX_TAG_LENGTH,
    AttributeType,
    attribute_type,
    tag_key,
)
from revcrm._crm_records import required_text as _required
from revcrm._crm_records import tag_name as _tag_name
from revcrm._records import AttributeValue, check_attribute_value
from revcrm._time import optional_utc, utc
from revcrm.errors import ValidationError, WrongTypeError

__all__ = [
    "MAX_NOTE_LENGTH",
    "MAX_TAG_LENGTH",
    "AttributeDefinition",
    "AttributeType",
    "Contact",
    "ContactRecord",
    "CustomAttribute",
    "LoggedCall",
    "LoggedCallRecord",
    "Note",
    "NoteAction",
    "NoteRecord",
    "NoteRevision",
    "NoteRevisionRecord",
    "Tag",
    "TagAction",
    "TagChange",
    "TagChangeRecord",
    "TagRecord",
    "TicketRef",
    "attribute_type",
    "check_attributes",
    "custom_attributes",
    "tag_key",
    "tags_at",
]

#: Longest note body accepted (characters); longer text belongs in an attachment.
MAX_NOTE_LENGTH: Final = 20_000

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COLOUR: Final = re.compile(r"^#[0-9A-Fa-f]{6}$")


# -- field checks -----------------------------------------------------------------------------


def _optional(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise WrongTypeError(field, value, "expected a string or None")
    return check_text(value.strip(), field) or None


def _text(field: str, value: object) -> str:
    return check_text(value, field).strip()


def _flag(field: str, value: object) -> bool:
    return check_bool(value, field)


def _email(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise ValidationError(field, value, "not an email address")
    return check_text(value.strip(), field)


# Named converters, so mypy sees the accepted type of each field.
def _id(v: object) -> str:
    return _required("id", v)


def _customer_id(v: object) -> str:
    return _required("customer_id", v)


def _author_id(v: object) -> str:
    return _required("author_id", v)


def _staff_id(v: object) -> str | None:
    return _optional("staff_id", v)


def _body(v: object) -> str:
    return _required("body", v, max_length=MAX_NOTE_LENGTH)


def _pinned(v: object) -> bool:
    return _flag("pinned", v)


def _deleted(v: object) -> bool:
    return _flag("deleted", v)


def _created_at(v: object) -> datetime:
    return utc(v, "created_at")


def _edited_at(v: object) -> datetime | None:
    return optional_utc(v, "edited_at")


def _at(v: object) -> datetime:
    return utc(v, "at")


def _updated_at(v: object) -> datetime:
    return utc(v, "updated_at")


def _revision(v: object) -> int:
    return check_count(v, "revision", minimum=1)


def _note_action(v: object) -> NoteAction:
    return as_enum(NoteAction, v, "action")


def _tag_action(v: object) -> TagAction:
    return as_enum(TagAction, v, "action")


def _change_tag(v: object) -> str:
    if isinstance(v, Tag):
        return v.name
    try:
        return _tag_name(v)
    except ValidationError as e:
        raise ValidationError("tag", v, e.reason) from None


def _colour(v: object) -> str:
    if not isinstance(v, str) or not _COLOUR.match(v.strip()):
        raise ValidationError("colour", v, "expected #RRGGBB (six hex digits)")
    return v.strip().upper()


def _contact_name(v: object) -> str:
    return _required("name", v)


def _contact_title(v: object) -> str | None:
    return _optional("title", v)


def _contact_email(v: object) -> str | None:
    return _email("email", v)


def _contact_phone(v: object) -> str | None:
    return _optional("phone", v)


def _contact_notes(v: object) -> str:
    return _text("notes", v)


def _subject(v: object) -> str:
    return _text("subject", v)


def _ticket_status(v: object) -> str:
    return _required("status", v)


def _url(v: object) -> str | None:
    return _optional("url", v)


def _summary(v: object) -> str:
    return _text("summary", v)


def _duration(v: object) -> timedelta | None:
    if v is None:
        return None
    if not isinstance(v, timedelta) or v < timedelta(0):
        raise ValidationError("duration", v, "expected a timedelta of zero or more")
    if v > _MAX_DURATION:
        raise ValidationError("duration", v, f"longer than {MAX_COUNT} seconds")
    return v


_MAX_DURATION: Final = timedelta(seconds=MAX_COUNT)


# -- notes ------------------------------------------------------------------------------------


class NoteAction(enum.StrEnum):
    """What an audit entry of a note records."""

    CREATED = "created"
    EDITED = "edited"
    PINNED = "pinned"
    UNPINNED = "unpinned"
    DELETED = "deleted"
    RESTORED = "restored"


class NoteRecord(TypedDict):
    id: str
    customer_id: str
    author_id: str
    body: str
    pinned: bool
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    revision: int


class NoteRevisionRecord(TypedDict):
    note_id: str
    customer_id: str
    revision: int
    action: str
    at: datetime
    staff_id: str | None
    body: str
    pinned: bool
    deleted: bool


@attrs.frozen(kw_only=True)
class NoteRevision:
    """One append-only audit entry of a note: the note as it stood after ``action``.

    ``revision`` numbers a note's entries from 1 (the creation) without gaps, so a store
    can make ``(note_id, revision)`` its key and detect a lost update.
    """

    note_id: str = attrs.field(converter=_id)
    customer_id: str = attrs.field(converter=_customer_id)
    revision: int = attrs.field(converter=_revision)
    action: NoteAction = attrs.field(converter=_note_action)
    at: datetime = attrs.field(converter=_at)
    staff_id: str | None = attrs.field(default=None, converter=_staff_id)
    body: str = attrs.field(converter=_body)
    pinned: bool = attrs.field(default=False, converter=_pinned)
    deleted: bool = attrs.field(default=False, converter=_deleted)

    def to_record(self) -> NoteRevisionRecord:
        return NoteRevisionRecord(
            note_id=self.note_id,
            customer_id=self.customer_id,
            revision=self.revision,
            action=self.action.value,
            at=self.at,
            staff_id=self.staff_id,
            body=self.body,
            pinned=self.pinned,
            deleted=self.deleted,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> NoteRevision:
        return cls(**{k: record[k] for k in NoteRevisionRecord.__annotations__})


@attrs.frozen(kw_only=True)
class Note:
    """A staff note on a customer.

    Notes are never removed: :meth:`delete` sets ``deleted`` (hidden from the profile and
    the timeline) and :meth:`restore` clears it. Each change returns the new note and the
    :class:`NoteRevision` to append to its audit log; ``revision`` counts those entries.
    """

    id: str = attrs.field(converter=_id)
    customer_id: str = attrs.field(converter=_customer_id)
    author_id: str = attrs.field(converter=_author_id)  # staff id
    body: str = attrs.field(converter=_body)
    pinned: bool = attrs.field(default=False, converter=_pinned)
    created_at: datetime = attrs.field(converter=_created_at)
    edited_at: datetime | None = attrs.field(default=None, converter=_edited_at)
    deleted: bool = attrs.field(default=False, converter=_deleted)
    revision: int = attrs.field(default=1, converter=_revision)
    # The moment of the last change of any kind; changes must not go back in time.
    changed_at: datetime = attrs.field(converter=_at, eq=False)

    @changed_at.default
    def _changed_default(self) -> datetime:
        return self.edited_at if self.edited_at is not None else self.created_at

    def __attrs_post_init__(self) -> None:
        if self.edited_at is not None and self.edited_at < self.created_at:
            raise ValidationError("edited_at", self.edited_at, "is before created_at")
        if self.changed_at < self.created_at:
            raise ValidationError("changed_at", self.changed_at, "is before created_at")

    @classmethod
    def create(
        cls,
        *,
        id: str,
        customer_id: str,
        author_id: str,
        body: str,
        at: datetime,
        pinned: bool = False,
    ) -> Note:
        """A new note; :meth:`created` gives its first audit entry."""
        return cls(
            id=id,
            customer_id=customer_id,
            author_id=author_id,
            body=body,
            created_at=at,
            pinned=pinned,
        )

    def created(self) -> NoteRevision:
        """The audit entry that records this note's creation (revision 1)."""
        return NoteRevision(
            note_id=self.id,
            customer_id=self.customer_id,
            revision=1,
            action=NoteAction.CREATED,
            at=self.created_at,
            staff_id=self.author_id,
            body=self.body,
            pinned=self.pinned,
            deleted=self.deleted,
        )

    def _change(
        self, action: NoteAction, at: datetime, staff_id: str | None, **changes: Any
    ) -> tuple[Note, NoteRevision]:
        moment = utc(at, "at")
        if moment < self.changed_at:
            raise ValidationError(
                "at", at, f"note {self.id!r} last changed at {self.changed_at}: time cannot go back"
            )
        note = attrs.evolve(self, revision=self.revision + 1, changed_at=moment, **changes)
        entry = NoteRevision(
            note_id=note.id,
            customer_id=note.customer_id,
            revision=note.revision,
            action=action,
            at=moment,
            staff_id=staff_id,
            body=note.body,
            pinned=note.pinned,
            deleted=note.deleted,
        )
        return note, entry

    def _live(self, action: NoteAction) -> None:
        if self.deleted:
            raise ValidationError("deleted", True, f"note {self.id!r} is deleted: cannot {action}")

    def edit(self, body: str, *, at: datetime, staff_id: str | None) -> tuple[Note, NoteRevision]:
        self._live(NoteAction.EDITED)
        return self._change(NoteAction.EDITED, at, staff_id, body=body, edited_at=utc(at, "at"))

    def pin(self, *, at: datetime, staff_id: str | None) -> tuple[Note, NoteRevision]:
        self._live(NoteAction.PINNED)
        return self._change(NoteAction.PINNED, at, staff_id, pinned=True)

    def unpin(self, *, at: datetime, staff_id: str | None) -> tuple[Note, NoteRevision]:
        self._live(NoteAction.UNPINNED)
        return self._change(NoteAction.UNPINNED, at, staff_id, pinned=False)

    def delete(self, *, at: datetime, staff_id: str | None) -> tuple[Note, NoteRevision]:
        self._live(NoteAction.DELETED)
        return self._change(NoteAction.DELETED, at, staff_id, deleted=True)

    def restore(self, *, at: datetime, staff_id: str | None) -> tuple[Note, NoteRevision]:
        if not self.deleted:
            raise ValidationError("deleted", False, f"note {self.id!r} is not deleted")
        return self._change(NoteAction.RESTORED, at, staff_id, deleted=False)

    def to_record(self) -> NoteRecord:
        return NoteRecord(
            id=self.id,
            customer_id=self.customer_id,
            author_id=self.author_id,
            body=self.body,
            pinned=self.pinned,
            created_at=self.created_at,
            edited_at=self.edited_at,
            deleted=self.deleted,
            revision=self.revision,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any], *, changed_at: datetime | None = None) -> Note:
        """Rebuild a note from its columns; ``changed_at`` is the moment of its last audit
        entry when the store keeps one (else the creation or last edit)."""
        note = cls(**{k: record[k] for k in NoteRecord.__annotations__})
        return note if changed_at is None else attrs.evolve(note, changed_at=changed_at)


# -- tags -------------------------------------------------------------------------------------


class TagRecord(TypedDict):
    name: str
    key: str
    colour: str


@attrs.frozen(kw_only=True)
class Tag:
    """A label staff put on customers. Names are unique case-insensitively (:attr:`key`);
    the colour is ``#RRGGBB``, stored in upper case."""

    name: str = attrs.field(converter=_tag_name)
    colour: str = attrs.field(default="#808080", converter=_colour)

    @classmethod
    def of(cls, name: str, colour: str = "#808080") -> Tag:
        return cls(name=name, colour=colour)

    @property
    def key(self) -> str:
        return self.name.casefold()

    def to_record(self) -> TagRecord:
        return TagRecord(name=self.name, key=self.key, colour=self.colour)

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> Tag:
        return cls(name=record["name"], colour=record["colour"])


class TagAction(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"


class TagChangeRecord(TypedDict):
    customer_id: str
    tag: str
    tag_key: str
    action: str
    at: datetime
    staff_id: str | None


@attrs.frozen(kw_only=True)
class TagChange:
    """A tag added to or removed from a customer: the append-only log the customer's
    current tags and the timeline are derived from (see :func:`tags_at`)."""

    customer_id: str = attrs.field(converter=_customer_id)
    tag: str = attrs.field(converter=_change_tag)  # the tag's name (a Tag is accepted)
    action: TagAction = attrs.field(converter=_tag_action)
    at: datetime = attrs.field(converter=_at)
    staff_id: str | None = attrs.field(default=None, converter=_staff_id)

    @classmethod
    def added(
        cls, *, customer_id: str, tag: Tag | str, at: datetime, staff_id: str | None = None
    ) -> TagChange:
        return cls(
            customer_id=customer_id, tag=tag, action=TagAction.ADDED, at=at, staff_id=staff_id
        )

    @classmethod
    def removed(
        cls, *, customer_id: str, tag: Tag | str, at: datetime, staff_id: str | None = None
    ) -> TagChange:
        return cls(
            customer_id=customer_id, tag=tag, action=TagAction.REMOVED, at=at, staff_id=staff_id
        )

    @property
    def tag_key(self) -> str:
        return self.tag.casefold()

    def to_record(self) -> TagChangeRecord:
        return TagChangeRecord(
            customer_id=self.customer_id,
            tag=self.tag,
            tag_key=self.tag_key,
            action=self.action.value,
            at=self.at,
            staff_id=self.staff_id,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> TagChange:
        return cls(
            customer_id=record["customer_id"],
            tag=record["tag"],
            action=record["action"],
            at=record["at"],
            staff_id=record["staff_id"],
        )


def tags_at(changes: Iterable[TagChange], *, as_of: datetime) -> dict[str, frozenset[str]]:
    """Each customer's tags at ``as_of``, replaying the changes at or before it.

    Changes apply in time order (ties in the order given). Names compare case-insensitively;
    a customer's tag keeps the spelling of its latest addition. Customers without a tag
    are absent.
    """
    moment = utc(as_of, "as_of")
    ordered = sorted(
        (c for c in changes if c.at <= moment), key=lambda c: c.at
    )  # sorted() is stable
    current: dict[str, dict[str, str]] = defaultdict(dict)
    for c in ordered:
        if c.action is TagAction.ADDED:
            current[c.customer_id][c.tag_key] = c.tag
        else:
            current[c.customer_id].pop(c.tag_key, None)
    return {cid: frozenset(tags.values()) for cid, tags in current.items() if tags}


# -- contacts, calls, tickets -----------------------------------------------------------------


class ContactRecord(TypedDict):
    id: str
    customer_id: str
    name: str
    title: str | None
    email: str | None
    phone: str | None
    notes: str


@attrs.frozen(kw_only=True)
class Contact:
    """A person at the customer (billing contact, technical contact...)."""

    id: str = attrs.field(converter=_id)
    customer_id: str = attrs.field(converter=_customer_id)
    name: str = attrs.field(converter=_contact_name)
    title: str | None = attrs.field(default=None, converter=_contact_title)
    email: str | None = attrs.field(default=None, converter=_contact_email)
    phone: str | None = attrs.field(default=None, converter=_contact_phone)
    notes: str = attrs.field(default="", converter=_contact_notes)

    def to_record(self) -> ContactRecord:
        return ContactRecord(
            id=self.id,
            customer_id=self.customer_id,
            name=self.name,
            title=self.title,
            email=self.email,
            phone=self.phone,
            notes=self.notes,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> Contact:
        return cls(**{k: record[k] for k in ContactRecord.__annotations__})


class LoggedCallRecord(TypedDict):
    id: str
    customer_id: str
    at: datetime
    staff_id: str | None
    summary: str
    duration_seconds: int | None


@attrs.frozen(kw_only=True)
class LoggedCall:
    """A phone call staff logged with a customer."""

    id: str = attrs.field(converter=_id)
    customer_id: str = attrs.field(converter=_customer_id)
    at: datetime = attrs.field(converter=_at)
    staff_id: str | None = attrs.field(default=None, converter=_staff_id)
    summary: str = attrs.field(default="", converter=_summary)
    duration: timedelta | None = attrs.field(default=None, converter=_duration)

    def to_record(self) -> LoggedCallRecord:
        seconds = None if self.duration is None else int(self.duration.total_seconds())
        return LoggedCallRecord(
            id=self.id,
            customer_id=self.customer_id,
            at=self.at,
            staff_id=self.staff_id,
            summary=self.summary,
            duration_seconds=seconds,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> LoggedCall:
        seconds = record["duration_seconds"]
        return cls(
            id=record["id"],
            customer_id=record["customer_id"],
            at=record["at"],
            staff_id=record["staff_id"],
            summary=record["summary"],
            duration=None if seconds is None else timedelta(seconds=seconds),
        )


@attrs.frozen(kw_only=True)
class TicketRef:
    """A support ticket of the customer as the host's helpdesk reports it (not stored by
    revcrm: the host supplies current references when it asks for a profile)."""

    id: str = attrs.field(converter=_id)
    subject: str = attrs.field(converter=_subject)
    status: str = attrs.field(converter=_ticket_status)  # the helpdesk's own status name
    updated_at: datetime = attrs.field(converter=_updated_at)
    url: str | None = attrs.field(default=None, converter=_url)


# -- typed custom attributes ------------------------------------------------------------------


_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})


def _parse_number(field: str, text: str) -> int | Decimal:
    number: int | Decimal
    try:
        # Longer text is no int in range (and int() of very long text is refused anyway).
        number = int(text) if len(text) <= 64 else Decimal(text)
    except (ValueError, InvalidOperation):
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValidationError(field, text, "not a number") from None
    if isinstance(number, Decimal) and not number.is_finite():
        raise ValidationError(field, text, "a number must be finite")
    check_attribute_value(number, field)
    return number


def _parse(kind: AttributeType, text: str, field: str) -> AttributeValue:
    raw = text.strip()
    match kind:
        case AttributeType.STRING:
            return text
        case AttributeType.NUMBER:
            return _parse_number(field, raw)
        case AttributeType.BOOLEAN:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValidationError(field, text, "expected true/false, yes/no, 1/0 or on/off")
        case AttributeType.DATE:
            try:
                return date.fromisoformat(raw)
            except ValueError:
                raise ValidationError(field, text, "expected an ISO date YYYY-MM-DD") from None


def _attribute_key(v: object) -> str:
    return _required("key", v)


def _attribute_kind(v: object) -> AttributeType:
    return as_enum(AttributeType, v, "type")


@attrs.frozen(kw_only=True)
class CustomAttribute:
    """One typed custom attribute: a key, its :class:`AttributeType` and a value of it."""

    key: str = attrs.field(converter=_attribute_key)
    type: AttributeType = attrs.field(converter=_attribute_kind)
    value: AttributeValue

    def __attrs_post_init__(self) -> None:
        actual = attribute_type(self.value, f"custom_attributes[{self.key}]")
        if actual is not self.type:
            raise ValidationError(
                f"custom_attributes[{self.key}]", self.value, f"is a {actual}, not a {self.type}"
            )

    @classmethod
    def of(cls, key: str, value: AttributeValue) -> CustomAttribute:
        """An attribute whose type is read from the value."""
        return cls(key=key, type=attribute_type(value, f"custom_attributes[{key}]"), value=value)

    @classmethod
    def parse(cls, key: str, type: AttributeType | str, text: str) -> CustomAttribute:
        """An attribute from text (a form field or a text column): numbers as int or
        Decimal, booleans as true/false/yes/no/1/0/on/off, dates as ISO ``YYYY-MM-DD``."""
        kind = as_enum(AttributeType, type, "type")
        if not isinstance(text, str):
            raise ValidationError(f"custom_attributes[{key}]", text, "expected text")
        return cls(key=key, type=kind, value=_parse(kind, text, f"custom_attributes[{key}]"))

    @property
    def text(self) -> str:
        """The canonical text form; :meth:`parse` with the same type reads it back."""
        v = self.value
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, date):
            return v.isoformat()
        return str(v)


def custom_attributes(values: Mapping[str, AttributeValue]) -> tuple[CustomAttribute, ...]:
    """A customer's ``custom_attributes`` mapping as typed attributes, in key order."""
    return tuple(CustomAttribute.of(k, values[k]) for k in sorted(values))


def _label(v: object) -> str:
    return _text("label", v)


def _required_flag(v: object) -> bool:
    return _flag("required", v)


@attrs.frozen(kw_only=True)
class AttributeDefinition:
    """A host-declared custom attribute: its key, type, a display label and whether every
    customer must have it."""

    key: str = attrs.field(converter=_attribute_key)
    type: AttributeType = attrs.field(converter=_attribute_kind)
    label: str = attrs.field(default="", converter=_label)
    required: bool = attrs.field(default=False, converter=_required_flag)

    @classmethod
    def of(
        cls, key: str, type: AttributeType | str, *, label: str = "", required: bool = False
    ) -> AttributeDefinition:
        return cls(key=key, type=type, label=label, required=required)


def check_attributes(
    values: Mapping[str, AttributeValue],
    definitions: Iterable[AttributeDefinition],
    *,
    allow_unknown: bool = False,
) -> Mapping[str, AttributeValue]:
    """Check attribute values against their definitions and return them unchanged.

    Raises :class:`~revcrm.errors.ValidationError` naming ``custom_attributes[key]`` for a
    value of the wrong type, a missing required attribute, or (unless ``allow_unknown``)
    a key without a definition.
    """
    defs: dict[str, AttributeDefinition] = {}
    for d in definitions:
        if d.key in defs:
            raise ValidationError("definitions", d.key, "defined twice")
        defs[d.key] = d
    for key, value in values.items():
        field = f"custom_attributes[{key}]"
        kind = attribute_type(value, field)
        known = defs.get(key)
        if known is None:
            if not allow_unknown:
                raise ValidationError(field, value, "no such attribute is defined")
        elif kind is not known.type:
            raise ValidationError(field, value, f"is a {kind}, {known.type} expected")
    for key, d in defs.items():
        if d.required and key not in values:
            raise ValidationError(f"custom_attributes[{key}]", None, "is required")
    return MappingProxyType(dict(values))
