"""Stripe prices, coupons and discounts as revcrm amounts, cycles and discounts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from revcrm._cycles import BillingCycle, add_months
from revcrm._discount import Discount, DiscountDuration
from revcrm._money import Money
from revcrm.io._stripe_common import StripeObject, cycle_of

__all__ = ["PlanKey", "PriceInfo", "discount_of", "plan_of", "price_info"]


class PriceInfo(NamedTuple):
    unit: Money | None  # per unit and cycle; None for metered prices (no MRR, as Stripe)
    cycle: BillingCycle | None  # None: a one-time price
    product_id: str | None


class PlanKey(NamedTuple):
    """What a subscription bills per cycle: the fields of a revcrm plan change."""

    price: Money
    quantity: int
    cycle: BillingCycle
    product_id: str | None
    plan_id: str | None


def _tiered(price: StripeObject, currency: str, quantity: int) -> Money:
    """The cycle amount of a tiered price at ``quantity`` (volume or graduated tiers)."""
    tiers = price.items("tiers")
    if not tiers:
        raise price.error("tiers", None, "a tiered price needs its tiers (expand data.tiers)")
    mode = price.get("tiers_mode")
    total = Money.zero(currency)
    lower = 0
    for i, raw in enumerate(tiers):
        tier = StripeObject({"id": f"{price.id}#tier{i}", **raw}, "price_tier")
        up_to = tier.integer("up_to")
        unit = tier.decimal_amount("unit_amount_decimal", currency) or tier.amount(
            "unit_amount", currency, required=False
        )
        flat = tier.decimal_amount("flat_amount_decimal", currency) or tier.amount(
            "flat_amount", currency, required=False
        )
        unit = unit or Money.zero(currency)
        flat = flat or Money.zero(currency)
        top = quantity if up_to is None else min(up_to, quantity)
        if mode == "volume":
            if up_to is None or quantity <= up_to:
                return unit * quantity + flat
        elif mode == "graduated":
            if top > lower:
                total += unit * (top - lower) + flat
            if up_to is None or quantity <= up_to:
                return total
            lower = up_to
        else:
            raise price.error("tiers_mode", mode, "expected volume or graduated")
    return total


def price_info(price: StripeObject) -> PriceInfo:
    """Amount per unit and cycle of a (non-tiered) price, its cycle and product."""
    currency = price.currency()
    recurring = price.mapping("recurring")
    cycle = cycle_of(recurring, price) if recurring else None
    product = price.ref("product")
    if recurring.get("usage_type") == "metered":
        return PriceInfo(None, cycle, product)
    if price.get("billing_scheme") == "tiered":
        return PriceInfo(None, cycle, product)  # priced per quantity by plan_of
    unit = price.decimal_amount("unit_amount_decimal", currency) or price.amount(
        "unit_amount", currency, required=False
    )
    if unit is None:
        raise price.error("unit_amount", None, "a per-unit price needs unit_amount")
    if unit.amount < 0:
        raise price.error("unit_amount", price.get("unit_amount"), "cannot be negative")
    return PriceInfo(unit, cycle, product)


def plan_of(items: list[tuple[StripeObject, int]], owner: StripeObject, field: str) -> PlanKey:
    """The plan of a subscription's items.

    One item keeps its price and quantity; several items (of one cycle) bill their sum as
    one unit. Metered items bill no MRR, as in Stripe's own MRR.
    """
    if not items:
        raise owner.error(field, [], "a subscription needs at least one item")
    cycles = set()
    parts: list[tuple[Money, int]] = []
    first_product: str | None = None
    currency = items[0][0].currency()
    for price, quantity in items:
        info = price_info(price)
        if info.cycle is None:
            raise owner.error(
                f"{field}.price", price.id, "a subscription item needs a recurring price"
            )
        if price.currency() != currency:
            raise owner.error(f"{field}.price", price.id, f"items must all be in {currency}")
        cycles.add(info.cycle)
        first_product = first_product or info.product_id
        if price.get("billing_scheme") == "tiered" and info.unit is None:
            if price.mapping("recurring").get("usage_type") == "metered":
                continue
            parts.append((_tiered(price, currency, quantity), 1))
        elif info.unit is not None:
            parts.append((info.unit, quantity))
    if len(cycles) > 1:
        raise owner.error(
            field, sorted(str(c) for c in cycles), "items on different intervals are not supported"
        )
    cycle = cycles.pop()
    if len(items) == 1 and len(parts) == 1:
        unit, quantity = parts[0]
        return PlanKey(unit, quantity, cycle, first_product, items[0][0].id)
    total = Money.zero(currency)
    for unit, quantity in parts:
        total += unit * quantity
    return PlanKey(total, 1, cycle, first_product, None)


def discount_of(
    discount: Mapping[str, Any], owner: StripeObject, field: str
) -> tuple[Discount, datetime | None]:
    """A Stripe discount (with its coupon) as a revcrm Discount and the moment it started."""
    d = StripeObject({"id": discount.get("id") or f"{owner.id}#discount", **discount}, "discount")
    coupon_raw = d.get("coupon")
    if not isinstance(coupon_raw, Mapping):
        raise owner.error(f"{field}.coupon", coupon_raw, "the discount needs its coupon object")
    coupon = StripeObject(coupon_raw, "coupon")
    start = d.moment("start")
    duration = coupon.get("duration")
    ends_at: datetime | None = None
    make: Callable[..., Discount]
    if duration == "forever":
        kind = DiscountDuration.FOREVER
    elif duration == "once":
        kind = DiscountDuration.ONCE
    elif duration == "repeating":
        kind = DiscountDuration.REPEATING
        ends_at = d.moment("end")
        if ends_at is None:
            months = coupon.integer("duration_in_months", required=True)
            if start is None:
                raise owner.error(f"{field}.start", None, "a repeating discount needs its start")
            assert months is not None
            ends_at = add_months(start, months)
    else:
        raise coupon.error("duration", duration, "expected once, repeating or forever")
    percent = coupon.get("percent_off")
    if percent is not None:
        if isinstance(percent, bool) or not isinstance(percent, int | float | str):
            raise coupon.error("percent_off", percent, "expected a number")
        # JSON gives percent_off as a number (12.5): its shortest text is what Stripe stores.
        make = Discount.percent
        return make(Decimal(str(percent)), kind, ends_at=ends_at), start
    currency = coupon.currency()
    amount = coupon.amount("amount_off", currency)
    assert amount is not None
    return Discount.amount(amount, kind, ends_at=ends_at), start
