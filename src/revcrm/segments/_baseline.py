"""The High Value threshold, below both the segment rules that read it and the
segmentation that computes it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from revcrm._money import EXACT_CONTEXT, Money
from revcrm.errors import CurrencyMismatchError, ValidationError

__all__ = ["LtvBaseline"]


def _baseline_total(_i: object, _a: object, value: Any) -> None:
    if not isinstance(value, Money):
        raise ValidationError("total", value, "expected Money")


def _count(_i: object, _a: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError("paying_customers", value, "a whole number, zero or more")


@attrs.frozen(kw_only=True)
class LtvBaseline:
    """The High Value threshold: the LTV of paying customers (customers with a successful
    payment by ``as_of``) as a total and a count.

    Kept as a sum and a count, not as an average, so that "above the average" is decided
    exactly (``ltv x paying_customers > total``): a rounded average would put a lone
    paying customer above itself. A store computes both with ``SUM`` and ``COUNT``.
    """

    total: Money = attrs.field(validator=_baseline_total)
    paying_customers: int = attrs.field(validator=_count)

    @property
    def average(self) -> Money | None:
        """The mean, for display (None when nobody has paid)."""
        return self.total / self.paying_customers if self.paying_customers else None

    def exceeded_by(self, ltv: Money) -> bool:
        if self.paying_customers == 0:
            return False
        if ltv.currency != self.total.currency:
            raise CurrencyMismatchError(ltv.currency, self.total.currency, "compare")
        scaled = EXACT_CONTEXT.multiply(ltv.amount, Decimal(self.paying_customers))
        return scaled > self.total.amount
