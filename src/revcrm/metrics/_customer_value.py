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
import numpy.typing as npt

from revcrm._book import Book
from revcrm._ledger._cash import KIND_CODES, CashColumns, cash_columns, cash_entries, moment_us
from revcrm._ledger._facts import LedgerRows, fact_columns
from revcrm._ledger._fixed import Units, norm, places, summable
from revcrm._ledger._invoices import (
    STATUS_CODES,
    InvoiceColumns,
    invoice_columns,
    invoice_entries,
)
from revcrm._ledger._rows import CashKind
from revcrm._ledger._services import ServiceColumns, service_columns
from revcrm._money import EXACT_CONTEXT, FxRates, Money, money_sum
from revcrm._records import InvoiceStatus
from revcrm._time import as_moment
from revcrm.errors import MissingRateError
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
_DRAFT: Final = STATUS_CODES.index(InvoiceStatus.DRAFT)
_VOID: Final = STATUS_CODES.index(InvoiceStatus.VOID)
_DAY_US: Final = 86_400_000_000


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


@attrs.frozen
class _Invoiced:
    """One customer's invoice figures as of ``as_of``: how many invoices count, their
    mean total and the outstanding balance (see :class:`CustomerValue`)."""

    count: int
    average: Money | None
    owed: Money


def _day(us: int) -> date:
    return (_EPOCH + timedelta(microseconds=us)).date()


def _decimal(units: int, digits: int) -> Decimal:
    return Decimal(units).scaleb(-digits, context=EXACT_CONTEXT)


def _sums(customer: npt.NDArray[np.int64], values: Units, n: int) -> list[int]:
    v = summable(values)
    out: Units = np.zeros(n, dtype=np.int64 if v.dtype == np.int64 else object)
    np.add.at(out, customer, v)
    return [int(u) for u in norm(out).tolist()]


def _invoice_figures(
    invoices: InvoiceColumns, cash: CashColumns, at: datetime, fx: FxRates
) -> list[_Invoiced]:
    """Every customer's invoice figures at ``at`` (in ``invoices.customer_ids`` order) from
    the invoice rows and the cash entries linked to them.

    Counted: invoices issued by ``at``, neither draft nor void, each total converted at its
    issue day (the rows'). Outstanding: those unpaid at ``at`` (the rows' unpaid spans,
    :func:`~revcrm._crm_services.invoice_unpaid_span`: open, or paid only later; a paid
    invoice without ``paid_at`` is taken as paid before ``at``; uncollectible ones are
    written off), each the remainder of its total after the customer's successful
    payments linked to it up to ``at`` (each converted into the invoice's currency at its
    own day), converted at ``at``'s day when positive.
    """
    if cash.customer_ids != invoices.customer_ids:
        raise ValueError("the invoice rows and the cash entries index different customers")
    t = _us(at)
    n = len(invoices.customer_ids)
    currency = invoices.reporting_currency
    status, cust = invoices.status, invoices.customer
    issued = invoices.issued_at <= t
    counted = issued & (status != _DRAFT) & (status != _VOID)
    missing = np.flatnonzero(counted & ~invoices.converted)
    if missing.size:
        row = int(missing[0])
        source = invoices.currencies[int(invoices.currency[row])]
        raise MissingRateError(source, currency, invoices.issue_day(row))
    counts = np.bincount(cust[counted], minlength=n).tolist()
    sums = _sums(cust[counted], invoices.reporting[counted], n)
    unpaid = invoices.unpaid_at(t)  # the rows' invoice_unpaid_span
    owed: dict[int, Money] = {}
    rows = np.flatnonzero(unpaid).tolist()
    if rows:
        want = {invoices.invoice_ids[r]: r for r in rows}
        linked: dict[int, list[int]] = defaultdict(list)
        ids = cash.invoice_ids
        for j in np.flatnonzero((cash.kind == _PAYMENT) & (cash.at <= t)).tolist():
            key = ids[j]
            r = None if key is None else want.get(key)
            if r is not None and cash.customer[j] == cust[r]:
                linked[r].append(j)
        day = at.date()
        for r in rows:
            code = invoices.currencies[int(invoices.currency[r])]
            paid = money_sum(
                (
                    fx.convert(
                        Money(
                            _decimal(int(cash.amount[j]), cash.digits),
                            cash.currencies[int(cash.currency[j])],
                        ),
                        code,
                        on=_day(int(cash.at[j])),
                    )
                    for j in linked.get(r, ())
                ),
                code,
            )
            remainder = Money(_decimal(int(invoices.total[r]), invoices.digits), code) - paid
            if remainder.amount > 0:
                c = int(cust[r])
                converted = fx.convert(remainder, currency, on=day)
                owed[c] = owed[c] + converted if c in owed else converted
    zero = Money.zero(currency)
    return [
        _Invoiced(
            count=k,
            average=_money(u, invoices.digits, currency) / Decimal(k) if k else None,
            owed=owed.get(i, zero),
        )
        for i, (k, u) in enumerate(zip(counts, sums, strict=True))
    ]


def _value(
    book: Book,
    customer_id: str,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    first_paid: Mapping[str, datetime] | None = None,
    cash: _Cash | None = None,
    invoiced: _Invoiced | None = None,
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
    if invoiced is None:
        rows = invoice_entries(
            book.invoices_by_customer.get(customer_id, ()),
            fx,
            currency,
            customer_ids=(customer_id,),
            through=_us(at),
        )
        (invoiced,) = _invoice_figures(rows, cash.columns, at, fx)
    paid, refunded, payments, last = cash.totals()
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
        invoice_count=invoiced.count,
        average_invoice_value=invoiced.average,
        outstanding_balance=invoiced.owed,
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
    invoices = invoice_columns(book, currency, customer_ids=ids, through=_us(at))
    figures = _invoice_figures(invoices, columns, at, book.fx)
    # Entries are ordered by customer: each customer's are one slice.
    ptr = np.searchsorted(columns.customer, np.arange(len(ids) + 1)).tolist()
    return tuple(
        _value(
            book,
            cid,
            at,
            currency,
            policy,
            firsts,
            _Cash(columns, ptr[i], ptr[i + 1]),
            figures[i],
        )
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
    invoices: InvoiceColumns | None = None,
) -> LedgerRows:
    """The cash entries, service-state rows, invoice rows and every customer's facts at
    ``as_of``: the one definition the customer list, the customer summary, the segments
    and the LTV baseline aggregate (see :mod:`revcrm._ledger._facts`).

    ``analysis`` (of this book, in ``currency``, under ``policy``) supplies the MRR;
    without it one is computed with its horizon just past ``as_of`` (so a renewal exactly
    at ``as_of`` gets its own FX step). Cash and invoices are read up to ``as_of``; a
    payment or refund without a rate on its own day is a
    :class:`~revcrm.errors.MissingRateError` (an invoice without one is left unconverted:
    no fact reads its converted total).
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
    if invoices is None:
        invoices = invoice_columns(book, currency, customer_ids=ids, through=moment_us(as_of))
    facts, now = fact_columns(
        book,
        as_of=as_of,
        cash=cash,
        services=services,
        mrr=mrr,
        mrr_digits=mrr_digits,
        first_paid=analysis.first_paid(),
        invoices=invoices,
    )
    return LedgerRows(cash=cash, services=services, services_at=now, facts=facts, invoices=invoices)
