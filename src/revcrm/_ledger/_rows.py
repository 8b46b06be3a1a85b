"""The ledger's row types: the contract part 2 of issue 13 stores as SQL tables.

The in-memory ledger holds these rows as numpy columns (:mod:`revcrm._ledger._steps`,
:mod:`revcrm._ledger._events`); a store materialises the same rows, one table each, and
aggregates them as :class:`~revcrm.metrics.MrrAnalysis` does. Amounts are integers in
units of ``10 ** -digits`` of the currency (``digits`` per ledger, see
``docs/architecture.md``); times are microseconds since 1970-01-01 UTC; an interval is
``[start, end)`` with ``end = None`` open.

Built: :class:`MrrStep` (``Steps``) and :class:`MrrEvent` (``Events``), from which
:class:`MrrInterval` follows (each event opens the interval that lasts until the
customer's next event); :class:`CashEntry` (:mod:`revcrm._ledger._cash`),
:class:`ServiceState` (:mod:`revcrm._ledger._services`) and :class:`CustomerFacts`
(:mod:`revcrm._ledger._facts`, the per-customer aggregation at one ``as_of``), all from
:func:`revcrm._ledger._facts.ledger_rows`.

Every field is plain: ids (str), instants (int microseconds since the epoch, UTC), money
as int units of ``10 ** -digits`` (``digits`` on the row), enum codes as their str values,
counts as int, flags as bool.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "CashEntry",
    "CashKind",
    "CustomerFacts",
    "MrrEvent",
    "MrrInterval",
    "MrrStep",
    "ServiceState",
]


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


class CashKind(enum.StrEnum):
    """The kind code of a :class:`CashEntry`."""

    PAYMENT = "payment"  # a successful payment: counts as cash in (LTV, total paid)
    REFUND = "refund"  # a successful refund: counts as cash out (LTV)
    CREDIT = "credit"  # a credit-ledger entry: never cash; the credit balance reads it


@attrs.frozen(kw_only=True)
class CashEntry:
    """One successful payment or refund, or one credit-ledger entry, of ``customer_id`` at
    ``at``: ``amount`` in its own ``currency`` as recorded (payments and refunds positive,
    credit entries signed: a grant positive, an application negative), and
    ``amount_reporting``, the same converted into the reporting currency at the entry's
    own date (UTC day of ``at``). Both in units of ``10 ** -digits``; ``amount_reporting``
    is None only for a credit entry without a rate on its day (credits are not cash: no
    figure converts them). Failed and pending
    transactions are not cash and have no entry. ``entry_id`` is the transaction's or the
    credit entry's id (unique per kind); ``method``: a payment's or refund's payment
    method (None for a credit entry), which the payment-method breakdown groups by."""

    entry_id: str
    customer_id: str
    at: int
    kind: str  # CashKind
    currency: str
    amount: int
    amount_reporting: int | None
    digits: int
    invoice_id: str | None
    method: str | None = None


@attrs.frozen(kw_only=True)
class ServiceState:
    """A subscription's service over ``[start, end)`` (``end`` None: open), by the rules of
    :mod:`revcrm._crm_services`:

    * ``active``: :func:`~revcrm._crm_services.is_active_service` holds throughout (a
      cancelled service is active until its ``ended_at``, a row boundary);
    * ``troubled``: :func:`~revcrm._crm_services.is_troubled_service` (past due or
      suspended);
    * ``cancellation_at``: :func:`~revcrm._crm_services.pending_cancellation`, when a
      cancellation pending throughout the row takes effect (for a cancellation scheduled
      at the period end, each service period is its own row);
    * ``status``: the subscription status code; ``product_id``: the service's product (its
      own, else its plan's), for the product filter.
    """

    subscription_id: str
    customer_id: str
    start: int
    end: int | None
    status: str
    active: bool
    troubled: bool
    cancellation_at: int | None
    product_id: str | None


@attrs.frozen(kw_only=True)
class CustomerFacts:
    """One customer's facts at ``as_of``, money in the reporting
    currency in units of ``10 ** -digits``: the one definition the customer list, the
    customer summary and the segments read.

    * ``mrr``: the MRR analysis' value at ``as_of`` (the policy's FX rule);
    * ``total_paid``, ``refunded``: successful payments and refunds up to ``as_of``, each
      converted at its own date; ``net_payments = total_paid - refunded`` is the LTV;
      ``payment_count``, ``first_payment_at``, ``last_payment_at`` of the payments. The
      LTV baseline (High Value) is the sum of ``net_payments`` and the count of the
      customers with ``payment_count > 0``;
    * ``credit_balance``: the credit ledger's balance in the reporting currency's own
      entries (not converted), as the customer list shows it;
    * ``active_services``, ``troubled_services``, ``next_cancellation_at``: from the
      :class:`ServiceState` rows containing ``as_of``;
    * ``overdue_invoices``: invoices overdue at ``as_of``; ``first_paid_at``: the first
      moment with MRR above zero, if by ``as_of``; ``ordered``: a service started, an
      invoice issued (neither draft nor void) or a payment made by ``as_of``.

    A customer registered after ``as_of`` has a row too (the customer list shows it); it
    is not a customer yet for the segments and the LTV baseline.
    """

    customer_id: str
    as_of: int
    registered_at: int
    digits: int
    mrr: int
    total_paid: int
    refunded: int
    net_payments: int
    payment_count: int
    first_payment_at: int | None
    last_payment_at: int | None
    credit_balance: int
    active_services: int
    troubled_services: int
    next_cancellation_at: int | None
    overdue_invoices: int
    first_paid_at: int | None
    ordered: bool
