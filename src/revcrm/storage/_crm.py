"""Storage of the CRM's own records: notes with their audit log, tags with their
assignment log, and leads with their transition history.

Kept apart from :class:`~revcrm.storage.Store` (billing records a host syncs in) because
these records are written by staff through revcrm itself. Rules every backend follows
(checked by :mod:`revcrm.testing.crm_contract`):

* Reads of a missing id raise :class:`~revcrm.errors.NotFoundError`; ``find`` returns None.
* A note's version is its ``revision`` (the number of audit entries). ``add`` writes
  revision 1 and its creation entry; ``save(note, entry)`` writes a changed note and the
  audit entry of that change, only when the stored revision is ``note.revision - 1``
  (else :class:`~revcrm.errors.ConflictError`), both or neither.
* Tag names are unique case-insensitively (``Tag.key``): creating a second "VIP" is a
  :class:`~revcrm.errors.DuplicateError`. Assignments are an append-only log of
  :class:`~revcrm.crm.TagChange`; current tags replay it. Assigning a tag that does not
  exist is :class:`~revcrm.errors.UnknownReferenceError`.
* A lead's version is the number of its transitions. ``add`` stores a new lead (version
  = its history length); ``save(lead, expected_version=...)`` stores a lead whose history
  extends the stored one. A second open lead for an email, or a second lead converted
  into a customer, is a :class:`~revcrm.errors.DuplicateError`. Nothing is written then.
* Intake questions are replaced whole by id; answers are an append-only log, checked
  against the stored question when recorded (:meth:`IntakeQuestion.check`).
* ``erase_customer`` anonymises a customer's personal text and keeps the records;
  ``delete_customer`` removes every record of the customer (leads aside: the facade
  decides about those). Both return how many records they touched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Final, Protocol

import attrs

from revcrm._checks import as_enum
from revcrm._time import optional_utc, utc
from revcrm.crm._intake import IntakeAnswer, IntakeQuestion, IntakeScope, question_order
from revcrm.crm._records import (
    Contact,
    LoggedCall,
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
    NotFoundError,
    UnknownReferenceError,
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

__all__ = [
    "ERASED_TEXT",
    "CRMStore",
    "CallRepository",
    "ContactRepository",
    "InMemoryCRMStore",
    "IntakeRepository",
    "LeadRepository",
    "NoteRepository",
    "TagRepository",
    "customer_rows",
]


#: What erased personal text reads (notes, call summaries, free-text intake answers; a
#: note's body cannot be empty).
ERASED_TEXT: Final = "[erased]"


class NoteRepository(Protocol):
    def get(self, id: str) -> Note: ...

    def find(self, id: str) -> Note | None: ...

    def add(self, note: Note) -> None:
        """Store a new note (revision 1) and its creation entry; a used id is a DuplicateError."""
        ...

    def save(self, note: Note, entry: NoteRevision) -> None:
        """Store a change made by :class:`~revcrm.crm.Note` and its audit entry."""
        ...

    def for_customer(self, customer_id: str, *, include_deleted: bool = False) -> tuple[Note, ...]:
        """Pinned first, then newest first (ties by id)."""
        ...

    def history(self, note_id: str) -> tuple[NoteRevision, ...]:
        """The audit entries of a note, by revision."""
        ...

    def rehome(self, from_customer: str, to_customer: str) -> int:
        """Move every note (and its audit entries) of one customer to another."""
        ...

    def erase_customer(self, customer_id: str) -> int:
        """Replace the text of every note of a customer, and of its audit entries, by
        :data:`ERASED_TEXT` (personal data erasure); returns the number of notes."""
        ...

    def delete_customer(self, customer_id: str) -> int:
        """Remove every note of a customer and its audit entries; returns the number of notes."""
        ...


class TagRepository(Protocol):
    def create(self, tag: Tag) -> None: ...

    def get(self, name: str) -> Tag:
        """The tag with this name, compared case-insensitively."""
        ...

    def all(self) -> tuple[Tag, ...]:
        """Every tag, by key."""
        ...

    def record(self, change: TagChange) -> None:
        """Append an assignment change (the tag must exist)."""
        ...

    def changes(self, customer_id: str | None = None) -> tuple[TagChange, ...]:
        """The assignment log in time order (one customer's, or everyone's)."""
        ...

    def tags_of(self, customer_id: str, *, as_of: datetime) -> frozenset[str]: ...

    def customers_with(self, name: str, *, as_of: datetime) -> frozenset[str]: ...

    def counts(self, *, as_of: datetime) -> dict[str, int]:
        """Customers per tag name (every tag, zero included)."""
        ...

    def delete_customer(self, customer_id: str) -> int:
        """Remove a customer's assignment log; returns the number of changes removed."""
        ...


