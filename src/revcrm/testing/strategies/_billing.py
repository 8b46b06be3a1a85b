"""Invoices, invoice lines, transactions and credit entries of
:mod:`revcrm.testing.strategies`, and the quantities a line must reject; import them
from there."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from revcrm._money import Money
from revcrm._records import (
    CreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    PaymentMethod,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus
from revcrm.testing.strategies._money_time import (
    LATEST,
    _strategy,
    amounts,
    billing_cycles,
    currencies,
    ids,
    minor_units,
    moments,
    money,
)

_PAYING: Final = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


def _billed_periods(sub: Subscription, until: datetime) -> list[tuple[SubscriptionState, datetime]]:
    """Service periods a subscription was billed for: (state, moment in the period).

    Only paying periods (active or past due, billing anchor reached), at most a few per
    state, each period once.
    """
    out: list[tuple[SubscriptionState, datetime]] = []
    seen: set[datetime] = set()
    changes = sub.history
    for i, s in enumerate(sub.states):
        if s.status not in _PAYING or s.cancel_at_period_end:
            continue
        stop = changes[i + 1].at if i + 1 < len(changes) else until
        t = max(changes[i].at, s.billing_anchor)
        for _ in range(4):
            if t >= stop:
                break
            start, end = s.service_period(t)
            if start not in seen:
                seen.add(start)
                out.append((s, t))
            t = end
    return out


def _recurring_line(s: SubscriptionState, at: datetime, sub_id: str) -> InvoiceLine:
    start, end = s.service_period(at)
    amount = s.list_amount()
    discount = None
    if s.discount is not None:
        off = (amount - s.discount.apply(amount)).rounded()
        discount = min(off, amount) if off else None
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=amount,
        quantity=s.quantity,
        discount=discount,
        period_start=start,
        period_end=end,
        subscription_id=sub_id,
        product_id=s.product_id,
        description=f"{s.plan_id or 'subscription'} {start:%Y-%m-%d}",
    )


@st.composite
def _one_off_lines(draw: st.DrawFn, currency: str) -> InvoiceLine:
    amount = draw(money(currency, min_value=0, max_value=1000))
    tax = draw(money(currency, min_value=0, max_value=100)) if draw(st.booleans()) else None
    return InvoiceLine(
        kind=LineKind.ONE_OFF,
        amount=amount,
        tax=tax,
        description=draw(st.sampled_from(("setup fee", "domain", "addon", "support"))),
    )


def invoice_lines(
    currency: str | SearchStrategy[str] | None = None,
    *,
    kind: LineKind | None = None,
) -> SearchStrategy[InvoiceLine]:
    """Free-standing invoice lines: one-off lines (sometimes taxed), and recurring lines
    whose service period is one period of a drawn cycle from a drawn moment."""
    code = currencies() if currency is None else _strategy(currency)
    return _invoice_lines(code, st.sampled_from(tuple(LineKind) if kind is None else (kind,)))


@st.composite
def _invoice_lines(
    draw: st.DrawFn, currency: SearchStrategy[str], kind: SearchStrategy[LineKind]
) -> InvoiceLine:
    c = draw(currency)
    if draw(kind) is LineKind.ONE_OFF:
        return draw(_one_off_lines(c))
    start = draw(moments())
    cycle = draw(billing_cycles())
    amount = draw(money(c, min_value=0, max_value=5000))
    discount = None
    if draw(st.booleans()):
        discount = draw(money(c, min_value=0, max_value=amount.amount))
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=amount,
        quantity=draw(st.integers(1, 5)),
        discount=discount,
        tax=draw(money(c, min_value=0, max_value=100)) if draw(st.booleans()) else None,
        period_start=start,
        period_end=cycle.advance(start, 1),
    )


@st.composite
def _proration_pair(draw: st.DrawFn, line: InvoiceLine, sub_id: str) -> list[InvoiceLine]:
    """A mid-cycle switch as Stripe bills it: a credit for the unused rest of ``line``'s
    period (a negative recurring line, no larger than its net) and a charge for the same
    rest at another price, both of ``line``'s subscription."""
    assert line.period_start is not None
    assert line.period_end is not None
    span = line.period_end - line.period_start
    hours = span // timedelta(hours=1)
    if hours < 2:
        return []
    mid = line.period_start + timedelta(hours=draw(st.integers(1, hours - 1)))
    code = line.amount.currency
    credit = draw(money(code, min_value=0, max_value=line.net.amount))
    charge = draw(money(code, min_value=0, max_value=max(2 * line.net.amount, Decimal(1))))
    return [
        InvoiceLine(
            kind=LineKind.RECURRING,
            amount=-credit,
            period_start=mid,
            period_end=line.period_end,
            subscription_id=sub_id,
            description="unused time",
        ),
        InvoiceLine(
            kind=LineKind.RECURRING,
            amount=charge,
            period_start=mid,
            period_end=line.period_end,
            subscription_id=sub_id,
            description="remaining time",
        ),
    ]


