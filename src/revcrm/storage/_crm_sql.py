"""The CRM store on SQLAlchemy Core 2 (SQLite and PostgreSQL).

Moments are stored as whole microseconds since 1970 UTC (exact, and ordered the same way
on both databases); money amounts as decimal text, so nothing passes through a float.
Every statement is parameterised; driver errors become :mod:`revcrm.errors` exceptions.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

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
    RevcrmError,
    StorageError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.leads._lead import Lead, LeadRecord, LeadTransitionRecord, normalise_email
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._crm import (
    ERASED_TEXT,
    check_extends,
    note_order,
    relinked,
    tag_counts,
)
from revcrm.storage._sql import _create_engine

__all__ = ["SQLCRMStore"]

_T = TypeVar("_T")
_PREFIX: Final = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_MOMENT: Final = sa.BigInteger


def _tables(prefix: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData()
    t = {
        "notes": sa.Table(
            f"{prefix}notes",
            md,
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("customer_id", sa.String, nullable=False, index=True),
            sa.Column("author_id", sa.String, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("pinned", sa.Boolean, nullable=False),
            sa.Column("created_at", _MOMENT, nullable=False),
            sa.Column("edited_at", _MOMENT),
            sa.Column("changed_at", _MOMENT, nullable=False),
            sa.Column("deleted", sa.Boolean, nullable=False),
            sa.Column("revision", sa.Integer, nullable=False),
        ),
        "note_revisions": sa.Table(
            f"{prefix}note_revisions",
            md,
            sa.Column("note_id", sa.String, primary_key=True),
            sa.Column("revision", sa.Integer, primary_key=True),
            sa.Column("customer_id", sa.String, nullable=False),
            sa.Column("action", sa.String, nullable=False),
            sa.Column("at", _MOMENT, nullable=False),
            sa.Column("staff_id", sa.String),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("pinned", sa.Boolean, nullable=False),
            sa.Column("deleted", sa.Boolean, nullable=False),
        ),
        "tags": sa.Table(
            f"{prefix}tags",
            md,
            sa.Column("key", sa.String, primary_key=True),
            sa.Column("name", sa.String, nullable=False),
            sa.Column("colour", sa.String, nullable=False),
        ),
        "tag_changes": sa.Table(
            f"{prefix}tag_changes",
            md,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("customer_id", sa.String, nullable=False, index=True),
            sa.Column("tag", sa.String, nullable=False),
            sa.Column("tag_key", sa.String, nullable=False),
            sa.Column("action", sa.String, nullable=False),
            sa.Column("at", _MOMENT, nullable=False),
            sa.Column("staff_id", sa.String),
        ),
        "leads": sa.Table(
            f"{prefix}leads",
            md,
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("email", sa.String, nullable=False),
            sa.Column("email_key", sa.String, nullable=False),
            # email_key while the lead is open, else NULL: a unique index on it allows one
            # open lead per email (NULLs are distinct on both databases).
            sa.Column("open_key", sa.String, unique=True),
            sa.Column("name", sa.String, nullable=False),
            sa.Column("company", sa.String),
            sa.Column("phone", sa.String),
            sa.Column("source", sa.String),
            sa.Column("owner_id", sa.String),
            sa.Column("expected_value_amount", sa.String),  # exact decimal text
            sa.Column("expected_value_currency", sa.String(3)),
            sa.Column("notes", sa.Text, nullable=False),
            sa.Column("created_at", _MOMENT, nullable=False),
            sa.Column("stage", sa.String, nullable=False),
            sa.Column("customer_id", sa.String, unique=True),
            sa.Column("version", sa.Integer, nullable=False),
        ),
        "lead_transitions": sa.Table(
            f"{prefix}lead_transitions",
            md,
            sa.Column("lead_id", sa.String, primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True),
            sa.Column("from_stage", sa.String, nullable=False),
            sa.Column("to_stage", sa.String, nullable=False),
            sa.Column("at", _MOMENT, nullable=False),
            sa.Column("staff_id", sa.String),
            sa.Column("note", sa.Text, nullable=False),
            sa.Column("lost_reason", sa.String),
            sa.Column("customer_id", sa.String),
        ),
        "contacts": sa.Table(
            f"{prefix}contacts",
            md,
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("customer_id", sa.String, nullable=False, index=True),
            sa.Column("name", sa.String, nullable=False),
            sa.Column("title", sa.String),
            sa.Column("email", sa.String),
            sa.Column("phone", sa.String),
            sa.Column("notes", sa.Text, nullable=False),
        ),
        "calls": sa.Table(
            f"{prefix}calls",
            md,
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("customer_id", sa.String, nullable=False, index=True),
            sa.Column("at", _MOMENT, nullable=False),
            sa.Column("staff_id", sa.String),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("duration_seconds", sa.Integer),
        ),
    }
    return md, t


def _m(value: datetime | None) -> int | None:
    return None if value is None else moment_value(value)


def _d(value: int | None) -> datetime | None:
    return None if value is None else moment_from_value(value)


def _converted(e: sa_exc.SQLAlchemyError) -> RevcrmError:
    orig = getattr(e, "orig", None)
    detail = f"{type(orig).__name__}: {orig}" if orig is not None else f"{type(e).__name__}: {e}"
    return StorageError(f"database error ({detail.strip()})")


class _Local(threading.local):
    conn: Connection | None = None


class SQLCRMStore:
    """Notes, tags and leads in SQL tables named ``<prefix>notes`` and so on.

    Built from a database URL or an existing :class:`sqlalchemy.engine.Engine` (shared
    with the billing :class:`~revcrm.storage.SQLStore`, say). Call :meth:`create_schema`
    once; it is idempotent.
    """

    def __init__(self, url_or_engine: str | sa.URL | Engine, *, prefix: str = "revcrm_crm_"):
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ValidationError("prefix", prefix, "lower-case letters, digits and _ (<= 31)")
        if isinstance(url_or_engine, Engine):
            self._engine = url_or_engine
            self._owns_engine = False
        else:
            self._engine = _create_engine(url_or_engine, 30.0)
            self._owns_engine = True
        self._sqlite = self._engine.dialect.name == "sqlite"
        self.prefix = prefix
        self._md, self._t = _tables(prefix)
        self._serial: threading.RLock | None = (
            threading.RLock() if isinstance(self._engine.pool, StaticPool) else None
        )
        self._local = _Local()
        self.notes = _SQLNotes(self)
        self.tags = _SQLTags(self)
        self.leads = _SQLLeads(self)
        self.contacts = _SQLContacts(self)
        self.calls = _SQLCalls(self)

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        return f"SQLCRMStore({url!r}, prefix={self.prefix!r})"

    def create_schema(self) -> None:
        try:
            with self._engine.begin() as conn:
                self._md.create_all(conn)
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def drop_schema(self) -> None:
        try:
            with self._engine.begin() as conn:
                self._md.drop_all(conn)
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Connection]:
        conn = self._local.conn
        if conn is not None:
            savepoint = conn.begin_nested()
            try:
                yield conn
            except BaseException:
                if savepoint.is_active:
                    savepoint.rollback()
                raise
            savepoint.commit()
            return
        with self._serial if self._serial is not None else nullcontext():
            conn = self._engine.connect()
            try:
                if self._sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                self._local.conn = conn
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                self._local.conn = None
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block for this thread; nested blocks are savepoints."""
        try:
            with self._session():
                yield
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def _run(self, fn: Callable[[Connection], _T], *, unique: tuple[str, str] | None = None) -> _T:
        try:
            with self._session() as conn:
                return fn(conn)
        except sa_exc.IntegrityError as e:
            # Another connection won a race the checks above could not see.
            if unique is not None:
                raise DuplicateError(*unique) from e
            raise _converted(e) from e
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e


