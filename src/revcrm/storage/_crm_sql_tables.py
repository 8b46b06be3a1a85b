"""The CRM store's tables, their migrations, and the per-customer operations over them.

:data:`~revcrm.storage._crm_tables.CUSTOMER_TABLES` lists, once, every CRM table holding
rows of a customer with the role of its columns; merging customers (:func:`rehome`),
anonymising one (:func:`erase`) and deleting one (:func:`delete`) follow that list
instead of one hand-written function per table, here as SQL statements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm.storage._crm_checks import ERASED_TEXT, read_id, read_pair
from revcrm.storage._crm_tables import CUSTOMER_TABLES, CustomerTable

__all__ = [
    "CUSTOMER_TABLES",
    "LATEST_VERSION",
    "MIGRATIONS",
    "CRMUnits",
    "CustomerTable",
    "PerCustomer",
    "delete",
    "erase",
    "rehome",
]

_T = TypeVar("_T")
_MOMENT: Final = sa.BigInteger


class CRMUnits(Protocol):
    """What the CRM repositories need of their store: the tables and units of work."""

    _t: dict[str, sa.Table]

    def _run(
        self,
        fn: Callable[[Connection], _T],
        *,
        unique: tuple[str, str] | None = None,
        write: bool = True,
    ) -> _T: ...

    def _read(self, fn: Callable[[Connection], _T]) -> _T: ...


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
        # -- version 2 --
        "intake_questions": sa.Table(
            f"{prefix}intake_questions",
            md,
            sa.Column("id", sa.String, primary_key=True),
            sa.Column("prompt", sa.Text, nullable=False),
            sa.Column("kind", sa.String, nullable=False),
            sa.Column("options", sa.Text, nullable=False),  # a JSON list of strings
            sa.Column("scope", sa.String, nullable=False),
            sa.Column("required", sa.Boolean, nullable=False),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("retired_at", _MOMENT),
        ),
        "intake_answers": sa.Table(
            f"{prefix}intake_answers",
            md,
            # The recording order: answers given at the same moment resolve by it.
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("customer_id", sa.String, nullable=False, index=True),
            sa.Column("question_id", sa.String, nullable=False, index=True),
            sa.Column("answered_at", _MOMENT, nullable=False),
            sa.Column("choices", sa.Text, nullable=False),  # a JSON list, empty for text
            sa.Column("text", sa.Text),
            sa.Column("subscription_id", sa.String),
            sa.Column("staff_id", sa.String),
        ),
        "schema_version": sa.Table(
            f"{prefix}schema_version",
            md,
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("description", sa.String, nullable=False),
            sa.Column("applied_at", _MOMENT, nullable=False),
        ),
    }
    return md, t


#: The forward migrations: (version, description, tables it creates), in order.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "notes, note history, tags, tag changes, leads, lead transitions, contacts, calls",
        (
            "notes",
            "note_revisions",
            "tags",
            "tag_changes",
            "leads",
            "lead_transitions",
            "contacts",
            "calls",
        ),
    ),
    (2, "intake questions and answers", ("intake_questions", "intake_answers")),
)
#: The schema version this code reads and writes.
LATEST_VERSION: Final = MIGRATIONS[-1][0]


def rehome(
    conn: Connection, tables: dict[str, sa.Table], group: str, from_customer: str, to_customer: str
) -> int:
    """Move the rows of ``group`` from one customer to another (a merge)."""
    counts = []
    for spec in CUSTOMER_TABLES[group]:
        t = tables[spec.name]
        col = t.c[spec.customer]
        stmt = sa.update(t).where(col == from_customer).values({spec.customer: to_customer})
        counts.append(int(conn.execute(stmt).rowcount))
    return counts[0]


def erase(conn: Connection, tables: dict[str, sa.Table], group: str, customer_id: str) -> int:
    """Anonymise the customer's rows of ``group``: personal text erased, rows kept."""
    counts = []
    for spec in CUSTOMER_TABLES[group]:
        t = tables[spec.name]
        mine = t.c[spec.customer] == customer_id
        if spec.erase_deletes:
            counts.append(int(conn.execute(sa.delete(t).where(mine)).rowcount))
            continue
        if not spec.personal:
            counts.append(0)
            continue
        cols = [t.c[name] for name in spec.personal]
        stmt = (
            sa.update(t)
            .where(mine, sa.or_(*(c.is_not(None) for c in cols)))
            .values({c.name: sa.case((c.is_(None), None), else_=ERASED_TEXT) for c in cols})
        )
        counts.append(int(conn.execute(stmt).rowcount))
    return counts[0]


def delete(conn: Connection, tables: dict[str, sa.Table], group: str, customer_id: str) -> int:
    """Delete the customer's rows of ``group``, rows owned through a parent first."""
    counts: dict[str, int] = {}
    specs = CUSTOMER_TABLES[group]
    for spec in sorted(specs, key=lambda s: s.parent is None):
        t = tables[spec.name]
        if spec.parent is None:
            where = t.c[spec.customer] == customer_id
        else:
            parent_name, column, parent_column = spec.parent
            parent = next(s for s in specs if s.name == parent_name)
            p = tables[parent_name]
            owned = sa.select(p.c[parent_column]).where(p.c[parent.customer] == customer_id)
            where = t.c[column].in_(owned)
        counts[spec.name] = int(conn.execute(sa.delete(t).where(where)).rowcount)
    return counts[specs[0].name]


class PerCustomer:
    """A repository's ``rehome``, ``erase_customer`` and ``delete_customer``, from its
    group of :data:`CUSTOMER_TABLES`."""

    _group: ClassVar[str]
    _s: CRMUnits

    def rehome(self, from_customer: str, to_customer: str) -> int:
        read_pair(from_customer, to_customer)
        return self._s._run(
            lambda conn: rehome(conn, self._s._t, self._group, from_customer, to_customer)
        )

    def erase_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        return self._s._run(lambda conn: erase(conn, self._s._t, self._group, customer_id))

    def delete_customer(self, customer_id: str) -> int:
        read_id(customer_id, "customer_id")
        return self._s._run(lambda conn: delete(conn, self._s._t, self._group, customer_id))
