"""Hand-built records shared by the example tests: small, readable books.

One place for the builders that test modules used to define each for itself: a UTC
moment, USD and EUR amounts, a customer, a service (subscription) started at a moment,
an invoice (paid unless told otherwise) and a transaction (a succeeded payment unless
told otherwise). Every builder returns a plain revcrm record, so a test still reads the
model it checks; defaults are the ones most examples share (registered and started on
2023-01-01, monthly, paid by "stripe"), and a test passes whatever it asserts on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from revcrm import (
    BillingCycle,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Subscription,
    Transaction,
)

__all__ = ["customer", "eur", "invoice", "payment", "service", "t", "usd"]


def t(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An aware UTC moment."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def usd(amount: str | int) -> Money:
    return Money(amount, "USD")


def eur(amount: str | int) -> Money:
    return Money(amount, "EUR")


def customer(cid: str, registered: datetime | None = None, **fields: object) -> Customer:
    """A customer registered at ``registered`` (default 2023-01-01), other fields as given."""
    return Customer(id=cid, registered_at=registered or t(2023, 1, 1), **fields)  # type: ignore[arg-type]


def service(
    sid: str,
    cid: str,
    price: Money,
    *,
    at: datetime | None = None,
    cycle: BillingCycle = BillingCycle.MONTHLY,
    **fields: object,
) -> Subscription:
    """A service started at ``at`` (default 2023-01-01) on ``cycle`` (default monthly)."""
    return Subscription.start(
        id=sid,
        customer_id=cid,
        at=at or t(2023, 1, 1),
        price=price,
        cycle=cycle,
        **fields,  # type: ignore[arg-type]
    )


def invoice(
    iid: str,
    cid: str,
    amount: Money,
    *,
    issued: datetime,
    status: InvoiceStatus = InvoiceStatus.PAID,
    due: date | None = None,
    paid_at: datetime | None = None,
    subscription_id: str | None = None,
    extra: tuple[InvoiceLine, ...] = (),
) -> Invoice:
    """An invoice of one line of ``amount`` (recurring for 30 days from ``issued`` when it
    names a subscription, else one-off) plus ``extra``; due 14 days after issue; a paid one
    is paid when issued unless ``paid_at`` says otherwise."""
    if subscription_id is not None:
        line = InvoiceLine(
            kind=LineKind.RECURRING,
            amount=amount,
            subscription_id=subscription_id,
            period_start=issued,
            period_end=issued + timedelta(days=30),
        )
    else:
        line = InvoiceLine(kind=LineKind.ONE_OFF, amount=amount)
    return Invoice(
        id=iid,
        customer_id=cid,
        currency=amount.currency,
        issued_at=issued,
        due_date=due or issued.date() + timedelta(days=14),
        status=status,
        lines=(line, *extra),
        paid_at=paid_at if paid_at is not None or status is not InvoiceStatus.PAID else issued,
        number=f"INV-{iid}",
    )


def payment(
    tid: str,
    cid: str,
    amount: Money,
    at: datetime,
    *,
    kind: str = "payment",
    status: str = "succeeded",
    invoice_id: str | None = None,
    subscription_id: str | None = None,
) -> Transaction:
    """A transaction by "stripe": a succeeded payment unless ``kind``/``status`` say
    otherwise (a refund is ``kind="refund"``)."""
    return Transaction(
        id=tid,
        customer_id=cid,
        kind=kind,
        status=status,
        amount=amount,
        method="stripe",
        at=at,
        invoice_id=invoice_id,
        subscription_id=subscription_id,
    )
