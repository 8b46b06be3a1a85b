"""The SQL store's repositories: one per record kind, over the store's shared jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._money import FxRates, Money, check_currency
from revcrm._records import CreditEntry, Customer, Invoice, Plan, Product, Transaction
from revcrm._subscription import Subscription, SubscriptionChange
from revcrm._time import as_moment
from revcrm.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from revcrm.storage._codec import (
    decode_state,
    prepare,
)
from revcrm.storage._memory import (
    _check_expected,
    _id_list,
    external_lookup,
)
from revcrm.storage._protocols import CurrentState
from revcrm.storage._query import (
    CustomerPages,
    CustomerQuery,
    CustomerRow,
    Direction,
    ImportResult,
    Page,
    RecordQuery,
    Versioned,
    read_text,
)
from revcrm.storage._sql_core import SQLCore
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import _dec
from revcrm.storage._sql_delete import delete_customer_sql

__all__ = [
    "SQLCredits",
    "SQLCustomers",
    "SQLFx",
    "SQLInvoices",
    "SQLPlans",
    "SQLProducts",
    "SQLSubscriptions",
    "SQLTransactions",
]

_R = TypeVar("_R")


# -- repositories ----------------------------------------------------------------------------


class _Repo(Generic[_R]):
    time_column: str | None = None

    def __init__(self, store: SQLCore, kind: str) -> None:
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


class SQLCustomers(_Repo[Customer], CustomerPages):
    def delete(self, id: str, *, cascade: bool = False) -> int:
        read_text(id, "id")
        return delete_customer_sql(self._store, id, cascade=cascade)

    def query(self, q: CustomerQuery) -> Page[CustomerRow]:
        # Cursors carry this store's key, whatever the caller's query says.
        return self._store._customer_page(attrs.evolve(q, secret=self._store._secret))


class SQLProducts(_Repo[Product]):
    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Product]:
        return self._paged(self._query(direction=direction, limit=limit, cursor=cursor))


class SQLPlans(_Repo[Plan]):
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


class SQLSubscriptions(_Repo[Subscription]):
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


class SQLInvoices(_Repo[Invoice]):
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


class SQLTransactions(_Repo[Transaction]):
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


class SQLCredits(_Repo[CreditEntry]):
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


class SQLFx:
    def __init__(self, store: SQLCore) -> None:
        self._store = store

    def put(self, day: date, source: str, target: str, rate: str | int | Decimal) -> None:
        self.put_many(FxRates.from_rates([(day, source, target, rate)]))

    def put_many(self, rates: FxRates) -> ImportResult:
        if not isinstance(rates, FxRates):
            raise ValidationError("rates", rates, "expected FxRates")
        return self._store._run(True, lambda conn: self._store._put_rates(conn, rates))

    def rates(self) -> FxRates:
        return self._store._run(False, self._store._rates)
