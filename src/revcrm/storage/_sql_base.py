"""The SQL store's state and record access: tables, plain reads, settings.

:class:`SQLBase` holds what every job of the SQL store shares (the :class:`Database`, the
schema, the MRR policy, the cursor key) and reads stored records back; the jobs build on
it: migrations (``_sql_migrate``), writes (``_sql_write``), segments and the customer list
(``_sql_segments``, ``_sql_customers``), metric aggregates (``_sql_metrics``) and deletes
(``_sql_delete``). :class:`~revcrm.storage.SQLStore` puts them together with its
repositories (``_sql_repos``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from revcrm._book import Book
from revcrm._money import FxRates
from revcrm.errors import (
    NotFoundError,
    PolicyError,
    StorageError,
    ValidationError,
)
from revcrm.metrics import MetricsPolicy
from revcrm.segments._config import Segment
from revcrm.storage._codec import (
    Row,
    decode_credit,
    decode_customer,
    decode_invoice,
    decode_plan,
    decode_product,
    decode_subscription,
    decode_transaction,
    flat,
    moment_from_value,
)
from revcrm.storage._memory import (
    _id_list,
)
from revcrm.storage._query import (
    Direction,
    Page,
    Period,
    RecordQuery,
    Versioned,
    cursor_secret,
    read_period,
    read_text,
)
from revcrm.storage._schema import (
    LATEST_VERSION,
    Key,
    Moment,
    Schema,
    check_prefix,
)
from revcrm.storage._spans import policy_fingerprint
from revcrm.storage._sql_db import _CHUNK, Database, _chunks, _converted

__all__ = ["SQLBase"]

_T = TypeVar("_T")
_R = TypeVar("_R")
EPOCH_DATE: Final = date(1970, 1, 1)
_DAY_US: Final = 86_400_000_000
#: The six named segments (``OTHER`` is "none of them").
_NAMED: Final[tuple[Segment, ...]] = tuple(s for s in Segment if s is not Segment.OTHER)
_POLICY_KEY: Final = "mrr_policy"

#: Batches writing rows of more customers than this take no per-customer locks on
#: PostgreSQL (the lock table is finite); a lost race then fails as a TransientError.
_MAX_ROW_LOCKS: Final = 64
#: Records owned by one customer whose writes take that customer's lock on PostgreSQL.
_CUSTOMER_ROWS: Final = frozenset({"customer", "subscription", "invoice", "transaction", "credit"})


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _month_index(t: datetime) -> int:
    """``year * 12 + month - 1`` of an aware moment, in UTC: the billing calendar's month
    (``anchor + n`` months) and the stored span keys. Never a reporting month: those are
    the reporting zone's, from :mod:`revcrm._calendar`."""
    u = t.astimezone(UTC)
    return u.year * 12 + u.month - 1