# -- notes ------------------------------------------------------------------------------------


def _note_row(n: Note) -> dict[str, Any]:
    return {
        **n.to_record(),
        "created_at": _m(n.created_at),
        "edited_at": _m(n.edited_at),
        "changed_at": _m(n.changed_at),
    }


def _note(r: Mapping[Any, Any]) -> Note:
    values = dict(r)
    values["created_at"] = _d(values["created_at"])
    values["edited_at"] = _d(values["edited_at"])
    changed = _d(values.pop("changed_at"))
    values["pinned"], values["deleted"] = bool(values["pinned"]), bool(values["deleted"])
    return Note.from_record(values, changed_at=changed)


def _entry_row(e: NoteRevision) -> dict[str, Any]:
    return {**e.to_record(), "at": _m(e.at)}


def _entry(r: Mapping[Any, Any]) -> NoteRevision:
    values = dict(r)
    values["at"] = _d(values["at"])
    values["pinned"], values["deleted"] = bool(values["pinned"]), bool(values["deleted"])
    return NoteRevision.from_record(values)


class _SQLNotes:
    def __init__(self, store: SQLCRMStore) -> None:
        self._s = store
        self._n = store._t["notes"]
        self._r = store._t["note_revisions"]

    def get(self, id: str) -> Note:
        note = self.find(id)
        if note is None:
            raise NotFoundError("note", id)
        return note

    def find(self, id: str) -> Note | None:
        def run(conn: Connection) -> Note | None:
            row = conn.execute(sa.select(self._n).where(self._n.c.id == id)).mappings().first()
            return None if row is None else _note(row)

        return self._s._run(run)

    def add(self, note: Note) -> None:
        if not isinstance(note, Note):
            raise ValidationError("note", note, "expected a Note")
        if note.revision != 1:
            raise ValidationError("revision", note.revision, "a new note is at revision 1")

        def run(conn: Connection) -> None:
            if conn.execute(sa.select(self._n.c.id).where(self._n.c.id == note.id)).first():
                raise DuplicateError("note", note.id)
            conn.execute(sa.insert(self._n), [_note_row(note)])
            conn.execute(sa.insert(self._r), [_entry_row(note.created())])

        self._s._run(run, unique=("note", note.id))

    def save(self, note: Note, entry: NoteRevision) -> None:
        from revcrm.storage._crm import _check_entry

        _check_entry(note, entry)

        def run(conn: Connection) -> None:
            current = conn.execute(
                sa.select(self._n.c.revision).where(self._n.c.id == note.id)
            ).scalar()
            if current is None:
                raise NotFoundError("note", note.id)
            done = conn.execute(
                sa.update(self._n)
                .where(self._n.c.id == note.id, self._n.c.revision == note.revision - 1)
                .values(_note_row(note))
            )
            if done.rowcount != 1:
                raise ConflictError("note", note.id, note.revision - 1, current)
            conn.execute(sa.insert(self._r), [_entry_row(entry)])

        self._s._run(run)

    def for_customer(self, customer_id: str, *, include_deleted: bool = False) -> tuple[Note, ...]:
        def run(conn: Connection) -> tuple[Note, ...]:
            q = sa.select(self._n).where(self._n.c.customer_id == customer_id)
            if not include_deleted:
                q = q.where(self._n.c.deleted == sa.false())
            return note_order(_note(r) for r in conn.execute(q).mappings())

        return self._s._run(run)

    def history(self, note_id: str) -> tuple[NoteRevision, ...]:
        def run(conn: Connection) -> tuple[NoteRevision, ...]:
            q = sa.select(self._r).where(self._r.c.note_id == note_id).order_by(self._r.c.revision)
            rows = tuple(_entry(r) for r in conn.execute(q).mappings())
            if not rows:
                raise NotFoundError("note", note_id)
            return rows

        return self._s._run(run)

    def rehome(self, from_customer: str, to_customer: str) -> int:
        def run(conn: Connection) -> int:
            moved = conn.execute(
                sa.update(self._n)
                .where(self._n.c.customer_id == from_customer)
                .values(customer_id=to_customer)
            ).rowcount
            conn.execute(
                sa.update(self._r)
                .where(self._r.c.customer_id == from_customer)
                .values(customer_id=to_customer)
            )
            return int(moved)

        return self._s._run(run)

    def erase_customer(self, customer_id: str) -> int:
        def run(conn: Connection) -> int:
            erased = conn.execute(
                sa.update(self._n)
                .where(self._n.c.customer_id == customer_id)
                .values(body=ERASED_TEXT)
            ).rowcount
            conn.execute(
                sa.update(self._r)
                .where(self._r.c.customer_id == customer_id)
                .values(body=ERASED_TEXT)
            )
            return int(erased)

        return self._s._run(run)


