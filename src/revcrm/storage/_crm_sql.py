"""The CRM store on SQLAlchemy Core 2 (SQLite and PostgreSQL).

Moments are stored as whole microseconds since 1970 UTC (exact, and ordered the same way
on both databases); money amounts as decimal text, so nothing passes through a float.
Every statement is parameterised; driver errors become :mod:`revcrm.errors` exceptions.

The schema is versioned in ``<prefix>schema_version``: :meth:`SQLCRMStore.migrate` applies
the forward migrations of :data:`MIGRATIONS` in order and records each one. Version 1 is
the original table set (notes, note history, tags, tag changes, leads, lead transitions,
contacts, calls); version 2 adds the intake questions and answers. A database created
before versions were recorded is recognised as version 1 by its tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from revcrm._time import utc
from revcrm.crm._records import (
    Note,
    NoteRevision,
    Tag,
    TagChange,
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
from revcrm.leads._lead import Lead, LeadRecord, LeadTransitionRecord
from revcrm.leads._stages import LeadStage
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._crm_checks import (
    ERASED_TEXT,
    LeadPageQuery,
    _check_entry,
    check_extends,
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
from revcrm.storage._crm_sql_contacts import SQLCalls, SQLContacts
from revcrm.storage._crm_sql_intake import SQLIntake
from revcrm.storage._crm_sql_tables import (
    LATEST_VERSION,
    MIGRATIONS,
    PerCustomer,
    _tables,
    delete,
)
from revcrm.storage._query import Page, cursor_secret
from revcrm.storage._sql import SQLStore
from revcrm.storage._sql_db import Database

__all__ = ["LATEST_VERSION", "MIGRATIONS", "SQLCRMStore"]

_T = TypeVar("_T")
_PREFIX: Final = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def _m(value: datetime | None) -> int | None:
    return None if value is None else moment_value(value)


def _d(value: int | None) -> datetime | None:
    return None if value is None else moment_from_value(value)


def _secret(value: object) -> bytes:
    return cursor_secret(value)


def _converted(e: sa_exc.SQLAlchemyError) -> RevcrmError:
    orig = getattr(e, "orig", None)
    detail = f"{type(orig).__name__}: {orig}" if orig is not None else f"{type(e).__name__}: {e}"
    return StorageError(f"database error ({detail.strip()})")


class SQLCRMStore:
    """Notes, tags, leads, contacts, calls and intake in SQL tables named
    ``<prefix>notes`` and so on.

    Built from a database URL or an existing :class:`sqlalchemy.engine.Engine`; call
    :meth:`create_schema` once (idempotent) and :meth:`migrate` after upgrading revcrm.
    Until then, every read or write raises :class:`~revcrm.errors.StorageError` saying so.

    With ``billing=`` a :class:`~revcrm.storage.SQLStore` (or :meth:`alongside`), the CRM
    tables live in the billing store's database and every unit of work goes through
    :meth:`SQLStore.connection() <revcrm.storage.SQLStore.connection>`: inside
    ``billing.transaction()`` CRM writes join that transaction, so billing and CRM rows
    commit or roll back together. The billing schema must exist first.

    ``cursor_secret`` signs lead cursors (random per store unless given; joined to a
    billing store, that store's key): processes serving one listing must share it.
    """

    def __init__(
        self,
        url_or_engine: str | sa.URL | Engine,
        *,
        prefix: str = "revcrm_crm_",
        billing: SQLStore | None = None,
        cursor_secret: bytes | str | None = None,
    ):
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ValidationError("prefix", prefix, "lower-case letters, digits and _ (<= 31)")
        if billing is not None:
            self._check_billing(billing, url_or_engine, prefix)
            # One database object: the billing store's units of work are the CRM store's.
            self._db = billing.database
        else:
            self._db = Database(url_or_engine, busy_timeout=30.0)
        self._engine = self._db.engine
        self._billing = billing
        # Joined to a billing store, lead cursors are signed with its key unless given one.
        shared = getattr(billing, "_secret", None) if cursor_secret is None else None
        self._secret = shared if isinstance(shared, bytes) else _secret(cursor_secret)
        self._sqlite = self._db.sqlite
        self.prefix = prefix
        self._md, self._t = _tables(prefix)
        self._ready = False
        self.notes = _SQLNotes(self)
        self.tags = _SQLTags(self)
        self.leads = _SQLLeads(self)
        self.contacts = SQLContacts(self)
        self.calls = SQLCalls(self)
        self.intake = SQLIntake(self)

    @staticmethod
    def _check_billing(billing: object, url_or_engine: object, prefix: str) -> None:
        if not isinstance(billing, SQLStore):
            raise ValidationError("billing", billing, "expected a SQLStore")
        if billing.engine is not url_or_engine:
            raise ValidationError(
                "billing", billing, "must use this store's engine (see SQLCRMStore.alongside)"
            )
        if billing.prefix == prefix:
            raise ValidationError("prefix", prefix, "is the billing store's prefix")

    @classmethod
    def alongside(cls, billing: SQLStore, *, prefix: str = "revcrm_crm_") -> SQLCRMStore:
        """A CRM store in the billing store's database, sharing its units of work."""
        return cls(billing.engine, prefix=prefix, billing=billing)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def database(self) -> Database:
        """The database object whose units of work this store runs in (the billing
        store's when joined to one)."""
        return self._db

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        joined = ", billing=SQLStore" if self._billing is not None else ""
        return f"SQLCRMStore({url!r}, prefix={self.prefix!r}{joined})"

    # -- schema -----------------------------------------------------------------------------

    def _installed_version(self, conn: Connection) -> int:
        inspector = sa.inspect(conn)
        versions = self._t["schema_version"]
        if inspector.has_table(versions.name):
            v = conn.execute(sa.select(sa.func.max(versions.c.version))).scalar()
            return int(v or 0)
        # Tables created before versions were recorded are version 1.
        return 1 if inspector.has_table(self._t["notes"].name) else 0

    def _check_ready(self, conn: Connection) -> None:
        version = self._installed_version(conn)
        if version == LATEST_VERSION:
            self._ready = True
            return
        if version > LATEST_VERSION:
            raise StorageError(
                f"CRM schema of prefix {self.prefix!r} is at version {version}, newer than "
                f"this revcrm ({LATEST_VERSION}): upgrade revcrm"
            )
        if version == 0:
            raise StorageError(
                f"no CRM tables under prefix {self.prefix!r}: call create_schema() first"
            )
        raise StorageError(
            f"CRM schema of prefix {self.prefix!r} is at version {version}, this revcrm needs "
            f"{LATEST_VERSION}: call migrate()"
        )

    def schema_version(self) -> int:
        """The installed schema version (0: no CRM tables under this prefix)."""
        return self._admin(self._installed_version, write=False)

    def create_schema(self) -> int:
        """Create the tables, or bring them up to date; returns the schema version."""
        return self.migrate()

    def migrate(self, *, to: int | None = None) -> int:
        """Apply the forward migrations up to ``to`` (default: the latest), recording each
        one; returns the installed version. All in one transaction: a failing step leaves
        the schema as it was."""
        target = LATEST_VERSION if to is None else to
        if (
            isinstance(target, bool)
            or not isinstance(target, int)
            or not 1 <= target <= LATEST_VERSION
        ):
            raise ValidationError("to", to, f"a schema version from 1 to {LATEST_VERSION}")

        def run(conn: Connection) -> int:
            self._db.migration_lock(conn, self.prefix, 0x4352_4D00_0000)
            current = self._installed_version(conn)
            if current > LATEST_VERSION:
                raise StorageError(f"CRM schema version {current} is newer than this revcrm")
            versions = self._t["schema_version"]
            if current == 1 and not sa.inspect(conn).has_table(versions.name):
                versions.create(conn)
                self._applied(conn, 1, MIGRATIONS[0][1] + " (found without a version record)")
            versions.create(conn, checkfirst=True)
            for version, description, tables in MIGRATIONS:
                if current < version <= target:
                    for name in tables:
                        self._t[name].create(conn, checkfirst=True)
                    self._applied(conn, version, description)
                    current = version
            return current

        try:
            return self._admin(run, write=True)
        finally:
            self._ready = False

    def _applied(self, conn: Connection, version: int, description: str) -> None:
        conn.execute(
            sa.insert(self._t["schema_version"]).values(
                version=version,
                description=description,
                applied_at=moment_value(datetime.now(UTC)),
            )
        )

    def drop_schema(self) -> None:
        """Drop every CRM table under this prefix (other tables are untouched)."""
        try:
            self._admin(lambda conn: self._md.drop_all(conn, checkfirst=True), write=True)
        finally:
            self._ready = False

    def _admin(self, fn: Callable[[Connection], _T], *, write: bool) -> _T:
        try:
            with self._session(write=write, check=False) as conn:
                try:
                    return fn(conn)
                except sa_exc.SQLAlchemyError as e:
                    raise _converted(e) from e
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def close(self) -> None:
        """Dispose of the engine if this store created it (a joined store leaves it to the
        billing store, a host's engine is left alone)."""
        if self._billing is None:
            self._db.close()

    # -- units of work ----------------------------------------------------------------------

    @contextmanager
    def _session(self, *, write: bool = True, check: bool = True) -> Iterator[Connection]:
        if self._billing is not None:
            # The billing store owns the unit of work (and its savepoints) and checks its
            # own tables when it opens one.
            with self._billing.connection(write=write) as shared:
                if check and not self._ready:
                    self._check_ready(shared)
                yield shared
            return
        with self._db.connection(write=write, ready=self._ensure_ready if check else None) as conn:
            yield conn

    def _ensure_ready(self, conn: Connection) -> None:
        if not self._ready:
            self._check_ready(conn)

    def scrub(self) -> None:
        """Make values erased so far unreadable from the database files; call it outside
        any open transaction (:meth:`revcrm.CRM.erase` does).

        SQLite: a ``wal_checkpoint(TRUNCATE)`` copies the write-ahead log into the file
        and empties it (revcrm's writes ran with secure delete, so what they freed is
        zeroed). PostgreSQL: ``VACUUM`` of this prefix's tables, which makes the dead row
        versions reusable space (they stay on disk until overwritten: see
        docs/facade.md, "Erasure and the database files").
        """
        if self._db.in_unit():  # the billing store's too: they share one database object
            raise ValidationError("scrub", None, "not inside a transaction")

        def run(conn: Connection) -> None:
            if self._sqlite:
                if self._engine.url.database in (None, "", ":memory:"):
                    return
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
                if busy is not None and busy[0]:
                    raise StorageError(
                        "could not check-point the write-ahead log (another connection is "
                        "reading); call scrub() again"
                    )
                return
            quote = self._engine.dialect.identifier_preparer.quote
            for table in self._md.sorted_tables:
                conn.exec_driver_sql(f"VACUUM {quote(table.name)}")

        try:
            with self._db.serialised(), self._engine.connect() as conn:
                run(conn.execution_options(isolation_level="AUTOCOMMIT"))
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block for this thread; nested blocks are savepoints. With a
        billing store, the block joins (or opens) the billing store's unit of work."""
        try:
            with self._session():
                yield
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def _run(
        self,
        fn: Callable[[Connection], _T],
        *,
        unique: tuple[str, str] | None = None,
        write: bool = True,
    ) -> _T:
        try:
            with self._session(write=write) as conn:
                # Driver errors of ``fn`` are converted here, before a billing store's
                # connection() sees them (it would make every one a StorageError).
                try:
                    return fn(conn)
                except sa_exc.IntegrityError as e:
                    # Another connection won a race the checks above could not see.
                    if unique is not None:
                        raise DuplicateError(*unique) from e
                    raise _converted(e) from e
                except sa_exc.SQLAlchemyError as e:
                    raise _converted(e) from e
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def _read(self, fn: Callable[[Connection], _T]) -> _T:
        # A read: inside a billing store's read-only snapshot it needs no write session.
        return self._run(fn, write=False)


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


class _SQLNotes(PerCustomer):
    _group = "notes"

    def __init__(self, store: SQLCRMStore) -> None:
        self._s = store
        self._n = store._t["notes"]
        self._r = store._t["note_revisions"]

    def get(self, id: str) -> Note:
        note = self.find(read_id(id))
        if note is None:
            raise NotFoundError("note", id)
        return note

    def find(self, id: str) -> Note | None:
        read_id(id)

        def run(conn: Connection) -> Note | None:
            row = conn.execute(sa.select(self._n).where(self._n.c.id == id)).mappings().first()
            return None if row is None else _note(row)

        return self._s._read(run)

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
        read_id(customer_id, "customer_id")
        read_flag(include_deleted, "include_deleted")

        def run(conn: Connection) -> tuple[Note, ...]:
            q = sa.select(self._n).where(self._n.c.customer_id == customer_id)
            if not include_deleted:
                q = q.where(self._n.c.deleted == sa.false())
            return note_order(_note(r) for r in conn.execute(q).mappings())

        return self._s._read(run)

    def history(self, note_id: str) -> tuple[NoteRevision, ...]:
        read_id(note_id, "note_id")

        def run(conn: Connection) -> tuple[NoteRevision, ...]:
            q = sa.select(self._r).where(self._r.c.note_id == note_id).order_by(self._r.c.revision)
            rows = tuple(_entry(r) for r in conn.execute(q).mappings())
            if not rows:
                raise NotFoundError("note", note_id)
            return rows

        return self._s._read(run)


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
        key = read_tag(name)

        def run(conn: Connection) -> Tag:
            row = conn.execute(sa.select(self._t).where(self._t.c.key == key)).mappings().first()
            if row is None:
                raise NotFoundError("tag", name)
            return Tag.from_record(dict(row))

        return self._s._read(run)

    def all(self) -> tuple[Tag, ...]:
        def run(conn: Connection) -> tuple[Tag, ...]:
            q = sa.select(self._t).order_by(self._t.c.key)
            return tuple(Tag.from_record(dict(r)) for r in conn.execute(q).mappings())

        return self._s._read(run)

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
        if customer_id is not None:
            read_id(customer_id, "customer_id")

        def run(conn: Connection) -> tuple[TagChange, ...]:
            q = sa.select(self._c).order_by(self._c.c.at, self._c.c.seq)
            if customer_id is not None:
                q = q.where(self._c.c.customer_id == customer_id)
            cols = ("customer_id", "tag", "action", "at", "staff_id")
            return tuple(_change({k: r[k] for k in cols}) for r in conn.execute(q).mappings())

        return self._s._read(run)

    def tags_of(self, customer_id: str, *, as_of: datetime) -> frozenset[str]:
        read_id(customer_id, "customer_id")
        moment = utc(as_of, "as_of")
        return tags_at(self.changes(customer_id), as_of=moment).get(customer_id, frozenset())

    def customers_with(self, name: str, *, as_of: datetime) -> frozenset[str]:
        key = self.get(name).key
        as_of = utc(as_of, "as_of")

        def run(conn: Connection) -> tuple[TagChange, ...]:
            # Only the log of customers who ever had the tag is replayed.
            q = (
                sa.select(self._c)
                .where(self._c.c.tag_key == key, self._c.c.at <= moment_value(as_of))
                .order_by(self._c.c.at, self._c.c.seq)
            )
            cols = ("customer_id", "tag", "action", "at", "staff_id")
            return tuple(_change({k: r[k] for k in cols}) for r in conn.execute(q).mappings())

        current = tags_at(self._s._read(run), as_of=as_of)
        return frozenset(current)

    def counts(self, *, as_of: datetime) -> dict[str, int]:
        return tag_counts(self.all(), self.changes(), as_of=utc(as_of, "as_of"))

    def delete_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        return self._s._run(lambda conn: delete(conn, self._s._t, "tags", customer_id))


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

        return self._s._read(run)

    def get(self, id: str) -> Lead:
        lead = self.find(read_id(id))
        if lead is None:
            raise NotFoundError("lead", id)
        return lead

    def find(self, id: str) -> Lead | None:
        found = self._where(self._l.c.id == read_id(id))
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
        read_version(expected_version)

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
        found = self._where(self._l.c.open_key == read_email(email))
        return found[0] if found else None

    def lead_for_customer(self, customer_id: str) -> Lead | None:
        found = self._where(self._l.c.customer_id == read_id(customer_id, "customer_id"))
        return found[0] if found else None

    def count(self) -> int:
        return int(
            self._s._read(
                lambda c: c.execute(sa.select(sa.func.count()).select_from(self._l)).scalar() or 0
            )
        )

    def relink(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)

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

    def page(
        self, *, stage: LeadStage | str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Lead]:
        q = LeadPageQuery.of(stage=stage, limit=limit, cursor=cursor, secret=self._s._secret)
        created = self._l.c.created_at
        # Ids in code-point order on both databases, as the in-memory store sorts them.
        ident = self._l.c.id if self._s._sqlite else self._l.c.id.collate("C")

        def run(conn: Connection) -> Page[Lead]:
            sel = sa.select(self._l)
            if q.stage is not None:
                sel = sel.where(self._l.c.stage == q.stage.value)
            if q.after is not None:
                t, key = q.after
                sel = sel.where(sa.or_(created > t, sa.and_(created == t, ident > key)))
            sel = sel.order_by(created, ident).limit(q.limit + 1)
            return q.page(self._load(conn, list(conn.execute(sel).mappings())))

        return self._s._read(run)

    def erase_history(self, lead_id: str) -> int:
        read_id(lead_id, "lead_id")
        x = self._x

        def run(conn: Connection) -> int:
            if conn.execute(sa.select(self._l.c.id).where(self._l.c.id == lead_id)).first() is None:
                raise NotFoundError("lead", lead_id)
            stmt = (
                sa.update(x)
                .where(
                    x.c.lead_id == lead_id,
                    sa.or_(
                        sa.and_(x.c.note != "", x.c.note != ERASED_TEXT),
                        sa.and_(x.c.lost_reason.is_not(None), x.c.lost_reason != ERASED_TEXT),
                    ),
                )
                .values(
                    note=sa.case((x.c.note == "", ""), else_=ERASED_TEXT),
                    lost_reason=sa.case((x.c.lost_reason.is_(None), None), else_=ERASED_TEXT),
                )
            )
            return int(conn.execute(stmt).rowcount)

        return self._s._run(run)
