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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

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
from revcrm.leads._lead import Lead
from revcrm.leads._stages import LeadStage
from revcrm.storage._crm_checks import (
    ERASED_TEXT,
    LeadPageQuery,
    _check_entry,
    _secret,
    check_extends,
    check_question,
    check_scope,
    check_unique,
    erased_history,
    lead_key,
    note_order,
    read_email,
    read_flag,
    read_id,
    read_pair,
    read_tag,
    read_version,
    relinked,
    tag_counts,
)
from revcrm.storage._crm_protocols import (
    CallRepository,
    ContactRepository,
    CRMStore,
    IntakeRepository,
    LeadRepository,
    NoteRepository,
    TagRepository,
    customer_rows,
)
from revcrm.storage._crm_tables import (
    Collection,
    MemoryPerCustomer,
    delete_rows,
)
from revcrm.storage._query import (
    Page,
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

    def collection(self, table: str) -> Collection:
        """The rows of a table of :data:`CUSTOMER_TABLES` (held under the store's lock)."""
        state = self._state
        tables: dict[str, Collection] = {
            "notes": state.notes,
            "note_revisions": state.note_log,
            "tag_changes": state.tag_log,
            "contacts": state.contacts,
            "calls": state.calls,
            "intake_answers": state.answers,
        }
        return tables[table]


class _MemoryNotes(MemoryPerCustomer["InMemoryCRMStore"]):
    _group = "notes"

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
        return delete_rows(self._store, "tags", customer_id)


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


class _MemoryContacts(MemoryPerCustomer["InMemoryCRMStore"]):
    _group = "contacts"

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


class _MemoryCalls(MemoryPerCustomer["InMemoryCRMStore"]):
    _group = "calls"

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


class _MemoryIntake(MemoryPerCustomer["InMemoryCRMStore"]):
    _group = "intake"

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