# -- tags -------------------------------------------------------------------------------------


def _change(r: Mapping[Any, Any]) -> TagChange:
    return TagChange.from_record({**r, "at": _d(r["at"])})


class _SQLTags:
    def __init__(self, store: SQLCRMStore) -> None:
        self._s = store
        self._t = store._t["tags"]
        self._c = store._t["tag_changes"]

    def create(self, tag: Tag) -> None:
        if not isinstance(tag, Tag):
            raise ValidationError("tag", tag, "expected a Tag")

        def run(conn: Connection) -> None:
            if conn.execute(sa.select(self._t.c.key).where(self._t.c.key == tag.key)).first():
                raise DuplicateError("tag", tag.key)
            conn.execute(sa.insert(self._t), [dict(tag.to_record())])

        self._s._run(run, unique=("tag", tag.key))

    def get(self, name: str) -> Tag:
        key = tag_key(name)

        def run(conn: Connection) -> Tag:
            row = conn.execute(sa.select(self._t).where(self._t.c.key == key)).mappings().first()
            if row is None:
                raise NotFoundError("tag", name)
            return Tag.from_record(dict(row))

        return self._s._run(run)

    def all(self) -> tuple[Tag, ...]:
        def run(conn: Connection) -> tuple[Tag, ...]:
            q = sa.select(self._t).order_by(self._t.c.key)
            return tuple(Tag.from_record(dict(r)) for r in conn.execute(q).mappings())

        return self._s._run(run)

    def record(self, change: TagChange) -> None:
        if not isinstance(change, TagChange):
            raise ValidationError("change", change, "expected a TagChange")

        def run(conn: Connection) -> None:
            q = sa.select(self._t.c.key).where(self._t.c.key == change.tag_key)
            if conn.execute(q).first() is None:
                raise UnknownReferenceError("tag", change.tag, "tag")
            conn.execute(sa.insert(self._c), [{**change.to_record(), "at": _m(change.at)}])

        self._s._run(run)

    def changes(self, customer_id: str | None = None) -> tuple[TagChange, ...]:
        def run(conn: Connection) -> tuple[TagChange, ...]:
            q = sa.select(self._c).order_by(self._c.c.at, self._c.c.seq)
            if customer_id is not None:
                q = q.where(self._c.c.customer_id == customer_id)
            cols = ("customer_id", "tag", "action", "at", "staff_id")
            return tuple(_change({k: r[k] for k in cols}) for r in conn.execute(q).mappings())

        return self._s._run(run)

    def tags_of(self, customer_id: str, *, as_of: datetime) -> frozenset[str]:
        return tags_at(self.changes(customer_id), as_of=as_of).get(customer_id, frozenset())

    def customers_with(self, name: str, *, as_of: datetime) -> frozenset[str]:
        key = self.get(name).key

        def run(conn: Connection) -> tuple[TagChange, ...]:
            # Only the log of customers who ever had the tag is replayed.
            q = (
                sa.select(self._c)
                .where(self._c.c.tag_key == key, self._c.c.at <= moment_value(as_of))
                .order_by(self._c.c.at, self._c.c.seq)
            )
            cols = ("customer_id", "tag", "action", "at", "staff_id")
            return tuple(_change({k: r[k] for k in cols}) for r in conn.execute(q).mappings())

        current = tags_at(self._s._run(run), as_of=as_of)
        return frozenset(current)

    def counts(self, *, as_of: datetime) -> dict[str, int]:
        return tag_counts(self.all(), self.changes(), as_of=as_of)