class LeadRepository(Protocol):
    def get(self, id: str) -> Lead: ...

    def find(self, id: str) -> Lead | None: ...

    def version(self, id: str) -> int: ...

    def add(self, lead: Lead) -> int: ...

    def save(self, lead: Lead, *, expected_version: int) -> int:
        """Store a later version of a lead; returns the new version."""
        ...

    def all(self) -> tuple[Lead, ...]:
        """Every lead, by id."""
        ...

    def open_lead_for(self, email: str) -> Lead | None: ...

    def lead_for_customer(self, customer_id: str) -> Lead | None: ...

    def count(self) -> int: ...

    def relink(self, from_customer: str, to_customer: str) -> int:
        """Point the lead converted into one customer at another (a merge); a
        DuplicateError when the other customer already has a converted lead."""
        ...

    def page(
        self, *, stage: LeadStage | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Lead]:
        """One keyset page of leads (of one stage, or all) by creation moment, then id."""
        ...

    def erase_history(self, lead_id: str) -> int:
        """Replace the staff notes and lost reasons of a lead's moves by
        :data:`ERASED_TEXT` (personal data erasure: the one exception to the append-only
        history; stages and moments stay). Returns the number of moves changed."""
        ...


class ContactRepository(Protocol):
    """People at a customer; a contact is replaced whole by ``upsert``."""

    def get(self, id: str) -> Contact: ...

    def find(self, id: str) -> Contact | None: ...

    def upsert(self, contact: Contact) -> None: ...

    def remove(self, id: str) -> None:
        """Delete a contact (NotFoundError when there is none)."""
        ...

    def for_customer(self, customer_id: str) -> tuple[Contact, ...]:
        """By name, then id."""
        ...

    def rehome(self, from_customer: str, to_customer: str) -> int: ...

    def erase_customer(self, customer_id: str) -> int:
        """Delete every contact of a customer (erasure); returns how many."""
        ...

    def delete_customer(self, customer_id: str) -> int:
        """Delete every contact of a customer; returns how many."""
        ...


class CallRepository(Protocol):
    """Logged calls; a call id is written once."""

    def get(self, id: str) -> LoggedCall: ...

    def add(self, call: LoggedCall) -> None: ...

    def for_customer(self, customer_id: str) -> tuple[LoggedCall, ...]:
        """Oldest first, then by id."""
        ...

    def rehome(self, from_customer: str, to_customer: str) -> int: ...

    def erase_customer(self, customer_id: str) -> int:
        """Replace the summary of every call of a customer by :data:`ERASED_TEXT`."""
        ...

    def delete_customer(self, customer_id: str) -> int:
        """Remove every call of a customer; returns how many."""
        ...


class IntakeRepository(Protocol):
    """Intake questions (replaced whole by id) and the append-only log of answers."""

    def save_question(self, question: IntakeQuestion) -> None:
        """Insert a question, or replace the one with its id (answers are kept)."""
        ...

    def question(self, id: str) -> IntakeQuestion:
        """The question with this id (NotFoundError when there is none)."""
        ...

    def questions(
        self, *, scope: IntakeScope | str | None = None, include_retired: bool = False
    ) -> tuple[IntakeQuestion, ...]:
        """By position, then id; retired questions (``retired_at`` set) only on request."""
        ...

    def record(self, answer: IntakeAnswer) -> IntakeAnswer:
        """Append an answer; returns it as stored (options in the stored question's
        spelling). UnknownReferenceError when the question does not exist, ValidationError
        when the answer does not fit it (an option removed since...); nothing written then."""
        ...

    def answers_for(self, customer_id: str) -> tuple[IntakeAnswer, ...]:
        """A customer's full history, oldest first (ties in recording order)."""
        ...

    def answers(self, *, as_of: datetime | None = None) -> tuple[IntakeAnswer, ...]:
        """Every answer given at or before ``as_of`` (default: all), oldest first (ties in
        recording order, so :func:`~revcrm.crm.current_answers` resolves them)."""
        ...

    def rehome(self, from_customer: str, to_customer: str) -> int:
        """Move a customer's answers to another customer (a merge); returns how many."""
        ...

    def erase_customer(self, customer_id: str) -> int:
        """Replace the text of a customer's free-text answers by :data:`ERASED_TEXT`;
        chosen options stay (not personal, and the analytics need them). Returns the
        number of answers erased."""
        ...

    def delete_customer(self, customer_id: str) -> int:
        """Remove every answer of a customer; returns how many."""
        ...