@st.composite
def _loose_recurring_line(draw: st.DrawFn, currency: str) -> InvoiceLine:
    """A recurring line of no subscription (its cycle unknown) over any period."""
    start = draw(moments())
    length = draw(st.timedeltas(timedelta(hours=1), timedelta(days=800)))
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=draw(money(currency, min_value=0, max_value=5000)),
        period_start=start,
        period_end=start + length,
        description="service",
    )


_PAYMENT_DELAYS: Final = st.timedeltas(timedelta(0), timedelta(days=20))
_REFUND_DELAYS: Final = st.timedeltas(timedelta(0), timedelta(days=30))


@st.composite
def _invoices(
    draw: st.DrawFn,
    customer_id: SearchStrategy[str],
    invoice_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    subscription: Subscription | None,
    billed: tuple[SubscriptionState, datetime] | None,
    max_lines: int,
) -> Invoice:
    lines: list[InvoiceLine] = []
    if subscription is not None:
        code = subscription.currency
        periods = [billed] if billed is not None else _billed_periods(subscription, LATEST)
        if periods:
            s, at = draw(st.sampled_from(periods))
            lines.append(_recurring_line(s, at, subscription.id))
            if billed is not None and draw(st.integers(0, 3)) == 0:
                lines += draw(_proration_pair(lines[0], subscription.id))
    else:
        code = draw(currency)
        if draw(st.integers(0, 3)) == 0:
            lines.append(draw(_loose_recurring_line(code)))
    n_one_off = draw(st.integers(0 if lines else 1, max(max_lines - len(lines), 0 if lines else 1)))
    lines += [draw(_one_off_lines(code)) for _ in range(n_one_off)]
    subtotal = sum((line.net.amount for line in lines), Decimal(0))
    if subtotal > 0 and draw(st.integers(0, 3)) == 0:
        credit = draw(money(code, min_value=0, max_value=subtotal))
        if credit.amount:
            lines.append(InvoiceLine(kind=LineKind.ONE_OFF, amount=-credit, description="credit"))
    if lines and lines[0].period_start is not None:
        issued_at = lines[0].period_start
    else:
        issued_at = draw(moments())
    status = draw(
        st.sampled_from(
            (InvoiceStatus.PAID, InvoiceStatus.PAID, InvoiceStatus.PAID, *InvoiceStatus)
        )
    )
    paid_at = None
    if status is InvoiceStatus.PAID:
        paid_at = issued_at + draw(_PAYMENT_DELAYS)
    number = draw(st.integers(1, 999_999))
    return Invoice(
        id=draw(invoice_id),
        customer_id=subscription.customer_id if subscription is not None else draw(customer_id),
        currency=code,
        issued_at=issued_at,
        due_date=issued_at.date() + timedelta(days=draw(st.sampled_from((0, 7, 14, 30)))),
        status=status,
        lines=lines,
        number=f"INV-{number:06d}",
        paid_at=paid_at,
    )


def invoices(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    subscription: Subscription | None = None,
    max_lines: int = 3,
) -> SearchStrategy[Invoice]:
    """Invoices with lines, issued, due 0-30 days later, mostly paid (``paid_at`` set).

    With ``subscription`` the invoice belongs to its customer and currency and carries one
    recurring line for one of its billed service periods (a period of the cycle in force,
    from its billing anchor, while active or past due): amount = price x quantity, the
    subscription's discount as the line discount rounded to minor units, issued at the
    period start; one-off lines may follow. A subscription never billed (a trial that was
    cancelled, a free plan still gets lines) yields one-off lines only. Without it, lines
    are one-off, in ``currency`` (default :func:`currencies`), sometimes after a recurring
    line of no subscription over any period (an hour to 800 days). Sometimes a one-off
    credit (a negative line, no larger than the rest) ends the invoice.

    :func:`books` also gives some of a subscription's invoices a proration pair: a
    credit for the unused rest of the period (a negative recurring line) and a charge
    for that rest at another price.
    """
    return _invoices(
        ids("cus") if customer_id is None else _strategy(customer_id),
        ids("inv") if id is None else _strategy(id),
        currencies() if currency is None else _strategy(currency),
        subscription,
        None,
        max_lines,
    )


