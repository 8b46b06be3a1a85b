"""Exact fixed-point money in arrays: integer units of ``10 ** -digits`` of a currency unit.

Every monthly amount of the ledger is an integer count of units of ``10 ** -digits``
(:data:`DIGITS` = 9 in one currency: one USD is 1,000,000,000 units). Sums, differences
and prefix sums of integers are exact; the only rounding is where the rule itself divides
(normalising a service period to a month, an exchange rate's product), half to even at the
last digit, so a figure differs from the exact rational by at most ``n * 0.5 * 10**-9``
after ``n`` roundings, far below a cent. A conversion multiplies a native rounding error
by the rate, so :func:`digits_for` adds one digit per power of ten of the largest rate
into the reporting currency (see ``docs/architecture.md``).

Arrays are int64 while every element stays below :data:`LIMIT` (2**62) in magnitude, so
that the sum or difference of two elements cannot wrap; numpy's int64 arithmetic
overflows silently, so every operation that could leave that range goes through
:func:`summable` (sums) or the checked multiplications here, which switch to an object
array of Python ints (exact at any size, slower) when a bound would be exceeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from revcrm._money import EXACT_CONTEXT

__all__ = [
    "DIGITS",
    "LIMIT",
    "Units",
    "convert",
    "fits",
    "from_decimal",
    "group_sums",
    "muldiv",
    "muldiv_exact",
    "places",
    "prefix_sums",
    "rate_places",
    "summable",
    "to_decimal",
]

#: Decimal places of the ledger's units in one currency (more with exchange rates).
DIGITS: Final = 9
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
    if a.size > _PROBE and _some_beyond(a):
        return a  # found without a full scan: ledgers at many digits are Python ints throughout
    if fits(a):
        return a.astype(np.int64)
    return a


_PROBE: Final = 64


def _some_beyond(a: Units) -> bool:
    """Whether one of ``_PROBE`` evenly spread elements is beyond LIMIT (a full ``max`` and
    ``min`` over Python ints costs a comparison per element)."""
    return any(not -LIMIT < int(x) < LIMIT for x in a[:: a.size // _PROBE].tolist())


def summable(a: Units) -> Units:
    """``a`` in a dtype in which any sum of its elements (prefix sums too) is exact.

    Every such sum is at most the sum of the magnitudes, so int64 holds them all when that
    sum is below :data:`LIMIT`; it is computed exactly (not bounded by the largest element
    times the count, which sends realistic ledgers of a million lines to Python ints).
    """
    if a.dtype != np.int64 or a.size == 0 or _sums_fit(a):
        return a
    return a.astype(object)


def _sums_fit(a: npt.NDArray[np.int64]) -> bool:
    big = max(abs(int(a.max())), abs(int(a.min())))
    return big * a.size < LIMIT or (big < LIMIT and _abs_sum(a) < LIMIT)


_HALF: Final = 31


def _abs_sum(a: npt.NDArray[np.int64]) -> int:
    """The exact sum of ``|a|`` (every element below :data:`LIMIT`): each magnitude split
    into its high and low 31 bits, whose sums fit an int64 for up to 2**32 elements."""
    if a.size >= 2**32:
        return sum(abs(int(x)) for x in a.tolist())
    m = np.abs(a)
    high = int(np.sum(m >> _HALF, dtype=np.int64))
    low = int(np.sum(m & ((1 << _HALF) - 1), dtype=np.int64))
    return (high << _HALF) + low


def prefix_sums(a: Units) -> Units:
    """``np.cumsum(a)``, exact: int64 when every prefix sum is below :data:`LIMIT`.

    int64 addition wraps modulo 2**64, so a prefix sum is exact when its true value is in
    range, whatever its partial sums did on the way; each prefix sum's range is checked
    exactly on the high and low 32 bits of the elements, summed apart (small enough never
    to wrap). So a ledger whose magnitudes sum beyond LIMIT (a million lines of thousands
    of dollars at nine digits) stays in int64 while its running totals do.
    """
    if a.dtype != np.int64 or a.size == 0 or _sums_fit(a):
        return np.cumsum(a)
    if _wide(a) and _in_range(np.cumsum(a >> 32), np.cumsum(a & _LOW)):
        return np.cumsum(a)
    return np.cumsum(a.astype(object))


def group_sums(a: Units, starts: npt.NDArray[np.int64]) -> Units:
    """``np.add.reduceat(a, starts)`` (``starts`` ascending, the first 0), exact, as
    :func:`prefix_sums` checks it."""
    if a.dtype != np.int64 or a.size == 0 or _sums_fit(a):
        return np.add.reduceat(a, starts)
    if _wide(a) and _in_range(np.add.reduceat(a >> 32, starts), np.add.reduceat(a & _LOW, starts)):
        return np.add.reduceat(a, starts)
    return np.add.reduceat(a.astype(object), starts)


def _wide(a: npt.NDArray[np.int64]) -> bool:
    """Whether the split sums of :func:`_in_range` cannot wrap: every element below LIMIT,
    fewer than 2**31 of them."""
    return a.size < 2**31 and fits(a)


_LOW: Final = (1 << 32) - 1
_TOP: Final = LIMIT >> 32


def _in_range(high: npt.NDArray[np.int64], low: npt.NDArray[np.int64]) -> bool:
    """Whether every ``high * 2**32 + low`` is below LIMIT in magnitude, from its floor
    over 2**32 (``high + low // 2**32``: exact, small)."""
    if high.size == 0:
        return True
    top = high + (low >> 32)
    return bool(int(top.min()) > -_TOP and int(top.max()) < _TOP)


def places(value: Decimal) -> int:
    """Decimal places of a finite Decimal (0 for an integer)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def rate_places(rates: Iterable[Decimal]) -> int:
    """The most decimal places among ``rates``: units this much finer than the native
    amounts' make every conversion exact."""
    return max((places(r) for r in rates), default=0)


def from_decimal(value: Decimal, digits: int) -> int:
    """A Decimal amount as units, half to even."""
    scaled = value.scaleb(digits, context=EXACT_CONTEXT)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=EXACT_CONTEXT))


