"""The SQL store's writes: upserts decided in Python first, then written in bulk.

References, external ids, versions and fingerprints are checked before anything is
written, so a batch either fails before writing or writes everything; each write keeps
the derived rows (spans, states, the ledger tables) in step.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from revcrm._book import Book
from revcrm._money import FxRates
from revcrm._records import Invoice, Transaction
from revcrm._subscription import Subscription
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.storage._codec import (
    Prepared,
    Row,
    encode_state,
    moment_value,
    prepare,
    search_folds,
    to_limbs,
)
from revcrm.storage._memory import (
    _book_groups,
    _check_expected,
    _check_invoice_currency,
)
from revcrm.storage._query import (
    ImportResult,
    read_records,
)
from revcrm.storage._sql_base import (
    _CUSTOMER_ROWS,
    _DAY_US,
    _MAX_ROW_LOCKS,
    _day,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import (
    _LIMB_COLUMNS,
)
from revcrm.storage._sql_ledger import LedgerTouch
from revcrm.storage._sql_migrate import SQLMigrations

__all__ = ["SQLWrites"]

#: Records owned by a customer that its ledger rows are built from (or will be: cash,
#: service states and customer facts read invoices, transactions and credits).
_LEDGER_KINDS: Final = frozenset({"subscription", "invoice", "transaction", "credit"})

_T = TypeVar("_T")
#: Records encoded and written at a time by an import (bounds the encoded rows held).
_IMPORT_CHUNK: Final = 20_000


def _moment_of(record: Any) -> datetime | None:
    """A record's latest moment as ``analyse``'s default horizon reads it (credits none)."""
    if isinstance(record, Subscription):
        return record.history[-1].at
    if isinstance(record, Invoice):
        return record.issued_at
    if isinstance(record, Transaction):
        return record.at
    return None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector off for a bulk import: the import allocates millions of
    short-lived rows next to the caller's book, and each full collection walks all of
    them again (5k customers: 11% of the import's CPU, more as the book grows). The few
    cycles it makes are collected once it ends, when the collector is on again."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class SQLWrites(SQLMigrations):
    """Upserts (one record, a batch, a whole book) and FX rate writes."""

    def _write(
        self,
        conn: Connection,
        batch: Sequence[Prepared],
        expected: Sequence[int | None],
        *,
        present: Mapping[str, set[str]] | None = None,
        touched: LedgerTouch | None = None,
    ) -> ImportResult:
        """Upsert ``batch`` (one kind) in order, with the in-memory store's semantics.

        ``present``: ids known to exist already (written earlier in the same import), so
        references to them need no lookup. The ledger rows the write changes are rebuilt
        before returning, or, with ``touched``, noted in it for the caller to rebuild once.
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
        owned = kind in _LEDGER_KINDS
        old_owner: dict[str, str] = {}
        old_product: dict[str, str | None] = {}  # a plan's product before the write
        if not self._empty(conn, head):
            ids = sorted({p.record.id for p in batch})
            for chunk in _chunks(ids):
                cols: list[Any] = [head.c.id, head.c.version, head.c.digest]
                cols.append(head.c.external_id if has_ext else sa.null())
                if owned:
                    cols.append(head.c.customer_id)
                elif kind == "plan":
                    cols.append(head.c.product_id)
                stmt = sa.select(*cols).where(head.c.id.in_(chunk))
                if not self._sqlite:
                    stmt = stmt.with_for_update()
                for r in conn.execute(stmt):
                    existing[r[0]] = (int(r[1]), str(r[2]), r[3])
                    if owned:
                        old_owner[r[0]] = r[-1]
                    elif kind == "plan":
                        old_product[r[0]] = r[-1]
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
        if kind == "plan" and writes:
            self._plan_services(conn, writes, old_product, touched)
        if owned and writes:
            # The ledger rows the write changes, of every customer whose records changed (a
            # record moved to another customer changes both), in this transaction: MRR rows
            # (with their service and status rows) from subscriptions, cash rows from
            # transactions and credits, service and status rows from invoices (an overdue
            # invoice changes the status); the horizon follows every record (see
            # ``_sql_ledger``).
            owners_now = {p.record.customer_id for p, _ in writes.values()}
            owners_now |= {old_owner[k] for k in writes if k in old_owner}
            mrr = owners_now if kind == "subscription" else set()
            cash = owners_now if kind in ("transaction", "credit") else set()
            services = owners_now if kind == "invoice" else set()
            rehomed = {
                who
                for k, (p, _) in writes.items()
                if k in old_owner and old_owner[k] != p.record.customer_id
                for who in (old_owner[k], p.record.customer_id)
            }
            latest = max(
                (m for p, _ in writes.values() if (m := _moment_of(p.record)) is not None),
                default=None,
            )
            if touched is not None:
                touched.add(mrr, latest, cash, services)
            else:
                self._ledger_refresh(conn, mrr, latest=latest, services=services)
                if cash:
                    records = [p.record for p, _ in writes.values()]
                    self._ledger_cash_entries(conn, kind, records, rehomed)
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

    def _plan_services(
        self,
        conn: Connection,
        writes: Mapping[str, tuple[Prepared, int]],
        old_product: Mapping[str, str | None],
        touched: LedgerTouch | None,
    ) -> None:
        """A plan's product is its services' product: the service and status rows of the
        customers with a state on a written plan whose product changed are rebuilt (a new
        plan has no states yet; any other change of a plan changes no service row)."""
        moved = sorted(
            k
            for k, (p, _) in writes.items()
            if k in old_product and old_product[k] != p.record.product_id
        )
        if not moved or not self._services_ready(conn):
            return
        st = self._schema.states
        owners: set[str] = set()
        for chunk in _chunks(moved):
            stmt = sa.select(st.c.customer_id).distinct().where(st.c.plan_id.in_(chunk))
            owners.update(str(r[0]) for r in conn.execute(stmt))
        if not owners:
            return
        if touched is not None:
            touched.add((), None, services=owners)
        else:
            self._ledger_refresh(conn, (), services=owners)

    def _upsert(self, kind: str, record: Any, expected_version: int | None) -> int:
        p = prepare(kind, record)
        _check_expected(expected_version)

        def run(conn: Connection) -> int:
            self._write(conn, [p], [expected_version])
            return self._version(conn, kind, record.id)

        return self._run(True, run)

    def _upsert_many(self, kind: str, records: Iterable[Any]) -> ImportResult:
        batch = [prepare(kind, r) for r in read_records(records)]
        return self._run(True, lambda conn: self._write(conn, batch, [None] * len(batch)))

    def import_book(self, book: Book) -> ImportResult:
        if not isinstance(book, Book):
            raise ValidationError("book", book, "expected a revcrm.Book")
        groups = _book_groups(book)

        def run(conn: Connection) -> ImportResult:
            total = ImportResult()
            present: dict[str, set[str]] = {}
            touched = LedgerTouch()
            # Into an empty store the book is every record: the ledger reads it, not the
            # tables it was just written to.
            s = self._schema
            fresh = all(self._empty(conn, t) for t in (s.subscriptions, s.transactions, s.credits))
            fresh = fresh and self._empty(conn, s.fx_rates)
            for kind, records in groups:
                # Encoded and written a chunk at a time, in the import's one transaction:
                # the encoded rows of a 100k book at once took gigabytes. A book's ids are
                # unique per kind (``Book`` checks), so a chunk never meets an earlier one's
                # record; its references to them are known from ``present``.
                ids = present.setdefault(kind, set())
                for part in _chunks(records, _IMPORT_CHUNK):
                    batch = [prepare(kind, r) for r in part]
                    total += self._write(
                        conn, batch, [None] * len(batch), present=present, touched=touched
                    )
                    ids.update(p.record.id for p in batch)
            pairs: set[tuple[str, str]] = set()
            total += self._put_rates(conn, book.fx, pairs=pairs)
            # One rebuild per customer: those written, and those the new rates convert.
            self._ledger_refresh_rates(conn, pairs, touched, source=book if fresh else None)
            return total

        with _collector_paused():
            return self._run(True, run)

    # -- reads -------------------------------------------------------------------------------

    def _put_rates(
        self, conn: Connection, rates: FxRates, *, pairs: set[tuple[str, str]] | None = None
    ) -> ImportResult:
        """Write the rates that differ; the ledger of the customers they convert is rebuilt,
        or, with ``pairs``, the written (source, target) pairs are added to it."""
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
        written = {(r["source"], r["target"]) for r in (*inserts, *updates)}
        if pairs is not None:
            pairs |= written
        elif written:
            self._ledger_refresh_rates(conn, written)
        return ImportResult(inserted=len(inserts), updated=len(updates), unchanged=unchanged)
