"""Every CRM table holding rows of a customer, and the per-customer operations over them.

:data:`CUSTOMER_TABLES` lists, once, each such table with the role of its columns; merging
customers (rehome), anonymising one (erase) and deleting one follow that list in both CRM
stores: :mod:`revcrm.storage._crm_sql_tables` as SQL statements, and this module's
:class:`MemoryPerCustomer` over the in-memory store's collections. Leads are not in it: a
lead's link to a customer has rules of its own (one converted lead per customer, the
transition log), kept in the lead repositories.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import attrs

from revcrm.storage._crm_checks import ERASED_TEXT, read_id, read_pair, rehomed_entry, rehomed_note

__all__ = [
    "CUSTOMER_TABLES",
    "CustomerTable",
    "MemoryPerCustomer",
    "MemoryTables",
    "delete_rows",
    "erase_rows",
    "rehome_rows",
]


@attrs.frozen
class CustomerTable:
    """A CRM table with rows of one customer, and the role of its columns.

    ``customer`` names the customer (a merge rewrites it); ``personal`` are the free-text
    columns an erase overwrites with :data:`~revcrm.storage.ERASED_TEXT` (where set);
    ``erase_deletes`` makes an erase delete the rows instead (a contact is nothing but
    personal data); ``parent`` ``(table, column, parent column)`` says the rows belong
    to the customer through a parent row (a note's revisions), so a delete follows the
    parent and runs before it.
    """

    name: str
    customer: str = "customer_id"
    personal: tuple[str, ...] = ()
    erase_deletes: bool = False
    parent: tuple[str, str, str] | None = None


#: Every CRM table with rows of a customer, by repository; the first table of each is the
#: one whose row count the operation returns.
CUSTOMER_TABLES: Final[dict[str, tuple[CustomerTable, ...]]] = {
    "notes": (
        CustomerTable("notes", personal=("body",)),
        CustomerTable("note_revisions", personal=("body",), parent=("notes", "note_id", "id")),
    ),
    "tags": (CustomerTable("tag_changes"),),
    "contacts": (CustomerTable("contacts", erase_deletes=True),),
    "calls": (CustomerTable("calls", personal=("summary",)),),
    "intake": (CustomerTable("intake_answers", personal=("text",)),),
}

# -- in memory --------------------------------------------------------------------------------

#: A table in memory: rows by id, rows in write order, or (a child table) rows by parent id.
Collection = dict[str, Any] | list[Any]

#: Records whose validated constructor a merge must go through (a plain evolve would keep
#: fields derived from the old customer id).
_REHOME: Final[dict[str, Callable[[Any, str], Any]]] = {
    "notes": rehomed_note,
    "note_revisions": rehomed_entry,
}


class MemoryTables(Protocol):
    """The in-memory CRM store as the per-customer operations see it."""

    _lock: threading.RLock

    def collection(self, table: str) -> Collection: ...


def _rows(coll: Collection) -> list[list[Any]]:
    """The lists of rows of a collection that hold row lists (a log or child rows)."""
    if isinstance(coll, list):
        return [coll]
    return [v for v in coll.values() if isinstance(v, list)]


def _rewrite(
    coll: Collection, spec: CustomerTable, customer_id: str, change: Callable[[Any], Any]
) -> int:
    """Apply ``change`` to the rows of ``customer_id`` (None drops the row; the same row
    back is no change); returns how many rows changed."""
    changed = 0

    def one(row: Any) -> Any:
        nonlocal changed
        if getattr(row, spec.customer) != customer_id:
            return row
        new = change(row)
        if new is not row:
            changed += 1
        return new

    if isinstance(coll, dict):
        for key, value in list(coll.items()):
            if isinstance(value, list):
                kept = [r for r in (one(row) for row in value) if r is not None]
                if kept:
                    coll[key] = kept
                else:
                    del coll[key]
                continue
            new = one(value)
            if new is None:
                del coll[key]
            elif new is not value:
                coll[key] = new
        return changed
    for rows in _rows(coll):
        rows[:] = [r for r in (one(row) for row in rows) if r is not None]
    return changed


def _erased(spec: CustomerTable) -> Callable[[Any], Any]:
    def erase(row: Any) -> Any:
        if spec.erase_deletes:
            return None
        wiped = {f: ERASED_TEXT for f in spec.personal if getattr(row, f) is not None}
        return attrs.evolve(row, **wiped) if wiped else row

    return erase


def _moved(spec: CustomerTable, to_customer: str) -> Callable[[Any], Any]:
    special = _REHOME.get(spec.name)

    def move(row: Any) -> Any:
        if special is not None:
            return special(row, to_customer)
        return attrs.evolve(row, **{spec.customer: to_customer})

    return move


def _dropped(_row: Any) -> None:
    return None


def rehome_rows(store: MemoryTables, group: str, from_customer: str, to_customer: str) -> int:
    """Move the rows of ``group`` from one customer to another (a merge)."""
    read_pair(from_customer, to_customer)
    with store._lock:
        counts = [
            _rewrite(store.collection(spec.name), spec, from_customer, _moved(spec, to_customer))
            for spec in CUSTOMER_TABLES[group]
        ]
    return counts[0]


def erase_rows(store: MemoryTables, group: str, customer_id: str) -> int:
    """Anonymise the customer's rows of ``group``: personal text erased, rows kept."""
    read_id(customer_id, "customer_id")
    with store._lock:
        counts = [
            _rewrite(store.collection(spec.name), spec, customer_id, _erased(spec))
            for spec in CUSTOMER_TABLES[group]
        ]
    return counts[0]


def delete_rows(store: MemoryTables, group: str, customer_id: str) -> int:
    """Delete the customer's rows of ``group``, rows owned through a parent first."""
    read_id(customer_id, "customer_id")
    counts: dict[str, int] = {}
    specs = CUSTOMER_TABLES[group]
    with store._lock:
        for spec in sorted(specs, key=lambda s: s.parent is None):
            coll = store.collection(spec.name)
            if spec.parent is None:
                counts[spec.name] = _rewrite(coll, spec, customer_id, _dropped)
                continue
            # Child rows hang off their parent's id: drop those of the customer's parents.
            parent_name, _column, parent_column = spec.parent
            parent_spec = next(s for s in specs if s.name == parent_name)
            parents = store.collection(parent_name)
            if not isinstance(parents, dict) or not isinstance(coll, dict):
                raise TypeError(f"{spec.name}: a child table is kept by its parent's id")
            owned = [
                getattr(p, parent_column)
                for p in parents.values()
                if getattr(p, parent_spec.customer) == customer_id
            ]
            counts[spec.name] = sum(len(coll.pop(key, ())) for key in owned)
    return counts[specs[0].name]


_S = TypeVar("_S", bound=MemoryTables)


class MemoryPerCustomer(Generic[_S]):
    """A repository's ``rehome``, ``erase_customer`` and ``delete_customer`` over the
    in-memory store, from its group of :data:`CUSTOMER_TABLES`."""

    _group: ClassVar[str]
    _store: _S

    def rehome(self, from_customer: str, to_customer: str) -> int:
        return rehome_rows(self._store, self._group, from_customer, to_customer)

    def erase_customer(self, customer_id: str) -> int:
        return erase_rows(self._store, self._group, customer_id)

    def delete_customer(self, customer_id: str) -> int:
        return delete_rows(self._store, self._group, customer_id)
