"""The database revcrm's SQL stores share: the engine, units of work, locks and scrubbing.

One :class:`Database` per engine: the billing store (:class:`~revcrm.storage.SQLStore`)
builds it, and a CRM store joined to the billing store (``SQLCRMStore(billing=...)``)
runs its units of work through the same one; a standalone CRM store builds its own.

* Units of work. Every public call runs in one database transaction; a ``transaction()``
  block makes the calls inside it one transaction (per thread), and each write inside it
  is a savepoint, so a failed call leaves the block usable. On SQLite write units start
  with ``BEGIN IMMEDIATE`` (writers queue on the busy timeout instead of failing to
  upgrade a read lock); on PostgreSQL multi-statement reads run at REPEATABLE READ.
* Settings. Revcrm's SQLite settings (foreign keys, secure delete, cache size, busy
  timeout) hold for revcrm's own units; on a host's engine the host's values come back
  after each unit.
* Errors. Driver errors leave as :class:`~revcrm.errors.StorageError`; a lost race
  (deadlock, serialisation failure) as :class:`~revcrm.errors.TransientError`, and the
  outermost block then fails whatever the caller does with it.
"""

from __future__ import annotations

import decimal
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from revcrm._money import EXACT_CONTEXT
from revcrm.errors import RevcrmError, StorageError, TransientError, ValidationError
from revcrm.storage._sql_decimal import _Ops, _register_sqlite

__all__ = ["Database", "ReadyCheck"]

_T = TypeVar("_T")
_CHUNK: Final = 500  # ids per IN (...) list
#: A store's check that its tables are ready, run on the connection of each unit it opens.
ReadyCheck = Callable[[Connection], None]


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Local(threading.local):
    conn: Connection | None = None
    write: bool = False
    #: A lost race (deadlock, serialisation failure) inside the open transaction: the
    #: database rolled it back, so the outermost block must fail whatever the caller does.
    doomed: TransientError | None = None


#: SQLite settings revcrm's units of work run with: name, value. On a host's engine each
#: is set before revcrm's BEGIN and restored after its COMMIT or ROLLBACK, so the host's
#: own connections keep their settings (``foreign_keys`` only changes outside a
#: transaction, which is why it is per unit and not per statement).
_SQLITE_SETTINGS: Final = (
    ("foreign_keys", 1),
    ("secure_delete", 1),  # deleted and overwritten values are zeroed in the file
    ("cache_size", -65536),  # 64 MiB: bulk imports touch many indexes
)
_TRANSIENT_STATES: Final = frozenset({"40P01", "40001"})  # deadlock, serialisation failure


