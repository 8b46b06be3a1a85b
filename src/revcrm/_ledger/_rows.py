"""The ledger's row types: the contract part 2 of issue 13 stores as SQL tables.

The in-memory ledger holds these rows as numpy columns (:mod:`revcrm._ledger._steps`,
:mod:`revcrm._ledger._events`); a store materialises the same rows, one table each, and
aggregates them as :class:`~revcrm.metrics.MrrAnalysis` does. Amounts are integers in
units of ``10 ** -digits`` of the currency (``digits`` per ledger, see
``docs/architecture.md``); times are microseconds since 1970-01-01 UTC; an interval is
``[start, end)`` with ``end = None`` open.

Wired today: :class:`MrrStep` (``Steps``) and :class:`MrrEvent` (``Events``), from which
:class:`MrrInterval` follows (each event opens the interval that lasts until the
customer's next event). Declared, not yet built (TODO, issue 13 part 1 item 1):
:class:`CashEntry`, :class:`ServiceState` and :class:`CustomerFacts`.
"""

from __future__ import annotations

import attrs

__all__ = ["CashEntry", "CustomerFacts", "MrrEvent", "MrrInterval", "MrrStep", "ServiceState"]


@attrs.frozen(kw_only=True)
class MrrStep:
    """From ``at`` on, stream ``stream_id`` (a subscription, or an invoice line series)
    of ``customer_id`` has native monthly amount ``value`` in ``currency``; ``rate_day``
    (days since 1970-01-01) is its fixed conversion date under the service-period FX rule,
    None when it converts at the measured moment (or is in the reporting currency)."""

    stream_id: str
    customer_id: str
    currency: str
    at: int
    value: int
    rate_day: int | None


@attrs.frozen(kw_only=True)
class MrrEvent:
    """A moment at which the customer's MRR changes: ``before`` and ``after`` in the
    reporting currency, both converted at the event's date; ``free_after``: a live free
    plan remains; ``stream_ids``: the streams whose amount changed."""

    customer_id: str
    at: int
    before: int
    after: int
    free_after: bool
    stream_ids: tuple[str, ...]


@attrs.frozen(kw_only=True)
class MrrInterval:
    """The customer's MRR ``mrr`` (reporting currency, at the opening event's date) over
    ``[start, end)``, with the movement kind that opened it (``new``, ``expansion``,
    ``contraction``, ``churn``, ``reactivation``, or None when grouped into a neighbour or
    unchanged). Kinds depend on the grouping window and on period bounds (a group never
    spans a bound), so a store keeps the events and classifies per query, or stores the
    kinds of the natural (unbounded) grouping and reclassifies at the bounds."""

    customer_id: str
    start: int
    end: int | None
    mrr: int
    kind: str | None


@attrs.frozen(kw_only=True)
class CashEntry:
    """A payment, refund or credit of the customer, in its own currency and converted into
    the reporting currency at its own date (``amount_reporting``). TODO: not built yet."""

    customer_id: str
    at: int
    kind: str
    currency: str
    amount: int
    amount_reporting: int


@attrs.frozen(kw_only=True)
class ServiceState:
    """A subscription's service state over ``[start, end)``: ``active``, ``troubled``
    (past due within grace) or ``cancellation_effective``. TODO: not built yet."""

    subscription_id: str
    customer_id: str
    state: str
    start: int
    end: int | None


@attrs.frozen(kw_only=True)
class CustomerFacts:
    """What the segments and the customer list need per customer: first and last payment,
    net payments (reporting currency, each at its own date), LTV inputs, first paid
    moment. TODO: not built yet (``first_paid`` comes from the events today)."""

    customer_id: str
    first_payment_at: int | None
    last_payment_at: int | None
    net_payments: int
    first_paid_at: int | None