# -- leads ------------------------------------------------------------------------------------


def _lead_row(lead: Lead) -> dict[str, Any]:
    r = lead.to_record()
    amount = r["expected_value_amount"]
    return {
        **r,
        "expected_value_amount": None if amount is None else str(amount),
        "created_at": _m(r["created_at"]),
        "open_key": r["email_key"] if lead.is_open else None,
        "version": len(lead.history),
    }


def _transition_row(r: LeadTransitionRecord) -> dict[str, Any]:
    return {**r, "at": _m(r["at"])}


class _SQLLeads:
    def __init__(self, store: SQLCRMStore) -> None:
        self._s = store
        self._l = store._t["leads"]
        self._x = store._t["lead_transitions"]

    def _load(self, conn: Connection, rows: list[Mapping[Any, Any]]) -> list[Lead]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        history: dict[str, list[LeadTransitionRecord]] = {i: [] for i in ids}
        q = sa.select(self._x).where(self._x.c.lead_id.in_(ids))
        for t in conn.execute(q).mappings():
            history[t["lead_id"]].append(
                LeadTransitionRecord(
                    lead_id=t["lead_id"],
                    seq=t["seq"],
                    from_stage=t["from_stage"],
                    to_stage=t["to_stage"],
                    at=moment_from_value(t["at"]),
                    staff_id=t["staff_id"],
                    note=t["note"],
                    lost_reason=t["lost_reason"],
                    customer_id=t["customer_id"],
                )
            )
        leads = []
        for r in rows:
            amount = r["expected_value_amount"]
            record = LeadRecord(
                id=r["id"],
                email=r["email"],
                email_key=r["email_key"],
                name=r["name"],
                company=r["company"],
                phone=r["phone"],
                source=r["source"],
                owner_id=r["owner_id"],
                expected_value_amount=None if amount is None else Decimal(amount),
                expected_value_currency=r["expected_value_currency"],
                notes=r["notes"],
                created_at=moment_from_value(r["created_at"]),
                stage=r["stage"],
                customer_id=r["customer_id"],
            )
            leads.append(Lead.from_record(record, history[r["id"]]))
        return leads

    def _where(self, *conds: Any) -> list[Lead]:
        def run(conn: Connection) -> list[Lead]:
            q = sa.select(self._l).where(*conds).order_by(self._l.c.id)
            return self._load(conn, list(conn.execute(q).mappings()))

        return self._s._run(run)

    def get(self, id: str) -> Lead:
        lead = self.find(id)
        if lead is None:
            raise NotFoundError("lead", id)
        return lead

    def find(self, id: str) -> Lead | None:
        found = self._where(self._l.c.id == id)
        return found[0] if found else None

    def version(self, id: str) -> int:
        return len(self.get(id).history)

    def _check_unique(self, conn: Connection, lead: Lead) -> None:
        if lead.is_open:
            q = sa.select(self._l.c.id).where(
                self._l.c.open_key == lead.email_key, self._l.c.id != lead.id
            )
            if conn.execute(q).first():
                raise DuplicateError("open lead", lead.email_key)
        if lead.customer_id is not None:
            q = sa.select(self._l.c.id).where(
                self._l.c.customer_id == lead.customer_id, self._l.c.id != lead.id
            )
            if conn.execute(q).first():
                raise DuplicateError("converted lead for customer", lead.customer_id)

    def add(self, lead: Lead) -> int:
        if not isinstance(lead, Lead):
            raise ValidationError("lead", lead, "expected a Lead")

        def run(conn: Connection) -> int:
            if conn.execute(sa.select(self._l.c.id).where(self._l.c.id == lead.id)).first():
                raise DuplicateError("lead", lead.id)
            self._check_unique(conn, lead)
            conn.execute(sa.insert(self._l), [_lead_row(lead)])
            rows = [_transition_row(r) for r in lead.transition_records()]
            if rows:
                conn.execute(sa.insert(self._x), rows)
            return len(lead.history)

        return self._s._run(run, unique=("lead", lead.id))

    def save(self, lead: Lead, *, expected_version: int) -> int:
        if not isinstance(lead, Lead):
            raise ValidationError("lead", lead, "expected a Lead")

        def run(conn: Connection) -> int:
            stored = self._load(
                conn,
                list(conn.execute(sa.select(self._l).where(self._l.c.id == lead.id)).mappings()),
            )
            if not stored:
                raise NotFoundError("lead", lead.id)
            check_extends(stored[0], lead, expected_version)
            self._check_unique(conn, lead)
            done = conn.execute(
                sa.update(self._l)
                .where(self._l.c.id == lead.id, self._l.c.version == expected_version)
                .values(_lead_row(lead))
            )
            if done.rowcount != 1:
                raise ConflictError("lead", lead.id, expected_version, None)
            rows = [_transition_row(r) for r in lead.transition_records()[expected_version:]]
            if rows:
                conn.execute(sa.insert(self._x), rows)
            return len(lead.history)

        return self._s._run(run, unique=("lead", lead.id))

    def all(self) -> tuple[Lead, ...]:
        return tuple(self._where())

    def open_lead_for(self, email: str) -> Lead | None:
        found = self._where(self._l.c.open_key == normalise_email(email))
        return found[0] if found else None

    def lead_for_customer(self, customer_id: str) -> Lead | None:
        found = self._where(self._l.c.customer_id == customer_id)
        return found[0] if found else None

    def count(self) -> int:
        return int(
            self._s._run(
                lambda c: c.execute(sa.select(sa.func.count()).select_from(self._l)).scalar() or 0
            )
        )

    def relink(self, from_customer: str, to_customer: str) -> int:
        def run(conn: Connection) -> int:
            q = sa.select(self._l).where(self._l.c.customer_id == from_customer)
            found = self._load(conn, list(conn.execute(q).mappings()))
            if not found:
                return 0
            moved = relinked(found[0], to_customer)
            self._check_unique(conn, moved)
            conn.execute(
                sa.update(self._l).where(self._l.c.id == moved.id).values(customer_id=to_customer)
            )
            conn.execute(
                sa.update(self._x)
                .where(self._x.c.lead_id == moved.id, self._x.c.customer_id == from_customer)
                .values(customer_id=to_customer)
            )
            return 1

        return self._s._run(run, unique=("converted lead for customer", to_customer))