class Database:
    """One engine and the units of work of the revcrm stores on it.

    ``busy_timeout`` (seconds) is how long an SQLite writer waits for the write lock;
    ``wal`` whether :meth:`enable_wal` may switch an SQLite file to WAL mode (default: only
    when this object created the engine; a host's engine is never switched unless asked).
    """

    def __init__(
        self,
        url_or_engine: str | sa.URL | Engine,
        *,
        busy_timeout: float = 30.0,
        wal: bool | None = None,
    ) -> None:
        self.busy_ms = int(busy_timeout * 1000)
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self.owns_engine = False
        else:
            self.engine = _create_engine(url_or_engine, busy_timeout)
            self.owns_engine = True
        self.wal = self.owns_engine if wal is None else wal
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValidationError(
                "url", str(self.engine.url), "revcrm supports SQLite and PostgreSQL"
            )
        self.ops = _Ops(dialect)
        self.sqlite = dialect == "sqlite"
        # One shared connection (SQLite in memory) needs its units serialised.
        self.serial: threading.RLock | None = (
            threading.RLock() if isinstance(self.engine.pool, StaticPool) else None
        )
        self.local = _Local()

    def close(self) -> None:
        """Dispose of the engine if this object created it (a host's engine is left alone)."""
        if self.owns_engine:
            self.engine.dispose()

    def serialised(self) -> AbstractContextManager[Any]:
        """The lock of a single shared connection (SQLite in memory), else nothing."""
        return self.serial if self.serial is not None else nullcontext()

    def quote(self, name: str) -> str:
        return str(self.engine.dialect.identifier_preparer.quote(name))

    # -- connections and units of work ----------------------------------------------------

    def _prepare(self, conn: Connection) -> None:
        """Revcrm's SQLite settings on this connection, before its BEGIN. A connection of
        the store's own engine keeps them; a host connection gets its own values back in
        :meth:`finish` (remembered in ``info["revcrm.restore"]``)."""
        if not self.sqlite:
            return
        info = conn.connection.info
        if info.get("revcrm.sqlite") is None:
            # Functions named rc_* only add to the connection; nothing of the host's changes.
            _register_sqlite(conn.connection.dbapi_connection)
            info["revcrm.sqlite"] = True
        wanted = (*_SQLITE_SETTINGS, ("busy_timeout", self.busy_ms))
        if self.owns_engine:
            if info.get("revcrm.settings") != self.busy_ms:
                for name, value in wanted:
                    conn.exec_driver_sql(f"PRAGMA {name}={value}")
                info["revcrm.settings"] = self.busy_ms
            return
        restore = []
        for name, value in wanted:
            before = conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            if before != value:
                conn.exec_driver_sql(f"PRAGMA {name}={value}")
                restore.append((name, before))
        info["revcrm.restore"] = restore

    @staticmethod
    def _restore(conn: Connection) -> None:
        """Give a host's connection its own SQLite settings back (after revcrm's unit)."""
        try:
            info = conn.connection.info
        except sa_exc.SQLAlchemyError:
            return
        restore = info.pop("revcrm.restore", None)
        if not restore:
            return
        raw = conn.connection.dbapi_connection
        if raw is None:
            return
        try:
            for name, value in restore:
                raw.execute(f"PRAGMA {name}={int(value)}")
        except Exception:
            # A connection whose settings cannot be restored must not go back to the pool.
            conn.invalidate()

    def open(self, write: bool, ready: ReadyCheck | None = None) -> Connection:
        """A new connection in a new transaction; ``ready`` checks the store's tables."""
        try:
            conn = self.engine.connect()
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e
        try:
            if self.sqlite:
                self._prepare(conn)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
            elif not write:
                conn.execution_options(isolation_level="REPEATABLE READ")
            if ready is not None:
                ready(conn)
        except BaseException as e:
            try:
                self._restore(conn)
            finally:
                conn.close()
            if isinstance(e, sa_exc.SQLAlchemyError):
                raise _converted(e) from e
            raise
        return conn

    @classmethod
    def finish(cls, conn: Connection, commit: bool) -> None:
        try:
            if commit:
                conn.commit()
            else:
                conn.rollback()
        except sa_exc.SQLAlchemyError as e:
            if commit:
                raise _converted(e) from e
        finally:
            try:
                cls._restore(conn)
            finally:
                conn.close()

    def admin(self, fn: Callable[[Connection], _T]) -> _T:
        """``fn`` in a write unit of its own, outside any readiness check (schema changes);
        all or nothing."""
        with self.serialised():
            conn = self.open(True)
            try:
                result = fn(conn)
            except BaseException as e:
                self.finish(conn, commit=False)
                if isinstance(e, sa_exc.SQLAlchemyError):
                    raise _converted(e) from e
                raise
            self.finish(conn, commit=True)
        return result

    def peek(self, fn: Callable[[Connection], _T]) -> _T:
        """``fn`` in a read unit of its own, outside any readiness check."""
        conn = self.open(False)
        try:
            return fn(conn)
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e
        finally:
            self.finish(conn, commit=False)

    @contextmanager
    def session(self, *, write: bool, ready: ReadyCheck | None = None) -> Iterator[Connection]:
        """This thread's unit of work: joined (a write as a savepoint) or a new one."""
        local = self.local
        conn = local.conn
        if conn is not None:
            if local.doomed is not None:
                raise local.doomed
            if write and not local.write:
                raise StorageError("cannot write inside a read-only session")
            if not write:
                yield conn
                return
            try:
                savepoint = conn.begin_nested()
            except sa_exc.SQLAlchemyError as e:
                raise self.doom(_converted(e)) from e
            try:
                yield conn
            except BaseException as e:
                self.doom(e)
                if local.doomed is None and savepoint.is_active:
                    savepoint.rollback()
                raise
            savepoint.commit()
            return
        with self.serialised():
            conn = self.open(write, ready)
            local.conn, local.write, local.doomed = conn, write, None
            try:
                yield conn
            except BaseException as e:
                doomed = local.doomed
                local.conn, local.doomed = None, None
                self.finish(conn, commit=False)
                if doomed is not None and e is not doomed:
                    raise doomed from e
                raise
            doomed = local.doomed
            local.conn, local.doomed = None, None
            if doomed is not None:
                # The caller swallowed a lost race: the database already rolled it back.
                self.finish(conn, commit=False)
                raise doomed
            self.finish(conn, commit=True)

    def doom(self, error: BaseException) -> BaseException:
        """Remember a lost race in the open transaction (see ``_Local.doomed``)."""
        if isinstance(error, sa_exc.SQLAlchemyError):
            error = _converted(error)
        if isinstance(error, TransientError) and self.local.conn is not None:
            self.local.doomed = error
        return error

    def in_unit(self) -> bool:
        """Whether this thread has a unit of work open."""
        return self.local.conn is not None

    def in_transaction(self) -> bool:
        """Whether this thread has a write unit of work open."""
        return self.local.conn is not None and self.local.write

    def run(self, write: bool, fn: Callable[[Connection], _T], ready: ReadyCheck | None) -> _T:
        # Exact Decimal arithmetic whatever the caller's context (28 digits by default).
        try:
            with (
                self.session(write=write, ready=ready) as conn,
                decimal.localcontext(EXACT_CONTEXT),
            ):
                try:
                    return fn(conn)
                except sa_exc.SQLAlchemyError as e:
                    raise _converted(e) from e
        except sa_exc.SQLAlchemyError as e:  # releasing a savepoint, committing
            raise self.doom(e) from e

    @contextmanager
    def connection(self, *, write: bool, ready: ReadyCheck | None) -> Iterator[Connection]:
        """The unit's connection; driver errors leave as StorageError subclasses."""
        try:
            with self.session(write=write, ready=ready) as conn:
                yield conn
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    # -- locks ------------------------------------------------------------------------------

    def lock_keys(self, conn: Connection, prefix: str, ids: Sequence[str]) -> None:
        """PostgreSQL's transaction-scoped advisory locks of these customers, in id order."""
        keys = [_lock_key(prefix, cid) for cid in sorted(set(ids))]
        for chunk in _chunks(keys):
            conn.execute(
                sa.text(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"
                ),
                {"keys": list(chunk)},
            )

    def migration_lock(self, conn: Connection, prefix: str, salt: int) -> None:
        """Two processes migrating one prefix at once: the second waits, then finds it done."""
        if not self.sqlite:
            key = sum(prefix.encode()) + salt
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    # -- files ------------------------------------------------------------------------------

    def file_path(self) -> str | None:
        """The SQLite file (None in memory or on PostgreSQL)."""
        path = self.engine.url.database if self.sqlite else None
        return None if path in (None, "", ":memory:") else path

    def enable_wal(self) -> None:
        """Put an SQLite file in WAL mode (if :attr:`wal`)."""
        if self.wal and self.file_path() is not None:
            try:
                with self.engine.connect() as c:
                    c.exec_driver_sql("PRAGMA journal_mode=WAL")
            except sa_exc.SQLAlchemyError as e:
                raise _converted(e) from e

    def checkpoint(self) -> int:
        """SQLite: copy the write-ahead log into the file and truncate it; returns the
        checkpoint's busy flag (non-zero: another connection was reading)."""
        if self.file_path() is None:
            return 0  # nothing on disk
        with self.serialised():
            conn = self.engine.connect()
            try:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                conn.rollback()  # no transaction of SQLAlchemy's may hold a read snapshot
                (before,) = raw.execute("PRAGMA busy_timeout").fetchone()
                raw.execute(f"PRAGMA busy_timeout={self.busy_ms}")
                try:
                    busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    raw.execute(f"PRAGMA busy_timeout={int(before)}")  # a host's, maybe
            finally:
                conn.close()
        return int(busy)

    def vacuum(self, names: Sequence[str]) -> None:
        """PostgreSQL: ``VACUUM`` of these tables (outside any transaction)."""
        with self.engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in names:
                auto.exec_driver_sql(f"VACUUM {self.quote(name)}")