def _as_moment(value: object) -> datetime:
    """A moment from a raw result column (SQLite gives its stored microseconds)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int):
        return moment_from_value(value)
    raise StorageError(f"unexpected moment value {value!r}")


def _literal_ids(ids: Iterable[str]) -> Any:
    """Ids inlined into the statement (there may be more than a driver takes as
    parameters); SQLAlchemy quotes them."""
    return sa.bindparam(None, sorted(ids), type_=Key(), expanding=True, literal_execute=True)


def _secret(value: object) -> bytes:
    return cursor_secret(value)


_DECODERS: Final[dict[str, Callable[[Mapping[Any, Any]], Any]]] = {
    "customer": decode_customer,
    "product": decode_product,
    "plan": decode_plan,
    "transaction": decode_transaction,
    "credit": decode_credit,
}
_TIME_ATTR: Final = {
    "subscription": "started_at",
    "invoice": "issued_at",
    "transaction": "at",
    "credit": "at",
}


class SQLBase:
    """The state every job of the SQL store shares, and its record reads."""

    def __init__(
        self,
        url_or_engine: str | sa.URL | Engine,
        *,
        prefix: str = "revcrm_",
        policy: MetricsPolicy | None = None,
        busy_timeout: float = 30.0,
        cursor_secret: bytes | str | None = None,
        wal: bool | None = None,
    ) -> None:
        check_prefix(prefix)  # before anything else; the tables are built once the dialect is known
        self._policy = policy if policy is not None else MetricsPolicy()
        if isinstance(self._policy, bool) or not isinstance(self._policy, MetricsPolicy):
            raise ValidationError("policy", policy, "expected a MetricsPolicy")
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or not 0 <= busy_timeout <= 86_400  # before isfinite: a huge int overflows a float
            or not math.isfinite(busy_timeout)
        ):
            raise ValidationError("busy_timeout", busy_timeout, "seconds from 0 to 86400")
        if wal is not None and not isinstance(wal, bool):
            raise ValidationError("wal", wal, "expected True, False or None")
        self._secret = _secret(cursor_secret)
        self._db = Database(url_or_engine, busy_timeout=busy_timeout, wal=wal)
        self._engine = self._db.engine
        self._ops = self._db.ops
        self._sqlite = self._db.sqlite
        self._schema = Schema.build(prefix, limbs=self._sqlite)
        self._ready = False

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def database(self) -> Database:
        """The database object (engine, units of work) a joined CRM store shares."""
        return self._db

    @property
    def prefix(self) -> str:
        return self._schema.prefix

    @property
    def policy(self) -> MetricsPolicy:
        return self._policy

    def close(self) -> None:
        """Dispose of the engine if this store created it (a host's engine is left alone)."""
        self._db.close()

    def __repr__(self) -> str:
        return f"SQLStore({self._engine.url.render_as_string(hide_password=True)!r}, prefix={self.prefix!r})"

    # -- units of work (the Database's, with this store's readiness check) ----------------

    def _ensure_ready(self, conn: Connection) -> None:
        if not self._ready:
            self._check_ready(conn)

    def _session(self, *, write: bool) -> AbstractContextManager[Connection]:
        return self._db.session(write=write, ready=self._ensure_ready)

    def _run(self, write: bool, fn: Callable[[Connection], _T]) -> _T:
        return self._db.run(write, fn, self._ensure_ready)

    def _in_transaction(self) -> bool:
        return self._db.in_transaction()

    def _lock_keys(self, conn: Connection, ids: Sequence[str]) -> None:
        self._db.lock_keys(conn, self.prefix, ids)

    def lock(self, customer_ids: Iterable[str]) -> None:
        """Lock these customers, in id order, until the outermost transaction ends.

        PostgreSQL: one transaction-scoped advisory lock per (prefix, id); every write of
        a customer's invoices, transactions or credits takes the same lock first, so the
        documented order is "customers by id, then rows". SQLite: the write transaction
        already holds the database's write lock from its BEGIN IMMEDIATE.
        """
        ids = sorted(set(_id_list(customer_ids)))
        if not self._in_transaction():
            raise ValidationError("customer_ids", ids, "lock() only inside store.transaction()")
        if self._sqlite or not ids:
            return
        self._run(True, lambda conn: self._lock_keys(conn, ids))

    def scrub(self) -> None:
        """Make values deleted or overwritten so far unreadable from the database files.

        SQLite: revcrm's units run with ``secure_delete`` on (freed content is zeroed);
        this checkpoints the write-ahead log and truncates it to nothing. PostgreSQL:
        ``VACUUM`` of the tables under this prefix (what remains elsewhere, and what the
        host must run, is in docs/storage.md). Not inside a transaction.
        """
        if self._db.in_unit():
            raise ValidationError("scrub", None, "not inside a transaction")
        try:
            if self._sqlite:
                if self._db.checkpoint():
                    raise StorageError(
                        "scrub: another connection is reading; the log was not emptied"
                    )
            else:
                names = sorted(
                    n
                    for n in sa.inspect(self._engine).get_table_names()
                    if n.startswith(self.prefix)
                )
                self._db.vacuum(names)
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block for this thread; nested blocks are savepoints."""
        with self._db.connection(write=True, ready=self._ensure_ready):
            yield

    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[Connection]:
        """The connection of this thread's unit of work, for a companion store.

        Inside :meth:`transaction` it is that transaction's connection (a nested block
        is a savepoint); outside, a new unit of work that commits when the block ends.
        A :class:`~revcrm.storage.SQLCRMStore` built with ``billing=`` this store writes
        through it, so one ``transaction()`` covers billing and CRM rows together.
        Driver errors are raised as :class:`~revcrm.errors.StorageError` subclasses.
        """
        with self._db.connection(write=write, ready=self._ensure_ready) as conn:
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        # Several reads that must agree (the dashboard) share one read transaction.
        with self._session(write=False):
            yield

    # -- schema version -----------------------------------------------------------------------

    def _installed_version(self, conn: Connection) -> int:
        if not sa.inspect(conn).has_table(self._schema.schema_version.name):
            return 0
        v = conn.execute(sa.select(sa.func.max(self._schema.schema_version.c.version))).scalar()
        return int(v or 0)

    def schema_version(self) -> int:
        """The installed schema version (0: no revcrm tables under this prefix)."""
        return self._db.peek(self._installed_version)

    def _check_ready(self, conn: Connection) -> None:
        version = self._installed_version(conn)
        if version != LATEST_VERSION:
            if version > LATEST_VERSION:
                raise StorageError(
                    f"schema of prefix {self.prefix!r} is at version {version}, newer than this "
                    f"revcrm ({LATEST_VERSION}): upgrade revcrm"
                )
            raise StorageError(
                f"schema of prefix {self.prefix!r} is at version {version}, this revcrm needs "
                f"{LATEST_VERSION}: call create_schema() or migrate()"
            )
        stored = self._setting(conn, _POLICY_KEY)
        if stored != policy_fingerprint(self._policy):
            raise PolicyError(
                f"the stored MRR spans were built under another policy ({stored}); "
                "call migrate() to rebuild them under this store's policy"
            )
        self._ready = True

    def _setting(self, conn: Connection, key: str) -> str | None:
        t = self._schema.settings
        value = conn.execute(sa.select(t.c.value).where(t.c.key == key)).scalar()
        return None if value is None else str(value)

    def _put_setting(self, conn: Connection, key: str, value: str) -> None:
        t = self._schema.settings
        conn.execute(t.delete().where(t.c.key == key))
        conn.execute(t.insert().values(key=key, value=value))

    # -- table lookup and plain writes ------------------------------------------------------

    def _head(self, kind: str) -> sa.Table:
        s = self._schema
        return {
            "customer": s.customers,
            "product": s.products,
            "plan": s.plans,
            "subscription": s.subscriptions,
            "invoice": s.invoices,
            "transaction": s.transactions,
            "credit": s.credits,
        }[kind]

    def _child(self, kind: str) -> tuple[sa.Table, str] | None:
        if kind == "subscription":
            return self._schema.changes, "subscription_id"
        if kind == "invoice":
            return self._schema.lines, "invoice_id"
        return None

    # -- writes ------------------------------------------------------------------------------

    def _existing_ids(self, conn: Connection, kind: str, ids: Iterable[str]) -> set[str]:
        head = self._head(kind)
        wanted = sorted(set(ids))
        found: set[str] = set()
        for chunk in _chunks(wanted):
            found.update(
                r[0] for r in conn.execute(sa.select(head.c.id).where(head.c.id.in_(chunk)))
            )
        return found

    def _executemany(self, conn: Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
        # Straight to the driver's executemany with values already checked and converted
        # (``prepare``): SQLAlchemy's per-row processing would double a bulk import's time.
        if params:
            conn.exec_driver_sql(sql, params)

    def _values(self, row: Row) -> tuple[Any, ...]:
        """A row as the driver takes it: typed for PostgreSQL, exact text for SQLite."""
        return flat(row) if self._sqlite else tuple(row.values())

    def _insert_sql(self, table: sa.Table, columns: Sequence[str]) -> str:
        q = self._engine.dialect.identifier_preparer.quote
        mark = "?" if self._sqlite else "%s"
        names = ", ".join(q(c) for c in columns)
        return f"INSERT INTO {q(table.name)} ({names}) VALUES ({', '.join([mark] * len(columns))})"

    def _update_sql(self, table: sa.Table, columns: Sequence[str]) -> str:
        q = self._engine.dialect.identifier_preparer.quote
        mark = "?" if self._sqlite else "%s"
        sets = ", ".join(f"{q(c)} = {mark}" for c in columns)
        return f"UPDATE {q(table.name)} SET {sets} WHERE {q('id')} = {mark}"

    def _insert(self, conn: Connection, table: sa.Table, rows: Sequence[Row]) -> None:
        if rows:
            sql = self._insert_sql(table, list(rows[0]))
            self._executemany(conn, sql, [self._values(r) for r in rows])

    def _empty(self, conn: Connection, table: sa.Table) -> bool:
        return conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None

    # -- reads -------------------------------------------------------------------------------

    def _version(self, conn: Connection, kind: str, key: str) -> int:
        head = self._head(kind)
        v = conn.execute(sa.select(head.c.version).where(head.c.id == key)).scalar()
        if v is None:
            raise NotFoundError(kind, key)
        return int(v)

    def _load(
        self,
        conn: Connection,
        kind: str,
        where: ColumnElement[bool] | None = None,
        *,
        order: Sequence[ColumnElement[Any]] = (),
        limit: int | None = None,
    ) -> list[Any]:
        head = self._head(kind)
        # The materialised current state is not part of the record (and absent from a
        # database migrating from before version 5).
        stmt = sa.select(*(c for c in head.c if c.name != "current_state"))
        if where is not None:
            stmt = stmt.where(where)
        if order:
            stmt = stmt.order_by(*order)
        if limit is not None:
            stmt = stmt.limit(limit)
        heads = [r._mapping for r in conn.execute(stmt)]
        child = self._child(kind)
        if child is None:
            decode = _DECODERS[kind]
            return [decode(h) for h in heads]
        table, fk = child
        groups: dict[str, list[Mapping[Any, Any]]] = defaultdict(list)
        if heads:
            if where is None:
                cstmt = sa.select(table)
            elif limit is not None or len(heads) <= _CHUNK:
                cstmt = sa.select(table).where(table.c[fk].in_([h["id"] for h in heads]))
            else:
                cstmt = sa.select(table).join(head, table.c[fk] == head.c.id).where(where)
            for r in conn.execute(cstmt):
                m = r._mapping
                groups[m[fk]].append(m)
        if kind == "subscription":
            return [decode_subscription(h, groups[h["id"]]) for h in heads]
        return [decode_invoice(h, groups[h["id"]]) for h in heads]

    def _get(self, kind: str, key: str) -> Versioned[Any]:
        read_text(key, "id")

        def run(conn: Connection) -> Versioned[Any]:
            head = self._head(kind)
            found = self._load(conn, kind, head.c.id == key)
            if not found:
                raise NotFoundError(kind, key)
            return Versioned(record=found[0], version=self._version(conn, kind, key))

        return self._run(False, run)

    def _find(self, kind: str, column: str, value: str) -> Any:
        read_text(value, column)

        def run(conn: Connection) -> Any:
            head = self._head(kind)
            found = self._load(conn, kind, head.c[column] == value)
            return found[0] if found else None

        return self._run(False, run)

    def _count(self, kind: str) -> int:
        head = self._head(kind)
        return self._run(
            False,
            lambda conn: int(
                conn.execute(sa.select(sa.func.count()).select_from(head)).scalar() or 0
            ),
        )

    def _page(self, kind: str, q: RecordQuery, time_column: str | None) -> Page[Any]:
        head = self._head(kind)
        tcol = head.c[time_column] if time_column is not None else head.c.id
        conds: list[ColumnElement[bool]] = []
        if q.customer_id is not None:
            conds.append(head.c.customer_id == q.customer_id)
        if q.since is not None:
            conds.append(tcol >= q.since)
        if q.until is not None:
            conds.append(tcol < q.until)
        if q.status is not None:
            conds.append(head.c.status == q.status)
        if q.kind is not None:
            conds.append(head.c.kind == q.kind)
        after = q.after()
        desc = q.direction is Direction.DESC
        if after is not None:
            value, key = after
            if time_column is None:
                conds.append(head.c.id < key if desc else head.c.id > key)
            else:
                if not isinstance(value, datetime):
                    raise ValidationError("cursor", q.cursor, "not a cursor of this listing")
                pair = sa.tuple_(tcol, head.c.id)
                other = sa.tuple_(sa.literal(value, Moment()), sa.literal(key, Key()))
                conds.append(pair < other if desc else pair > other)
        order = [tcol.desc(), head.c.id.desc()] if desc else [tcol, head.c.id]
        if time_column is None:
            order = order[1:]

        def run(conn: Connection) -> Page[Any]:
            found = self._load(
                conn, kind, sa.and_(sa.true(), *conds), order=order, limit=q.limit + 1
            )
            items = found[: q.limit]
            cursor = None
            if len(found) > q.limit:
                last = items[-1]
                value = getattr(last, _TIME_ATTR[kind]) if time_column is not None else last.id
                cursor = q.next_cursor(value, last.id)
            return Page(items=tuple(items), next_cursor=cursor)

        return self._run(False, run)

    def _for_customer(self, kind: str, customer_id: str, time_column: str) -> tuple[Any, ...]:
        read_text(customer_id, "customer_id")
        head = self._head(kind)
        return self._run(
            False,
            lambda conn: tuple(
                self._load(
                    conn,
                    kind,
                    head.c.customer_id == customer_id,
                    order=[head.c[time_column], head.c.id],
                )
            ),
        )

    def _rates(self, conn: Connection) -> FxRates:
        t = self._schema.fx_rates
        rows = conn.execute(sa.select(t.c.day, t.c.source, t.c.target, t.c.rate))
        return FxRates.from_rates([(_day(d), s, tg, r) for d, s, tg, r in rows])

    def book(
        self, *, customer_ids: Iterable[str] | None = None, period: Period | None = None
    ) -> Book:
        ids = None if customer_ids is None else sorted(set(_id_list(customer_ids)))
        period = read_period(period)

        def run(conn: Connection) -> Book:
            s = self._schema

            def owned(kind: str, extra: ColumnElement[bool] | None = None) -> list[Any]:
                head = self._head(kind)
                if ids is None:
                    return self._load(conn, kind, extra)
                out: list[Any] = []
                for chunk in _chunks(ids, 5000):
                    cond = head.c.customer_id.in_(chunk)
                    out.extend(
                        self._load(conn, kind, cond if extra is None else sa.and_(cond, extra))
                    )
                return out

            def within(column: sa.Column[Any]) -> ColumnElement[bool] | None:
                if period is None:
                    return None
                return sa.and_(column >= period.start, column < period.end)

            if ids is None:
                customers = self._load(conn, "customer")
            else:
                customers = []
                for chunk in _chunks(ids, 5000):
                    customers.extend(self._load(conn, "customer", s.customers.c.id.in_(chunk)))
            transactions = owned("transaction", within(s.transactions.c.at))
            credits = owned("credit", within(s.credits.c.at))
            invoices = owned("invoice", within(s.invoices.c.issued_at))
            if period is not None:
                have = {i.id for i in invoices}
                wanted = sorted(
                    ({t.invoice_id for t in transactions} | {c.invoice_id for c in credits})
                    - have
                    - {None}
                )
                for chunk in _chunks(wanted):
                    invoices.extend(self._load(conn, "invoice", s.invoices.c.id.in_(chunk)))

            def by_id(items: list[_R]) -> tuple[_R, ...]:
                return tuple(sorted(items, key=lambda r: r.id))  # type: ignore[attr-defined]

            return Book(
                customers=by_id(customers),
                products=by_id(self._load(conn, "product")),
                plans=by_id(self._load(conn, "plan")),
                subscriptions=by_id(owned("subscription")),
                invoices=by_id(invoices),
                transactions=by_id(transactions),
                credits=by_id(credits),
                fx=self._rates(conn),
            )

        return self._run(False, run)

    # -- the customer list ----------------------------------------------------------------

    def _currencies(self, conn: Connection) -> set[str]:
        # One index probe per distinct currency (a loose index scan), not a full scan.
        found: set[str] = set()
        for table in (self._schema.subscriptions, self._schema.transactions):
            prev = ""
            while True:
                code = conn.execute(
                    sa.select(sa.func.min(table.c.currency)).where(table.c.currency > prev)
                ).scalar()
                if code is None:
                    break
                found.add(str(code))
                prev = str(code)
        return found