# -- contacts and calls -----------------------------------------------------------------------


def _rehome(store: SQLCRMStore, table: sa.Table, from_customer: str, to_customer: str) -> int:
    def run(conn: Connection) -> int:
        stmt = (
            sa.update(table)
            .where(table.c.customer_id == from_customer)
            .values(customer_id=to_customer)
        )
        return int(conn.execute(stmt).rowcount)

    return store._run(run)


class _SQLContacts:
    def __init__(self, store: SQLCRMStore) -> None:
        self._s = store
        self._c = store._t["contacts"]

    def get(self, id: str) -> Contact:
        contact = self.find(id)
        if contact is None:
            raise NotFoundError("contact", id)
        return contact

    def find(self, id: str) -> Contact | None:
        def run(conn: Connection) -> Contact | None:
            row = conn.execute(sa.select(self._c).where(self._c.c.id == id)).mappings().first()
            return None if row is None else Contact.from_record(dict(row))

        return self._s._run(run)

    def upsert(self, contact: Contact) -> None:
        if not isinstance(contact, Contact):
            raise ValidationError("contact", contact, "expected a Contact")

        def run(conn: Connection) -> None:
            conn.execute(sa.delete(self._c).where(self._c.c.id == contact.id))
            conn.execute(sa.insert(self._c), [dict(contact.to_record())])

        self._s._run(run, unique=("contact", contact.id))

    def remove(self, id: str) -> None:
        def run(conn: Connection) -> None:
            if conn.execute(sa.delete(self._c).where(self._c.c.id == id)).rowcount != 1:
                raise NotFoundError("contact", id)

        self._s._run(run)

    def for_customer(self, customer_id: str) -> tuple[Contact, ...]:
        def run(conn: Connection) -> tuple[Contact, ...]:
            q = sa.select(self._c).where(self._c.c.customer_id == customer_id)
            found = [Contact.from_record(dict(r)) for r in conn.execute(q).mappings()]
            return tuple(sorted(found, key=lambda c: (c.name, c.id)))

        return self._s._run(run)

    def rehome(self, from_customer: str, to_customer: str) -> int:
        return _rehome(self._s, self._c, from_customer, to_customer)

    def erase_customer(self, customer_id: str) -> int:
        def run(conn: Connection) -> int:
            stmt = sa.delete(self._c).where(self._c.c.customer_id == customer_id)
            return int(conn.execute(stmt).rowcount)

        return self._s._run(run)