def _converted(e: sa_exc.SQLAlchemyError) -> RevcrmError:
    orig = getattr(e, "orig", None)
    detail = f"{type(orig).__name__}: {orig}" if orig is not None else f"{type(e).__name__}: {e}"
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _TRANSIENT_STATES:
        return TransientError(f"lost a race, rolled back; run the unit again ({detail.strip()})")
    return StorageError(f"database error ({detail.strip()})")


def _lock_key(prefix: str, customer_id: str) -> int:
    """A stable signed 64-bit advisory lock key of one customer of one store."""
    digest = hashlib.blake2b(
        f"revcrm-customer\x00{prefix}\x00{customer_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _create_engine(url: str | sa.URL, busy_timeout: float) -> Engine:
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError as e:
        raise ValidationError("url", str(url), "not a database URL") from e
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValidationError(
            "url", parsed.render_as_string(), "revcrm supports SQLite and PostgreSQL"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3: revcrm[postgres]
    try:
        if parsed.get_backend_name() == "sqlite":
            memory = (
                parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
            )
            args: dict[str, Any] = {"check_same_thread": False, "timeout": busy_timeout}
            if memory:
                return sa.create_engine(parsed, connect_args=args, poolclass=StaticPool)
            return sa.create_engine(parsed, connect_args=args)
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (sa_exc.SQLAlchemyError, ImportError) as e:
        raise StorageError(
            f"cannot create an engine for {parsed.render_as_string(hide_password=True)}: {e}"
        ) from e
