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
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Final

from revcrm._book import Book
from revcrm._records import Invoice, InvoiceStatus
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus

__all__ = [
    "CustomerStatus",
    "Span",
    "customer_book",
    "customer_status",
    "in_span",
    "invoice_overdue",
    "invoice_overdue_span",
    "invoice_unpaid",
    "invoice_unpaid_span",
    "is_active_service",
    "is_troubled_service",
    "overdue_from",
    "pending_cancellation",
    "status_from",
]

_S = SubscriptionStatus
_ONE_DAY: Final = timedelta(days=1)
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


#: ``[start, end)``: from ``start`` until ``end`` (None: open, no end).
Span = tuple[datetime, datetime | None]


def invoice_unpaid_span(invoice: Invoice) -> Span | None:
    """Where the invoice is unpaid, ``[issued_at, paid_at)``: THE definition of the rule
    (:func:`invoice_unpaid` is membership of this span).

    An open invoice is unpaid from its issue on (``end`` None); a paid one until it was
    paid (``paid_at``). Drafts, void and uncollectible invoices, a paid invoice without
    ``paid_at`` (taken as paid before anything) and one paid at or before its issue are
    never unpaid (None)."""
    if invoice.status is InvoiceStatus.OPEN:
        return (invoice.issued_at, None)
    paid_at = invoice.paid_at
    if invoice.status is InvoiceStatus.PAID and paid_at is not None and paid_at > invoice.issued_at:
        return (invoice.issued_at, paid_at)
    return None


def overdue_from(invoice: Invoice, tz: tzinfo = UTC) -> datetime:
    """The first moment whose date in ``tz`` is after the invoice's due date (the start
    of the next day there; in a gap at midnight, the moment the clock jumps), in UTC."""
    start = datetime.combine(invoice.due_date + _ONE_DAY, time(0), tzinfo=tz)
    return start.astimezone(UTC)


def invoice_overdue_span(invoice: Invoice, tz: tzinfo = UTC) -> Span | None:
    """Where the invoice is overdue: its unpaid span (:func:`invoice_unpaid_span`) from the
    first moment whose date in ``tz`` is after its due date (:func:`overdue_from`); None
    where it never is. THE definition of the rule (:func:`invoice_overdue` is membership
    of this span).

    The due date is a calendar day, so when the day after it begins depends on a time
    zone: the ledger and the stores read it in UTC (the default); :func:`invoice_overdue`
    in ``at``'s own zone (``at.date()``, its historical behaviour). The span equals
    "``at``'s date is after the due date" exactly wherever the zone's date never steps
    back. It did step back where a clock was set back across midnight into the previous
    day (tzdata since 1970: Newfoundland, Goose Bay and Moncton at 00:01 to 23:01 in
    1987-2010, Antarctica/Casey in 2010, none since): there the span is overdue from the
    first midnight on, through the repeated hour of the due day."""
    unpaid = invoice_unpaid_span(invoice)
    if unpaid is None:
        return None
    start, end = max(unpaid[0], overdue_from(invoice, tz)), unpaid[1]
    if end is not None and end <= start:
        return None
    return (start, end)


def in_span(span: Span | None, at: datetime) -> bool:
    """Whether ``at`` lies in ``span`` (``[start, end)``; None: nowhere)."""
    return span is not None and span[0] <= at and (span[1] is None or at < span[1])


def invoice_unpaid(invoice: Invoice, at: datetime) -> bool:
    """Issued by ``at`` and not paid at ``at`` (open, or paid only later); drafts, void and
    uncollectible invoices are never unpaid (membership of :func:`invoice_unpaid_span`)."""
    return in_span(invoice_unpaid_span(invoice), at)


def invoice_overdue(invoice: Invoice, at: datetime) -> bool:
    """Unpaid at ``at`` and ``at``'s date (in ``at``'s own time zone) after the due date
    (membership of :func:`invoice_overdue_span` in that zone)."""
    return in_span(invoice_overdue_span(invoice, _zone(at)), at)


def _zone(at: datetime) -> tzinfo:
    tz = at.tzinfo
    if tz is None or tz.utcoffset(at) is None:
        raise TypeError("can't compare offset-naive and offset-aware datetimes")
    return tz


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