def to_decimal(units: int, places: int, digits: int) -> Decimal:
    """Units as a Decimal, with trailing zeros stripped down to ``places`` decimals."""
    # Under the exact context: the caller's (28 digits by default) would round.
    c = EXACT_CONTEXT
    q, r = divmod(units, 10**digits)
    if r == 0:
        return Decimal(q).quantize(Decimal(1).scaleb(-places), context=c) if places else Decimal(q)
    d = Decimal(units).scaleb(-digits, context=c).normalize(context=c)
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent < places:
        return d.quantize(Decimal(1).scaleb(-places), context=c)
    return d


def _round_div(num: Units, den: Units) -> Units:
    """``num / den`` (den > 0) rounded half to even, elementwise, exact."""
    q = num // den
    r = num - q * den
    twice = r * 2
    up = (twice > den) | ((twice == den) & (q % 2 == 1))
    out: Units = q + up
    return out


def muldiv_exact(x: Units, mul: Units, div: Units) -> tuple[Units, npt.NDArray[np.bool_]]:
    """``x * mul // div`` (``mul >= 0``, ``div > 0``) and whether each quotient is exact."""
    if x.dtype == np.int64 and x.size and fits(x):
        q = x // div
        r = x - q * div
        mul_max = int(np.max(mul))
        if (
            max(abs(int(q.max())), abs(int(q.min()))) * mul_max < LIMIT
            and int(np.max(div)) * mul_max < LIMIT
        ):
            rm = r * mul
            q2 = rm // div
            return norm(q * mul + q2), rm - q2 * div == 0
    big = x.astype(object) * np.asarray(mul).astype(object)
    d = np.asarray(div).astype(object)
    q = big // d
    return norm(q), np.asarray(big - q * d == 0, dtype=bool)


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
    ratios: dict[Decimal, tuple[int, int]] = {}
    for r in rates:
        if r not in ratios:
            ratios[r] = r.as_integer_ratio()
    num_max = max(n for n, _ in ratios.values())
    den_max = max(d for _, d in ratios.values())
    if units.dtype == np.int64 and fits(units) and num_max * den_max < LIMIT:
        den64 = np.array([ratios[r][1] for r in rates], dtype=np.int64)
        q = units // den64
        if (max(abs(int(q.max())), abs(int(q.min()))) + 1) * num_max < LIMIT:
            # units * n / d = q * n + r * n / d (units = q * d + r, 0 <= r < d): every
            # product fits an int64, so these are the integers Python ints would give.
            num64 = np.array([ratios[r][0] for r in rates], dtype=np.int64)
            t = (units - q * den64) * num64
            q2 = t // den64
            whole = q * num64 + q2
            twice = (t - q2 * den64) * 2
            up = (twice > den64) | ((twice == den64) & (whole % 2 == 1))
            return norm(whole + up)
    num = np.array([ratios[r][0] for r in rates], dtype=object)
    den = np.array([ratios[r][1] for r in rates], dtype=object)
    return norm(_round_div(units.astype(object) * num, den))