@st.composite
def _transactions(
    draw: st.DrawFn,
    customer_id: SearchStrategy[str],
    transaction_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    invoice: Invoice | None,
) -> Transaction:
    method = draw(st.sampled_from(tuple(PaymentMethod)) | st.sampled_from(("sepa", "crypto")))
    if invoice is not None and invoice.total.amount > 0:
        kind = draw(st.sampled_from((TransactionKind.PAYMENT, TransactionKind.REFUND)))
        at = invoice.paid_at or invoice.issued_at
        amount = invoice.total
        if kind is TransactionKind.REFUND:
            at += draw(_REFUND_DELAYS)
            share = draw(amounts(min_value="0.01", max_value=1, places=2))
            smallest = Money(Decimal(1).scaleb(-minor_units(amount.currency)), amount.currency)
            amount = min(max((amount * share).rounded(), smallest), invoice.total)
        status = (
            TransactionStatus.SUCCEEDED
            if invoice.status is InvoiceStatus.PAID
            else draw(st.sampled_from(tuple(TransactionStatus)))
        )
        return Transaction(
            id=draw(transaction_id),
            customer_id=invoice.customer_id,
            kind=kind,
            status=status,
            amount=amount,
            method=method,
            at=at,
            invoice_id=invoice.id,
        )
    code = draw(currency)
    amount = draw(money(code, min_value=1, max_value=5000))
    return Transaction(
        id=draw(transaction_id),
        customer_id=draw(customer_id),
        kind=draw(st.sampled_from(tuple(TransactionKind))),
        status=draw(st.sampled_from(tuple(TransactionStatus))),
        amount=amount,
        method=method,
        at=draw(moments()),
    )


def transactions(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    invoice: Invoice | None = None,
) -> SearchStrategy[Transaction]:
    """Payments and refunds with a positive amount, a method and a moment.

    With an ``invoice`` whose total is positive: a payment of the total at ``paid_at``
    (or the issue moment), or a partial refund up to 30 days later, succeeded when the
    invoice is paid; otherwise any kind and status, 1-5000 in ``currency``.
    """
    return _transactions(
        ids("cus") if customer_id is None else _strategy(customer_id),
        ids("txn") if id is None else _strategy(id),
        currencies() if currency is None else _strategy(currency),
        invoice,
    )


def credit_entries(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    invoice_ids: Sequence[str] = (),
    at: SearchStrategy[datetime] | None = None,
) -> SearchStrategy[CreditEntry]:
    """Credit ledger entries: non-zero amounts (positive adds, negative spends) with a
    reason, sometimes against one of ``invoice_ids``."""
    return _credit_entries(
        ids("cred") if id is None else _strategy(id),
        ids("cus") if customer_id is None else _strategy(customer_id),
        currencies() if currency is None else _strategy(currency),
        st.none() | st.sampled_from(tuple(invoice_ids)) if invoice_ids else st.none(),
        at if at is not None else moments(),
    )


@st.composite
def _credit_entries(
    draw: st.DrawFn,
    credit_id: SearchStrategy[str],
    customer_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    invoice_id: SearchStrategy[str | None],
    at: SearchStrategy[datetime],
) -> CreditEntry:
    amount = draw(money(draw(currency), min_value=1, max_value=1000))
    if draw(st.booleans()):
        amount = -amount
    return CreditEntry(
        id=draw(credit_id),
        customer_id=draw(customer_id),
        amount=amount,
        reason=draw(st.sampled_from(("refund as credit", "goodwill", "top-up", "invoice"))),
        at=draw(at),
        invoice_id=draw(invoice_id),
    )


def non_positive_quantities() -> SearchStrategy[int]:
    """Whole quantities <= 0."""
    return st.integers(max_value=0)


def invalid_quantities() -> SearchStrategy[object]:
    """Anything a quantity must reject: ints <= 0, bools, floats, numeric strings, Decimals."""
    return st.one_of(
        non_positive_quantities(),
        st.booleans(),
        st.floats(allow_nan=True),
        st.integers(1, 100).map(str),
        st.integers(1, 100).map(Decimal),
    )
