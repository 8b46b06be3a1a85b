"""Historical value of a customer at an explicit moment, in one reporting currency.

Date rules for conversion through ``book.fx`` (ChartMogul converts cash at the
transaction date):

* cash (payments and refunds) at the date of each transaction;
* invoice amounts (for the average invoice value) at the invoice's issue date;
* balances (outstanding invoices, credit) at the date of ``as_of``, because a balance is
  what is owed or held at that moment.

Everything is read "as of" ``as_of`` inclusive: transactions, invoices issued and credit
entries at or before it. Invoice statuses are those in the book (a snapshot); only
``paid_at`` dates a payment, so an invoice paid after ``as_of`` still counts as
outstanding at ``as_of``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

import attrs
import numpy as np

from revcrm._book import Book
from revcrm._ledger._cash import KIND_CODES, CashColumns, cash_columns, cash_entries, moment_us
from revcrm._ledger._facts import LedgerRows, fact_columns
from revcrm._ledger._fixed import places
from revcrm._ledger._rows import CashKind
from revcrm._ledger._services import ServiceColumns, service_columns
from revcrm._money import EXACT_CONTEXT, Money, money_sum
from revcrm._records import Invoice, InvoiceStatus, Transaction, TransactionKind
from revcrm._time import as_moment
from revcrm.metrics._economics import first_paid_at
from revcrm.metrics._engine import MrrAnalysis, analyse
from revcrm.metrics._inputs import book_args, check_analysis_args
from revcrm.metrics._policy import MetricsPolicy

__all__ = ["CustomerValue", "customer_value", "customer_values", "ledger_rows"]

_TICK = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_PAYMENT: Final = KIND_CODES.index(CashKind.PAYMENT)
_REFUND: Final = KIND_CODES.index(CashKind.REFUND)
_CREDIT: Final = KIND_CODES.index(CashKind.CREDIT)


@attrs.frozen(kw_only=True)
class CustomerValue:
    """What a customer has paid and owes, as of ``as_of``, in ``currency``.

    * ``total_paid``: successful payments; ``refunded``: successful refunds;
      :attr:`net_payments` = ``total_paid - refunded`` (ChartMogul "net payments").
    * ``average_invoice_value``: mean total (tax included) of the invoices issued, neither
      draft nor void; ``None`` without invoices.
    * ``outstanding_balance``: unpaid remainder of open invoices (total minus successful
      payments linked to the invoice), counting invoices paid only after ``as_of``;
      uncollectible invoices are written off and not counted.
    * ``credit_balance``: the credit ledger's balance (all currencies, converted).
    * ``subscriber_since``: the first moment with MRR > 0 under the policy, ``None`` if the
      customer never paid by ``as_of``.
    """

    customer_id: str
    as_of: datetime
    currency: str
    total_paid: Money
    refunded: Money
    payment_count: int
    invoice_count: int
    average_invoice_value: Money | None
    outstanding_balance: Money
    credit_balance: Money
    last_payment_at: datetime | None
    subscriber_since: datetime | None

    @property
    def net_payments(self) -> Money:
        return self.total_paid - self.refunded


@attrs.frozen
class _Cash:
    """One customer's cash entries: rows ``[lo, hi)`` of ``columns`` (ordered by customer)."""

    columns: CashColumns
    lo: int
    hi: int

    def totals(self) -> tuple[Money, Money, int, datetime | None]:
        """Payments and refunds (each converted at its own date), the payment count and
        the last payment's moment: sums of the ledger's cash entries."""
        c = self.columns
        kind = c.kind[self.lo : self.hi]
        units = c.reporting[self.lo : self.hi]
        pay = kind == _PAYMENT
        ref = kind == _REFUND
        paid = sum(int(u) for u in units[pay].tolist())
        refunded = sum(int(u) for u in units[ref].tolist())
        count = int(np.count_nonzero(pay))
        last = None
        if count:
            last = _EPOCH + timedelta(microseconds=int(c.at[self.lo : self.hi][pay].max()))
        cur = c.reporting_currency
        return _money(paid, c.digits, cur), _money(refunded, c.digits, cur), count, last

    def credit_balances(self) -> dict[str, Money]:
        """The credit ledger's balance per currency (each in its own currency): sums of
        the ledger's credit entries."""
        c = self.columns
        credit = c.kind[self.lo : self.hi] == _CREDIT
        amounts = c.amount[self.lo : self.hi][credit].tolist()
        codes = c.currency[self.lo : self.hi][credit].tolist()
        units: dict[str, int] = {}
        for u, k in zip(amounts, codes, strict=True):
            units[c.currencies[k]] = units.get(c.currencies[k], 0) + int(u)
        return {cur: _money(u, c.digits, cur) for cur, u in units.items()}


