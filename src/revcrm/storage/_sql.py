"""The SQL store: SQLAlchemy Core 2 over SQLite (embedded default) or PostgreSQL.

Design notes (details in docs/storage.md):

* Units of work. Every public call runs in one database transaction; ``with
  store.transaction():`` makes the calls inside it one transaction (per thread), and
  each write inside it is a savepoint, so a failed call leaves the block usable. On
  SQLite write units start with ``BEGIN IMMEDIATE`` (writers queue on the busy timeout
  instead of failing to upgrade a read lock); on PostgreSQL rows about to change are
  locked with ``SELECT ... FOR UPDATE`` and multi-statement reads run at REPEATABLE READ.
* Writes are decided in Python first (references, external ids, versions, fingerprints)
  and then written in bulk, so a batch either fails before writing or writes everything.
* Exact money: PostgreSQL sums ``NUMERIC`` natively; on SQLite, money is decimal text
  and the few aggregate functions (exact sum, sum of products, a sortable key) are
  registered on each connection and run inside SQLite's query engine.
* MRR pushdown: every subscription write materialises its spans (see ``_spans``), so
  MRR, series, counts and the customer list are aggregates over indexed tables.
"""

from __future__ import annotations

import bisect
import calendar
import decimal
import functools
import hashlib
import json
import math
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._money import EXACT_CONTEXT, FxRates, Money, check_currency
from revcrm._records import CreditEntry, Customer, Invoice, Plan, Product, Transaction
from revcrm._subscription import Subscription, SubscriptionChange
from revcrm._time import as_moment, as_of_moment
from revcrm.crm._services import CustomerStatus
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    PolicyError,
    RevcrmError,
    StorageError,
    TransientError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.metrics import FxDateRule, MetricsPolicy, MrrPoint
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._rules import SegmentInputs, ServiceFacts, memberships, service_paid_up
from revcrm.segments._segments import LtvBaseline, SegmentCounts
from revcrm.storage import _reference as ref
from revcrm.storage._codec import (
    Prepared,
    Row,
    decode_credit,
    decode_customer,
    decode_invoice,
    decode_plan,
    decode_product,
    decode_state,
    decode_subscription,
    decode_transaction,
    encode_state,
    flat,
    from_limbs,
    moment_from_value,
    moment_value,
    prepare,
    search_folds,
    to_limbs,
)
from revcrm.storage._delete import delete_customer_sql
from revcrm.storage._memory import (
    _book_groups,
    _check_config,
    _check_expected,
    _check_invoice_currency,
    _id_list,
    _range,
    external_lookup,
)
from revcrm.storage._protocols import CurrentState
from revcrm.storage._query import (
    CashMonth,
    CustomerFlow,
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    CustomerSummary,
    Direction,
    ImportResult,
    Page,
    Period,
    RecordQuery,
    StoreDashboard,
    Versioned,
    cursor_secret,
    query_as_of,
    read_period,
    read_records,
    read_text,
)
from revcrm.storage._schema import (
    LATEST_VERSION,
    LIMBS,
    MIGRATIONS,
    Exact,
    Key,
    Moment,
    Schema,
)
from revcrm.storage._spans import policy_fingerprint, subscription_spans

