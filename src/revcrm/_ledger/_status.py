"""The ledger's customer-status intervals: over which ``[start, end)`` a customer has each
status of :func:`revcrm._crm_services.customer_status` (its rule,
:func:`~revcrm._crm_services.status_from`, fed here with what it reads; never restated).

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

from revcrm._crm_services import (
    CustomerStatus,
    invoice_overdue_span,
    is_active_service,
    is_troubled_service,
    overdue_from,
    status_from,
)
from revcrm._records import Invoice
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus

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

    The moments are walked in order, so each subscription's state is found by moving a
    pointer along its history (not by a search per moment), and "an invoice is overdue"
    is a count of the overdue pieces (:func:`overdue_intervals`) opened and not yet
    closed; what they say is fed to :func:`~revcrm._crm_services.status_from`, the rule
    :func:`~revcrm._crm_services.customer_status` also feeds (every record moment is in
    UTC, the zone the pieces are read in). The invoices change the rule's input only
    where an overdue piece starts or ends, so of :func:`rule_moments` only those and the
    services' moments are walked (the others would only repeat the status before them).
    ``overdue``: the pieces as ``(invoice, start, end)``, when the caller has them."""
    spans = (
        [(lo, hi) for inv in invoices for lo, hi in overdue_intervals(inv)]
        if overdue is None
        else [(lo, hi) for _, lo, hi in overdue if hi is None or lo < hi]
    )
    # Every piece has start < end, so the pieces open at ``at`` are those started by
    # ``at`` less those ended by ``at``.
    opens = sorted(lo for lo, _ in spans)
    closes = sorted(hi for _, hi in spans if hi is not None)
    moments = {*opens, *closes}
    # Per subscription: its change times, and per state what the rule reads of it
    # (troubled, ended: fixed; active: at the moment, the state itself).
    walks: list[tuple[list[datetime], list[tuple[bool, bool, SubscriptionState]]]] = []
    for sub in subscriptions:
        times = [c.at for c in sub.history]
        moments.update(times)
        reads = []
        for state in sub.states:
            reads.append((is_troubled_service(state), state.status.is_ended, state))
            if state.status is SubscriptionStatus.CANCELLED and state.ended_at is not None:
                moments.add(state.ended_at)
        walks.append((times, reads))
    pointers = [0] * len(walks)
    n_opens, n_closes = len(opens), len(closes)
    opened_by = closed_by = 0
    out: list[StatusInterval] = []
    current: CustomerStatus = CustomerStatus.LEAD
    opened: datetime | None = None
    for at in sorted(moments):
        while opened_by < n_opens and opens[opened_by] <= at:
            opened_by += 1
        while closed_by < n_closes and closes[closed_by] <= at:
            closed_by += 1
        troubled = active = ended = False
        for k, (times, reads) in enumerate(walks):
            i = pointers[k]
            n = len(times)
            while i < n and times[i] <= at:
                i += 1
            pointers[k] = i
            if i:
                is_troubled, is_ended, state = reads[i - 1]
                troubled = troubled or is_troubled
                ended = ended or is_ended
                active = active or is_active_service(state, at)
        status = status_from(
            troubled=troubled, overdue=opened_by > closed_by, active=active, ended=ended
        )
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
