"""Customers, invoices, transactions and credits: idempotent upserts with the host's rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import attrs

from revcrm._records import (
    CreditEntry,
    Invoice,
    InvoiceStatus,
    Transaction,
    TransactionStatus,
)
from revcrm.errors import ValidationError
from revcrm.storage import ImportResult, Repository, UnitOfWork

__all__ = ["ImmutableRecordError", "check_credit", "check_invoice", "check_transaction", "upsert"]

_R = TypeVar("_R")

#: Records probed per savepoint: small enough that a chunk holding one change is cheap to
#: re-read record by record, large enough that an unchanged nightly batch is a few calls.
CHUNK: Final = 500


class ImmutableRecordError(ValidationError):
    """The host changed a record revcrm treats as settled (a succeeded payment's amount)."""


class _Differs(Exception):
    """Raised inside a probing savepoint to roll back an upsert that found differences."""


def upsert(
    uow: UnitOfWork,
    repo: Repository[_R],
    records: Sequence[_R],
    check: Callable[[_R, _R], _R] | None,
) -> ImportResult:
    """Upsert ``records`` by id in one all-or-nothing block, idempotently.

    With ``check``, each record that differs from a stored one goes through
    ``check(stored, incoming)``, which returns the record to store or raises. To find the
    differing records without reading every stored one, each chunk is first upserted in a
    savepoint (the store compares the encoded rows); a chunk reporting updates is rolled
    back and re-read record by record.
    """
    total = ImportResult()
    with uow.transaction():
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            if check is None:
                total += repo.upsert_many(chunk)
                continue
            try:
                with uow.transaction():
                    result = repo.upsert_many(chunk)
                    if result.updated:
                        raise _Differs
                total += result
            except _Differs:
                checked: list[_R] = []
                for record in chunk:
                    stored = repo.find(_key(record))
                    checked.append(record if stored is None else check(stored, record))
                total += repo.upsert_many(checked)
    return total


def _key(record: object) -> str:
    key: str = record.id  # type: ignore[attr-defined]
    return key


def _differences(old: Any, new: Any, fields: Sequence[str]) -> list[str]:
    return [f for f in fields if getattr(old, f) != getattr(new, f)]


_TX_FIELDS: Final = tuple(a.name for a in attrs.fields(Transaction))


def check_transaction(old: Transaction, new: Transaction) -> Transaction:
    """A pending payment may settle (succeeded or failed) or change; a settled one is fixed."""
    if old.status is TransactionStatus.PENDING or old == new:
        return new
    diff = _differences(old, new, _TX_FIELDS)
    raise ImmutableRecordError(
        f"transactions[{old.id}].{diff[0]}",
        getattr(new, diff[0]),
        f"a {old.status.value} transaction is immutable (stored: {getattr(old, diff[0])!r})",
    )


_SETTLED_INVOICE: Final = frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID})
_INVOICE_KEYS: Final = ("customer_id", "currency", "issued_at")


def check_invoice(old: Invoice, new: Invoice) -> Invoice:
    """An invoice's status may move (open, paid, void, uncollectible) keeping its moments.

    A paid moment the host no longer reports is kept; an issued invoice never returns to
    draft and keeps its customer, currency and issue moment; a paid or void invoice keeps
    its lines.
    """
    if new.paid_at is None and old.paid_at is not None:
        new = attrs.evolve(new, paid_at=old.paid_at)
    if old.status is InvoiceStatus.DRAFT:
        return new
    name = f"invoices[{old.id}]"
    if new.status is InvoiceStatus.DRAFT:
        raise ImmutableRecordError(
            f"{name}.status", new.status.value, "an issued invoice is never a draft again"
        )
    for field in _differences(old, new, _INVOICE_KEYS):
        raise ImmutableRecordError(
            f"{name}.{field}",
            getattr(new, field),
            f"fixed once issued (stored: {getattr(old, field)!r})",
        )
    if old.status in _SETTLED_INVOICE and new.lines != old.lines:
        raise ImmutableRecordError(
            f"{name}.lines", new.lines, f"a {old.status.value} invoice keeps its lines"
        )
    return new


def check_credit(old: CreditEntry, new: CreditEntry) -> CreditEntry:
    """A credit ledger entry is a fact: writing it again equal is fine, changing it is not."""
    if old == new:
        return new
    field = _differences(old, new, tuple(a.name for a in attrs.fields(CreditEntry)))[0]
    raise ImmutableRecordError(
        f"credits[{old.id}].{field}", getattr(new, field), "a credit entry is immutable"
    )
