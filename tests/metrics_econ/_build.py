"""Hand-built records for the unit-economics tests (small, readable books)."""

from __future__ import annotations

from datetime import UTC, datetime

from revcrm import BillingCycle, Customer, Money, Subscription


def t(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def usd(amount: str | int) -> Money:
    return Money(amount, "USD")


def eur(amount: str | int) -> Money:
    return Money(amount, "EUR")


def customer(
    cid: str, *, source: str | None = None, registered: datetime | None = None
) -> Customer:
    return Customer(id=cid, registered_at=registered or t(2023, 1, 1), referral_source=source)


def monthly(
    sid: str,
    cid: str,
    price: Money,
    *,
    at: datetime | None = None,
    cycle: BillingCycle = BillingCycle.MONTHLY,
    product_id: str | None = None,
    trial_end: datetime | None = None,
) -> Subscription:
    return Subscription.start(
        id=sid,
        customer_id=cid,
        at=at or t(2024, 1, 1),
        price=price,
        cycle=cycle,
        product_id=product_id,
        trial_end=trial_end,
    )
