"""The facade's credit service (``crm.credits``) and its two credit authorities."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from revcrm._facade_units import lock_customers, read_id, retrying
from revcrm._money import Money
from revcrm._records import CreditEntry
from revcrm._time import utc
from revcrm.errors import ValidationError
from revcrm.storage._protocols import Store

__all__ = ["CreditAuthority", "Credits", "HostCreditAdjuster"]

CreditAuthority = Literal["revcrm", "host"]


class HostCreditAdjuster(Protocol):
    """The host's own credit write, for ``credit_authority="host"``.

    Called with the customer, the signed amount (negative spends credit), the reason,
    the staff member and the moment. It writes the host's credits table (the source of
    truth) and returns the entry it wrote, which revcrm then mirrors into its store
    under the same id (a later sync of that entry changes nothing), or None to let the
    next sync bring it in. It raises to refuse (the error reaches the caller).
    """

    def __call__(
        self, customer_id: str, amount: Money, reason: str, staff_id: str, at: datetime
    ) -> CreditEntry | None: ...


class CreditsOwner(Protocol):
    """What the credit service reads of the facade (:class:`revcrm.CRM`): typed here so
    this module never imports the facade that imports it."""

    store: Store
    reporting_currency: str
    credit_authority: CreditAuthority
    adjust_credit: HostCreditAdjuster | None
    allow_negative_credit: bool

    def now(self) -> datetime: ...


def _new_id() -> str:
    return uuid.uuid4().hex


class Credits:
    """``crm.credits``: balances, staff adjustments and credit applied to invoices.

    Under ``credit_authority="revcrm"`` (the default) revcrm's ledger is the source of
    truth: each write locks the customer, reads its balance and appends the entry in one
    unit of work, so concurrent spends cannot overdraw it. Under ``"host"`` the host's
    credits table is: writes go through the host's ``adjust_credit`` callback (see
    :class:`HostCreditAdjuster`) or are refused, and the host syncs its entries in.
    """

    def __init__(self, crm: CreditsOwner) -> None:
        self._crm = crm

    def balance(self, customer_id: str, currency: str | None = None) -> Money:
        crm = self._crm
        customer_id = read_id(customer_id, "customer_id")
        return crm.store.credits.balance(customer_id, currency or crm.reporting_currency)

    def _host(self, entry: CreditEntry, check: Callable[[], None] | None = None) -> CreditEntry:
        crm = self._crm
        adjust = crm.adjust_credit
        if adjust is None:
            raise ValidationError(
                "credit_authority",
                crm.credit_authority,
                "the host's credits table is authoritative: adjust credit in the host "
                "(and sync it in), or give CRM(adjust_credit=...)",
            )
        if check is not None:
            check()
        written = adjust(
            entry.customer_id, entry.amount, entry.reason, entry.staff_id or "", entry.at
        )
        if written is None:
            return entry  # as asked of the host; in revcrm's store after the next sync
        if not isinstance(written, CreditEntry) or written.customer_id != entry.customer_id:
            raise ValidationError(
                "adjust_credit", written, f"expected a CreditEntry of {entry.customer_id!r}"
            )
        crm.store.credits.upsert(written)  # a mirror: the host's sync writes the same id
        return written

    def _write(self, entry: CreditEntry, check: Callable[[], None] | None = None) -> CreditEntry:
        crm = self._crm
        if crm.credit_authority == "host":
            return self._host(entry, check)
        store = crm.store

        def unit() -> CreditEntry:
            with store.transaction():
                # Serialise the read of the balance and the insert per customer: without
                # the lock, concurrent spends on PostgreSQL each saw the old balance.
                lock_customers(store, [entry.customer_id])
                if check is not None:
                    check()
                after = store.credits.balance(entry.customer_id, entry.amount.currency)
                after += entry.amount
                if after.amount < 0 and not crm.allow_negative_credit:
                    raise ValidationError(
                        "amount",
                        entry.amount,
                        f"would take the credit balance of {entry.customer_id!r} to {after}; "
                        "negative balances are not allowed (allow_negative_credit)",
                    )
                store.credits.upsert(entry, expected_version=0)
            return entry

        return retrying(store, unit)

    def adjust(
        self,
        customer_id: str,
        amount: Money,
        *,
        reason: str,
        staff_id: str,
        at: datetime | None = None,
        id: str | None = None,
    ) -> CreditEntry:
        """A staff adjustment: positive adds credit, negative removes it. Returns the
        entry written (under ``"host"``: the host's, or the one asked of the host when
        its callback leaves the entry to the next sync)."""
        crm = self._crm
        crm.store.customers.get(read_id(customer_id, "customer_id"))
        return self._write(
            CreditEntry(
                id=_new_id() if id is None else id,
                customer_id=customer_id,
                amount=amount,
                reason=reason,
                staff_id=staff_id,
                at=crm.now() if at is None else utc(at, "at"),
            )
        )

    def apply_to_invoice(
        self,
        invoice_id: str,
        amount: Money,
        *,
        staff_id: str,
        at: datetime | None = None,
        id: str | None = None,
    ) -> CreditEntry:
        """Spend ``amount`` of the invoice's customer's credit on the invoice."""
        crm = self._crm
        invoice = crm.store.invoices.get(read_id(invoice_id, "invoice_id"))
        if not isinstance(amount, Money):
            raise ValidationError("amount", amount, "expected Money")
        if amount.currency != invoice.currency:
            raise ValidationError("amount", amount, f"the invoice is in {invoice.currency}")
        if amount.amount <= 0:
            raise ValidationError("amount", amount, "the credit applied must be positive")

        def check() -> None:
            # Inside the customer's lock: two applications cannot both fit the total.
            applied = -sum(
                (
                    e.amount.amount
                    for e in crm.store.credits.for_customer(invoice.customer_id)
                    if e.invoice_id == invoice_id and e.amount.currency == invoice.currency
                ),
                start=Decimal(0),
            )
            if applied + amount.amount > invoice.total.amount:
                raise ValidationError(
                    "amount",
                    amount,
                    f"invoice {invoice_id!r} totals {invoice.total}, {applied} already applied",
                )

        return self._write(
            CreditEntry(
                id=_new_id() if id is None else id,
                customer_id=invoice.customer_id,
                amount=-amount,
                reason=f"applied to invoice {invoice_id}",
                staff_id=staff_id,
                invoice_id=invoice_id,
                at=crm.now() if at is None else utc(at, "at"),
            ),
            check,
        )