def _call(r: Mapping[Any, Any]) -> LoggedCall:
    return LoggedCall.from_record({**r, "at": moment_from_value(r["at"])})


class _SQLCalls:
    def __init__(self, store: SQLCRMStore) -> None:
        self._s = store
        self._c = store._t["calls"]

    def get(self, id: str) -> LoggedCall:
        def run(conn: Connection) -> LoggedCall:
            row = conn.execute(sa.select(self._c).where(self._c.c.id == id)).mappings().first()
            if row is None:
                raise NotFoundError("call", id)
            return _call(row)

        return self._s._run(run)

    def add(self, call: LoggedCall) -> None:
        if not isinstance(call, LoggedCall):
            raise ValidationError("call", call, "expected a LoggedCall")

        def run(conn: Connection) -> None:
            if conn.execute(sa.select(self._c.c.id).where(self._c.c.id == call.id)).first():
                raise DuplicateError("call", call.id)
            conn.execute(sa.insert(self._c), [{**call.to_record(), "at": _m(call.at)}])

        self._s._run(run, unique=("call", call.id))

    def for_customer(self, customer_id: str) -> tuple[LoggedCall, ...]:
        def run(conn: Connection) -> tuple[LoggedCall, ...]:
            q = (
                sa.select(self._c)
                .where(self._c.c.customer_id == customer_id)
                .order_by(self._c.c.at, self._c.c.id)
            )
            return tuple(_call(r) for r in conn.execute(q).mappings())

        return self._s._run(run)

    def rehome(self, from_customer: str, to_customer: str) -> int:
        return _rehome(self._s, self._c, from_customer, to_customer)

    def erase_customer(self, customer_id: str) -> int:
        def run(conn: Connection) -> int:
            stmt = (
                sa.update(self._c)
                .where(self._c.c.customer_id == customer_id)
                .values(summary=ERASED_TEXT)
            )
            return int(conn.execute(stmt).rowcount)

        return self._s._run(run)
