"""The CRM storage protocols: one repository per kind of CRM record, and the store.

The rules every backend follows are in :mod:`revcrm.storage._crm` (and checked by
:mod:`revcrm.testing.crm_contract`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from revcrm.crm._intake import IntakeAnswer, IntakeQuestion, IntakeScope
from revcrm.crm._records import (
    Contact,
    LoggedCall,
    Note,
    NoteRevision,
    Tag,
    TagChange,
)
from revcrm.leads._lead import Lead
from revcrm.leads._stages import LeadStage
from revcrm.storage._query import (
    Page,
)

__all__ = [
    "CRMStore",
    "CallRepository",
    "ContactRepository",
    "CustomerRows",
    "IntakeRepository",
    "LeadRepository",
    "NoteRepository",
    "TagRepository",
    "customer_rows",
]


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
