"""The contacts and logged calls of :class:`~revcrm.storage.SQLCRMStore`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm.crm._records import Contact, LoggedCall
from revcrm.errors import DuplicateError, NotFoundError, ValidationError
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._crm_checks import read_id
from revcrm.storage._crm_sql_tables import CRMUnits, PerCustomer

__all__ = ["SQLCalls", "SQLContacts"]


# -- contacts and calls -----------------------------------------------------------------------


class SQLContacts(PerCustomer):
    _group = "contacts"

    def __init__(self, store: CRMUnits) -> None:
        self._s = store
        self._c = store._t["contacts"]

    def get(self, id: str) -> Contact:
        contact = self.find(read_id(id))
        if contact is None:
            raise NotFoundError("contact", id)
        return contact

    def find(self, id: str) -> Contact | None:
        read_id(id)

        def run(conn: Connection) -> Contact | None:
            row = conn.execute(sa.select(self._c).where(self._c.c.id == id)).mappings().first()
            return None if row is None else Contact.from_record(dict(row))

        return self._s._read(run)

    def upsert(self, contact: Contact) -> None:
        if not isinstance(contact, Contact):
            raise ValidationError("contact", contact, "expected a Contact")

        def run(conn: Connection) -> None:
            conn.execute(sa.delete(self._c).where(self._c.c.id == contact.id))
            conn.execute(sa.insert(self._c), [dict(contact.to_record())])

        self._s._run(run, unique=("contact", contact.id))

    def remove(self, id: str) -> None:
        read_id(id)

        def run(conn: Connection) -> None:
            if conn.execute(sa.delete(self._c).where(self._c.c.id == id)).rowcount != 1:
                raise NotFoundError("contact", id)

        self._s._run(run)

    def for_customer(self, customer_id: str) -> tuple[Contact, ...]:
        read_id(customer_id, "customer_id")

        def run(conn: Connection) -> tuple[Contact, ...]:
            q = sa.select(self._c).where(self._c.c.customer_id == customer_id)
            found = [Contact.from_record(dict(r)) for r in conn.execute(q).mappings()]
            return tuple(sorted(found, key=lambda c: (c.name, c.id)))

        return self._s._read(run)


def _call(r: Mapping[Any, Any]) -> LoggedCall:
    return LoggedCall.from_record({**r, "at": moment_from_value(r["at"])})


class SQLCalls(PerCustomer):
    _group = "calls"

    def __init__(self, store: CRMUnits) -> None:
        self._s = store
        self._c = store._t["calls"]

    def get(self, id: str) -> LoggedCall:
        read_id(id)

        def run(conn: Connection) -> LoggedCall:
            row = conn.execute(sa.select(self._c).where(self._c.c.id == id)).mappings().first()
            if row is None:
                raise NotFoundError("call", id)
            return _call(row)

        return self._s._read(run)

    def add(self, call: LoggedCall) -> None:
        if not isinstance(call, LoggedCall):
            raise ValidationError("call", call, "expected a LoggedCall")

        def run(conn: Connection) -> None:
            if conn.execute(sa.select(self._c.c.id).where(self._c.c.id == call.id)).first():
                raise DuplicateError("call", call.id)
            conn.execute(sa.insert(self._c), [{**call.to_record(), "at": moment_value(call.at)}])

        self._s._run(run, unique=("call", call.id))

    def for_customer(self, customer_id: str) -> tuple[LoggedCall, ...]:
        read_id(customer_id, "customer_id")

        def run(conn: Connection) -> tuple[LoggedCall, ...]:
            q = (
                sa.select(self._c)
                .where(self._c.c.customer_id == customer_id)
                .order_by(self._c.c.at, self._c.c.id)
            )
            return tuple(_call(r) for r in conn.execute(q).mappings())

        return self._s._read(run)
