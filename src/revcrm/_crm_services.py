"""The service and invoice rules the profile and the segments share, at a moment ``at``.

They live below both :mod:`revcrm.crm` and :mod:`revcrm.segments`, so that the segments
never import the CRM layer, which sits above them (a customer profile shows its
segments). :mod:`revcrm.crm` re-exports the public names.

Definitions (documented in ``docs/crm.md`` and ``docs/segments.md``):

* A service (subscription) is **active** at ``at`` when its state then is active,
  trialing or past due, or cancelled with its paid period still running
  (``ended_at > at``). Pending, suspended, terminated and ended services are not.
* A service has a **pending cancellation** when it is cancelled and its service ends after
  ``at`` (at ``ended_at``), or a cancellation is scheduled for the end of the period (it
  takes effect at the end of the service period containing ``at``).
* An invoice is **overdue** at ``at`` when it was issued by ``at``, was unpaid at ``at``
  (open, or paid only after ``at``) and ``at``'s date is after its due date.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from revcrm._book import Book
from revcrm._records import Invoice, InvoiceStatus
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus

__all__ = [
    "CustomerStatus",
    "customer_book",
    "customer_status",
    "invoice_overdue",
    "invoice_unpaid",
    "is_active_service",
    "is_troubled_service",
    "pending_cancellation",
    "status_from",
]

_S = SubscriptionStatus
_RUNNING: Final = frozenset({_S.ACTIVE, _S.TRIALING, _S.PAST_DUE})
_TROUBLED: Final = frozenset({_S.PAST_DUE, _S.SUSPENDED})


def is_active_service(state: SubscriptionState | None, at: datetime) -> bool:
    if state is None:
        return False
    if state.status in _RUNNING:
        return True
    return state.status is _S.CANCELLED and state.ended_at is not None and state.ended_at > at


def is_troubled_service(state: SubscriptionState | None) -> bool:
    """Past due or suspended (the service is owed money or switched off for it)."""
    return state is not None and state.status in _TROUBLED


def pending_cancellation(state: SubscriptionState | None, at: datetime) -> datetime | None:
    """When a cancellation of this service takes effect, if one is pending after ``at``."""
    if state is None:
        return None
    if state.status is _S.CANCELLED:
        return state.ended_at if state.ended_at is not None and state.ended_at > at else None
    if state.cancel_at_period_end and not state.status.is_ended:
        return state.service_period(at)[1]
    return None


def invoice_unpaid(invoice: Invoice, at: datetime) -> bool:
    """Issued by ``at`` and not paid at ``at`` (open, or paid only later); drafts, void and
    uncollectible invoices are never unpaid."""
    if invoice.issued_at > at:
        return False
    if invoice.status is InvoiceStatus.OPEN:
        return True
    return (
        invoice.status is InvoiceStatus.PAID
        and invoice.paid_at is not None
        and invoice.paid_at > at
    )


def invoice_overdue(invoice: Invoice, at: datetime) -> bool:
    return invoice_unpaid(invoice, at) and at.date() > invoice.due_date


class CustomerStatus(enum.StrEnum):
    """ChartMogul's subscriber statuses, plus ``LEAD`` before the first service."""

    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELLED = "cancelled"
    LEAD = "lead"


def customer_status(
    subscriptions: Iterable[Subscription], invoices: Iterable[Invoice], at: datetime
) -> CustomerStatus:
    """The customer's status at ``at``.

    * ``PAST_DUE`` when a service is past due or suspended, or an invoice is overdue; it
      overrides the others (ChartMogul: past due wins over several subscriptions).
    * ``ACTIVE`` when a service is active (see the module docstring).
    * ``CANCELLED`` when a service has ended (cancelled and over, or terminated).
    * ``LEAD`` otherwise: no service yet, or only pending ones.
    """
    states = [s.state_at(at) for s in subscriptions]
    # Each input is read only while it can still decide (status_from's order).
    troubled = any(is_troubled_service(s) for s in states)
    overdue = not troubled and any(invoice_overdue(i, at) for i in invoices)
    active = not (troubled or overdue) and any(is_active_service(s, at) for s in states)
    ended = not (troubled or overdue or active) and any(
        s is not None and s.status.is_ended for s in states
    )
    return status_from(troubled=troubled, overdue=overdue, active=active, ended=ended)


def status_from(*, troubled: bool, overdue: bool, active: bool, ended: bool) -> CustomerStatus:
    """:func:`customer_status` from what the customer's services and invoices say at a
    moment: a service troubled, an invoice overdue, a service active, a service ended
    (cancelled and over, or terminated). The one definition of the status rule, which
    the records (:func:`customer_status`) and the ledger's service-state rows and facts
    both feed."""
    if troubled or overdue:
        return CustomerStatus.PAST_DUE
    if active:
        return CustomerStatus.ACTIVE
    if ended:
        return CustomerStatus.CANCELLED
    return CustomerStatus.LEAD


def customer_book(book: Book, customer_id: str) -> Book:
    """One customer's sub-book, like ``book.restricted_to([customer_id])`` but read from
    the book's per-customer indexes, so it costs the customer's records, not the book's."""
    return Book(
        customers=(book.customer(customer_id),),
        products=book.products,
        plans=book.plans,
        subscriptions=book.subscriptions_by_customer.get(customer_id, ()),
        invoices=book.invoices_by_customer.get(customer_id, ()),
        transactions=book.transactions_by_customer.get(customer_id, ()),
        credits=book.credits_by_customer.get(customer_id, ()),
        fx=book.fx,
    )
