"""The segment definitions of docs/segments.md written out plainly, record by record.

Deliberately independent of revcrm.segments and revcrm.crm: nothing here calls the code
under test (only the core records, state replay, MRR timeline and FX conversion), and
averages are exact fractions, so a property comparing the two checks the rules, not a
copy of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from fractions import Fraction

from dateutil.relativedelta import relativedelta

from revcrm import (
    Book,
    InvoiceStatus,
    SubscriptionState,
    SubscriptionStatus,
    TransactionKind,
    TransactionStatus,
)
from revcrm.metrics import MetricsPolicy, subscription_mrr_timeline

S = SubscriptionStatus


def registered(book: Book, at: datetime) -> list[str]:
    return [c.id for c in book.customers if c.registered_at <= at]


def _states(book: Book, cid: str, at: datetime) -> list[SubscriptionState]:
    out = []
    for sub in book.subscriptions:
        if sub.customer_id == cid:
            st = sub.state_at(at)
            if st is not None:
                out.append(st)
    return out


def active_service(st: SubscriptionState, at: datetime) -> bool:
    if st.status in (S.ACTIVE, S.TRIALING, S.PAST_DUE):
        return True
    return st.status == S.CANCELLED and st.ended_at is not None and at < st.ended_at


def has_active_service(book: Book, cid: str, at: datetime) -> bool:
    return any(active_service(st, at) for st in _states(book, cid, at))


def overdue_invoice(book: Book, cid: str, at: datetime) -> bool:
    for inv in book.invoices:
        if inv.customer_id != cid or inv.issued_at > at:
            continue
        unpaid = inv.status == InvoiceStatus.OPEN or (
            inv.status == InvoiceStatus.PAID and inv.paid_at is not None and inv.paid_at > at
        )
        if unpaid and at.date() > inv.due_date:
            return True
    return False


def cancellation_due(book: Book, cid: str, at: datetime, days: int) -> bool:
    limit = at + timedelta(days=days)
    for st in _states(book, cid, at):
        if st.status == S.CANCELLED:
            effective = st.ended_at
        elif st.cancel_at_period_end and st.status not in (S.CANCELLED, S.TERMINATED):
            effective = st.cycle.period_containing(st.billing_anchor, at)[1]
        else:
            continue
        if effective is not None and at < effective <= limit:
            return True
    return False


def at_risk(book: Book, cid: str, at: datetime, days: int) -> bool:
    troubled = any(st.status in (S.PAST_DUE, S.SUSPENDED) for st in _states(book, cid, at))
    return troubled or overdue_invoice(book, cid, at) or cancellation_due(book, cid, at, days)


def _payments(book: Book, cid: str, at: datetime) -> list[tuple[datetime, Fraction]]:
    """Successful payments (+) and refunds (-) up to ``at``, in USD at their dates."""
    out = []
    for tx in book.transactions:
        if tx.customer_id == cid and tx.status == TransactionStatus.SUCCEEDED and tx.at <= at:
            usd = book.fx.convert(tx.amount, "USD", on=tx.at.date()).amount
            sign = 1 if tx.kind == TransactionKind.PAYMENT else -1
            out.append((tx.at, sign * Fraction(usd)))
    return out


def ltv(book: Book, cid: str, at: datetime) -> Fraction:
    return sum((v for _, v in _payments(book, cid, at)), Fraction(0))


def paid_ever(book: Book, cid: str, at: datetime) -> bool:
    return any(v > 0 for _, v in _payments(book, cid, at))


def high_value(book: Book, cid: str, at: datetime) -> bool:
    payers = [c for c in registered(book, at) if paid_ever(book, c, at)]
    if not payers or not has_active_service(book, cid, at):
        return False
    average = sum((ltv(book, c, at) for c in payers), Fraction(0)) / len(payers)
    return ltv(book, cid, at) > average


def active(book: Book, cid: str, at: datetime, days: int | None, grace_days: int = 7) -> bool:
    """With ``days``: an active service and a payment in the last ``days`` days. Without:
    an active service whose current period is paid (docs/segments.md)."""
    paid_at = [when for when, v in _payments(book, cid, at) if v > 0]
    if days is not None:
        since = at - timedelta(days=days)
        return any(when >= since for when in paid_at) and has_active_service(book, cid, at)
    grace = timedelta(days=grace_days)
    for sub in book.subscriptions:
        st = sub.state_at(at) if sub.customer_id == cid else None
        if st is None or not active_service(st, at):
            continue
        reaching = []  # invoices with a line of this service reaching into the grace
        for inv in book.invoices:
            if inv.customer_id != cid or inv.issued_at > at:
                continue
            if inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
                continue
            for line in inv.lines:
                if (
                    line.subscription_id == sub.id
                    and line.period_start is not None
                    and line.period_end is not None
                    and line.period_start <= at
                    and line.period_end > at - grace
                ):
                    reaching.append(inv)
        if reaching:
            if any(
                i.status == InvoiceStatus.PAID and (i.paid_at is None or i.paid_at <= at)
                for i in reaching
            ):
                return True
            continue
        unit, count = st.cycle.unit.value, st.cycle.count
        if unit in ("month", "year"):
            back = at - relativedelta(months=count * (12 if unit == "year" else 1))
        else:
            back = at - timedelta(weeks=count) if unit == "week" else at - timedelta(days=count)
        if any(back - grace <= when <= at for when in paid_at):
            return True
    return False


def churned(book: Book, cid: str, at: datetime, policy: MetricsPolicy) -> bool:
    had_paid = any(
        when <= at and not value.is_zero()
        for sub in book.subscriptions
        if sub.customer_id == cid
        for when, value in subscription_mrr_timeline(sub, policy=policy)
    )
    return had_paid and not has_active_service(book, cid, at)


def new(book: Book, cid: str, at: datetime, days: int) -> bool:
    c = book.customer(cid)
    return at - timedelta(days=days) <= c.registered_at <= at


def never_purchased(book: Book, cid: str, at: datetime) -> bool:
    subs = any(s.customer_id == cid and s.started_at <= at for s in book.subscriptions)
    invoices = any(
        i.customer_id == cid
        and i.issued_at <= at
        and i.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID)
        for i in book.invoices
    )
    payments = any(when <= at and v > 0 for when, v in _payments(book, cid, at))
    return not (subs or invoices or payments)


Rule = Callable[[Book, str, datetime], bool]


def cycle_edges(book: Book, grace_days: int) -> list[datetime]:
    """Moments where the cycle-aware Active rule may flip: a payment leaving a service's
    window (one cycle plus the grace after it), an invoice line's period leaving the
    grace, an invoice being paid."""
    grace = timedelta(days=grace_days)
    cycles = {s.cycle for sub in book.subscriptions for s in sub.states}
    out: list[datetime] = []
    for tx in book.transactions:
        if tx.status == TransactionStatus.SUCCEEDED and tx.kind == TransactionKind.PAYMENT:
            out += [c.advance(tx.at + grace, 1) for c in cycles]
    for inv in book.invoices:
        if inv.paid_at is not None:
            out.append(inv.paid_at)
        out += [line.period_end + grace for line in inv.lines if line.period_end is not None]
    return out