class CRMStore(Protocol):
    @property
    def notes(self) -> NoteRepository: ...

    @property
    def contacts(self) -> ContactRepository: ...

    @property
    def calls(self) -> CallRepository: ...

    @property
    def tags(self) -> TagRepository: ...

    @property
    def leads(self) -> LeadRepository: ...

    @property
    def intake(self) -> IntakeRepository: ...

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing block over the CRM records."""
        ...

    def scrub(self) -> None:
        """Make values erased so far unreadable from the database files (outside any
        open transaction): SQLite check-points and truncates its write-ahead log,
        PostgreSQL vacuums the CRM tables, the in-memory store has nothing to do."""
        ...


class CustomerRows(Protocol):
    """A repository holding rows of a customer that a merge moves, an erase anonymises and
    a delete removes."""

    def rehome(self, from_customer: str, to_customer: str) -> int: ...

    def erase_customer(self, customer_id: str) -> int: ...

    def delete_customer(self, customer_id: str) -> int: ...


def customer_rows(store: CRMStore) -> tuple[CustomerRows, ...]:
    """The repositories with rows of a customer, in the order the facade treats them.
    Tags (a log only a delete removes; a merge replays it) and leads (rules of their
    own) are not among them."""
    return (store.notes, store.contacts, store.calls, store.intake)


# -- in memory --------------------------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.notes: dict[str, Note] = {}
        self.note_log: dict[str, list[NoteRevision]] = {}
        self.tags: dict[str, Tag] = {}
        self.tag_log: list[TagChange] = []
        self.leads: dict[str, Lead] = {}
        self.contacts: dict[str, Contact] = {}
        self.calls: dict[str, LoggedCall] = {}
        self.questions: dict[str, IntakeQuestion] = {}
        self.answers: list[IntakeAnswer] = []  # in recording order

    def copy(self) -> _State:
        s = _State()
        s.notes = dict(self.notes)
        s.note_log = {k: list(v) for k, v in self.note_log.items()}
        s.tags = dict(self.tags)
        s.tag_log = list(self.tag_log)
        s.leads = dict(self.leads)
        s.contacts = dict(self.contacts)
        s.calls = dict(self.calls)
        s.questions = dict(self.questions)
        s.answers = list(self.answers)
        return s


class InMemoryCRMStore:
    """Thread-safe in-memory CRM store; ``transaction()`` restores a snapshot on error.

    ``cursor_secret`` signs lead cursors (random per store unless given)."""

    def __init__(self, *, cursor_secret: bytes | str | None = None) -> None:
        self._lock = threading.RLock()
        self._state = _State()
        self._secret = _secret(cursor_secret)
        self.notes = _MemoryNotes(self)
        self.tags = _MemoryTags(self)
        self.leads = _MemoryLeads(self)
        self.contacts = _MemoryContacts(self)
        self.calls = _MemoryCalls(self)
        self.intake = _MemoryIntake(self)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            snapshot = self._state.copy()
            try:
                yield
            except BaseException:
                self._state = snapshot
                raise

    def scrub(self) -> None:
        """Nothing to do: an erased value is gone once no record refers to it."""


class _MemoryNotes:
    def __init__(self, store: InMemoryCRMStore) -> None:
        self._store = store

    def get(self, id: str) -> Note:
        note = self.find(read_id(id))
        if note is None:
            raise NotFoundError("note", id)
        return note

    def find(self, id: str) -> Note | None:
        key = read_id(id)
        with self._store._lock:
            return self._store._state.notes.get(key)

    def add(self, note: Note) -> None:
        if not isinstance(note, Note):
            raise ValidationError("note", note, "expected a Note")
        if note.revision != 1:
            raise ValidationError("revision", note.revision, "a new note is at revision 1")
        with self._store._lock:
            state = self._store._state
            if note.id in state.notes:
                raise DuplicateError("note", note.id)
            state.notes[note.id] = note
            state.note_log[note.id] = [note.created()]

    def save(self, note: Note, entry: NoteRevision) -> None:
        _check_entry(note, entry)
        with self._store._lock:
            state = self._store._state
            stored = state.notes.get(note.id)
            if stored is None:
                raise NotFoundError("note", note.id)
            if stored.revision != note.revision - 1:
                raise ConflictError("note", note.id, note.revision - 1, stored.revision)
            state.notes[note.id] = note
            state.note_log[note.id].append(entry)

    def for_customer(self, customer_id: str, *, include_deleted: bool = False) -> tuple[Note, ...]:
        read_id(customer_id, "customer_id")
        read_flag(include_deleted, "include_deleted")
        with self._store._lock:
            notes = [
                n
                for n in self._store._state.notes.values()
                if n.customer_id == customer_id and (include_deleted or not n.deleted)
            ]
        return note_order(notes)

    def history(self, note_id: str) -> tuple[NoteRevision, ...]:
        read_id(note_id, "note_id")
        with self._store._lock:
            log = self._store._state.note_log.get(note_id)
            if log is None:
                raise NotFoundError("note", note_id)
            return tuple(log)

    def rehome(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)
        with self._store._lock:
            state = self._store._state
            moved = 0
            for nid, n in list(state.notes.items()):
                if n.customer_id == from_customer:
                    state.notes[nid] = rehomed_note(n, to_customer)
                    state.note_log[nid] = [
                        rehomed_entry(e, to_customer) for e in state.note_log[nid]
                    ]
                    moved += 1
            return moved

    def erase_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            state = self._store._state
            erased = 0
            for nid, n in list(state.notes.items()):
                if n.customer_id == customer_id:
                    state.notes[nid] = attrs.evolve(n, body=ERASED_TEXT)
                    state.note_log[nid] = [
                        attrs.evolve(e, body=ERASED_TEXT) for e in state.note_log[nid]
                    ]
                    erased += 1
            return erased

    def delete_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            state = self._store._state
            gone = [nid for nid, n in state.notes.items() if n.customer_id == customer_id]
            for nid in gone:
                del state.notes[nid]
                del state.note_log[nid]
            return len(gone)


class _MemoryTags:
    def __init__(self, store: InMemoryCRMStore) -> None:
        self._store = store

    def create(self, tag: Tag) -> None:
        if not isinstance(tag, Tag):
            raise ValidationError("tag", tag, "expected a Tag")
        with self._store._lock:
            if tag.key in self._store._state.tags:
                raise DuplicateError("tag", tag.key)
            self._store._state.tags[tag.key] = tag

    def get(self, name: str) -> Tag:
        key = read_tag(name)
        with self._store._lock:
            tag = self._store._state.tags.get(key)
        if tag is None:
            raise NotFoundError("tag", name)
        return tag

    def all(self) -> tuple[Tag, ...]:
        with self._store._lock:
            return tuple(self._store._state.tags[k] for k in sorted(self._store._state.tags))

    def record(self, change: TagChange) -> None:
        if not isinstance(change, TagChange):
            raise ValidationError("change", change, "expected a TagChange")
        with self._store._lock:
            if change.tag_key not in self._store._state.tags:
                raise UnknownReferenceError("tag", change.tag, "tag")
            self._store._state.tag_log.append(change)

    def changes(self, customer_id: str | None = None) -> tuple[TagChange, ...]:
        if customer_id is not None:
            read_id(customer_id, "customer_id")
        with self._store._lock:
            log = [
                c
                for c in self._store._state.tag_log
                if customer_id is None or c.customer_id == customer_id
            ]
        return tuple(sorted(log, key=lambda c: c.at))  # stable: ties keep write order

    def tags_of(self, customer_id: str, *, as_of: datetime) -> frozenset[str]:
        read_id(customer_id, "customer_id")
        moment = utc(as_of, "as_of")
        return tags_at(self.changes(customer_id), as_of=moment).get(customer_id, frozenset())

    def customers_with(self, name: str, *, as_of: datetime) -> frozenset[str]:
        key = self.get(name).key
        utc(as_of, "as_of")
        current = tags_at(self.changes(), as_of=as_of)
        return frozenset(c for c, tags in current.items() if key in {tag_key(t) for t in tags})

    def counts(self, *, as_of: datetime) -> dict[str, int]:
        return tag_counts(self.all(), self.changes(), as_of=utc(as_of, "as_of"))

    def delete_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            state = self._store._state
            kept = [c for c in state.tag_log if c.customer_id != customer_id]
            gone = len(state.tag_log) - len(kept)
            state.tag_log = kept
            return gone


class _MemoryLeads:
    def __init__(self, store: InMemoryCRMStore) -> None:
        self._store = store

    def get(self, id: str) -> Lead:
        lead = self.find(read_id(id))
        if lead is None:
            raise NotFoundError("lead", id)
        return lead

    def find(self, id: str) -> Lead | None:
        key = read_id(id)
        with self._store._lock:
            return self._store._state.leads.get(key)

    def version(self, id: str) -> int:
        return len(self.get(id).history)

    def add(self, lead: Lead) -> int:
        if not isinstance(lead, Lead):
            raise ValidationError("lead", lead, "expected a Lead")
        with self._store._lock:
            leads = self._store._state.leads
            if lead.id in leads:
                raise DuplicateError("lead", lead.id)
            check_unique(leads.values(), lead)
            leads[lead.id] = lead
            return len(lead.history)

    def save(self, lead: Lead, *, expected_version: int) -> int:
        if not isinstance(lead, Lead):
            raise ValidationError("lead", lead, "expected a Lead")
        read_version(expected_version)
        with self._store._lock:
            leads = self._store._state.leads
            stored = leads.get(lead.id)
            if stored is None:
                raise NotFoundError("lead", lead.id)
            check_extends(stored, lead, expected_version)
            check_unique(leads.values(), lead)
            leads[lead.id] = lead
            return len(lead.history)

    def all(self) -> tuple[Lead, ...]:
        with self._store._lock:
            leads = self._store._state.leads
            return tuple(leads[k] for k in sorted(leads))

    def open_lead_for(self, email: str) -> Lead | None:
        key = read_email(email)
        return next((x for x in self.all() if x.is_open and x.email_key == key), None)

    def lead_for_customer(self, customer_id: str) -> Lead | None:
        read_id(customer_id, "customer_id")
        return next((x for x in self.all() if x.customer_id == customer_id), None)

    def count(self) -> int:
        with self._store._lock:
            return len(self._store._state.leads)

    def relink(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)
        with self._store._lock:
            leads = self._store._state.leads
            lead = next((x for x in leads.values() if x.customer_id == from_customer), None)
            if lead is None:
                return 0
            moved = relinked(lead, to_customer)
            check_unique(leads.values(), moved)
            leads[moved.id] = moved
            return 1

    def page(
        self, *, stage: LeadStage | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Lead]:
        q = LeadPageQuery.of(stage=stage, limit=limit, cursor=cursor, secret=self._store._secret)
        with self._store._lock:
            found = [x for x in self._store._state.leads.values() if q.wants(x)]
        return q.page(sorted(found, key=lead_key))

    def erase_history(self, lead_id: str) -> int:
        read_id(lead_id, "lead_id")
        with self._store._lock:
            leads = self._store._state.leads
            lead = leads.get(lead_id)
            if lead is None:
                raise NotFoundError("lead", lead_id)
            erased, changed = erased_history(lead)
            leads[lead_id] = erased
            return changed


class _MemoryContacts:
    def __init__(self, store: InMemoryCRMStore) -> None:
        self._store = store

    def get(self, id: str) -> Contact:
        contact = self.find(read_id(id))
        if contact is None:
            raise NotFoundError("contact", id)
        return contact

    def find(self, id: str) -> Contact | None:
        key = read_id(id)
        with self._store._lock:
            return self._store._state.contacts.get(key)

    def upsert(self, contact: Contact) -> None:
        if not isinstance(contact, Contact):
            raise ValidationError("contact", contact, "expected a Contact")
        with self._store._lock:
            self._store._state.contacts[contact.id] = contact

    def remove(self, id: str) -> None:
        read_id(id)
        with self._store._lock:
            if self._store._state.contacts.pop(id, None) is None:
                raise NotFoundError("contact", id)

    def for_customer(self, customer_id: str) -> tuple[Contact, ...]:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            found = [
                c for c in self._store._state.contacts.values() if c.customer_id == customer_id
            ]
        return tuple(sorted(found, key=lambda c: (c.name, c.id)))

    def rehome(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)
        with self._store._lock:
            contacts = self._store._state.contacts
            moved = [c for c in contacts.values() if c.customer_id == from_customer]
            for c in moved:
                contacts[c.id] = attrs.evolve(c, customer_id=to_customer)
            return len(moved)

    def erase_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            contacts = self._store._state.contacts
            gone = [k for k, c in contacts.items() if c.customer_id == customer_id]
            for k in gone:
                del contacts[k]
            return len(gone)

    def delete_customer(self, customer_id: str) -> int:
        return self.erase_customer(customer_id)  # validated there


class _MemoryCalls:
    def __init__(self, store: InMemoryCRMStore) -> None:
        self._store = store

    def get(self, id: str) -> LoggedCall:
        key = read_id(id)
        with self._store._lock:
            call = self._store._state.calls.get(key)
        if call is None:
            raise NotFoundError("call", id)
        return call

    def add(self, call: LoggedCall) -> None:
        if not isinstance(call, LoggedCall):
            raise ValidationError("call", call, "expected a LoggedCall")
        with self._store._lock:
            if call.id in self._store._state.calls:
                raise DuplicateError("call", call.id)
            self._store._state.calls[call.id] = call

    def for_customer(self, customer_id: str) -> tuple[LoggedCall, ...]:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            found = [c for c in self._store._state.calls.values() if c.customer_id == customer_id]
        return tuple(sorted(found, key=lambda c: (c.at, c.id)))

    def rehome(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)
        with self._store._lock:
            calls = self._store._state.calls
            moved = [c for c in calls.values() if c.customer_id == from_customer]
            for c in moved:
                calls[c.id] = attrs.evolve(c, customer_id=to_customer)
            return len(moved)

    def erase_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            calls = self._store._state.calls
            mine = [c for c in calls.values() if c.customer_id == customer_id]
            for c in mine:
                calls[c.id] = attrs.evolve(c, summary=ERASED_TEXT)
            return len(mine)

    def delete_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            calls = self._store._state.calls
            gone = [k for k, c in calls.items() if c.customer_id == customer_id]
            for k in gone:
                del calls[k]
            return len(gone)


class _MemoryIntake:
    def __init__(self, store: InMemoryCRMStore) -> None:
        self._store = store

    def save_question(self, question: IntakeQuestion) -> None:
        check_question(question)
        with self._store._lock:
            self._store._state.questions[question.id] = question

    def question(self, id: str) -> IntakeQuestion:
        key = read_id(id)
        with self._store._lock:
            found = self._store._state.questions.get(key)
        if found is None:
            raise NotFoundError("intake question", id)
        return found

    def questions(
        self, *, scope: IntakeScope | str | None = None, include_retired: bool = False
    ) -> tuple[IntakeQuestion, ...]:
        wanted = check_scope(scope)
        read_flag(include_retired, "include_retired")
        with self._store._lock:
            found = list(self._store._state.questions.values())
        return question_order(
            q
            for q in found
            if (wanted is None or q.scope is wanted) and (include_retired or q.retired_at is None)
        )

    def record(self, answer: IntakeAnswer) -> IntakeAnswer:
        if not isinstance(answer, IntakeAnswer):
            raise ValidationError("answer", answer, "expected an IntakeAnswer")
        with self._store._lock:
            question = self._store._state.questions.get(answer.question_id)
            if question is None:
                raise UnknownReferenceError("question_id", answer.question_id, "intake question")
            stored = question.check(answer)
            self._store._state.answers.append(stored)
            return stored

    def _select(self, keep: Callable[[IntakeAnswer], bool]) -> tuple[IntakeAnswer, ...]:
        with self._store._lock:
            found = [a for a in self._store._state.answers if keep(a)]
        return tuple(sorted(found, key=lambda a: a.answered_at))  # stable: ties keep write order

    def answers_for(self, customer_id: str) -> tuple[IntakeAnswer, ...]:
        read_id(customer_id, "customer_id")
        return self._select(lambda a: a.customer_id == customer_id)

    def answers(self, *, as_of: datetime | None = None) -> tuple[IntakeAnswer, ...]:
        moment = optional_utc(as_of, "as_of")
        return self._select(lambda a: moment is None or a.answered_at <= moment)

    def _rewrite(
        self, customer_id: str, change: Callable[[IntakeAnswer], IntakeAnswer | None]
    ) -> int:
        read_id(customer_id, "customer_id")
        with self._store._lock:
            state = self._store._state
            touched = 0
            kept: list[IntakeAnswer] = []
            for a in state.answers:
                new = change(a) if a.customer_id == customer_id else a
                if new is not a:
                    touched += 1
                if new is not None:
                    kept.append(new)
            state.answers = kept
            return touched

    def rehome(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)
        return self._rewrite(from_customer, lambda a: attrs.evolve(a, customer_id=to_customer))

    def erase_customer(self, customer_id: str) -> int:
        return self._rewrite(
            customer_id, lambda a: a if a.text is None else attrs.evolve(a, text=ERASED_TEXT)
        )

    def delete_customer(self, customer_id: str) -> int:
        return self._rewrite(customer_id, lambda a: None)


# -- shared rules (every backend applies the same checks) -------------------------------------


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
