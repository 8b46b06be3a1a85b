"""The CRM stores' shared rules: argument checks, orderings, rewrites and the lead cursor.

Every backend (the in-memory store in ``_crm``, the SQL store in ``_crm_sql``) applies the
same checks from here, so they refuse the same inputs with the same errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Final

import attrs

from revcrm._checks import as_enum
from revcrm.crm._intake import IntakeQuestion, IntakeScope
from revcrm.crm._records import (
    Note,
    NoteRevision,
    Tag,
    TagChange,
    tag_key,
    tags_at,
)
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    ValidationError,
)
from revcrm.leads._lead import Lead, normalise_email
from revcrm.leads._stages import LeadStage
from revcrm.storage._codec import moment_value
from revcrm.storage._query import (
    MAX_LIMIT,
    Page,
    cursor_secret,
    decode_cursor,
    encode_cursor,
    read_text,
)

__all__ = ["ERASED_TEXT", "LeadPageQuery", "read_id", "read_pair"]

#: What erased personal text reads (notes, call summaries, free-text intake answers; a
#: note's body cannot be empty).
ERASED_TEXT: Final = "[erased]"


def _secret(value: object) -> bytes:
    return cursor_secret(value)


def read_id(value: object, field: str = "id") -> str:
    """An id given to a CRM store: text every backend can look up (see
    :func:`~revcrm.storage.read_text`), so no lookup fails in a dict or a driver."""
    return read_text(value, field)


def read_pair(from_customer: object, to_customer: object) -> None:
    """The customer ids of a move (``rehome``, ``relink``)."""
    read_id(from_customer, "from_customer")
    read_id(to_customer, "to_customer")


def read_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, value, "expected True or False")
    return value


def read_version(value: object, field: str = "expected_version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, value, "a whole number, 0 or more")
    return value


def read_tag(name: object) -> str:
    """The key of a tag name given to a read."""
    return tag_key(read_text(name, "name"))


def read_email(email: object) -> str:
    """The key of an email given to a read."""
    return normalise_email(read_text(email, "email"))


def check_question(question: object) -> IntakeQuestion:
    if not isinstance(question, IntakeQuestion):
        raise ValidationError("question", question, "expected an IntakeQuestion")
    return question


def check_scope(scope: object) -> IntakeScope | None:
    return None if scope is None else as_enum(IntakeScope, scope, "scope")


def note_order(notes: Iterable[Note]) -> tuple[Note, ...]:
    """Pinned first, then newest first; the id breaks ties so the order is total."""
    by_id = sorted(notes, key=lambda n: n.id)
    by_time = sorted(by_id, key=lambda n: n.created_at, reverse=True)
    return tuple(sorted(by_time, key=lambda n: not n.pinned))


def rehomed_note(note: Note, customer_id: str) -> Note:
    return Note.from_record(
        {**note.to_record(), "customer_id": customer_id}, changed_at=note.changed_at
    )


def rehomed_entry(entry: NoteRevision, customer_id: str) -> NoteRevision:
    return NoteRevision.from_record({**entry.to_record(), "customer_id": customer_id})


def relinked(lead: Lead, customer_id: str) -> Lead:
    """The lead with its conversion pointing at ``customer_id`` (Converted is final, so
    only the last transition carries a customer id)."""
    last = attrs.evolve(lead.history[-1], customer_id=customer_id)
    return attrs.evolve(lead, history=(*lead.history[:-1], last))


def _check_entry(note: Note, entry: NoteRevision) -> None:
    if not isinstance(note, Note) or not isinstance(entry, NoteRevision):
        raise ValidationError("note", note, "expected a Note and its NoteRevision")
    if (
        entry.note_id != note.id
        or entry.revision != note.revision
        or entry.customer_id != note.customer_id
    ):
        raise ValidationError(
            "entry", entry.revision, f"is not the audit entry of note {note.id!r} r{note.revision}"
        )


def tag_counts(
    tags: Iterable[Tag], changes: Iterable[TagChange], *, as_of: datetime
) -> dict[str, int]:
    names = {t.key: t.name for t in tags}
    counts = dict.fromkeys(names.values(), 0)
    for current in tags_at(changes, as_of=as_of).values():
        for t in current:
            name = names.get(tag_key(t))
            if name is not None:
                counts[name] += 1
    return counts


def check_extends(stored: Lead, lead: Lead, expected_version: int) -> None:
    actual = len(stored.history)
    if expected_version != actual:
        raise ConflictError("lead", lead.id, expected_version, actual)
    if lead.history[:actual] != stored.history:
        raise ValidationError(
            f"lead[{lead.id}].history",
            len(lead.history),
            f"must extend the stored history of {actual} moves (append-only)",
        )


def lead_key(lead: Lead) -> tuple[int, str]:
    """The order of lead pages: creation moment (whole microseconds), then id."""
    return moment_value(lead.created_at), lead.id


@attrs.frozen(kw_only=True)
class LeadPageQuery:
    """A checked lead listing: the stage wanted (None: all), the page size and the
    position after which the page starts (from the cursor)."""

    stage: LeadStage | None
    limit: int
    after: tuple[int, str] | None

    secret: bytes = attrs.field(repr=False, eq=False)

    @classmethod
    def of(cls, *, stage: object, limit: object, cursor: object, secret: bytes) -> LeadPageQuery:
        wanted = None if stage is None else as_enum(LeadStage, stage, "stage")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationError("limit", limit, f"a whole number from 1 to {MAX_LIMIT}")
        after: tuple[int, str] | None = None
        if cursor is not None:
            if not isinstance(cursor, str):
                raise ValidationError("cursor", cursor, "expected a cursor string")
            after = _decode_lead_cursor(cursor, _lead_scope(wanted), secret)
        return cls(stage=wanted, limit=limit, after=after, secret=secret)

    def wants(self, lead: Lead) -> bool:
        return (self.stage is None or lead.stage is self.stage) and (
            self.after is None or lead_key(lead) > self.after
        )

    def page(self, ordered: Iterable[Lead]) -> Page[Lead]:
        """The page of ``ordered`` (the wanted leads after the cursor, in page order,
        at least ``limit + 1`` of them when there are that many)."""
        items = tuple(islice(ordered, self.limit + 1))
        if len(items) <= self.limit:
            return Page(items=items)
        micros, key = lead_key(items[self.limit - 1])
        cursor = encode_cursor(_lead_scope(self.stage), micros, key, secret=self.secret)
        return Page(items=items[: self.limit], next_cursor=cursor)


def _lead_scope(stage: LeadStage | None) -> str:
    return f"leads:{'*' if stage is None else stage.value}"


# A lead cursor is signed with the store's secret like the billing listings' (see
# revcrm.storage._query): an edited or forged one is a ValidationError, and its decoded
# values are checked anyway, so none reaches a driver with a value it would choke on.
def _decode_lead_cursor(cursor: str, scope: str, secret: bytes) -> tuple[int, str]:
    micros, key = decode_cursor(cursor, scope, secret=secret)
    if (
        isinstance(micros, bool)
        or not isinstance(micros, int)
        or not _MOMENTS[0] <= micros <= _MOMENTS[1]
    ):
        raise ValidationError("cursor", cursor, "not a cursor this store issued")
    return micros, key


#: The whole microseconds since 1970 of datetime.min and datetime.max (UTC).
_MOMENTS: Final = (
    moment_value(datetime(1, 1, 1, tzinfo=UTC)),
    moment_value(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
)


def erased_history(lead: Lead) -> tuple[Lead, int]:
    """The lead with every non-empty move note and lost reason replaced by
    :data:`ERASED_TEXT`, and how many moves changed."""
    changed = 0
    moves = []
    for t in lead.history:
        note = ERASED_TEXT if t.note else t.note
        reason = None if t.lost_reason is None else ERASED_TEXT
        if (note, reason) != (t.note, t.lost_reason):
            changed += 1
            t = attrs.evolve(t, note=note, lost_reason=reason)
        moves.append(t)
    return attrs.evolve(lead, history=tuple(moves)), changed


def check_unique(leads: Iterable[Lead], lead: Lead) -> None:
    for other in leads:
        if other.id == lead.id:
            continue
        if lead.is_open and other.is_open and other.email_key == lead.email_key:
            raise DuplicateError("open lead", lead.email_key)
        if lead.customer_id is not None and other.customer_id == lead.customer_id:
            raise DuplicateError("converted lead for customer", lead.customer_id)
