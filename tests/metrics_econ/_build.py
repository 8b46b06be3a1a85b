"""Builders of the unit-economics tests: the shared ones of :mod:`tests._builders`, with
this suite's defaults (a referral ``source`` keyword; services start on 2024-01-01)."""

from __future__ import annotations

from datetime import datetime

from revcrm import BillingCycle, Customer, Money, Subscription
from tests import _builders
from tests._builders import eur, t, usd

__all__ = ["customer", "eur", "monthly", "t", "usd"]


def customer(
    cid: str, *, source: str | None = None, registered: datetime | None = None
) -> Customer:
    return _builders.customer(cid, registered, referral_source=source)


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
    return _builders.service(
        sid,
        cid,
        price,
        at=at or t(2024, 1, 1),
        cycle=cycle,
        product_id=product_id,
        trial_end=trial_end,
    )
