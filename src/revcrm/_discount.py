"""Discounts on subscriptions."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import attrs

from revcrm._checks import as_enum, check_instance
from revcrm._money import EXACT_CONTEXT, Money, divide, to_decimal
from revcrm._time import optional_utc
from revcrm.errors import CurrencyMismatchError, ValidationError

_HUNDRED = Decimal(100)

__all__ = ["Discount", "DiscountDuration"]


class DiscountDuration(enum.StrEnum):
    ONCE = "once"  # the first service period only
    REPEATING = "repeating"  # until ``ends_at``
    FOREVER = "forever"


def _percent(value: object) -> Decimal | None:
    if value is None:
        return None
    d = to_decimal(value, "percent_off")
    if not 0 < d <= 100:
        raise ValidationError("percent_off", value, "must be in (0, 100]")
    return d


def _duration(value: object) -> DiscountDuration:
    return as_enum(DiscountDuration, value, "duration")


def _ends_at(value: object) -> datetime | None:
    return optional_utc(value, "ends_at")


@attrs.frozen(kw_only=True)
class Discount:
    """A percentage or fixed amount off each period's price.

    Build with :meth:`percent` or :meth:`amount`; ``REPEATING`` discounts need ``ends_at``.
    """

    percent_off: Decimal | None = attrs.field(default=None, converter=_percent)
    amount_off: Money | None = None
    duration: DiscountDuration = attrs.field(default=DiscountDuration.FOREVER, converter=_duration)
    ends_at: datetime | None = attrs.field(default=None, converter=_ends_at)

    def __attrs_post_init__(self) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValidationError("discount", self, "give exactly one of percent_off, amount_off")
        if self.amount_off is not None and not isinstance(self.amount_off, Money):
            raise ValidationError("amount_off", self.amount_off, "expected Money")
        if self.amount_off is not None and self.amount_off.amount <= 0:
            raise ValidationError("amount_off", self.amount_off, "must be positive")
        if self.duration is DiscountDuration.REPEATING and self.ends_at is None:
            raise ValidationError("ends_at", None, "a repeating discount needs an end")
        if self.duration is not DiscountDuration.REPEATING and self.ends_at is not None:
            raise ValidationError("ends_at", self.ends_at, "only repeating discounts end")

    @classmethod
    def percent(
        cls,
        percent_off: str | int | Decimal,
        duration: DiscountDuration = DiscountDuration.FOREVER,
        *,
        ends_at: datetime | None = None,
    ) -> Discount:
        return cls(
            percent_off=to_decimal(percent_off, "percent_off"), duration=duration, ends_at=ends_at
        )

    @classmethod
    def amount(
        cls,
        amount_off: Money,
        duration: DiscountDuration = DiscountDuration.FOREVER,
        *,
        ends_at: datetime | None = None,
    ) -> Discount:
        return cls(amount_off=amount_off, duration=duration, ends_at=ends_at)

    def apply(self, price: Money) -> Money:
        """The price after this discount, never below zero."""
        check_instance(price, Money, "price")
        if self.amount_off is not None and self.amount_off.currency != price.currency:
            raise CurrencyMismatchError(price.currency, self.amount_off.currency, "discount")
        return Money(self.apply_amount(price.amount), price.currency)

    def apply_amount(self, price: Decimal) -> Decimal:
        """:meth:`apply` on a bare amount in the discount's currency."""
        check_instance(price, Decimal, "price")
        if self.percent_off is not None:
            return EXACT_CONTEXT.subtract(
                price, divide(EXACT_CONTEXT.multiply(price, self.percent_off), _HUNDRED)
            )
        assert self.amount_off is not None
        after = EXACT_CONTEXT.subtract(price, self.amount_off.amount)
        return after if after > 0 else Decimal(0)
