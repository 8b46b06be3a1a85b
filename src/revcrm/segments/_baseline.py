"""The High Value threshold, below both the segment rules that read it and the
segmentation that computes it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._fixed import Units, to_decimal
from revcrm._money import Money
from revcrm.errors import CurrencyMismatchError, ValidationError

__all__ = ["LtvBaseline", "decimal_units", "places_of"]

_INT64: Final = np.iinfo(np.int64)


def decimal_units(value: Decimal, digits: int, divisor: int = 1) -> int:
    """``floor(value x 10 ** digits / divisor)`` exactly: ``value`` in integer units of
    ``10 ** -digits`` (with ``divisor`` 1 and ``digits`` at least its places, exact)."""
    sign, figures, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # Money holds finite amounts only
    m = int("".join(map(str, figures)) or "0") * (-1 if sign else 1)
    shift = exponent + digits
    if shift >= 0:
        return int(m * 10**shift) // divisor
    return m // int(10 ** (-shift) * divisor)


def places_of(value: Decimal) -> int:
    """The decimal places ``value`` is written with (0 for an integer)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


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

    @classmethod
    def of_units(
        cls, ltv: Units, paying: npt.NDArray[np.bool_], digits: int, currency: str
    ) -> LtvBaseline:
        """The baseline of the customers ``paying`` marks, their LTVs ``ltv`` in exact
        units of ``10 ** -digits`` of ``currency``: the exact sum and the count."""
        total = sum(int(v) for v in ltv[paying].tolist())
        return cls(
            total=Money(to_decimal(total, Money.zero(currency).minor_units, digits), currency),
            paying_customers=int(paying.sum()),
        )

    @property
    def average(self) -> Money | None:
        """The mean, for display (None when nobody has paid)."""
        return self.total / self.paying_customers if self.paying_customers else None

    def exceeded_by(self, ltv: Money) -> bool:
        """Whether ``ltv`` is above the average (:meth:`exceeded_by_units` of one)."""
        digits = places_of(ltv.amount)
        units = np.array([decimal_units(ltv.amount, digits)], dtype=object)
        return bool(self.exceeded_by_units(units, digits, ltv.currency)[0])

    def exceeded_by_units(self, ltv: Units, digits: int, currency: str) -> npt.NDArray[np.bool_]:
        """Per element of ``ltv`` (exact units of ``10 ** -digits`` of ``currency``)
        whether it is above the average: ``ltv x paying_customers > total``, i.e. (``ltv``
        being whole units) ``ltv > floor(total x 10 ** digits / paying_customers)``."""
        if self.paying_customers == 0:
            return np.zeros(len(ltv), dtype=bool)
        if currency != self.total.currency:
            raise CurrencyMismatchError(currency, self.total.currency, "compare")
        bound = decimal_units(self.total.amount, digits, self.paying_customers)
        if ltv.dtype == np.int64:
            # Python ints beyond int64 are decided without comparing against the array.
            if bound >= _INT64.max:
                return np.zeros(len(ltv), dtype=bool)
            if bound < _INT64.min:
                return np.ones(len(ltv), dtype=bool)
            out: npt.NDArray[np.bool_] = ltv > np.int64(bound)
            return out
        return np.array([int(v) > bound for v in ltv.tolist()], dtype=bool)