__all__ = ["SQLStore"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_ZERO: Final = Decimal(0)
EPOCH_DATE: Final = date(1970, 1, 1)
_DAY_US: Final = 86_400_000_000
_LIMB_COLUMNS: Final = tuple(f"amount_l{k}" for k in range(7))
_LIMB_WEIGHTS: Final = tuple(10 ** (12 * (6 - k)) for k in range(7))  # units of 1e-48
_CHUNK: Final = 500  # ids per IN (...) list
_ONE_MICRO: Final = timedelta(microseconds=1)
_ACTIVE: Final = tuple(sorted(s.value for s in ref.ACTIVE_STATUSES))
# The service rules of revcrm.crm._services, as status values of the states table:
_RUNNING: Final = ("active", "past_due", "trialing")
_TROUBLED: Final = ("past_due", "suspended")
_ENDED: Final = ("cancelled", "terminated")
#: The six named segments (``OTHER`` is "none of them").
_NAMED: Final[tuple[Segment, ...]] = tuple(s for s in Segment if s is not Segment.OTHER)
_POLICY_KEY: Final = "mrr_policy"


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _dec(value: object) -> Decimal:
    """A driver's aggregate result as an exact Decimal (None is an empty sum)."""
    if value is None:
        return _ZERO
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        if " " in value:  # SQLite's packed sum: seven limb sums, then the exact rest
            *parts, rest = value.split(" ")
            return EXACT_CONTEXT.add(from_limbs([int(p) for p in parts]), Decimal(rest))
        return Decimal(value)
    raise StorageError(f"unexpected aggregate value {value!r}: money must never be a float")


def _split(value: object) -> tuple[int, Decimal]:
    """An aggregate as (integer units of 1e-48 from SQLite's limbs, exact Decimal rest)."""
    if isinstance(value, str) and " " in value:
        *parts, rest = value.split(" ")
        whole = sum(int(p) * w for p, w in zip(parts, _LIMB_WEIGHTS, strict=True))
        return whole, Decimal(rest)
    return 0, _dec(value)


def _exact(value: object) -> Decimal:
    """``_dec`` without tidying the representation: for values SQLite's own functions
    pass on (sort keys, products), where only the exact value matters."""
    if isinstance(value, str) and " " in value:
        whole, rest = _split(value)
        return EXACT_CONTEXT.add(_units_value(whole), rest)
    return _dec(value)


def _units_value(units: int) -> Decimal:
    return Decimal(units).scaleb(-48, context=EXACT_CONTEXT) if units else _ZERO


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# -- exact decimal functions registered on SQLite connections --------------------------------


class _DSum:
    def __init__(self) -> None:
        self.total = _ZERO

    def step(self, value: object) -> None:
        if value is not None:
            self.total = EXACT_CONTEXT.add(self.total, _exact(value))

    def finalize(self) -> str:
        return str(self.total)


class _DSumX:
    def __init__(self) -> None:
        self.total = _ZERO

    def step(self, value: object, factor: object) -> None:
        if value is not None and factor is not None:
            product = EXACT_CONTEXT.multiply(_exact(value), _exact(factor))
            self.total = EXACT_CONTEXT.add(self.total, product)

    def finalize(self) -> str:
        return str(self.total)


def decimal_key(value: Decimal) -> str:
    """Text whose byte order is the numeric order of ``value`` (SQLite sorts money by it).

    Sign class (0 negative, 1 zero, 2 positive), then the adjusted exponent in five digits
    (complemented for negatives), then the significant digits (nines' complement and a
    terminator for negatives, so a longer magnitude sorts first).
    """
    if value.is_zero():
        return "1"
    sign, digits, _ = value.normalize(context=EXACT_CONTEXT).as_tuple()
    exponent = value.adjusted() + 50000
    if not 0 <= exponent <= 99999:
        raise StorageError(f"amount {value} out of the sortable range")
    text = "".join(map(str, digits))
    if not sign:
        return f"2{exponent:05d}{text}"
    flipped = "".join(str(9 - int(d)) for d in text)
    return f"0{99999 - exponent:05d}{flipped}~"


def _dkey(value: object) -> str | None:
    return None if value is None else decimal_key(_exact(value))


def _dover(own: object, foreign: object, count: object, total: object) -> int:
    """Whether ``(own + foreign) * count > total``, exactly (the High Value test)."""
    ltv = EXACT_CONTEXT.add(_exact(own), _exact(foreign))
    return int(EXACT_CONTEXT.multiply(ltv, _exact(count)) > _exact(total))


def _register_sqlite(dbapi_connection: Any) -> None:
    dbapi_connection.create_aggregate("rc_dsum", 1, _DSum)
    dbapi_connection.create_aggregate("rc_dsumx", 2, _DSumX)
    dbapi_connection.create_function("rc_dkey", 1, _dkey, deterministic=True)
    dbapi_connection.create_function("rc_dover", 4, _dover, deterministic=True)


# -- dialect differences ----------------------------------------------------------------------


class _Ops:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def dsum(
        self, cols: Any, name: str = "amount", sign: ColumnElement[Any] | None = None
    ) -> ColumnElement[Any]:
        """The exact sum of money column ``name`` of ``cols`` (times ``sign``, +1 or -1).

        PostgreSQL sums NUMERIC. SQLite sums the integer limbs in C and only the amounts
        without limbs through the exact Python aggregate, and packs the eight results into
        one text that ``_dec`` reads back. An empty sum is zero.
        """
        amount = cols[name]
        if not self.sqlite:
            return sa.func.coalesce(sa.func.sum(amount if sign is None else amount * sign), 0)
        limbs = [cols[f"{name}_l{k}"] for k in range(LIMBS)]
        sums = [sa.func.sum(limb if sign is None else limb * sign) for limb in limbs]
        no_limbs = limbs[0].is_(None)
        rest = (sa.func.rc_dsum(amount) if sign is None else sa.func.rc_dsumx(amount, sign)).filter(
            no_limbs
        )
        text: ColumnElement[str] = sa.literal_column("'" + " ".join(["%d"] * LIMBS) + " %s'")
        return sa.func.printf(text, *sums, sa.func.coalesce(rest, sa.literal_column("'0'")))

    def dsum_times(
        self, expr: ColumnElement[Any], factor: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        if self.sqlite:
            return sa.func.coalesce(sa.func.rc_dsumx(expr, factor), sa.literal_column("'0'"))
        return sa.func.coalesce(sa.func.sum(expr * factor), 0)

    def money_key(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.rc_dkey(expr) if self.sqlite else expr

    def money_key_value(self, value: Decimal) -> ColumnElement[Any]:
        if self.sqlite:
            return sa.literal(decimal_key(value), sa.Text())
        return sa.literal(value, Exact())

    def least(self, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.min(a, b) if self.sqlite else sa.func.least(a, b)

    def contains(self, column: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
        fn = sa.func.instr if self.sqlite else sa.func.strpos
        return fn(column, sa.literal(needle, Key())) > 0

    def day(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """The UTC date of a moment column."""
        if self.sqlite:
            # Microseconds floored to the day (SQLite's % truncates towards zero), as seconds.
            micros = sa.type_coerce(column, sa.BigInteger())
            day = sa.literal(86_400_000_000)
            floored = micros - ((micros % day) + day) % day
            return sa.func.date(floored / sa.literal(1_000_000), "unixepoch")
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)


def _factor(value: Decimal) -> ColumnElement[Any]:
    return sa.literal(value, Exact())


def _rate_case(
    currency: ColumnElement[Any],
    rates: Mapping[str, Decimal],
    sign: ColumnElement[bool] | None = None,
) -> ColumnElement[Any]:
    """``rate(currency)``, negated where ``sign`` is false (refunds in net payments)."""
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    for code, rate in sorted(rates.items()):
        if sign is None:
            whens.append((currency == code, _factor(rate)))
        else:
            whens.append((sa.and_(currency == code, sign), _factor(rate)))
            whens.append((currency == code, _factor(-rate)))
    if not whens:
        return _factor(Decimal(1))
    return sa.case(*whens, else_=sa.null())


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
#: Batches writing rows of more customers than this take no per-customer locks on
#: PostgreSQL (the lock table is finite); a lost race then fails as a TransientError.
_MAX_ROW_LOCKS: Final = 64
_TRANSIENT_STATES: Final = frozenset({"40P01", "40001"})  # deadlock, serialisation failure
#: Records owned by one customer whose writes take that customer's lock on PostgreSQL.
_CUSTOMER_ROWS: Final = frozenset({"customer", "subscription", "invoice", "transaction", "credit"})


class SQLStore:
    """A :class:`~revcrm.storage.Store` in a SQL database through SQLAlchemy Core 2.

    ``SQLStore("sqlite:///revcrm.db")`` (the embedded default; ``"sqlite://"`` keeps it in
    memory), ``SQLStore("postgresql+psycopg://user@host/db")``, or
    ``SQLStore(engine)`` to live in the host application's own database. Every table
    name starts with ``prefix``. Call :meth:`create_schema` once (it is idempotent) and
    :meth:`migrate` after upgrading revcrm.

    ``policy`` decides the MRR materialised on every subscription write; opening a
    database with another policy than the one it was built with raises
    :class:`~revcrm.errors.PolicyError` until :meth:`migrate` rebuilds the spans.

    ``cursor_secret`` signs listing cursors (random per store unless given: processes
    serving one listing pass the same one). ``wal`` puts an SQLite file in WAL mode at
    :meth:`create_schema` (default: only when the store created the engine; a host's
    engine is never switched unless asked). On a host's engine revcrm's SQLite settings
    hold only for revcrm's own units of work (see docs/storage.md).
    """

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
        self._schema = Schema.build(prefix)  # validates the prefix before anything else
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
        self._busy_ms = int(busy_timeout * 1000)
        if isinstance(url_or_engine, Engine):
            self._engine = url_or_engine
            self._owns_engine = False
        else:
            self._engine = _create_engine(url_or_engine, busy_timeout)
            self._owns_engine = True
        self._wal = self._owns_engine if wal is None else wal
        dialect = self._engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValidationError(
                "url", str(self._engine.url), "revcrm supports SQLite and PostgreSQL"
            )
        self._ops = _Ops(dialect)
        self._sqlite = dialect == "sqlite"
        self._schema = Schema.build(prefix, limbs=self._sqlite)
        # One shared connection (SQLite in memory) needs its units serialised.
        self._serial: threading.RLock | None = (
            threading.RLock() if isinstance(self._engine.pool, StaticPool) else None
        )
        self._local = _Local()
        self._ready = False
        self.customers = _Customers(self, "customer")
        self.products = _Products(self, "product")
        self.plans = _Plans(self, "plan")
        self.subscriptions = _Subscriptions(self, "subscription")
        self.invoices = _Invoices(self, "invoice")
        self.transactions = _Transactions(self, "transaction")
        self.credits = _Credits(self, "credit")
        self.fx = _Fx(self)

    @classmethod
    def from_url(cls, url: str | sa.URL, **options: Any) -> SQLStore:
        return cls(url, **options)

    @classmethod
    def from_engine(cls, engine: Engine, **options: Any) -> SQLStore:
        return cls(engine, **options)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def prefix(self) -> str:
        return self._schema.prefix

    @property
    def policy(self) -> MetricsPolicy:
        return self._policy

    def close(self) -> None:
        """Dispose of the engine if this store created it (a host's engine is left alone)."""
        if self._owns_engine:
            self._engine.dispose()

    def __repr__(self) -> str:
        return f"SQLStore({self._engine.url.render_as_string(hide_password=True)!r}, prefix={self.prefix!r})"

    # -- connections and units of work ----------------------------------------------------

    def _prepare(self, conn: Connection) -> None:
        """Revcrm's SQLite settings on this connection, before its BEGIN. A connection of
        the store's own engine keeps them; a host connection gets its own values back in
        :meth:`_finish` (remembered in ``info["revcrm.restore"]``)."""
        if not self._sqlite:
            return
        info = conn.connection.info
        if info.get("revcrm.sqlite") is None:
            # Functions named rc_* only add to the connection; nothing of the host's changes.
            _register_sqlite(conn.connection.dbapi_connection)
            info["revcrm.sqlite"] = True
        wanted = (*_SQLITE_SETTINGS, ("busy_timeout", self._busy_ms))
        if self._owns_engine:
            if info.get("revcrm.settings") != self._busy_ms:
                for name, value in wanted:
                    conn.exec_driver_sql(f"PRAGMA {name}={value}")
                info["revcrm.settings"] = self._busy_ms
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

    def _open(self, write: bool, *, check: bool = True) -> Connection:
        try:
            conn = self._engine.connect()
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e
        try:
            if self._sqlite:
                self._prepare(conn)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
            elif not write:
                conn.execution_options(isolation_level="REPEATABLE READ")
            if check and not self._ready:
                self._check_ready(conn)
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
    def _finish(cls, conn: Connection, commit: bool) -> None:
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

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Connection]:
        local = self._local
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
                raise self._doom(_converted(e)) from e
            try:
                yield conn
            except BaseException as e:
                self._doom(e)
                if local.doomed is None and savepoint.is_active:
                    savepoint.rollback()
                raise
            savepoint.commit()
            return
        with self._serial if self._serial is not None else nullcontext():
            conn = self._open(write)
            local.conn, local.write, local.doomed = conn, write, None
            try:
                yield conn
            except BaseException as e:
                doomed = local.doomed
                local.conn, local.doomed = None, None
                self._finish(conn, commit=False)
                if doomed is not None and e is not doomed:
                    raise doomed from e
                raise
            doomed = local.doomed
            local.conn, local.doomed = None, None
            if doomed is not None:
                # The caller swallowed a lost race: the database already rolled it back.
                self._finish(conn, commit=False)
                raise doomed
            self._finish(conn, commit=True)

    def _doom(self, error: BaseException) -> BaseException:
        """Remember a lost race in the open transaction (see ``_Local.doomed``)."""
        if isinstance(error, sa_exc.SQLAlchemyError):
            error = _converted(error)
        if isinstance(error, TransientError) and self._local.conn is not None:
            self._local.doomed = error
        return error

    def _in_transaction(self) -> bool:
        return self._local.conn is not None and self._local.write

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

    def _lock_keys(self, conn: Connection, ids: Sequence[str]) -> None:
        keys = [_lock_key(self.prefix, cid) for cid in sorted(set(ids))]
        for chunk in _chunks(keys):
            conn.execute(
                sa.text(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"
                ),
                {"keys": list(chunk)},
            )

    def scrub(self) -> None:
        """Make values deleted or overwritten so far unreadable from the database files.

        SQLite: revcrm's units run with ``secure_delete`` on (freed content is zeroed);
        this checkpoints the write-ahead log and truncates it to nothing. PostgreSQL:
        ``VACUUM`` of the tables under this prefix (what remains elsewhere, and what the
        host must run, is in docs/storage.md). Not inside a transaction.
        """
        if self._local.conn is not None:
            raise ValidationError("scrub", None, "not inside a transaction")
        try:
            if self._sqlite:
                self._scrub_sqlite()
            else:
                self._scrub_postgres()
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    def _scrub_sqlite(self) -> None:
        if self._engine.url.database in (None, "", ":memory:"):
            return  # nothing on disk
        with self._serial if self._serial is not None else nullcontext():
            conn = self._engine.connect()
            try:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                conn.rollback()  # no transaction of SQLAlchemy's may hold a read snapshot
                (before,) = raw.execute("PRAGMA busy_timeout").fetchone()
                raw.execute(f"PRAGMA busy_timeout={self._busy_ms}")
                try:
                    busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    raw.execute(f"PRAGMA busy_timeout={int(before)}")  # a host's, maybe
            finally:
                conn.close()
        if busy:
            raise StorageError("scrub: another connection is reading; the log was not emptied")

    def _scrub_postgres(self) -> None:
        names = sorted(
            n for n in sa.inspect(self._engine).get_table_names() if n.startswith(self.prefix)
        )
        q = self._engine.dialect.identifier_preparer.quote
        with self._engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for name in names:
                auto.exec_driver_sql(f"VACUUM {q(name)}")

    def _run(self, write: bool, fn: Callable[[Connection], _T]) -> _T:
        # Exact Decimal arithmetic whatever the caller's context (28 digits by default).
        try:
            with self._session(write=write) as conn, decimal.localcontext(EXACT_CONTEXT):
                try:
                    return fn(conn)
                except sa_exc.SQLAlchemyError as e:
                    raise _converted(e) from e
        except sa_exc.SQLAlchemyError as e:  # releasing a savepoint, committing
            raise self._doom(e) from e

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block for this thread; nested blocks are savepoints."""
        try:
            with self._session(write=True):
                yield
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[Connection]:
        """The connection of this thread's unit of work, for a companion store.

        Inside :meth:`transaction` it is that transaction's connection (a nested block
        is a savepoint); outside, a new unit of work that commits when the block ends.
        A :class:`~revcrm.storage.SQLCRMStore` built with ``billing=`` this store writes
        through it, so one ``transaction()`` covers billing and CRM rows together.
        Driver errors are raised as :class:`~revcrm.errors.StorageError` subclasses.
        """
        try:
            with self._session(write=write) as conn:
                yield conn
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        # Several reads that must agree (the dashboard) share one read transaction.
        with self._session(write=False):
            yield

    # -- schema -----------------------------------------------------------------------------

    def _installed_version(self, conn: Connection) -> int:
        if not sa.inspect(conn).has_table(self._schema.schema_version.name):
            return 0
        v = conn.execute(sa.select(sa.func.max(self._schema.schema_version.c.version))).scalar()
        return int(v or 0)

    def schema_version(self) -> int:
        """The installed schema version (0: no revcrm tables under this prefix)."""
        conn = self._open(False, check=False)
        try:
            return self._installed_version(conn)
        except sa_exc.SQLAlchemyError as e:
            raise _converted(e) from e
        finally:
            self._finish(conn, commit=False)

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

    def create_schema(self) -> int:
        """Create the tables (or bring them up to date); return the schema version."""
        return self.migrate()

    def migrate(self, *, to: int | None = None) -> int:
        """Apply the forward migrations up to ``to`` (default: the latest); return the version.

        At the latest version it also rebuilds the MRR spans if they were built under
        another policy. Runs in one transaction: a failing step leaves the schema as it was.
        """
        target = LATEST_VERSION if to is None else to
        if (
            isinstance(target, bool)
            or not isinstance(target, int)
            or not 1 <= target <= LATEST_VERSION
        ):
            raise ValidationError("to", to, f"a schema version from 1 to {LATEST_VERSION}")
        path = self._engine.url.database if self._sqlite else None
        if path not in (None, "", ":memory:") and not path.startswith("file:"):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ValidationError("url", path, f"folder {folder!r} does not exist")
        if self._wal and path not in (None, "", ":memory:"):
            try:
                with self._engine.connect() as c:
                    c.exec_driver_sql("PRAGMA journal_mode=WAL")
            except sa_exc.SQLAlchemyError as e:
                raise _converted(e) from e
        with self._serial if self._serial is not None else nullcontext():
            conn = self._open(True, check=False)
            try:
                if not self._sqlite:
                    # Two processes migrating at once: the second waits, then finds it done.
                    key = sum(self.prefix.encode()) + 0x5245_5643_0000
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
                current = self._installed_version(conn)
                if current > LATEST_VERSION:
                    raise StorageError(f"schema version {current} is newer than this revcrm")
                for version, description, step in MIGRATIONS:
                    if current < version <= target:
                        step(conn, self._schema, self._rebuild_derived)
                        conn.execute(
                            self._schema.schema_version.insert().values(
                                version=version,
                                description=description,
                                applied_at=datetime.now(UTC),
                            )
                        )
                        current = version
                if current == LATEST_VERSION and self._setting(
                    conn, _POLICY_KEY
                ) != policy_fingerprint(self._policy):
                    self._rebuild_derived(conn)
            except BaseException as e:
                self._finish(conn, commit=False)
                if isinstance(e, sa_exc.SQLAlchemyError):
                    raise _converted(e) from e
                raise
            self._finish(conn, commit=True)
        self._ready = False
        return current

    def drop_schema(self) -> None:
        """Drop every revcrm table under this prefix (the host's tables are untouched)."""
        with self._serial if self._serial is not None else nullcontext():
            conn = self._open(True, check=False)
            try:
                self._schema.meta.drop_all(conn, checkfirst=True)
            except BaseException as e:
                self._finish(conn, commit=False)
                if isinstance(e, sa_exc.SQLAlchemyError):
                    raise _converted(e) from e
                raise
            self._finish(conn, commit=True)
        self._ready = False

    def _rebuild_derived(self, conn: Connection) -> None:
        """Recompute every derived table from the records (migrations, policy changes)."""
        s = self._schema
        conn.execute(s.cash_daily.delete())
        tx = s.transactions
        stmt = (
            sa.select(tx.c.at_day, tx.c.currency, tx.c.kind, self._ops.dsum(tx.c), sa.func.count())
            .where(tx.c.status == "succeeded")
            .group_by(tx.c.at_day, tx.c.currency, tx.c.kind)
        )
        daily = [
            {"day": int(d), "currency": c, "kind": k, "amount": _dec(v), "count": int(n)}
            for d, c, k, v, n in conn.execute(stmt)
        ]
        self._insert(conn, s.cash_daily, daily)
        conn.execute(s.spans.delete())
        # Migrations before version 3 rebuild without the states table, which comes later.
        states = sa.inspect(conn).has_table(s.states.name)
        if states:
            conn.execute(s.states.delete())
        ids = [
            r[0]
            for r in conn.execute(sa.select(s.subscriptions.c.id).order_by(s.subscriptions.c.id))
        ]
        # Migrations before version 5 rebuild without the materialised current states.
        head = s.subscriptions
        current = "current_state" in {c["name"] for c in sa.inspect(conn).get_columns(head.name)}
        for chunk in _chunks(ids, 2000):
            subs = self._load(conn, "subscription", head.c.id.in_(chunk))
            rows = [row for sub in subs for row in self._span_rows(sub)]
            self._insert(conn, s.spans, rows)
            if states:
                self._insert(conn, s.states, [row for sub in subs for row in self._state_rows(sub)])
            if current:
                set_state = (
                    head.update()
                    .where(head.c.id == sa.bindparam("sub_id"))
                    .values(current_state=sa.bindparam("state"))
                )
                conn.execute(
                    set_state,
                    [{"sub_id": sub.id, "state": encode_state(sub.current)} for sub in subs],
                )
        self._put_setting(conn, _POLICY_KEY, policy_fingerprint(self._policy))

    def _span_rows(self, sub: Subscription) -> list[Row]:
        rows = []
        for sp in subscription_spans(sub, self._policy):
            a = sp.anchor
            unit = CycleUnit(sp.cycle_unit)
            months = {CycleUnit.MONTH: sp.cycle_count, CycleUnit.YEAR: 12 * sp.cycle_count}.get(
                unit
            )
            days = {CycleUnit.WEEK: 7 * sp.cycle_count, CycleUnit.DAY: sp.cycle_count}.get(unit)
            row: Row = {
                "subscription_id": sub.id,
                "seq": sp.seq,
                "customer_id": sub.customer_id,
                "currency": sub.currency,
                "start_at": sp.start,
                "end_at": sp.end,
                "amount": sp.amount,
                "positive": sp.amount != 0,
                "status": sp.status,
                "anchor": a,
                "cycle_count": sp.cycle_count,
                "cycle_unit": sp.cycle_unit,
                "start_day": moment_value(sp.start) // _DAY_US,
                "start_month": _month_index(sp.start),
                "end_month": None if sp.end is None else _month_index(sp.end),
                "anchor_us": moment_value(a),
                "anchor_month": _month_index(a),
                "anchor_day": a.day,
                "anchor_tod": moment_value(a) % _DAY_US,
                "cycle_months": months,
                "cycle_us": None if days is None else days * _DAY_US,
            }
            if self._sqlite:
                row.update(zip(_LIMB_COLUMNS, to_limbs(sp.amount), strict=True))
            rows.append(row)
        return rows

    @staticmethod
    def _state_rows(sub: Subscription) -> list[Row]:
        rows: list[Row] = []
        history = sub.history
        for i, (change, state) in enumerate(sub.replay()):
            until = history[i + 1].at if i + 1 < len(history) else None
            if until == change.at:
                continue  # superseded at the moment it begins: never the state at a moment
            rows.append(
                {
                    "subscription_id": sub.id,
                    "seq": i,
                    "customer_id": sub.customer_id,
                    "from_at": change.at,
                    "to_at": until,
                    "status": state.status.value,
                    "plan_id": state.plan_id,
                    "product_id": state.product_id,
                    "ended_at": state.ended_at,
                    "cancel_at_period_end": state.cancel_at_period_end,
                    "anchor": state.billing_anchor,
                    "cycle_count": state.cycle.count,
                    "cycle_unit": state.cycle.unit.value,
                }
            )
        return rows

    # -- table lookup ------------------------------------------------------------------------

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

    def _write(
        self,
        conn: Connection,
        batch: Sequence[Prepared],
        expected: Sequence[int | None],
        *,
        present: Mapping[str, set[str]] | None = None,
    ) -> ImportResult:
        """Upsert ``batch`` (one kind) in order, with the in-memory store's semantics.

        ``present``: ids known to exist already (written earlier in the same import), so
        references to them need no lookup.
        """
        if not batch:
            return ImportResult()
        kind = batch[0].kind
        head = self._head(kind)
        if not self._sqlite and kind in _CUSTOMER_ROWS:
            # The customers' locks before any row lock: the documented order (see lock()).
            owners_of = {p.record.id if kind == "customer" else p.record.customer_id for p in batch}
            if len(owners_of) <= _MAX_ROW_LOCKS:
                self._lock_keys(conn, sorted(owners_of))
        has_ext = "external_id" in head.c
        existing: dict[str, tuple[int, str, str | None]] = {}
        owners: dict[str, str] = {}
        old_cash: dict[str, tuple[int, str, str, Decimal] | None] = {}
        if not self._empty(conn, head):
            ids = sorted({p.record.id for p in batch})
            for chunk in _chunks(ids):
                cols: list[Any] = [head.c.id, head.c.version, head.c.digest]
                cols.append(head.c.external_id if has_ext else sa.null())
                if kind == "transaction":
                    cols += [
                        head.c.status,
                        head.c.at_day,
                        head.c.currency,
                        head.c.kind,
                        head.c.amount,
                    ]
                stmt = sa.select(*cols).where(head.c.id.in_(chunk))
                if not self._sqlite:
                    stmt = stmt.with_for_update()
                for r in conn.execute(stmt):
                    existing[r[0]] = (int(r[1]), str(r[2]), r[3])
                    if kind == "transaction":
                        counted = r[4] == "succeeded"
                        old_cash[r[0]] = (int(r[5]), r[6], r[7], _dec(r[8])) if counted else None
            exts = sorted({p.external_id for p in batch if p.external_id is not None})
            for chunk in _chunks(exts):
                stmt = sa.select(head.c.external_id, head.c.id).where(head.c.external_id.in_(chunk))
                owners.update((e, i) for e, i in conn.execute(stmt))
        # A record equal to its stored row refers to what the stored row does, which the
        # foreign keys keep present: only the others' references are looked up.
        seen = Counter(p.record.id for p in batch)

        def same(p: Prepared) -> bool:
            cur = existing.get(p.record.id)
            return cur is not None and cur[1] == p.digest and seen[p.record.id] == 1

        wanted: dict[str, set[str]] = defaultdict(set)
        for p in batch:
            if same(p):
                continue
            for _field, value, target in p.refs:
                wanted[target].add(value)
        known: dict[str, set[str]] = {}
        for target, values in wanted.items():
            already = present.get(target, set()) if present is not None else set()
            known[target] = (values & already) | self._existing_ids(conn, target, values - already)
        if kind in ("transaction", "credit"):
            self._check_invoice_currencies(conn, batch)

        state: dict[str, tuple[int, str, str | None]] = dict(existing)
        writes: dict[str, tuple[Prepared, int]] = {}
        counts = [0, 0, 0]
        for p, exp in zip(batch, expected, strict=True):
            r = p.record
            if not same(p):
                for field, value, target in p.refs:
                    if value not in known[target]:
                        raise UnknownReferenceError(field, value, target)
            ext = p.external_id
            if ext is not None:
                owner = owners.get(ext)
                if owner is not None and owner != r.id:
                    raise DuplicateError(kind, ext)
            cur = state.get(r.id)
            actual = cur[0] if cur is not None else None
            if exp is not None and (actual or 0) != exp:
                raise ConflictError(kind, r.id, exp, actual)
            if cur is not None and cur[1] == p.digest:
                counts[2] += 1
                continue
            version = 1 if cur is None else cur[0] + 1
            if cur is not None and cur[2] is not None and owners.get(cur[2]) == r.id:
                del owners[cur[2]]
            if ext is not None:
                owners[ext] = r.id
            state[r.id] = (version, p.digest, ext)
            writes[r.id] = (p, version)
            counts[0 if cur is None else 1] += 1

        columns = [*batch[0].head, "version", "digest"]
        if kind == "customer":
            columns += ["name_fold", "email_fold", "username_fold"]
        limbed = self._sqlite and "amount_l0" in head.c
        if limbed:
            columns += _LIMB_COLUMNS
        if kind == "transaction":
            columns += ["at_day"]
        if kind == "subscription":
            columns += ["current_state"]
        # An UPDATE leaves the key out of its SET list: setting a referenced key, even to
        # itself, makes SQLite check every referencing row (an unindexed scan of invoice
        # lines and transactions for a subscription).
        key_at = columns.index("id")
        set_columns = [c for c in columns if c != "id"]
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        moved: list[tuple[Any, ...]] = []
        children: list[tuple[Any, ...]] = []
        child_columns: list[str] = []
        span_rows: list[Row] = []
        state_rows: list[Row] = []
        for key, (p, version) in writes.items():
            row = (*(p.flat_head if self._sqlite else p.head.values()), version, p.digest)
            if kind == "customer":
                row += tuple(search_folds(p.record).values())
            if limbed:
                row += to_limbs(p.head["amount"])
            if kind == "transaction":
                row += (moment_value(p.head["at"]) // _DAY_US,)
            if kind == "subscription":
                row += (encode_state(p.record.current),)
            if key in existing:
                updates.append((*row[:key_at], *row[key_at + 1 :], key))
                if has_ext and p.head["external_id"] != existing[key][2]:
                    moved.append((key,))
            else:
                inserts.append(row)
            if p.children:
                child_columns = list(p.children[0])
                if self._sqlite:
                    children.extend(p.flat_children)
                else:
                    children.extend(tuple(r.values()) for r in p.children)
            if kind == "subscription":
                span_rows.extend(self._span_rows(p.record))
                state_rows.extend(self._state_rows(p.record))
        updated_ids = [u[-1] for u in updates]
        q = self._engine.dialect.identifier_preparer.quote
        mark = "?" if self._sqlite else "%s"
        # Clear moved external ids first, so swapping two of them never trips the index.
        clear = f"UPDATE {q(head.name)} SET {q('external_id')} = NULL WHERE {q('id')} = {mark}"
        self._executemany(conn, clear, moved)
        self._executemany(conn, self._update_sql(head, set_columns), updates)
        child = self._child(kind)
        if child is not None and updated_ids:
            table, fk = child
            for chunk in _chunks(updated_ids):
                conn.execute(table.delete().where(table.c[fk].in_(chunk)))
        if kind == "subscription" and updated_ids:
            for derived in (self._schema.spans, self._schema.states):
                for chunk in _chunks(updated_ids):
                    conn.execute(derived.delete().where(derived.c.subscription_id.in_(chunk)))
        try:
            self._executemany(conn, self._insert_sql(head, columns), inserts)
        except sa_exc.IntegrityError as e:
            # Another connection inserted one of these ids (or external ids) meanwhile.
            raise ConflictError(kind, inserts[0][0], 0, None) from e
        if child is not None and children:
            self._executemany(conn, self._insert_sql(child[0], child_columns), children)
        self._insert(conn, self._schema.spans, span_rows)
        self._insert(conn, self._schema.states, state_rows)
        if kind == "transaction":
            self._update_cash(conn, [p for p, _ in writes.values()], old_cash)
        return ImportResult(inserted=counts[0], updated=counts[1], unchanged=counts[2])

    def _check_invoice_currencies(self, conn: Connection, batch: Sequence[Prepared]) -> None:
        """A payment, refund or credit naming an invoice is in the invoice's currency."""
        wanted = sorted({p.record.invoice_id for p in batch if p.record.invoice_id is not None})
        if not wanted:
            return
        inv = self._schema.invoices
        currency: dict[str, str] = {}
        for chunk in _chunks(wanted):
            stmt = sa.select(inv.c.id, inv.c.currency).where(inv.c.id.in_(chunk))
            currency.update((i, c) for i, c in conn.execute(stmt))
        for p in batch:
            r = p.record
            if r.invoice_id is not None and r.invoice_id in currency:
                _check_invoice_currency(r, currency[r.invoice_id])

    def _update_cash(
        self,
        conn: Connection,
        written: Sequence[Prepared],
        old: Mapping[str, tuple[int, str, str, Decimal] | None],
    ) -> None:
        """Apply written transactions to the daily cash totals (new minus old contribution)."""
        change: dict[tuple[int, str, str], list[Any]] = defaultdict(lambda: [_ZERO, 0])
        for p in written:
            t: Transaction = p.record
            if t.succeeded:
                key = (moment_value(t.at) // _DAY_US, t.amount.currency, t.kind._value_)
                change[key][0] += t.amount.amount
                change[key][1] += 1
            before = old.get(t.id)
            if before is not None:
                key = before[:3]
                change[key][0] -= before[3]
                change[key][1] -= 1
        if not change:
            return
        daily = self._schema.cash_daily
        keys = sorted(change)
        current: dict[tuple[int, str, str], tuple[Decimal, int]] = {}
        for chunk in _chunks(keys):
            stmt = sa.select(
                daily.c.day, daily.c.currency, daily.c.kind, daily.c.amount, daily.c.count
            ).where(sa.tuple_(daily.c.day, daily.c.currency, daily.c.kind).in_(chunk))
            if not self._sqlite:
                stmt = stmt.with_for_update()
            for d, c, k, amount, count in conn.execute(stmt):
                current[(int(d), c, k)] = (_dec(amount), int(count))
        inserts: list[Row] = []
        for key in keys:
            delta, n = change[key]
            if key not in current:
                inserts.append(
                    {"day": key[0], "currency": key[1], "kind": key[2], "amount": delta, "count": n}
                )
                continue
            amount, count = current[key]
            where = sa.and_(
                daily.c.day == key[0], daily.c.currency == key[1], daily.c.kind == key[2]
            )
            if count + n == 0:
                conn.execute(daily.delete().where(where))
            else:
                conn.execute(
                    daily.update().where(where).values(amount=amount + delta, count=count + n)
                )
        try:
            self._insert(conn, daily, inserts)
        except sa_exc.IntegrityError as e:  # another writer added the same day meanwhile
            raise ConflictError("cash_daily", inserts[0]["day"], 0, None) from e

    def _upsert(self, kind: str, record: Any, expected_version: int | None) -> int:
        p = prepare(kind, record)
        _check_expected(expected_version)

        def run(conn: Connection) -> int:
            self._write(conn, [p], [expected_version])
            return self._version(conn, kind, record.id)

        return self._run(True, run)

    def _version(self, conn: Connection, kind: str, key: str) -> int:
        head = self._head(kind)
        v = conn.execute(sa.select(head.c.version).where(head.c.id == key)).scalar()
        if v is None:
            raise NotFoundError(kind, key)
        return int(v)

    def _upsert_many(self, kind: str, records: Iterable[Any]) -> ImportResult:
        batch = [prepare(kind, r) for r in read_records(records)]
        return self._run(True, lambda conn: self._write(conn, batch, [None] * len(batch)))

    def import_book(self, book: Book) -> ImportResult:
        if not isinstance(book, Book):
            raise ValidationError("book", book, "expected a revcrm.Book")
        groups = [[prepare(kind, r) for r in records] for kind, records in _book_groups(book)]

        def run(conn: Connection) -> ImportResult:
            total = ImportResult()
            present: dict[str, set[str]] = {}
            for batch in groups:
                total += self._write(conn, batch, [None] * len(batch), present=present)
                if batch:
                    present[batch[0].kind] = {p.record.id for p in batch}
            return total + self._put_rates(conn, book.fx)

        return self._run(True, run)

    # -- reads -------------------------------------------------------------------------------

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

    def _put_rates(self, conn: Connection, rates: FxRates) -> ImportResult:
        t = self._schema.fx_rates
        stored = {
            (s, tg, _day(d)): r
            for d, s, tg, r in conn.execute(sa.select(t.c.day, t.c.source, t.c.target, t.c.rate))
        }
        inserts: list[Row] = []
        updates: list[Row] = []
        unchanged = 0
        for day, source, target, rate in rates.items():
            old = stored.get((source, target, day))
            if old is not None and old == rate:
                unchanged += 1
                continue
            row = {"source": source, "target": target, "day": day, "rate": rate}
            (inserts if old is None else updates).append(row)
        if updates:
            stmt = (
                t.update()
                .where(
                    t.c.source == sa.bindparam("b_source"),
                    t.c.target == sa.bindparam("b_target"),
                    t.c.day == sa.bindparam("b_day"),
                )
                .values(rate=sa.bindparam("b_rate"))
            )
            conn.execute(stmt, [{f"b_{k}": v for k, v in r.items()} for r in updates])
        if inserts:
            conn.execute(t.insert(), inserts)
        return ImportResult(inserted=len(inserts), updated=len(updates), unchanged=unchanged)

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

    def _contains(self, t: datetime, *, scan: bool = False) -> ColumnElement[bool]:
        """Spans running at ``t``. With ``scan`` (aggregates over every customer) SQLite is
        kept off the start/end indexes: most spans start before any recent ``t``, and one
        sequential pass beats a lookup per index entry several times over."""
        start, end = self._span_moment("start_at", scan), self._span_moment("end_at", scan)
        return sa.and_(start <= t, sa.or_(end.is_(None), end > t))

    def _span_moment(self, name: str, scan: bool) -> Any:
        sp = self._schema.spans
        if scan and self._sqlite:
            # ``+col`` is SQLite's documented way to disqualify a column from index use.
            return sa.type_coerce(sa.literal_column(f"+{sp.name}.{name}"), Moment())
        return sp.c[name]

    def _figures(
        self,
        conn: Connection,
        ids: Sequence[str],
        *,
        at: datetime,
        currency: str,
        rates: Mapping[str, Decimal],
    ) -> dict[str, tuple[Decimal, Decimal, Decimal, Decimal, int, datetime | None]]:
        """Per customer: (mrr, ltv, total paid, credit balance, active services, last payment)."""
        s = self._schema
        sp, tx, cr = s.spans, s.transactions, s.credits
        ops = self._ops
        mrr: dict[str, Decimal] = defaultdict(Decimal)
        paid: dict[str, Decimal] = defaultdict(Decimal)
        refunded: dict[str, Decimal] = defaultdict(Decimal)
        credit: dict[str, Decimal] = defaultdict(Decimal)
        active: dict[str, int] = defaultdict(int)
        last: dict[str, datetime] = {}
        with decimal.localcontext(EXACT_CONTEXT):
            for chunk in _chunks(ids):
                rows = conn.execute(
                    sa.select(sp.c.customer_id, sp.c.currency, ops.dsum(sp.c))
                    .where(sp.c.customer_id.in_(chunk), sp.c.positive, self._contains(at))
                    .group_by(sp.c.customer_id, sp.c.currency)
                )
                for cid, cur, total in rows:
                    mrr[cid] += _dec(total) * rates[cur]
                counted = conn.execute(
                    sa.select(sp.c.customer_id, sa.func.count())
                    .where(
                        sp.c.customer_id.in_(chunk), sp.c.status.in_(_ACTIVE), self._contains(at)
                    )
                    .group_by(sp.c.customer_id)
                )
                for cid, n in counted:
                    active[cid] = int(n)
                payments = conn.execute(
                    sa.select(
                        tx.c.customer_id,
                        tx.c.currency,
                        tx.c.kind,
                        ops.dsum(tx.c),
                        sa.func.max(tx.c.at),
                    )
                    .where(tx.c.customer_id.in_(chunk), tx.c.status == "succeeded", tx.c.at <= at)
                    .group_by(tx.c.customer_id, tx.c.currency, tx.c.kind)
                )
                for cid, cur, kind, total, latest in payments:
                    value = _dec(total) * rates[cur]
                    if kind == "payment":
                        paid[cid] += value
                        moment = _as_moment(latest)
                        last[cid] = moment if cid not in last else max(last[cid], moment)
                    else:
                        refunded[cid] += value
                balances = conn.execute(
                    sa.select(cr.c.customer_id, ops.dsum(cr.c))
                    .where(cr.c.customer_id.in_(chunk), cr.c.currency == currency, cr.c.at <= at)
                    .group_by(cr.c.customer_id)
                )
                for cid, total in balances:
                    credit[cid] += _dec(total)
            return {
                cid: (
                    mrr[cid],
                    paid[cid] - refunded[cid],
                    paid[cid],
                    credit[cid],
                    active[cid],
                    last.get(cid),
                )
                for cid in ids
            }

    def _sort_values(
        self, q: CustomerQuery, rates: Mapping[str, Decimal]
    ) -> tuple[Any, ColumnElement[Any], str]:
        """A computed sort column as one grouped aggregate per customer (a subquery with
        ``customer_id`` and ``v``), the value for customers it has no row for, and the
        column's kind. One pass over the table, not one lookup per customer."""
        s = self._schema
        sp, tx, cr = s.spans, s.transactions, s.credits
        ops = self._ops
        t = q.as_of
        plain = set(rates) <= {q.currency}  # nothing to convert
        zero: ColumnElement[Any] = sa.literal_column("'0'") if self._sqlite else sa.literal(0)
        payment = tx.c.kind == "payment"

        def converted(
            table: Any, conds: list[ColumnElement[bool]], sign: ColumnElement[Any] | None = None
        ) -> Any:
            # Exact sums per customer and currency first (integer limbs on SQLite), then
            # one conversion per customer and currency: never one per row.
            per_currency = (
                sa.select(
                    table.c.customer_id,
                    table.c.currency,
                    ops.dsum(table.c, sign=sign).label("s"),
                )
                .where(*conds)
                .group_by(table.c.customer_id, table.c.currency)
            )
            if plain:
                only = sa.select(table.c.customer_id, ops.dsum(table.c, sign=sign).label("v"))
                return only.where(*conds).group_by(table.c.customer_id).subquery()
            inner = per_currency.subquery()
            total = ops.dsum_times(inner.c.s, _rate_case(inner.c.currency, rates))
            return (
                sa.select(inner.c.customer_id, total.label("v"))
                .group_by(inner.c.customer_id)
                .subquery()
            )

        match q.sort:
            case CustomerSort.MRR:
                agg = converted(sp, [sp.c.positive, self._contains(t, scan=True)])
                return agg, zero, "money"
            case CustomerSort.TOTAL_PAID:
                agg = converted(tx, [tx.c.status == "succeeded", tx.c.at <= t, payment])
                return agg, zero, "money"
            case CustomerSort.LTV:
                sign = sa.case((payment, 1), else_=-1)
                agg = converted(tx, [tx.c.status == "succeeded", tx.c.at <= t], sign)
                return agg, zero, "money"
            case CustomerSort.CREDIT_BALANCE:
                agg = sa.select(cr.c.customer_id, ops.dsum(cr.c).label("v")).where(
                    cr.c.currency == q.currency, cr.c.at <= t
                )
                return agg.group_by(cr.c.customer_id).subquery(), zero, "money"
            case CustomerSort.ACTIVE_SERVICES:
                agg = sa.select(sp.c.customer_id, sa.func.count().label("v")).where(
                    sp.c.status.in_(_ACTIVE), self._contains(t, scan=True)
                )
                return agg.group_by(sp.c.customer_id).subquery(), sa.literal(0), "int"
            case CustomerSort.LAST_PAYMENT:
                agg = sa.select(tx.c.customer_id, sa.func.max(tx.c.at).label("v")).where(
                    tx.c.status == "succeeded", payment, tx.c.at <= t
                )
                never = sa.literal(ref.NEVER, Moment())
                return agg.group_by(tx.c.customer_id).subquery(), never, "moment"
        raise AssertionError(q.sort)

    def _filters(self, q: CustomerQuery) -> list[ColumnElement[bool]]:
        s = self._schema
        c, sp = s.customers, s.spans
        conds: list[ColumnElement[bool]] = []
        if q.search is not None:
            conds.append(
                sa.or_(
                    self._ops.contains(c.c.name_fold, q.search),
                    self._ops.contains(c.c.email_fold, q.search),
                    self._ops.contains(c.c.username_fold, q.search),
                )
            )
        if q.owner_id is not None:
            conds.append(c.c.owner_id == q.owner_id)
        if q.referral_source is not None:
            conds.append(c.c.referral_source == q.referral_source)
        if q.registered_from is not None:
            conds.append(c.c.registered_at >= q.registered_from)
        if q.registered_before is not None:
            conds.append(c.c.registered_at < q.registered_before)
        if q.customer_ids is not None:
            conds.append(c.c.id.in_(sorted(q.customer_ids)))
        if q.paying is not None:
            paying = (
                sa.select(sp.c.subscription_id)
                .where(sp.c.customer_id == c.c.id, sp.c.positive, self._contains(q.as_of))
                .exists()
            )
            conds.append(paying if q.paying else ~paying)
        if q.has_active_services is not None:
            live = (
                sa.select(sp.c.subscription_id)
                .where(
                    sp.c.customer_id == c.c.id, sp.c.status.in_(_ACTIVE), self._contains(q.as_of)
                )
                .exists()
            )
            conds.append(live if q.has_active_services else ~live)
        return conds

    def _customer_page(self, q: CustomerQuery) -> Page[CustomerRow]:
        after = q.after()

        def run(conn: Connection) -> Page[CustomerRow]:
            rates = ref.list_rates(
                self._currencies(conn), self._rates(conn), q.currency, q.as_of.date()
            )
            c = self._schema.customers
            conds = self._filters(q) + self._service_filters(conn, q)
            desc = q.direction is Direction.DESC
            plain = {
                CustomerSort.ID: (c.c.id, "str"),
                CustomerSort.NAME: (c.c.name_fold, "str"),
                CustomerSort.EMAIL: (c.c.email_fold, "str"),
                CustomerSort.CREATED: (c.c.registered_at, "moment"),
            }
            value: ColumnElement[Any]
            if q.sort in plain:
                value, kind = plain[q.sort]
                base = sa.select(c.c.id.label("id"), value.label("v")).where(*conds).subquery()
            else:
                agg, missing, kind = self._sort_values(q, rates)
                value = sa.func.coalesce(agg.c.v, missing)
                if kind == "moment":
                    value = sa.type_coerce(value, Moment())
                joined = c.outerjoin(agg, agg.c.customer_id == c.c.id)
                base = (
                    sa.select(c.c.id.label("id"), value.label("v"))
                    .select_from(joined)
                    .where(*conds)
                    .subquery()
                )
            key = self._ops.money_key(base.c.v) if kind == "money" else base.c.v
            stmt = sa.select(base.c.id)
            if after is not None:
                av, aid = after
                literal: ColumnElement[Any]
                if kind == "money":
                    if not isinstance(av, Decimal):
                        raise ValidationError("cursor", q.cursor, "not a cursor of this sort")
                    literal = self._ops.money_key_value(av)
                elif kind == "moment":
                    literal = sa.literal(av, Moment())
                elif kind == "int":
                    literal = sa.literal(av, sa.Integer())
                else:
                    literal = sa.literal(av, Key())
                pair, other = sa.tuple_(key, base.c.id), sa.tuple_(literal, sa.literal(aid, Key()))
                stmt = stmt.where(pair < other if desc else pair > other)
            order = [key.desc(), base.c.id.desc()] if desc else [key, base.c.id]
            ids = [r[0] for r in conn.execute(stmt.order_by(*order).limit(q.limit + 1))]
            more = len(ids) > q.limit
            ids = ids[: q.limit]
            rows = self._rows(conn, ids, at=q.as_of, currency=q.currency, rates=rates)
            cursor = None
            if more and rows:
                cursor = q.next_cursor(ref.sort_value(rows[-1], q.sort), rows[-1].id)
            return Page(items=tuple(rows), next_cursor=cursor, as_of=q.as_of)

        return self._run(False, run)

    # -- service states: status, product and built-in segments ---------------------------

    def _owners(
        self, table: sa.Table, *conds: ColumnElement[bool], ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """Whether the customer (of the enclosing query) owns a row of ``table`` matching
        ``conds``. Uncorrelated: the database finds the owners once (PostgreSQL hashes
        them, SQLite builds an ephemeral index) instead of probing per customer, which
        an OR of several conditions would otherwise force. ``ids`` narrows the search to
        those customers (the rows of one page)."""
        owners = sa.select(table.c.customer_id).where(*conds)
        if ids is not None:
            owners = owners.where(table.c.customer_id.in_(list(ids)))
        return self._schema.customers.c.id.in_(owners)

    def _states_at(
        self, t: datetime, *conds: ColumnElement[bool], ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """Whether the customer has a subscription whose state at ``t`` matches ``conds``."""
        st = self._schema.states
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        return self._owners(st, running, *conds, ids=ids)

    def _active_state(self, t: datetime) -> ColumnElement[bool]:
        """``is_active_service``: running, or cancelled with the paid period still going."""
        st = self._schema.states
        return sa.or_(
            st.c.status.in_(_RUNNING), sa.and_(st.c.status == "cancelled", st.c.ended_at > t)
        )

    def _overdue(self, t: datetime, ids: Sequence[str] | None = None) -> ColumnElement[bool]:
        """``invoice_overdue`` for some invoice of the customer."""
        inv = self._schema.invoices
        unpaid = sa.or_(
            inv.c.status == "open",
            sa.and_(inv.c.status == "paid", inv.c.paid_at.is_not(None), inv.c.paid_at > t),
        )
        return self._owners(inv, inv.c.issued_at <= t, unpaid, inv.c.due_date < t.date(), ids=ids)

    def _paid(
        self, since: datetime | None, t: datetime, ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """A successful payment of the customer in ``[since, t]`` (any time up to ``t``)."""
        tx = self._schema.transactions
        conds = [tx.c.status == "succeeded", tx.c.kind == "payment", tx.c.at <= t]
        if since is not None:
            conds.append(tx.c.at >= since)
        return self._owners(tx, *conds, ids=ids)

    def _status_cond(self, t: datetime, status: CustomerStatus) -> ColumnElement[bool]:
        """``customer_status(...) is status`` at ``t``."""
        st = self._schema.states
        past_due = sa.or_(self._states_at(t, st.c.status.in_(_TROUBLED)), self._overdue(t))
        active = self._states_at(t, self._active_state(t))
        if status is CustomerStatus.PAST_DUE:
            return past_due
        if status is CustomerStatus.ACTIVE:
            return sa.and_(~past_due, active)
        ended = self._states_at(t, st.c.status.in_(_ENDED))
        if status is CustomerStatus.CANCELLED:
            return sa.and_(~past_due, ~active, ended)
        return ~sa.or_(past_due, active, ended)

    def _product_cond(self, t: datetime, product_id: str) -> ColumnElement[bool]:
        """An active service of the product: its own ``product_id``, else its plan's."""
        st, plans = self._schema.states, self._schema.plans
        of_product = sa.select(plans.c.id).where(plans.c.product_id == product_id)
        return self._states_at(
            t,
            self._active_state(t),
            sa.or_(
                st.c.product_id == product_id,
                sa.and_(st.c.product_id.is_(None), st.c.plan_id.in_(of_product)),
            ),
        )

    def _payment_days(
        self, conn: Connection, t: datetime, currency: str, fx: FxRates
    ) -> dict[str, tuple[int, int]]:
        """First and last UTC day of the successful transactions up to ``t`` per foreign
        currency (from the daily cash totals; the last may be ``t``'s day even if its
        transactions come later that day); MissingRateError if one lacks a rate into
        ``currency`` on its day (the pure functions convert every one of them, each at
        its own date)."""
        daily = self._schema.cash_daily
        today = moment_value(t) // _DAY_US
        stmt = (
            sa.select(daily.c.currency, sa.func.min(daily.c.day), sa.func.max(daily.c.day))
            .where(daily.c.day < today, daily.c.currency != currency)
            .group_by(daily.c.currency)
        )
        found: dict[str, list[int]] = {
            str(cur): [int(lo), int(hi)] for cur, lo, hi in conn.execute(stmt)
        }
        tx = self._schema.transactions
        same_day = (
            sa.select(tx.c.currency)
            .where(
                tx.c.status == "succeeded",
                tx.c.at_day == today,
                tx.c.at <= t,
                tx.c.currency != currency,
            )
            .distinct()
        )
        for (cur,) in conn.execute(same_day):
            span = found.setdefault(str(cur), [today, today])
            span[1] = today
        for cur, (lo, _) in found.items():
            # A rate known on some day stays known on every later day, so the first is
            # the one that can be missing.
            fx.rate(cur, currency, EPOCH_DATE + timedelta(days=lo))
        return {cur: (lo, hi) for cur, (lo, hi) in found.items()}

    def _day_rates(
        self, conn: Connection, days: Mapping[str, tuple[int, int]], fx: FxRates, currency: str
    ) -> Any:
        """Every day's rate into ``currency`` over the days of ``days``, so each
        transaction converts at its own date.

        PostgreSQL: a relation (cur, day, rate, neg) for an equality (hash) join, inlined
        as VALUES (codes are checked ISO codes, the rest numbers). SQLite would scan such
        a relation once per transaction, so there the rates become the connection's
        ``rc_fx(currency, day, is_payment)`` function for the next statements, and the
        relation returned is None."""
        table: dict[tuple[str, int], tuple[str, str]] = {}
        for cur, (lo, hi) in sorted(days.items()):
            check_currency(cur)
            for d in range(lo, hi + 1):
                rate = fx.rate(cur, currency, EPOCH_DATE + timedelta(days=d))
                table[(cur, d)] = (str(rate), str(-rate))
        if self._sqlite:

            def rc_fx(cur: object, day: object, payment: object) -> str | None:
                pair = table.get((str(cur), int(day)))  # type: ignore[call-overload]
                return None if pair is None else pair[0 if payment else 1]

            conn.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
                "rc_fx", 3, rc_fx, deterministic=True
            )
            return None
        rows = ", ".join(f"('{cur}', {d}, '{r}', '{n}')" for (cur, d), (r, n) in table.items())
        text = (
            "SELECT column1 AS cur, column2 AS day, CAST(column3 AS NUMERIC) AS rate, "
            f"CAST(column4 AS NUMERIC) AS neg FROM (VALUES {rows}) AS day_rates"
        )
        return (
            sa.text(text)
            .columns(
                sa.column("cur", sa.String()),
                sa.column("day", sa.Integer()),
                sa.column("rate", Exact()),
                sa.column("neg", Exact()),
            )
            .subquery("fxr")
        )

    def _baseline(self, conn: Connection, t: datetime, currency: str, fx: FxRates) -> LtvBaseline:
        """The LTV baseline: net payments (each converted at its own date) of the
        customers registered by ``t`` with a successful payment by ``t``, and their count.

        Every payment counts (whoever pays is a payer) except those of customers who
        register later, so the payments come from the daily cash totals (plus the
        transactions of ``t``'s own day); only refunds (few, found by kind) need to know
        whether their customer paid. No pass over every transaction."""
        tx, c, daily = self._schema.transactions, self._schema.customers, self._schema.cash_daily
        ops = self._ops
        other = tx.alias("paid_tx")  # the refunds' own transactions table is ``tx``
        paid = (
            sa.select(other.c.id)
            .where(
                other.c.customer_id == c.c.id,
                other.c.status == "succeeded",
                other.c.kind == "payment",
                other.c.at <= t,
            )
            .exists()
        )
        n = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(c).where(c.c.registered_at <= t, paid)
            ).scalar()
            or 0
        )
        if n == 0:
            return LtvBaseline(total=Money.zero(currency), paying_customers=0)
        today = moment_value(t) // _DAY_US
        succeeded = [tx.c.status == "succeeded", tx.c.at <= t]
        sums: list[tuple[str, int, Any, int]] = []  # (currency, day, amount, sign)
        for cur, d, value in conn.execute(
            sa.select(daily.c.currency, daily.c.day, daily.c.amount).where(
                daily.c.kind == "payment", daily.c.day < today
            )
        ):
            sums.append((cur, int(d), value, 1))
        parts: list[tuple[list[ColumnElement[bool]], Any, int]] = [
            # t's own day, up to t:
            ([*succeeded, tx.c.kind == "payment", tx.c.at_day == today], tx, 1),
            # payments of customers registered after t:
            (
                [
                    *succeeded,
                    tx.c.kind == "payment",
                    tx.c.customer_id.in_(sa.select(c.c.id).where(c.c.registered_at > t)),
                ],
                tx,
                -1,
            ),
            # refunds of the customers who count:
            (
                [*succeeded, tx.c.kind == "refund", c.c.registered_at <= t, paid],
                tx.join(c, c.c.id == tx.c.customer_id),
                -1,
            ),
        ]
        for conds, source, sign in parts:
            stmt = (
                sa.select(tx.c.currency, tx.c.at_day, ops.dsum(tx.c))
                .select_from(source)
                .where(*conds)
                .group_by(tx.c.currency, tx.c.at_day)
            )
            sums.extend((cur, int(d), value, sign) for cur, d, value in conn.execute(stmt))
        total = _ZERO
        for cur, d, value, sign in sums:
            amount = _dec(value)
            if not amount:
                continue
            if cur != currency:
                amount *= fx.rate(cur, currency, EPOCH_DATE + timedelta(days=d))
            total += amount if sign > 0 else -amount
        return LtvBaseline(total=Money(total, currency), paying_customers=n)

    def _high_value(
        self,
        t: datetime,
        currency: str,
        baseline: LtvBaseline,
        day_rates: Any,
        ids: Sequence[str] | None,
        *,
        foreign: bool,
    ) -> Any:
        """Ids of the customers whose LTV (net payments up to ``t``, each converted at its
        own date) exceeds the baseline exactly: ``ltv * paying_customers > total``.
        ``foreign``: some of those payments are in other currencies (see _day_rates)."""
        tx = self._schema.transactions
        ops = self._ops
        payment = tx.c.kind == "payment"
        conds = [tx.c.status == "succeeded", tx.c.at <= t]
        if ids is not None:
            conds.append(tx.c.customer_id.in_(list(ids)))
        source: Any = tx
        n = sa.literal(baseline.paying_customers, sa.Integer())
        total = sa.literal(baseline.total.amount, Exact())
        if self._sqlite:
            own_sign = sa.case(
                (sa.and_(tx.c.currency == currency, payment), 1),
                (tx.c.currency == currency, -1),
                else_=0,
            )
            own = ops.dsum(tx.c, sign=own_sign)
            others: ColumnElement[Any] = sa.literal_column("'0'")
            if foreign:
                factor = sa.func.rc_fx(tx.c.currency, tx.c.at_day, payment)
                others = sa.func.coalesce(
                    sa.func.rc_dsumx(tx.c.amount, factor), sa.literal_column("'0'")
                )
            test: ColumnElement[Any] = sa.func.rc_dover(own, others, n, total) == 1
        else:
            sign: ColumnElement[Any] = sa.case((payment, 1), else_=-1)
            if foreign:
                source = tx.outerjoin(
                    day_rates,
                    sa.and_(day_rates.c.cur == tx.c.currency, day_rates.c.day == tx.c.at_day),
                )
                converted = sa.case((payment, day_rates.c.rate), else_=day_rates.c.neg)
                sign = sa.func.coalesce(converted, sign)
            test = sa.func.sum(tx.c.amount * sign) * n > total
        return (
            sa.select(tx.c.customer_id)
            .select_from(source)
            .where(*conds)
            .group_by(tx.c.customer_id)
            .having(test)
        )

    def _scheduled(
        self, conn: Connection, t: datetime, horizon: datetime, ids: Sequence[str] | None
    ) -> set[str]:
        """Customers with a cancellation scheduled for the end of the billing period
        running at ``t`` that ends by ``horizon``: few rows, so the period end is
        computed here with :class:`~revcrm.BillingCycle` itself."""
        st = self._schema.states
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        stmt = sa.select(st.c.customer_id, st.c.anchor, st.c.cycle_count, st.c.cycle_unit).where(
            running, st.c.cancel_at_period_end, st.c.status.not_in(_ENDED)
        )
        if ids is not None:
            stmt = stmt.where(st.c.customer_id.in_(list(ids)))
        out: set[str] = set()
        for cid, anchor, count, unit in conn.execute(stmt):
            if cid in out:
                continue
            cycle = BillingCycle(int(count), CycleUnit(unit))
            if cycle.period_containing(_as_moment(anchor), t)[1] <= horizon:
                out.add(cid)
        return out

    def _scheduled_ends(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, datetime]:
        """Per customer, the earliest end of a billing period running at ``t`` for which a
        cancellation is scheduled (``pending_cancellation``; computed with BillingCycle)."""
        st = self._schema.states
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        stmt = sa.select(st.c.customer_id, st.c.anchor, st.c.cycle_count, st.c.cycle_unit).where(
            running, st.c.cancel_at_period_end, st.c.status.not_in(_ENDED)
        )
        if ids is not None:
            stmt = stmt.where(st.c.customer_id.in_(list(ids)))
        out: dict[str, datetime] = {}
        for cid, anchor, count, unit in conn.execute(stmt):
            end = BillingCycle(int(count), CycleUnit(unit)).period_containing(
                _as_moment(anchor), t
            )[1]
            if cid not in out or end < out[cid]:
                out[cid] = end
        return out

    def _service_facts(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, list[ServiceFacts]]:
        """The raw facts the cycle-aware Active rule reads, per customer: for each service
        active at ``t`` its cycle and current period (computed here with BillingCycle) and
        how far its (paid) invoices reach (one grouped pass over the invoice lines). The
        rule itself is ``revcrm.segments._rules.service_paid_up``."""
        s = self._schema
        st, inv, ln = s.states, s.invoices, s.lines
        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        stmt = sa.select(
            st.c.customer_id, st.c.subscription_id, st.c.anchor, st.c.cycle_count, st.c.cycle_unit
        ).where(running, self._active_state(t))
        if ids is not None:
            stmt = stmt.where(st.c.customer_id.in_(list(ids)))
        rows = list(conn.execute(stmt))
        if not rows:
            return {}
        active = sa.select(st.c.subscription_id).where(running, self._active_state(t))
        if ids is not None:
            active = active.where(st.c.customer_id.in_(list(ids)))
        paid = sa.and_(inv.c.status == "paid", sa.or_(inv.c.paid_at.is_(None), inv.c.paid_at <= t))
        reach: dict[str, tuple[datetime | None, datetime | None]] = {}
        for sub_id, billed, paid_end in conn.execute(
            sa.select(
                ln.c.subscription_id,
                sa.func.max(ln.c.period_end),
                sa.func.max(sa.case((paid, ln.c.period_end), else_=None)),
            )
            .select_from(ln.join(inv, inv.c.id == ln.c.invoice_id))
            .where(
                ln.c.subscription_id.in_(active),
                ln.c.period_start.is_not(None),
                ln.c.period_start <= t,
                inv.c.issued_at <= t,
                inv.c.status.not_in(("draft", "void")),
            )
            .group_by(ln.c.subscription_id)
        ):
            reach[str(sub_id)] = (
                None if billed is None else _as_moment(billed),
                None if paid_end is None else _as_moment(paid_end),
            )
        cycles: dict[tuple[int, str], BillingCycle] = {}
        out: dict[str, list[ServiceFacts]] = defaultdict(list)
        for cid, sub_id, anchor, count, unit in sorted(rows, key=lambda r: (r[0], r[1])):
            key = (int(count), str(unit))
            cycle = cycles.get(key)
            if cycle is None:
                cycle = cycles[key] = BillingCycle(key[0], CycleUnit(key[1]))
            start, end = cycle.period_containing(_as_moment(anchor), t)
            billed, paid_end = reach.get(sub_id, (None, None))
            out[cid].append(
                ServiceFacts(
                    subscription_id=sub_id,
                    cycle=cycle,
                    period_start=start,
                    period_end=end,
                    billed_through=billed,
                    paid_through=paid_end,
                )
            )
        return out

    def _last_payments(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, datetime]:
        """Each customer's last successful payment up to ``t``."""
        tx = self._schema.transactions
        stmt = (
            sa.select(tx.c.customer_id, sa.func.max(tx.c.at))
            .where(tx.c.status == "succeeded", tx.c.kind == "payment", tx.c.at <= t)
            .group_by(tx.c.customer_id)
        )
        if ids is not None:
            stmt = stmt.where(tx.c.customer_id.in_(list(ids)))
        return {str(cid): _as_moment(at) for cid, at in conn.execute(stmt)}

    def _paid_up(
        self, conn: Connection, t: datetime, config: SegmentConfig, ids: Sequence[str] | None
    ) -> set[str]:
        """Customers with an active service whose current period is paid at ``t``, by the
        rule of ``revcrm.segments`` applied to the facts read here."""
        services = self._service_facts(conn, t, ids)
        if not services:
            return set()
        last = self._last_payments(conn, t, ids)
        return {
            cid
            for cid, facts in services.items()
            if any(service_paid_up(f, last.get(cid), t, config) for f in facts)
        }

    def _segment_conds(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        config: SegmentConfig,
        ids: Sequence[str] | None = None,
        wanted: Segment | None = None,
    ) -> dict[Segment, ColumnElement[bool]]:
        """Membership of each built-in segment at ``t`` as a condition on the customers
        table (the rules of ``revcrm.segments._rules.memberships``; the cycle-aware Active
        rule is applied in Python to the facts of ``_service_facts``). With ``ids``
        only those customers' conditions are meant to be true to the definition (the
        per-customer parts are computed for them alone). With ``wanted`` only that
        segment's condition is (the LTV baseline is computed only when it needs it)."""
        s = self._schema
        c, st, sp, inv = s.customers, s.states, s.spans, s.invoices
        every = wanted is None or wanted is Segment.OTHER
        registered = c.c.registered_at <= t
        active_service = self._states_at(t, self._active_state(t), ids=ids)
        horizon = t + timedelta(days=config.at_risk_cancellation_days)
        risks = [
            self._overdue(t, ids),
            self._states_at(t, st.c.status.in_(_TROUBLED), ids=ids),
            self._states_at(
                t,
                st.c.status == "cancelled",
                st.c.ended_at > t,
                st.c.ended_at <= horizon,
                ids=ids,
            ),
        ]
        if every or wanted is Segment.AT_RISK:
            scheduled = self._scheduled(conn, t, horizon, ids)
            if scheduled:
                risks.append(c.c.id.in_(_literal_ids(scheduled)))
        high: ColumnElement[bool] = sa.false()
        if every or wanted is Segment.HIGH_VALUE:
            fx = self._rates(conn)
            days = self._payment_days(conn, t, currency, fx)
            baseline = self._baseline(conn, t, currency, fx)
            if baseline.paying_customers:
                rates = self._day_rates(conn, days, fx, currency) if days else None
                above = self._high_value(t, currency, baseline, rates, ids, foreign=bool(days))
                exceeds: ColumnElement[bool] = c.c.id.in_(above)
                if baseline.total.amount < 0:
                    # Refunds outweigh payments: an LTV of zero (no cash at all) is above.
                    tx = s.transactions
                    cash = self._owners(tx, tx.c.status == "succeeded", tx.c.at <= t, ids=ids)
                    exceeds = sa.or_(exceeds, ~cash)
                high = sa.and_(active_service, exceeds)
        active: ColumnElement[bool] = sa.false()
        if config.active_payment_days is not None:
            since = t - timedelta(days=config.active_payment_days)
            active = sa.and_(active_service, self._paid(since, t, ids))
        elif every or wanted is Segment.ACTIVE:
            # The rule is cycle-aware: applied in Python to the facts (few per customer).
            paid_up = self._paid_up(conn, t, config, ids)
            if paid_up:
                active = c.c.id.in_(_literal_ids(paid_up))
        subscribed = self._owners(sp, sp.c.positive, sp.c.start_at <= t, ids=ids)
        started = self._owners(st, st.c.from_at <= t, ids=ids)
        invoiced = self._owners(
            inv, inv.c.issued_at <= t, inv.c.status.not_in(("draft", "void")), ids=ids
        )
        named: dict[Segment, ColumnElement[bool]] = {
            Segment.AT_RISK: sa.or_(*risks),
            Segment.HIGH_VALUE: high,
            Segment.NEW: c.c.registered_at >= t - timedelta(days=config.new_customer_days),
            Segment.ACTIVE: active,
            Segment.CHURNED: sa.and_(subscribed, ~active_service),
            Segment.NEVER_PURCHASED: ~sa.or_(started, invoiced, self._paid(None, t, ids)),
        }
        out = {seg: sa.and_(registered, cond) for seg, cond in named.items()}
        out[Segment.OTHER] = sa.and_(registered, ~sa.or_(*named.values()))
        return out

    def _service_filters(self, conn: Connection, q: CustomerQuery) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if q.status is not None:
            conds.append(self._status_cond(q.as_of, q.status))
        if q.product_id is not None:
            conds.append(self._product_cond(q.as_of, q.product_id))
        if q.segment is not None:
            segs = self._segment_conds(
                conn, q.as_of, q.currency, q.segment_config, wanted=q.segment
            )
            conds.append(segs[q.segment])
        return conds

    def _segment_flags(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        config: SegmentConfig,
        ids: Sequence[str] | None,
    ) -> sa.Select[Any]:
        """One row per registered customer (of ``ids``): its id and a 0/1 per named segment."""
        c = self._schema.customers
        conds = self._segment_conds(conn, t, currency, config, ids)
        flags = [sa.case((conds[seg], 1), else_=0).label(seg.value) for seg in _NAMED]
        stmt = sa.select(c.c.id, *flags).where(c.c.registered_at <= t)
        if ids is not None:
            stmt = stmt.where(c.c.id.in_(list(ids)))
        return stmt

    def _all_segments(
        self, conn: Connection, t: datetime, currency: str, config: SegmentConfig
    ) -> Iterator[frozenset[Segment]]:
        """The segments of every customer registered by ``t``, from one grouped pass over
        each table (states, invoices, transactions, spans, invoice lines) turned into each
        customer's facts and classified by ``revcrm.segments._rules.memberships`` (the one
        definition): a handful of scans in all, where one condition per segment
        would scan the same tables again and again."""
        s = self._schema
        c, st, inv, tx, sp = s.customers, s.states, s.invoices, s.transactions, s.spans
        ops = self._ops
        fx = self._rates(conn)
        days = self._payment_days(conn, t, currency, fx)

        def flag(cond: ColumnElement[bool]) -> ColumnElement[Any]:
            return sa.func.max(sa.case((cond, 1), else_=0))

        running = sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))
        ending = sa.and_(st.c.status == "cancelled", st.c.ended_at > t)
        services: dict[str, tuple[int, datetime | None, int]] = {
            cid: (int(troubled), None if ends is None else _as_moment(ends), int(active))
            for cid, troubled, ends, active in conn.execute(
                sa.select(
                    st.c.customer_id,
                    sa.func.sum(sa.case((st.c.status.in_(_TROUBLED), 1), else_=0)),
                    sa.func.min(sa.case((ending, st.c.ended_at), else_=None)),
                    sa.func.sum(sa.case((self._active_state(t), 1), else_=0)),
                )
                .where(running)
                .group_by(st.c.customer_id)
            )
        }
        scheduled = self._scheduled_ends(conn, t, None)
        service_facts = self._service_facts(conn, t, None)
        unpaid = sa.or_(
            inv.c.status == "open",
            sa.and_(inv.c.status == "paid", inv.c.paid_at.is_not(None), inv.c.paid_at > t),
        )
        invoices = {
            cid: (int(overdue), int(issued))
            for cid, overdue, issued in conn.execute(
                sa.select(
                    inv.c.customer_id,
                    flag(sa.and_(unpaid, inv.c.due_date < t.date())),
                    flag(inv.c.status.not_in(("draft", "void"))),
                )
                .where(inv.c.issued_at <= t)
                .group_by(inv.c.customer_id)
            )
        }
        payment = tx.c.kind == "payment"
        own_sign = sa.case(
            (sa.and_(tx.c.currency == currency, payment), 1),
            (tx.c.currency == currency, -1),
            else_=0,
        )
        columns: list[ColumnElement[Any]] = [
            tx.c.customer_id,
            flag(payment),
            sa.func.max(sa.case((payment, tx.c.at), else_=None)),
            ops.dsum(tx.c, sign=own_sign),
        ]
        source: Any = tx
        if days:
            rates = self._day_rates(conn, days, fx, currency)
            if self._sqlite:
                factor = sa.func.rc_fx(tx.c.currency, tx.c.at_day, payment)
                columns.append(sa.func.rc_dsumx(tx.c.amount, factor))
            else:
                source = tx.outerjoin(
                    rates, sa.and_(rates.c.cur == tx.c.currency, rates.c.day == tx.c.at_day)
                )
                converted = sa.case((payment, rates.c.rate), else_=rates.c.neg)
                columns.append(sa.func.sum(tx.c.amount * converted))
        cash: dict[str, tuple[int, datetime | None, Decimal]] = {}
        stmt = (
            sa.select(*columns)
            .select_from(source)
            .where(tx.c.status == "succeeded", tx.c.at <= t)
            .group_by(tx.c.customer_id)
        )
        for row in conn.execute(stmt):
            cid, paid, last, own, *foreign = tuple(row)
            ltv = _dec(own) + (_dec(foreign[0]) if foreign else _ZERO)
            cash[cid] = (int(paid), None if last is None else _as_moment(last), ltv)
        subscribed = {
            cid: _as_moment(since)
            for cid, since in conn.execute(
                sa.select(sp.c.customer_id, sa.func.min(sp.c.start_at))
                .where(sp.c.positive, sp.c.start_at <= t)
                .group_by(sp.c.customer_id)
            )
        }
        registered = {
            cid: _as_moment(at)
            for cid, at in conn.execute(
                sa.select(c.c.id, c.c.registered_at).where(c.c.registered_at <= t)
            )
        }
        # The High Value baseline: net payments of the registered customers who paid.
        payers = [cash[cid][2] for cid in registered if cid in cash and cash[cid][0]]
        baseline = LtvBaseline(
            total=Money(sum(payers, _ZERO), currency), paying_customers=len(payers)
        )
        for cid, registered_at in registered.items():
            troubled, ends, active = services.get(cid, (0, None, 0))
            overdue, issued = invoices.get(cid, (0, 0))
            paid, last, ltv = cash.get(cid, (0, None, _ZERO))
            scheduled_end = scheduled.get(cid)
            if ends is None or (scheduled_end is not None and scheduled_end < ends):
                ends = scheduled_end
            facts = SegmentInputs(
                as_of=t,
                registered_at=registered_at,
                ltv=Money(ltv, currency),
                last_payment_at=last,
                active_services=active,
                troubled_services=troubled,
                overdue_invoices=overdue,
                next_cancellation_at=ends,
                subscriber_since=subscribed.get(cid),
                ordered=bool(cid in services or issued or paid),
                services=tuple(service_facts.get(cid, ())),
            )
            yield memberships(facts, config, baseline)

    def ltv_baseline(self, *, as_of: date | datetime, currency: str) -> LtvBaseline:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)

        def run(conn: Connection) -> LtvBaseline:
            fx = self._rates(conn)
            self._payment_days(conn, t, currency, fx)  # MissingRateError as the pure function
            return self._baseline(conn, t, currency, fx)

        return self._run(False, run)

    def segment_counts(
        self, *, as_of: date | datetime, currency: str, config: SegmentConfig = DEFAULT_CONFIG
    ) -> SegmentCounts:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)

        def run(conn: Connection) -> SegmentCounts:
            members: Counter[Segment] = Counter()
            primary: Counter[Segment] = Counter()
            customers = 0
            for segs, n in Counter(self._all_segments(conn, t, currency, config)).items():
                for seg in segs:
                    members[seg] += n
                primary[next(p for p in config.precedence if p in segs)] += n
                customers += n
            return SegmentCounts(
                customers=customers,
                members=MappingProxyType({seg: members[seg] for seg in Segment}),
                primary=MappingProxyType({seg: primary[seg] for seg in Segment}),
                custom=MappingProxyType({}),
            )

        return self._run(False, run)

    def segments_of(
        self,
        customer_ids: Iterable[str],
        *,
        as_of: date | datetime,
        currency: str,
        config: SegmentConfig = DEFAULT_CONFIG,
    ) -> dict[str, frozenset[Segment]]:
        wanted = _id_list(customer_ids)
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)

        def run(conn: Connection) -> dict[str, frozenset[Segment]]:
            c = self._schema.customers
            unique = sorted(set(wanted))
            known = self._existing_ids(conn, "customer", unique)
            for cid in wanted:
                if cid not in known:
                    raise NotFoundError("customer", cid)
            found: dict[str, frozenset[Segment]] = {}
            for chunk in _chunks(unique):
                stmt = self._segment_flags(conn, t, currency, config, chunk)
                for row in conn.execute(stmt):
                    cid, *bits = tuple(row)
                    segs = {seg for seg, bit in zip(_NAMED, bits, strict=True) if bit}
                    found[cid] = frozenset(segs or {Segment.OTHER})
            del c
            return {cid: found.get(cid, frozenset()) for cid in wanted}

        return self._run(False, run)

    def _rows(
        self,
        conn: Connection,
        ids: Sequence[str],
        *,
        at: datetime,
        currency: str,
        rates: Mapping[str, Decimal],
    ) -> list[CustomerRow]:
        if not ids:
            return []
        c = self._schema.customers
        customers = {x.id: x for x in self._load(conn, "customer", c.c.id.in_(list(ids)))}
        figures = self._figures(conn, ids, at=at, currency=currency, rates=rates)
        out = []
        for cid in ids:
            mrr, ltv, paid, credit, active, last = figures[cid]
            out.append(
                CustomerRow(
                    customer=customers[cid],
                    mrr=Money(mrr, currency),
                    ltv=Money(ltv, currency),
                    total_paid=Money(paid, currency),
                    credit_balance=Money(credit, currency),
                    active_services=active,
                    last_payment_at=last,
                )
            )
        return out

    def customer_summary(
        self, customer_id: str, *, as_of: date | datetime, currency: str
    ) -> CustomerSummary:
        read_text(customer_id, "customer_id")
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)

        def run(conn: Connection) -> CustomerSummary:
            # One customer's rows are few: load them (indexed by customer) and compute its
            # figures from them exactly as the in-memory store does.
            found = self._load(conn, "customer", self._schema.customers.c.id == customer_id)
            if not found:
                raise NotFoundError("customer", customer_id)

            def owned(kind: str, time_column: str) -> tuple[Any, ...]:
                head = self._head(kind)
                order = [head.c[time_column], head.c.id]
                return tuple(self._load(conn, kind, head.c.customer_id == customer_id, order=order))

            return ref.summary_of(
                found[0],
                owned("subscription", "started_at"),
                owned("invoice", "issued_at"),
                owned("transaction", "at"),
                owned("credit", "at"),
                fx=self._rates(conn),
                at=t,
                currency=currency,
                policy=self._policy,
            )

        return self._run(False, run)

    # -- dashboard aggregates ------------------------------------------------------------

    def _money(self, cols: Any, name: str = "amount") -> list[ColumnElement[Any]]:
        """A money column and its limbs, to carry through a subquery."""
        out = [cols[name]]
        if self._sqlite:
            out += [cols[f"{name}_l{k}"] for k in range(LIMBS)]
        return out

    def _period_keys(self, sp: Any, t: datetime, *, before_anchor_starts: bool) -> list[Any]:
        """Group keys from which the start date of the billing period running at ``t``
        follows (``BillingCycle.period_containing``), cheap to compute per row in SQL:

        * (0, months per cycle, anchor month modulo the cycle, anchor day, anchor later in
          its day than ``t``) for month and year cycles: the few combinations are finished
          in Python (``_period_day``);
        * (1, start day, ...) for week and day cycles, computed here in integers;
        * (2, span start day, ...) before the anchor when ``before_anchor_starts``.
        """
        big = sa.BigInteger()
        t_us = moment_value(t)
        us = sa.literal(t_us, big)
        day_us = sa.literal(_DAY_US, big)
        monthly = sp.cycle_months.is_not(None)
        step = sp.cycle_us
        phase = ((us - sp.anchor_us) % step + step) % step  # floor modulo: SQL's % truncates
        since = us - phase
        step_day = sa.case((since >= 0, since // day_us), else_=-((day_us - 1 - since) // day_us))
        later = sa.case((sp.anchor_tod > sa.literal(t_us % _DAY_US, big), 1), else_=0)
        keys = [
            sa.case((monthly, 0), else_=1),
            sa.case((monthly, sp.cycle_months), else_=step_day),
            sa.case((monthly, sp.anchor_month % sp.cycle_months), else_=sa.null()),
            sa.case((monthly, sp.anchor_day), else_=sa.null()),
            sa.case((monthly, later), else_=sa.null()),
        ]
        if before_anchor_starts:
            early = sp.anchor_us > us
            keys = [
                sa.case((early, 2), else_=keys[0]),
                sa.case((early, sp.start_day), else_=keys[1]),
                *(sa.case((early, sa.null()), else_=k) for k in keys[2:]),
            ]
        return keys

    @staticmethod
    def _period_day(keys: Sequence[Any], t: datetime) -> date:
        kind, x, residue, day, later = keys
        if int(kind) != 0:
            return EPOCH_DATE + timedelta(days=int(x))
        c, anchor_day = int(x), int(day)
        now = _month_index(t)
        k = now - (now - int(residue)) % c  # the latest month <= t's with the anchor's phase
        d = min(anchor_day, _days_in(k))
        if k == now and (d > t.day or (d == t.day and later)):
            k -= c  # that month's billing moment is still ahead of t
            d = min(anchor_day, _days_in(k))
        return date(k // 12, k % 12 + 1, d)

    def _billing_class(self, sp: Any) -> list[Any]:
        """What decides a span's conversion date at a month-start close, per span:

        * (0, months per cycle, anchor month modulo the cycle, anchor day) for month and
          year cycles;
        * (1, cycle in microseconds, anchor phase within the cycle, 0) for week and day
          cycles;
        * (2, start day, 0, 0) for spans before their anchor (converted at their start).

        Every span of a class converts on the same date at a given close, so levels are
        summed per class in SQL and only (class, close) pairs are converted here.
        """
        monthly = sp.cycle_months.is_not(None)
        early = sp.start_at < sp.anchor
        step = sp.cycle_us
        phase = (sp.anchor_us % step + step) % step
        return [
            sa.case((early, 2), (monthly, 0), else_=1),
            sa.case((early, sp.start_day), (monthly, sp.cycle_months), else_=step),
            sa.case((early, 0), (monthly, sp.anchor_month % sp.cycle_months), else_=phase),
            sa.case((early, 0), (monthly, sp.anchor_day), else_=0),
        ]

    @staticmethod
    def _class_day(cls: tuple[int, int, int, int], t: datetime) -> date:
        kind, x, y, z = cls
        if kind == 2:
            return EPOCH_DATE + timedelta(days=x)
        if kind == 1:
            t_us = moment_value(t)
            return EPOCH_DATE + timedelta(days=(t_us - (t_us - y) % x) // _DAY_US)
        return SQLStore._period_day((0, x, y, z, 0), t)

    def _foreign_series(
        self, conn: Connection, closes: Sequence[datetime], currency: str
    ) -> list[Decimal]:
        """Foreign MRR just before each month-start close under the service-period rule:
        levels per (currency, billing class) by the delta method, then converted."""
        if not closes:
            return []
        sp = self._schema.spans
        classes = self._billing_class(sp.c)
        names = ["c0", "c1", "c2", "c3"]
        foreign = [sp.c.positive, sp.c.currency != currency]
        first, last = closes[0], closes[-1]
        base = _month_index(first) - 1
        n = len(closes)
        # Per (currency, class) and bucket: exact amounts as integer units of 1e-48 (from
        # SQLite's limbs) plus an exact Decimal rest, so the hot loop adds integers.
        Class = tuple[int, int, int, int]
        units: dict[tuple[str, Class], list[int]] = defaultdict(lambda: [0] * n)
        rests: dict[tuple[str, Class], list[Decimal]] = {}
        queries: list[tuple[Any, list[ColumnElement[bool]], int]] = [
            (sa.literal(0), [self._contains(first - _ONE_MICRO, scan=True)], 1)
        ]
        for at, month, sign in (
            (self._span_moment("start_at", True), sp.c.start_month, 1),
            (self._span_moment("end_at", True), sp.c.end_month, -1),
        ):
            queries.append((month - base, [at >= first, at < last], sign))
        for bucket, conds, sign in queries:
            inner = (
                sa.select(
                    sp.c.currency.label("cur"),
                    *(c.label(n) for c, n in zip(classes, names, strict=True)),
                    bucket.label("b"),
                    *self._money(sp.c),
                )
                .where(*foreign, *conds)
                .subquery()
            )
            group = [inner.c.cur, *(inner.c[n] for n in names), inner.c.b]
            stmt: sa.Select[Any] = sa.select(*group, self._ops.dsum(inner.c)).group_by(*group)
            for row in conn.execute(stmt):
                values: Any = tuple(row)
                key = (values[0], (int(values[1]), int(values[2]), int(values[3]), int(values[4])))
                whole, rest = _split(values[6])
                units[key][int(values[5])] += sign * whole
                if rest:
                    rests.setdefault(key, [_ZERO] * n)[int(values[5])] += sign * rest
        per_day: list[dict[tuple[str, date], list[Any]]] = [{} for _ in closes]
        days: dict[tuple[Class, int], date] = {}  # currencies share classes
        for key, deltas in units.items():
            cur, cls = key
            extra = rests.get(key)
            level, level_rest = 0, _ZERO
            for i in range(n):
                level += deltas[i]
                if extra is not None:
                    level_rest += extra[i]
                if level == 0 and level_rest == 0:
                    continue
                day = days.get((cls, i))
                if day is None:
                    day = self._class_day(cls, closes[i] - _ONE_MICRO)
                    days[(cls, i)] = day
                slot = per_day[i].setdefault((cur, day), [0, _ZERO])
                slot[0] += level
                slot[1] += level_rest
        fx: FxRates | None = None
        out = []
        for i in range(n):
            total = _ZERO
            for (cur, day), (whole, rest) in per_day[i].items():
                value = _units_value(whole) + rest
                if value != 0:
                    fx = fx or self._rates(conn)
                    total += value * fx.rate(cur, currency, day)
            out.append(total)
        return out

    def _foreign_mrr(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        conds: Sequence[ColumnElement[bool]],
        *,
        before_anchor_starts: bool,
        measured_on: date,
        include_own: bool = False,
    ) -> Decimal:
        """MRR of the spans matching ``conds`` in other currencies (and in ``currency`` too
        with ``include_own``), converted under the policy: at the start of each billing
        period, or on ``measured_on``. Summed per currency and billing calendar in one
        pass in SQL; the groups are converted here."""
        sp = self._schema.spans
        by_period = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
        cols: list[ColumnElement[Any]] = [sp.c.currency.label("cur"), *self._money(sp.c)]
        names = ["k0", "k1", "k2", "k3", "k4"]
        if by_period:
            keys = self._period_keys(sp.c, t, before_anchor_starts=before_anchor_starts)
            own = sp.c.currency == currency
            # Amounts already in ``currency`` need no date: one group per query.
            cols += [
                sa.case((own, sa.null()), else_=k).label(n)
                for k, n in zip(keys, names, strict=True)
            ]
        which = [] if include_own else [sp.c.currency != currency]
        inner = sa.select(*cols).where(*which, *conds).subquery()
        group: list[ColumnElement[Any]] = [inner.c.cur]
        if by_period:
            group += [inner.c[n] for n in names]
        stmt: sa.Select[Any] = sa.select(*group, self._ops.dsum(inner.c)).group_by(*group)
        sums: dict[tuple[str, date | None], list[Any]] = {}
        for row in conn.execute(stmt):
            values: Any = tuple(row)
            cur = values[0]
            day = None
            if cur != currency:
                day = self._period_day(values[1:6], t) if by_period else measured_on
            whole, rest = _split(values[-1])
            slot = sums.setdefault((cur, day), [0, _ZERO])
            slot[0] += whole
            slot[1] += rest
        fx: FxRates | None = None
        total = _ZERO
        for (cur, day), (whole, rest) in sums.items():
            value = _units_value(whole) + rest
            if value == 0:
                continue
            if day is None:
                total += value
            else:
                fx = fx or self._rates(conn)
                total += value * fx.rate(cur, currency, day)
        return total

    def mrr(
        self, *, at: date | datetime, currency: str, customer_ids: Iterable[str] | None = None
    ) -> Money:
        t = as_of_moment(at, "at")
        check_currency(currency)
        ids = None if customer_ids is None else sorted(set(_id_list(customer_ids)))

        def run(conn: Connection) -> Money:
            sp = self._schema.spans
            chunks: list[Sequence[str] | None] = [None] if ids is None else list(_chunks(ids))
            total = _ZERO
            for chunk in chunks:
                conds = [sp.c.positive, self._contains(t, scan=chunk is None)]
                if chunk is not None:
                    conds.append(sp.c.customer_id.in_(chunk))
                total += self._foreign_mrr(
                    conn,
                    t,
                    currency,
                    conds,
                    before_anchor_starts=False,
                    measured_on=t.date(),
                    include_own=True,
                )
            return Money(total, currency)

        return self._run(False, run)

    def mrr_series(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[MrrPoint, ...]:
        a, b = _range(start, end)
        check_currency(currency)
        months = ref.month_bounds(a, b)
        if not months:
            return ()
        closes = [m[1] for m in months]

        def run(conn: Connection) -> tuple[MrrPoint, ...]:
            sp = self._schema.spans
            by_period = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
            levels: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO] * len(closes))
            # Amounts not converted per billing period: deltas (+amount at each span start,
            # -amount at its end) bucketed by the first close after them, summed in one
            # pass, then accumulated here.
            native = sp.c.currency == currency if by_period else sa.true()
            first = closes[0]
            # The level at the first close: spans running just before it.
            before = (
                sa.select(sp.c.currency, self._ops.dsum(sp.c))
                .where(sp.c.positive, native, self._contains(first - _ONE_MICRO, scan=True))
                .group_by(sp.c.currency)
            )
            for cur, value in conn.execute(before):
                levels[cur][0] += _dec(value)
            # Then the changes up to each later close (all but the last close are month
            # starts): +amount where a span starts, -amount where one ends, bucketed by
            # month in one pass each.
            base = _month_index(first) - 1
            last = closes[-1]
            for at, month, sign in (
                (self._span_moment("start_at", True), sp.c.start_month, 1),
                (self._span_moment("end_at", True), sp.c.end_month, -1),
            ):
                inner = (
                    sa.select(
                        sp.c.currency.label("cur"), (month - base).label("b"), *self._money(sp.c)
                    )
                    .where(sp.c.positive, native, at >= first, at < last)
                    .subquery()
                )
                stmt = sa.select(inner.c.cur, inner.c.b, self._ops.dsum(inner.c)).group_by(
                    inner.c.cur, inner.c.b
                )
                for cur, i, value in conn.execute(stmt):
                    levels[cur][int(i)] += sign * _dec(value)
            fx: FxRates | None = None
            totals = [_ZERO] * len(closes)
            for cur, deltas in sorted(levels.items()):
                level = _ZERO
                for i, d in enumerate(deltas):
                    level += d
                    if level == 0:
                        continue
                    if cur == currency:
                        totals[i] += level
                    else:
                        fx = fx or self._rates(conn)
                        totals[i] += level * fx.rate(cur, currency, closes[i].date())
            if by_period:
                # Foreign currencies under the service-period rule: each close converts at
                # the start of the billing period running just before it. Month-start
                # closes go through billing classes in one pass; a clipped last close
                # (any moment) gets its own query.
                regular = closes if closes[-1] == ref.month_start(closes[-1]) else closes[:-1]
                for i, value in enumerate(self._foreign_series(conn, regular, currency)):
                    totals[i] += value
                for i in range(len(regular), len(closes)):
                    just_before = closes[i] - _ONE_MICRO
                    conds = [
                        sp.c.positive,
                        sp.c.start_at <= just_before,
                        sa.or_(sp.c.end_at.is_(None), sp.c.end_at > just_before),
                    ]
                    totals[i] += self._foreign_mrr(
                        conn,
                        just_before,
                        currency,
                        conds,
                        before_anchor_starts=True,
                        measured_on=closes[i].date(),
                    )
            return tuple(
                MrrPoint(start=p[0], end=p[1], mrr=Money(v, currency))
                for p, v in zip(months, totals, strict=True)
            )

        return self._run(False, run)

    def cash_by_month(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[CashMonth, ...]:
        a, b = _range(start, end)
        check_currency(currency)
        months = ref.month_bounds(a, b)
        if not months:
            return ()
        first, last = months[0][0], months[-1][1]
        starts = [m[0] for m in months]

        def run(conn: Connection) -> tuple[CashMonth, ...]:
            # Whole UTC days come from the daily totals; the partial days at either end
            # (when start or end is not midnight) from the transactions themselves.
            rows: list[tuple[int, str, str, Any, int, datetime]] = []
            day0 = -(-moment_value(first) // _DAY_US)  # first whole day
            day1 = moment_value(last) // _DAY_US  # end of the whole days (exclusive)
            daily = self._schema.cash_daily
            if day0 < day1:
                stmt = sa.select(
                    daily.c.day, daily.c.currency, daily.c.kind, daily.c.amount, daily.c.count
                ).where(daily.c.day >= day0, daily.c.day < day1)
                for d, c, k, amount, n in conn.execute(stmt):
                    rows.append((int(d), c, k, amount, int(n), _day_start(int(d))))
                edges = [(first, _day_start(day0)), (_day_start(day1), last)]
            else:
                edges = [(first, last)]
            tx = self._schema.transactions
            for lo, hi in edges:
                if lo >= hi:
                    continue
                inner = (
                    sa.select(
                        tx.c.at_day.label("d"),
                        tx.c.currency.label("cur"),
                        tx.c.kind.label("kind"),
                        *self._money(tx.c),
                    )
                    .where(tx.c.status == "succeeded", tx.c.at >= lo, tx.c.at < hi)
                    .subquery()
                )
                group = [inner.c.d, inner.c.cur, inner.c.kind]
                grouped: sa.Select[Any] = sa.select(
                    *group, self._ops.dsum(inner.c), sa.func.count()
                )
                for d, c, k, amount, n in conn.execute(grouped.group_by(*group)):
                    rows.append((int(d), c, k, amount, int(n), max(lo, _day_start(int(d)))))
            gross = [_ZERO] * len(months)
            refunds = [_ZERO] * len(months)
            counts = [0] * len(months)
            fx: FxRates | None = None
            for d, cur, kind, value, n, moment in rows:
                i = bisect.bisect_right(starts, moment) - 1
                amount = _dec(value)
                if cur != currency:
                    fx = fx or self._rates(conn)
                    amount = amount * fx.rate(cur, currency, EPOCH_DATE + timedelta(days=d))
                if kind == "payment":
                    gross[i] += amount
                    counts[i] += n
                else:
                    refunds[i] += amount
            return tuple(
                CashMonth(
                    start=m[0],
                    end=m[1],
                    gross=Money(gross[i], currency),
                    refunds=Money(refunds[i], currency),
                    net=Money(gross[i] - refunds[i], currency),
                    payments=counts[i],
                )
                for i, m in enumerate(months)
            )

        return self._run(False, run)

    def paying_customers(self, *, at: date | datetime) -> int:
        t = as_of_moment(at, "at")
        sp = self._schema.spans
        stmt = sa.select(sa.func.count(sa.distinct(sp.c.customer_id))).where(
            sp.c.positive, self._contains(t, scan=True)
        )
        return self._run(False, lambda conn: int(conn.execute(stmt).scalar() or 0))

    def customer_flow(self, *, start: date | datetime, end: date | datetime) -> CustomerFlow:
        a, b = as_of_moment(start, "start"), as_of_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        sp = self._schema.spans
        at_a = sa.case((self._contains(a, scan=True), 1), else_=0)
        at_b = sa.case((self._contains(b, scan=True), 1), else_=0)
        # One pass: per customer, paying at a and/or at b; then the counts.
        per_customer = (
            sa.select(sa.func.max(at_a).label("a"), sa.func.max(at_b).label("b"))
            .where(
                sp.c.positive, sa.or_(self._contains(a, scan=True), self._contains(b, scan=True))
            )
            .group_by(sp.c.customer_id)
            .subquery()
        )
        counts = sa.select(
            sa.func.coalesce(sa.func.sum(per_customer.c.a), 0),
            sa.func.coalesce(sa.func.sum(per_customer.c.b), 0),
            sa.func.coalesce(sa.func.sum(per_customer.c.a * per_customer.c.b), 0),
        )

        def run(conn: Connection) -> CustomerFlow:
            n_a, n_b, n_k = (int(v) for v in conn.execute(counts).one())
            return CustomerFlow(
                start=a,
                end=b,
                at_start=n_a,
                at_end=n_b,
                retained=n_k,
                gained=n_b - n_k,
                lost=n_a - n_k,
            )

        return self._run(False, run)

    def dashboard(
        self, *, as_of: date | datetime, currency: str, trend_months: int = 12
    ) -> StoreDashboard:
        with self._snapshot():
            return ref.compose_dashboard(
                self, as_of=as_of, currency=currency, trend_months=trend_months
            )


@functools.cache
def _days_in(month_index: int) -> int:
    return calendar.monthrange(month_index // 12, month_index % 12 + 1)[1]


def _day_start(day: int) -> datetime:
    return moment_from_value(day * _DAY_US)


def _month_index(t: datetime) -> int:
    """``year * 12 + month - 1`` of an aware moment, in UTC."""
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


def _converted(e: sa_exc.SQLAlchemyError) -> RevcrmError:
    orig = getattr(e, "orig", None)
    detail = f"{type(orig).__name__}: {orig}" if orig is not None else f"{type(e).__name__}: {e}"
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _TRANSIENT_STATES:
        return TransientError(f"lost a race, rolled back; run the unit again ({detail.strip()})")
    return StorageError(f"database error ({detail.strip()})")


def _secret(value: object) -> bytes:
    return cursor_secret(value)


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


# -- repositories ----------------------------------------------------------------------------


class _Repo(Generic[_R]):
    time_column: str | None = None

    def __init__(self, store: SQLStore, kind: str) -> None:
        self._store = store
        self.kind = kind

    def get(self, id: str) -> _R:
        record: _R = self._store._get(self.kind, id).record
        return record

    def find(self, id: str) -> _R | None:
        found: _R | None = self._store._find(self.kind, "id", id)
        return found

    def find_by_external_id(self, external_id: str | None) -> _R | None:
        wanted = external_lookup(external_id)
        if wanted is None:
            return None  # never the records that have no external id (NULL)
        found: _R | None = self._store._find(self.kind, "external_id", wanted)
        return found

    def get_versioned(self, id: str) -> Versioned[_R]:
        v: Versioned[_R] = self._store._get(self.kind, id)
        return v

    def upsert(self, record: _R, *, expected_version: int | None = None) -> int:
        return self._store._upsert(self.kind, record, expected_version)

    def upsert_many(self, records: Iterable[_R]) -> ImportResult:
        return self._store._upsert_many(self.kind, records)

    def count(self) -> int:
        return self._store._count(self.kind)

    def for_customer(self, customer_id: str) -> tuple[_R, ...]:
        assert self.time_column is not None
        found: tuple[_R, ...] = self._store._for_customer(self.kind, customer_id, self.time_column)
        return found

    def _query(self, **options: Any) -> RecordQuery:
        return RecordQuery(kind_name=self.kind, secret=self._store._secret, **options)

    def _paged(self, q: RecordQuery) -> Page[_R]:
        page: Page[_R] = self._store._page(self.kind, q, self.time_column)
        return page


class _Customers(_Repo[Customer]):
    def delete(self, id: str, *, cascade: bool = False) -> int:
        read_text(id, "id")
        return delete_customer_sql(self._store, id, cascade=cascade)

    def page(
        self,
        *,
        as_of: date | datetime | None = None,
        currency: str,
        search: str | None = None,
        owner_id: str | None = None,
        referral_source: str | None = None,
        registered_from: date | datetime | None = None,
        registered_before: date | datetime | None = None,
        paying: bool | None = None,
        has_active_services: bool | None = None,
        customer_ids: Iterable[str] | None = None,
        status: CustomerStatus | str | None = None,
        product_id: str | None = None,
        segment: Segment | str | None = None,
        segment_config: SegmentConfig = DEFAULT_CONFIG,
        sort: CustomerSort | str = CustomerSort.NAME,
        direction: Direction | str = Direction.ASC,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[CustomerRow]:
        q = CustomerQuery(
            as_of=query_as_of(as_of, cursor),
            currency=currency,
            search=search,
            owner_id=owner_id,
            referral_source=referral_source,
            registered_from=registered_from,
            registered_before=registered_before,
            paying=paying,
            has_active_services=has_active_services,
            customer_ids=customer_ids,
            status=status,
            product_id=product_id,
            segment=segment,
            segment_config=segment_config,
            sort=sort,
            direction=direction,
            limit=limit,
            cursor=cursor,
            secret=self._store._secret,
        )
        return self._store._customer_page(q)


class _Products(_Repo[Product]):
    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Product]:
        return self._paged(self._query(direction=direction, limit=limit, cursor=cursor))


class _Plans(_Repo[Plan]):
    def for_product(self, product_id: str) -> tuple[Plan, ...]:
        read_text(product_id, "product_id")
        store = self._store
        head = store._schema.plans
        return store._run(
            False,
            lambda conn: tuple(
                store._load(conn, "plan", head.c.product_id == product_id, order=[head.c.id])
            ),
        )

    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Plan]:
        return self._paged(self._query(direction=direction, limit=limit, cursor=cursor))


class _Subscriptions(_Repo[Subscription]):
    time_column = "started_at"

    def current_states(self, ids: Iterable[str]) -> dict[str, CurrentState]:
        wanted = sorted(set(_id_list(ids)))
        store = self._store
        head = store._schema.subscriptions

        def run(conn: Connection) -> dict[str, CurrentState]:
            out: dict[str, CurrentState] = {}
            replay: dict[str, int] = {}
            cols = (head.c.id, head.c.version, head.c.customer_id, head.c.details)
            for chunk in _chunks(wanted):
                stmt = sa.select(*cols, head.c.current_state).where(head.c.id.in_(chunk))
                for key, version, customer, details, text in conn.execute(stmt):
                    if text is None:  # not materialised (cannot happen after migrating)
                        replay[key] = int(version)
                        continue
                    state = decode_state(text)
                    out[key] = CurrentState(
                        id=key,
                        version=int(version),
                        customer_id=customer,
                        details=tuple((str(a), str(b)) for a, b in json.loads(details)),
                        last_change_at=state.as_of,
                        state=state,
                    )
            for chunk in _chunks(sorted(replay)):
                for sub in store._load(conn, self.kind, head.c.id.in_(chunk)):
                    out[sub.id] = CurrentState.of(sub, replay[sub.id])
            return out

        return store._run(False, run)

    def append(
        self, id: str, change: SubscriptionChange, *, expected_version: int | None = None
    ) -> Versioned[Subscription]:
        _check_expected(expected_version)
        if not isinstance(change, SubscriptionChange):
            raise ValidationError("change", change, "expected a SubscriptionChange")
        read_text(id, "id")
        store = self._store
        head = store._schema.subscriptions

        def run(conn: Connection) -> Versioned[Subscription]:
            stmt = sa.select(head.c.version).where(head.c.id == id)
            if not store._sqlite:
                # The customer's lock before the row's: the documented order (see lock()).
                owner = conn.execute(sa.select(head.c.customer_id).where(head.c.id == id))
                store._lock_keys(conn, [str(c) for c in owner.scalars()])
                stmt = stmt.with_for_update()
            version = conn.execute(stmt).scalar()
            if version is None:
                raise NotFoundError(self.kind, id)
            if expected_version is not None and int(version) != expected_version:
                raise ConflictError(self.kind, id, expected_version, int(version))
            (current,) = store._load(conn, self.kind, head.c.id == id)
            updated = current.append(change)
            store._write(conn, [prepare(self.kind, updated)], [int(version)])
            return Versioned(record=updated, version=store._version(conn, self.kind, id))

        return store._run(True, run)

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Subscription]:
        return self._paged(
            self._query(
                customer_id=customer_id,
                since=since,
                until=until,
                direction=direction,
                limit=limit,
                cursor=cursor,
            )
        )


class _Invoices(_Repo[Invoice]):
    time_column = "issued_at"

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        status: str | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Invoice]:
        return self._paged(
            self._query(
                customer_id=customer_id,
                since=since,
                until=until,
                status=status,
                direction=direction,
                limit=limit,
                cursor=cursor,
            )
        )


class _Transactions(_Repo[Transaction]):
    time_column = "at"

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        status: str | None = None,
        kind: str | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Transaction]:
        return self._paged(
            self._query(
                customer_id=customer_id,
                since=since,
                until=until,
                status=status,
                kind=kind,
                direction=direction,
                limit=limit,
                cursor=cursor,
            )
        )


class _Credits(_Repo[CreditEntry]):
    time_column = "at"

    def balance(
        self, customer_id: str, currency: str, *, at: date | datetime | None = None
    ) -> Money:
        check_currency(currency)
        read_text(customer_id, "customer_id")
        t = None if at is None else as_moment(at, "at")
        store = self._store
        cr = store._schema.credits
        conds = [cr.c.customer_id == customer_id, cr.c.currency == currency]
        if t is not None:
            conds.append(cr.c.at <= t)
        stmt = sa.select(store._ops.dsum(cr.c)).where(*conds)
        return store._run(False, lambda conn: Money(_dec(conn.execute(stmt).scalar()), currency))

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CreditEntry]:
        return self._paged(
            self._query(
                customer_id=customer_id,
                since=since,
                until=until,
                direction=direction,
                limit=limit,
                cursor=cursor,
            )
        )


class _Fx:
    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def put(self, day: date, source: str, target: str, rate: str | int | Decimal) -> None:
        self.put_many(FxRates.from_rates([(day, source, target, rate)]))

    def put_many(self, rates: FxRates) -> ImportResult:
        if not isinstance(rates, FxRates):
            raise ValidationError("rates", rates, "expected FxRates")
        return self._store._run(True, lambda conn: self._store._put_rates(conn, rates))

    def rates(self) -> FxRates:
        return self._store._run(False, self._store._rates)
