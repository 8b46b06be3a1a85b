"""The ledger's per-customer facts at one moment: aggregations of the cash entries, the
service-state rows and the MRR analysis' values, as columns.

This is the one definition of the figures the customer list, the customer summary, the
segments and the LTV baseline show: MRR (the analysis', so the policy's FX rule), total
paid, refunds and net payments (LTV; each entry converted at its own date), payments'
first and last moments, credit balance (the reporting currency's own entries), active
and troubled services and the next pending cancellation (the service-state rows),
overdue invoices and whether the customer ordered (the invoice rows, with the services
and the payments).

The MRR comes in as plain values (per customer, units at some digits) so that this
module needs no metrics import: :func:`revcrm.metrics._customer_value.ledger_rows` joins
the analysis to the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._crm_services import CustomerStatus, status_from
from revcrm._ledger._cash import CashColumns, moment_us
from revcrm._ledger._fixed import Units, norm, summable
from revcrm._ledger._invoices import InvoiceColumns, invoice_columns
from revcrm._ledger._rows import CustomerFacts
from revcrm._ledger._services import OPEN, ServiceColumns, ServicesAt

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = ["FactColumns", "LedgerRows", "customer_statuses", "fact_columns"]

_NONE: Final = OPEN  # an absent moment in the moment columns
_PAYMENT, _REFUND, _CREDIT = 0, 1, 2


@attrs.frozen(kw_only=True, eq=False)
class FactColumns:
    """:class:`~revcrm._ledger._rows.CustomerFacts` of every customer as parallel arrays
    (index ``i`` is ``customer_ids[i]``, the book's customer order); moments are
    microseconds, :data:`~revcrm._ledger._services.OPEN` for None; money in units of
    ``10 ** -digits`` of ``currency``."""

    as_of: int
    currency: str
    digits: int
    customer_ids: tuple[str, ...]
    registered_at: npt.NDArray[np.int64]
    mrr: Units
    total_paid: Units
    refunded: Units
    credit_balance: Units
    payment_count: npt.NDArray[np.int64]
    first_payment_at: npt.NDArray[np.int64]
    last_payment_at: npt.NDArray[np.int64]
    active_services: npt.NDArray[np.int64]
    troubled_services: npt.NDArray[np.int64]
    next_cancellation_at: npt.NDArray[np.int64]
    overdue_invoices: npt.NDArray[np.int64]
    first_paid_at: npt.NDArray[np.int64]
    ordered: npt.NDArray[np.bool_]

    @property
    def net_payments(self) -> Units:
        out: Units = norm(summable(self.total_paid) - self.refunded)
        return out

    @property
    def registered(self) -> npt.NDArray[np.bool_]:
        """Customers registered by ``as_of`` (the segments' and the baseline's)."""
        return self.registered_at <= self.as_of

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.customer_ids)}

    def row(self, i: int) -> CustomerFacts:
        def opt(a: npt.NDArray[np.int64]) -> int | None:
            v = int(a[i])
            return None if v == _NONE else v

        return CustomerFacts(
            customer_id=self.customer_ids[i],
            as_of=self.as_of,
            registered_at=int(self.registered_at[i]),
            digits=self.digits,
            mrr=int(self.mrr[i]),
            total_paid=int(self.total_paid[i]),
            refunded=int(self.refunded[i]),
            net_payments=int(self.total_paid[i]) - int(self.refunded[i]),
            payment_count=int(self.payment_count[i]),
            first_payment_at=opt(self.first_payment_at),
            last_payment_at=opt(self.last_payment_at),
            credit_balance=int(self.credit_balance[i]),
            active_services=int(self.active_services[i]),
            troubled_services=int(self.troubled_services[i]),
            next_cancellation_at=opt(self.next_cancellation_at),
            overdue_invoices=int(self.overdue_invoices[i]),
            first_paid_at=opt(self.first_paid_at),
            ordered=bool(self.ordered[i]),
        )

    def rows(self) -> Iterator[CustomerFacts]:
        for i in range(len(self.customer_ids)):
            yield self.row(i)


@attrs.frozen(kw_only=True, eq=False)
class LedgerRows:
    """The cash, service-state, invoice and customer-fact parts of the ledger, built
    together (see :func:`revcrm.metrics._customer_value.ledger_rows`); ``invoices`` is
    None only when the caller built the facts without handing their invoice rows on."""

    cash: CashColumns
    services: ServiceColumns
    services_at: ServicesAt
    facts: FactColumns
    invoices: InvoiceColumns | None = None


def customer_statuses(ledger: LedgerRows) -> list[CustomerStatus]:
    """Every customer's :func:`~revcrm._crm_services.customer_status` at the facts'
    ``as_of`` (in ``facts.customer_ids`` order), from the ledger: the service-state rows
    containing ``as_of`` (troubled, active, ended services) and the overdue invoices, fed
    to the rule's one definition, :func:`~revcrm._crm_services.status_from`."""
    facts, now = ledger.facts, ledger.services_at
    if ledger.services.customer_ids != facts.customer_ids:
        raise ValueError("the service rows and the facts index different customers")
    flags = zip(
        (now.troubled > 0).tolist(),
        (facts.overdue_invoices > 0).tolist(),
        (now.active > 0).tolist(),
        (now.ended > 0).tolist(),
        strict=True,
    )
    # Sixteen combinations at most: the rule is evaluated once per distinct one.
    memo: dict[tuple[bool, bool, bool, bool], CustomerStatus] = {}
    out = []
    for key in flags:
        status = memo.get(key)
        if status is None:
            t, o, a, e = key
            status = memo[key] = status_from(troubled=t, overdue=o, active=a, ended=e)
        out.append(status)
    return out


def _sum_by(customer: npt.NDArray[np.int64], values: Units, n: int) -> Units:
    """Per customer the exact sum of ``values`` (int64 when no sum can wrap)."""
    v = summable(values)
    out: Units = np.zeros(n, dtype=np.int64 if v.dtype == np.int64 else object)
    np.add.at(out, customer, v)
    return norm(out)


def _rescale(values: Units, by: int) -> Units:
    if by == 0:
        return values
    factor = 10**by
    if values.dtype == np.int64 and values.size:
        bound = max(abs(int(values.max())), abs(int(values.min()))) * factor
        if bound < 2**62 and factor < 2**62:
            scaled: Units = values * factor
            return scaled
    out: Units = norm(values.astype(object) * factor)
    return out


def fact_columns(
    book: Book,
    *,
    as_of: datetime,
    cash: CashColumns,
    services: ServiceColumns,
    mrr: Mapping[str, int],
    mrr_digits: int,
    first_paid: Mapping[str, datetime],
    invoices: InvoiceColumns | None = None,
) -> tuple[FactColumns, ServicesAt]:
    """Every customer's facts at ``as_of`` from the cash entries, the service rows, the
    invoice rows (built here from ``book`` when not given) and the MRR analysis'
    per-customer values (``mrr``: units of ``10 ** -mrr_digits``, customers without MRR
    absent; ``first_paid``: each customer's first moment with MRR)."""
    t = moment_us(as_of)
    ids = cash.customer_ids
    n = len(ids)
    if invoices is None:
        invoices = invoice_columns(book, cash.reporting_currency, customer_ids=ids, through=t)
    elif invoices.customer_ids != ids:
        raise ValueError("the invoice rows and the cash entries index different customers")
    digits = max(cash.digits, mrr_digits)
    upto = cash.at <= t
    cust = cash.customer
    kind = cash.kind
    pay = upto & (kind == _PAYMENT)
    ref = upto & (kind == _REFUND)
    own = (
        upto & (kind == _CREDIT) & (cash.currency == cash.currencies.index(cash.reporting_currency))
    )
    up = digits - cash.digits
    total_paid = _rescale(_sum_by(cust[pay], cash.reporting[pay], n), up)
    refunded = _rescale(_sum_by(cust[ref], cash.reporting[ref], n), up)
    credit = _rescale(_sum_by(cust[own], cash.amount[own], n), up)
    count = np.bincount(cust[pay], minlength=n).astype(np.int64)
    first = np.full(n, _NONE, dtype=np.int64)
    np.minimum.at(first, cust[pay], cash.at[pay])
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, cust[pay], cash.at[pay])
    last[count == 0] = _NONE
    index = {c: i for i, c in enumerate(ids)}
    mrr_col: Units = np.zeros(n, dtype=object)
    mrr_col[:] = 0
    scale = 10 ** (digits - mrr_digits)
    for cid, units in mrr.items():
        i = index.get(cid)
        if i is not None:
            mrr_col[i] = units * scale
    since = np.full(n, _NONE, dtype=np.int64)
    for cid, moment in first_paid.items():
        i = index.get(cid)
        if i is not None and moment <= as_of:
            since[i] = moment_us(moment)
    # The rows hold the rules' answers (invoice_overdue's pieces, first_invoiced_at).
    overdue = invoices.overdue_at(t)
    invoiced = invoices.ordered_by(t)
    now = services.at(t)
    registered = np.array([moment_us(c.registered_at) for c in book.customers], dtype=np.int64)
    if tuple(c.id for c in book.customers) != ids:
        order = {c.id: moment_us(c.registered_at) for c in book.customers}
        registered = np.array([order[c] for c in ids], dtype=np.int64)
    facts = FactColumns(
        as_of=t,
        currency=cash.reporting_currency,
        digits=digits,
        customer_ids=ids,
        registered_at=registered,
        mrr=norm(mrr_col),
        total_paid=total_paid,
        refunded=refunded,
        credit_balance=credit,
        payment_count=count,
        first_payment_at=first,
        last_payment_at=last,
        active_services=now.active,
        troubled_services=now.troubled,
        next_cancellation_at=now.next_cancellation,
        overdue_invoices=overdue,
        first_paid_at=since,
        ordered=now.started | invoiced | (count > 0),
    )
    return facts, now