def _money(units: int, digits: int, currency: str) -> Money:
    return Money(Decimal(units).scaleb(-digits, context=EXACT_CONTEXT), currency)


def _us(t: datetime) -> int:
    return moment_us(t)


def _outstanding(invoice: Invoice, payments: list[Transaction], at: datetime, book: Book) -> Money:
    """The unpaid remainder of one invoice at ``at``, in the invoice's currency."""
    # A paid invoice without ``paid_at`` is taken as paid before ``as_of``.
    paid_later = (
        invoice.status is InvoiceStatus.PAID
        and invoice.paid_at is not None
        and invoice.paid_at > at
    )
    if invoice.status is not InvoiceStatus.OPEN and not paid_later:
        return Money.zero(invoice.currency)
    paid = money_sum(
        (book.fx.convert(t.amount, invoice.currency, on=t.at.date()) for t in payments),
        invoice.currency,
    )
    remainder = invoice.total - paid
    return remainder if remainder.amount > 0 else Money.zero(invoice.currency)


def _value(
    book: Book,
    customer_id: str,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    first_paid: Mapping[str, datetime] | None = None,
    cash: _Cash | None = None,
) -> CustomerValue:
    fx = book.fx
    day = at.date()
    zero = Money.zero(currency)
    if cash is None:
        own = book.transactions_by_customer.get(customer_id, ())
        credits = book.credits_by_customer.get(customer_id, ())
        columns = cash_entries(
            own, credits, fx, currency, customer_ids=(customer_id,), through=_us(at)
        )
        cash = _Cash(columns, 0, len(columns))
    paid, refunded, payments, last = cash.totals()
    linked: dict[str, list[Transaction]] = defaultdict(list)
    for t in book.transactions_by_customer.get(customer_id, ()):
        # The outstanding balance reads the payments linked to each invoice (in the
        # invoice's currency), not the reporting-currency cash entries.
        paying = t.succeeded and t.kind is TransactionKind.PAYMENT
        if paying and t.at <= at and t.invoice_id is not None:
            linked[t.invoice_id].append(t)
    invoiced: list[Money] = []
    owed = zero
    for inv in book.invoices_by_customer.get(customer_id, ()):
        if inv.issued_at > at or inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            continue
        invoiced.append(fx.convert(inv.total, currency, on=inv.issued_at.date()))
        remainder = _outstanding(inv, linked.get(inv.id, []), at, book)
        if not remainder.is_zero():
            owed += fx.convert(remainder, currency, on=day)
    # A balance is converted at ``as_of`` (what is held then), one per currency.
    credit = zero
    for _, balance in sorted(cash.credit_balances().items()):
        if not balance.is_zero():
            credit += fx.convert(balance, currency, on=day)
    if first_paid is not None:
        since = first_paid.get(customer_id)
    else:
        since = first_paid_at(book.subscriptions_by_customer.get(customer_id, ()), policy)
    return CustomerValue(
        customer_id=customer_id,
        as_of=at,
        currency=currency,
        total_paid=paid,
        refunded=refunded,
        payment_count=payments,
        invoice_count=len(invoiced),
        average_invoice_value=(
            money_sum(invoiced, currency) / Decimal(len(invoiced)) if invoiced else None
        ),
        outstanding_balance=owed,
        credit_balance=credit,
        last_payment_at=last,
        subscriber_since=since if since is not None and since <= at else None,
    )


