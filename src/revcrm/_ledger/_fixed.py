"""Exact fixed-point money in arrays: integer units of ``10 ** -DIGITS`` of a currency unit.

Every monthly amount of the ledger is an integer count of nano-units (``DIGITS = 9``: one
USD is 1,000,000,000 units). Sums, differences and prefix sums of integers are exact; the
only rounding is where the rule itself divides (normalising a service period to a month,
an exchange rate's product) and it is half to even at the 9th decimal place, so a figure
differs from the exact rational by at most ``n * 0.5e-9`` after ``n`` roundings, far below
a cent (see ``docs/architecture.md``).

Arrays are int64 while every element stays below :data:`LIMIT` (2**62) in magnitude, so
that the sum or difference of two elements cannot wrap; numpy's int64 arithmetic
overflows silently, so every operation that could leave that range goes through
:func:`summable` (sums) or the checked multiplications here, which switch to an object
array of Python ints (exact at any size, slower) when a bound would be exceeded.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIGITS",
    "LIMIT",
    "ONE",
    "Units",
    "convert",
    "fits",
    "from_decimal",
    "muldiv",
    "summable",
    "to_decimal",
]

#: Decimal places of the ledger's units.
DIGITS: Final = 9
ONE: Final = 10**DIGITS
#: Largest magnitude an int64 units array may hold (two of them add without wrapping).
LIMIT: Final = 2**62

#: An array of units: int64, or object (Python ints) when int64 could overflow.
Units = npt.NDArray[Any]


def fits(a: Units) -> bool:
    """Whether every element is below :data:`LIMIT` in magnitude."""
    if a.size == 0:
        return True
    return bool(max(abs(int(a.max())), abs(int(a.min()))) < LIMIT)


def norm(a: Units) -> Units:
    """``a`` as int64 when it fits, otherwise as Python ints."""
    if a.dtype == np.int64:
        if fits(a):
            return a
        return a.astype(object)
    if fits(a):
        return a.astype(np.int64)
    return a


def summable(a: Units) -> Units:
    """``a`` in a dtype in which any sum of its elements (prefix sums too) is exact."""
    if a.dtype != np.int64 or a.size == 0:
        return a
    bound = max(abs(int(a.max())), abs(int(a.min()))) * a.size
    return a if bound < LIMIT else a.astype(object)


def from_decimal(value: Decimal) -> int:
    """A Decimal amount as units, half to even."""
    return int(value.scaleb(DIGITS).to_integral_value(rounding=ROUND_HALF_EVEN))


def to_decimal(units: int, places: int) -> Decimal:
    """Units as a Decimal, with trailing zeros stripped down to ``places`` decimals."""
    q, r = divmod(units, ONE)
    if r == 0:
        return Decimal(q).quantize(Decimal(1).scaleb(-places)) if places else Decimal(q)
    d = Decimal(units).scaleb(-DIGITS).normalize()
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent < places:
        return d.quantize(Decimal(1).scaleb(-places))
    return d


def _round_div(num: Units, den: Units) -> Units:
    """``num / den`` (den > 0) rounded half to even, elementwise, exact."""
    q = num // den
    r = num - q * den
    twice = r * 2
    up = (twice > den) | ((twice == den) & (q % 2 == 1))
    out: Units = q + up
    return out


def muldiv(x: Units, mul: Units, div: Units) -> Units:
    """``x * mul / div`` rounded half to even (``mul >= 0``, ``div > 0``), exact.

    int64 when every intermediate fits: ``x = q * div + r`` so ``x * mul / div = q * mul +
    r * mul / div`` with ``r < div``; otherwise Python ints.
    """
    if x.size == 0:
        return x.astype(np.int64)
    if x.dtype == np.int64 and fits(x):
        q = x // div
        r = x - q * div
        mul_max = int(np.max(mul))
        if (
            max(abs(int(q.max())), abs(int(q.min()))) * mul_max < LIMIT
            and int(np.max(div)) * mul_max < LIMIT
        ):
            return norm(q * mul + _round_div(r * mul, div))
    big = x.astype(object) * np.asarray(mul).astype(object)
    return norm(_round_div(big, np.asarray(div).astype(object)))


def convert(units: Units, rates: list[Decimal]) -> Units:
    """``units[i] * rates[i]`` rounded half to even (rates are positive Decimals), exact."""
    if units.size == 0:
        return units
    fractions = [Fraction(r) for r in rates]
    num = np.array([f.numerator for f in fractions], dtype=object)
    den = np.array([f.denominator for f in fractions], dtype=object)
    return norm(_round_div(units.astype(object) * num, den))
