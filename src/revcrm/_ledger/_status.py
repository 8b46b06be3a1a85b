"""The ledger's customer-status intervals: over which ``[start, end)`` a customer has each
status of :func:`revcrm._crm_services.customer_status` (evaluated here, never restated).

The rule reads the subscriptions' states at a moment (a state is constant between two of
its changes; a cancelled service stops being active at its ``ended_at``) and whether an
invoice is overdue then (it is issued at ``issued_at``, becomes overdue when the day
after its due date begins, UTC, and stops being unpaid at ``paid_at``). Between two of
those moments no input of the rule changes, so the rule is evaluated once per piece, at
its start, and neighbouring pieces with one status are merged. Every moment is an
exact bound (nothing depends on a horizon).

``LEAD`` (no service yet, nothing overdue) is the status before the first piece and
wherever no row says otherwise: its pieces are left out, so a store keeps a row only for
a customer who ordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from revcrm._crm_services import CustomerStatus, customer_status, invoice_overdue_span, overdue_from
from revcrm._records import Invoice
from revcrm._subscription import Subscription, SubscriptionStatus

__all__ = ["StatusInterval", "overdue_intervals", "rule_moments", "status_intervals"]


@attrs.frozen(kw_only=True)
class StatusInterval:
    """``customer_id`` has ``status`` over ``[start, end)`` (``end`` None: open)."""

    customer_id: str
    start: datetime
    end: datetime | None
    status: CustomerStatus


def rule_moments(
    subscriptions: Iterable[Subscription], invoices: Iterable[Invoice]
) -> list[datetime]:
    """Every moment at which an input of ``customer_status`` can change, sorted."""
    out: set[datetime] = set()
    for sub in subscriptions:
        for change, state in sub.replay():
            out.add(change.at)
            if state.status is SubscriptionStatus.CANCELLED and state.ended_at is not None:
                out.add(state.ended_at)
    for inv in invoices:
        out.add(inv.issued_at)
        # ``at.date() > due_date`` (``at`` in UTC) from the start of the next day on.
        out.add(overdue_from(inv))
        if inv.paid_at is not None:
            out.add(inv.paid_at)
    return sorted(out)


def overdue_intervals(invoice: Invoice) -> list[tuple[datetime, datetime | None]]:
    """Where ``invoice_overdue`` holds for the invoice (in UTC, as the ledger reads it), as
    ``[start, end)`` pieces (``end`` None: open): its one
    :func:`~revcrm._crm_services.invoice_overdue_span`, or none."""
    span = invoice_overdue_span(invoice)
    return [] if span is None else [span]


def status_intervals(
    customer_id: str,
    subscriptions: Sequence[Subscription],
    invoices: Sequence[Invoice],
    overdue: Sequence[tuple[Invoice, datetime, datetime | None]] | None = None,
) -> list[StatusInterval]:
    """The customer's status pieces other than ``LEAD``, in time order (see the module
    docstring); ``subscriptions`` and ``invoices``: all of the customer's.

    The rule reads invoices only through ``invoice_overdue``, so at each moment it is
    given the invoices overdue then (from :func:`overdue_intervals`), not all of them:
    the same answer, without asking every invoice at every moment. ``overdue``: those
    pieces as ``(invoice, start, end)``, when the caller has them already."""
    out: list[StatusInterval] = []
    moments = rule_moments(subscriptions, invoices)
    spans = (
        [(inv, lo, hi) for inv in invoices for lo, hi in overdue_intervals(inv)]
        if overdue is None
        else overdue
    )
    current: CustomerStatus = CustomerStatus.LEAD
    opened: datetime | None = None
    for at in moments:
        now = [inv for inv, lo, hi in spans if lo <= at and (hi is None or at < hi)]
        status = customer_status(subscriptions, now, at)
        if status is current:
            continue
        if current is not CustomerStatus.LEAD and opened is not None:
            out.append(
                StatusInterval(customer_id=customer_id, start=opened, end=at, status=current)
            )
        current, opened = status, at
    if current is not CustomerStatus.LEAD and opened is not None:
        out.append(StatusInterval(customer_id=customer_id, start=opened, end=None, status=current))
    return out