def customer_value(
    book: Book,
    customer_id: str,
    *,
    as_of: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
) -> CustomerValue:
    """The historical value of one customer as of ``as_of`` (see :class:`CustomerValue`).

    A date ``as_of`` means 00:00 UTC of that day, as everywhere in revcrm. An unknown
    customer is a :class:`~revcrm.errors.NotFoundError`; a missing exchange rate a
    :class:`~revcrm.errors.MissingRateError`. With ``analysis`` (an :func:`analyse`
    result of this book), ``subscriber_since`` is the customer's first MRR in it (invoice
    source included) and its currency is used.
    """
    currency, policy, firsts = _args(book, currency, policy, analysis)
    at = as_moment(as_of, "as_of")
    book.customer(customer_id)
    return _value(book, customer_id, at, currency, policy, firsts)


def _args(
    book: Book, currency: str | None, policy: MetricsPolicy | None, analysis: MrrAnalysis | None
) -> tuple[str, MetricsPolicy, Mapping[str, datetime] | None]:
    if analysis is None:
        return (*book_args(book, currency, policy), None)
    check_analysis_args(analysis, currency, policy)
    return analysis.currency, analysis.policy, analysis.first_paid()


def customer_values(
    book: Book,
    *,
    as_of: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
) -> tuple[CustomerValue, ...]:
    """:func:`customer_value` of every customer of the book, in customer id order.

    Every customer is included (also those registered after ``as_of``, with zero values),
    so the per-customer cash figures add up to the book's cash totals.
    """
    currency, policy, firsts = _args(book, currency, policy, analysis)
    at = as_moment(as_of, "as_of")
    ids = tuple(c.id for c in book.customers)
    columns = cash_columns(book, currency, customer_ids=ids, through=_us(at))
    # Entries are ordered by customer: each customer's are one slice.
    ptr = np.searchsorted(columns.customer, np.arange(len(ids) + 1)).tolist()
    return tuple(
        _value(book, cid, at, currency, policy, firsts, _Cash(columns, ptr[i], ptr[i + 1]))
        for i, cid in enumerate(ids)
    )


def ledger_rows(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    policy: MetricsPolicy,
    analysis: MrrAnalysis | None = None,
    cash: CashColumns | None = None,
    services: ServiceColumns | None = None,
) -> LedgerRows:
    """The cash entries, service-state rows and every customer's facts at ``as_of``: the
    one definition the customer list, the customer summary, the segments and the LTV
    baseline aggregate (see :mod:`revcrm._ledger._facts`).

    ``analysis`` (of this book, in ``currency``, under ``policy``) supplies the MRR;
    without it one is computed with its horizon just past ``as_of`` (so a renewal exactly
    at ``as_of`` gets its own FX step). Cash is read up to ``as_of``; a payment or refund
    without a rate on its own day is a :class:`~revcrm.errors.MissingRateError`.
    """
    if analysis is None:
        analysis = analyse(book, currency=currency, policy=policy, horizon=as_of + _TICK)
    values = analysis.customers_with_mrr(as_of)
    mrr_digits = max((places(m.amount) for m in values.values()), default=0)
    mrr = {
        cid: int(m.amount.scaleb(mrr_digits, context=EXACT_CONTEXT)) for cid, m in values.items()
    }
    ids = tuple(c.id for c in book.customers)
    if cash is None:
        cash = cash_columns(book, currency, customer_ids=ids, through=moment_us(as_of))
    if services is None:
        services = service_columns(book, customer_ids=ids, horizon=as_of)
    facts, now = fact_columns(
        book,
        as_of=as_of,
        cash=cash,
        services=services,
        mrr=mrr,
        mrr_digits=mrr_digits,
        first_paid=analysis.first_paid(),
    )
    return LedgerRows(cash=cash, services=services, services_at=now, facts=facts)
