"""Money: a Decimal amount and an ISO 4217 currency, plus dated exchange rates."""

from __future__ import annotations

import bisect
import decimal
import functools
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

import attrs
import babel.numbers

from revcrm._time import check_date
from revcrm.errors import CurrencyMismatchError, MissingRateError, ValidationError

__all__ = [
    "DEFAULT_ROUNDING",
    "DIVISION_PRECISION",
    "EXACT_CONTEXT",
    "FxRates",
    "Money",
    "format_money",
]

#: Rounding used by :meth:`Money.rounded` unless another mode is passed: round half to even
#: ("banker's rounding"), which does not bias sums of many rounded amounts upwards.
DEFAULT_ROUNDING: Final = ROUND_HALF_EVEN

#: Significant digits kept by division, the only inexact operation (1/3 has no finite
#: decimal expansion). Addition, subtraction and multiplication are exact at any size.
DIVISION_PRECISION: Final = 40

# Contexts are module constants so arithmetic never depends on the caller's global
# decimal context (which a host application may have changed).
_EXACT: Final = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
#: The context revcrm's own Decimal sums run under: additions and multiplications exact.
EXACT_CONTEXT: Final = _EXACT

_DIVIDE: Final = decimal.Context(
    prec=DIVISION_PRECISION,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


@functools.cache
def _known_currencies() -> frozenset[str]:
    return frozenset(babel.numbers.list_currencies())


def check_currency(code: object, field: str = "currency") -> str:
    if not isinstance(code, str) or code not in _known_currencies():
        raise ValidationError(field, code, "not an ISO 4217 currency code known to CLDR")
    return code


def to_decimal(value: object, field: str = "amount") -> Decimal:
    """Build an exact Decimal from str, int or Decimal; floats are a TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{field}: bool is not an amount")
    if isinstance(value, float):
        raise TypeError(f"{field}={value!r}: floats are not accepted for money; pass a str")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValidationError(field, value, "not a decimal number") from None
    else:
        raise TypeError(f"{field}={value!r}: expected str, int or Decimal")
    if not result.is_finite():
        raise ValidationError(field, value, "must be finite")
    return result


def _amount_converter(value: object) -> Decimal:
    return to_decimal(value)


@attrs.frozen(repr=False, order=False, eq=False)
class Money:
    """An exact amount in one ISO 4217 currency.

    ``Money("12.50", "EUR")``. Arithmetic keeps full precision: nothing is rounded until
    :meth:`rounded` is called at the reporting boundary.
    """

    amount: Decimal = attrs.field(converter=_amount_converter)
    currency: str = attrs.field(validator=lambda _i, _a, v: check_currency(v))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        return cls(amount, currency)

    # -- arithmetic -------------------------------------------------------------------------

    def _same(self, other: Money, operation: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(self.currency, other.currency, operation)

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "add")
        return Money(_EXACT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "subtract")
        return Money(_EXACT.subtract(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(_EXACT.minus(self.amount), self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(_EXACT.abs(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int | Decimal):
            if isinstance(factor, float):
                raise TypeError("floats are not accepted for money; multiply by a Decimal")
            return NotImplemented
        return Money(_EXACT.multiply(self.amount, Decimal(factor)), self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: object) -> Money:
        if isinstance(divisor, bool) or not isinstance(divisor, int | Decimal):
            if isinstance(divisor, float):
                raise TypeError("floats are not accepted for money; divide by a Decimal")
            # Money / Money would be a ratio, not money: make that explicit with ratio().
            return NotImplemented
        if divisor == 0:
            raise ZeroDivisionError("money divided by zero")
        return Money(_divide(self.amount, Decimal(divisor)), self.currency)

    def ratio(self, other: Money) -> Decimal:
        """``self / other`` as a Decimal, for shares and rates (same currency only)."""
        self._same(other, "divide")
        if other.amount == 0:
            raise ZeroDivisionError("ratio to a zero amount")
        return _divide(self.amount, other.amount)

    # -- comparison ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return False
        return self.currency == other.currency and self.amount == other.amount

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))

    def _cmp(self, other: object) -> Decimal:
        if not isinstance(other, Money):
            raise TypeError(f"cannot compare Money with {type(other).__name__}")
        self._same(other, "compare")
        return self.amount - other.amount

    def __lt__(self, other: object) -> bool:
        return self._cmp(other) < 0

    def __le__(self, other: object) -> bool:
        return self._cmp(other) <= 0

    def __gt__(self, other: object) -> bool:
        return self._cmp(other) > 0

    def __ge__(self, other: object) -> bool:
        return self._cmp(other) >= 0

    def __bool__(self) -> bool:
        return bool(self.amount)

    # -- rounding and display ----------------------------------------------------------------

    @property
    def minor_units(self) -> int:
        """Decimal places of the currency in CLDR (2 for USD, 0 for JPY, 3 for KWD)."""
        return babel.numbers.get_currency_precision(self.currency)

    def rounded(self, rounding: str = DEFAULT_ROUNDING) -> Money:
        """Quantize to the currency's CLDR minor units with an explicit rounding mode.

        ``rounding`` is one of the :mod:`decimal` constants (``ROUND_HALF_EVEN`` by default,
        ``ROUND_HALF_UP`` for the schoolbook rule).
        """
        exponent = Decimal(1).scaleb(-self.minor_units)
        return Money(
            self.amount.quantize(exponent, rounding=rounding, context=_EXACT), self.currency
        )

    def is_zero(self) -> bool:
        return self.amount == 0

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def divide(a: Decimal, b: Decimal) -> Decimal:
    """``a / b`` under revcrm's division rule (exact when the quotient terminates)."""
    return _divide(a, b)


def _divide(a: Decimal, b: Decimal) -> Decimal:
    # Terminating quotients (1200 / 12) are exact; others keep DIVISION_PRECISION digits.
    return _DIVIDE.divide(a, b)


def money_sum(items: Iterable[Money], currency: str) -> Money:
    """Sum amounts of one currency; the empty sum is zero in ``currency``."""
    total = Decimal(0)
    for item in items:
        if item.currency != currency:
            raise CurrencyMismatchError(currency, item.currency, "add")
        total = _EXACT.add(total, item.amount)
    return Money(total, currency)


def format_money(
    money: Money,
    *,
    locale: str,
    rounding: str = DEFAULT_ROUNDING,
    format: str | None = None,
) -> str:
    """Format ``money`` for display through babel, e.g. ``$1,234.50`` or ``1.234,50 €``.

    The amount is rounded once to the currency's minor units with ``rounding``; the
    locale is required because a library must never guess it from the environment.
    """
    if not isinstance(locale, str) or not locale:
        raise ValidationError("locale", locale, "an explicit locale such as 'en_US' is required")
    try:
        # Accept BCP 47 tags ("en-US") as well as CLDR identifiers ("en_US").
        parsed = babel.Locale.parse(locale, sep="-" if "-" in locale else "_")
        return babel.numbers.format_currency(
            money.rounded(rounding).amount, money.currency, format=format, locale=parsed
        )
    except (babel.UnknownLocaleError, ValueError) as e:
        raise ValidationError("locale", locale, "unknown locale") from e


def _rate(value: object) -> Decimal:
    rate = to_decimal(value, "rate")
    if rate <= 0:
        raise ValidationError("rate", value, "exchange rates must be positive")
    return rate


@attrs.frozen
class _Series:
    dates: tuple[date, ...]
    rates: tuple[Decimal, ...]

    def on(self, day: date) -> Decimal | None:
        i = bisect.bisect_right(self.dates, day)
        return self.rates[i - 1] if i else None


@attrs.frozen(repr=False)
class FxRates:
    """Dated exchange rates, immutable.

    A rate ``(day, "EUR", "USD", "1.08")`` means one EUR buys 1.08 USD from ``day`` on,
    until a later rate for the pair. :meth:`convert` uses the latest rate on or before the
    requested date; when only the reverse pair is known its reciprocal is used.
    """

    _series: Mapping[tuple[str, str], _Series] = attrs.field(factory=dict, alias="_series")

    @classmethod
    def empty(cls) -> FxRates:
        return cls()

    @classmethod
    def from_rates(cls, rates: Iterable[tuple[date, str, str, str | int | Decimal]]) -> FxRates:
        table: dict[tuple[str, str], dict[date, Decimal]] = {}
        for day, source, target, value in rates:
            check_date(day, "day")
            check_currency(source, "source")
            check_currency(target, "target")
            if source == target:
                raise ValidationError("target", target, "a rate needs two different currencies")
            table.setdefault((source, target), {})[day] = _rate(value)
        return cls(
            _series={
                pair: _Series(tuple(sorted(by_day)), tuple(by_day[d] for d in sorted(by_day)))
                for pair, by_day in table.items()
            }
        )

    def with_rate(self, day: date, source: str, target: str, rate: str | int | Decimal) -> FxRates:
        return FxRates.from_rates([*self.items(), (day, source, target, rate)])

    def items(self) -> list[tuple[date, str, str, Decimal]]:
        return [
            (d, s, t, r)
            for (s, t), series in sorted(self._series.items())
            for d, r in zip(series.dates, series.rates, strict=True)
        ]

    def __len__(self) -> int:
        return sum(len(s.dates) for s in self._series.values())

    def rate(self, source: str, target: str, on: date) -> Decimal:
        if source == target:
            return Decimal(1)
        direct = self._series.get((source, target))
        found = direct.on(on) if direct else None
        if found is not None:
            return found
        reverse = self._series.get((target, source))
        found = reverse.on(on) if reverse else None
        if found is not None:
            return _divide(Decimal(1), found)
        raise MissingRateError(source, target, on)

    def convert(self, money: Money, to: str, *, on: date) -> Money:
        check_currency(to, "to")
        check_date(on, "on")
        if money.currency == to:
            return money
        return Money(_EXACT.multiply(money.amount, self.rate(money.currency, to, on)), to)

    def __repr__(self) -> str:
        return f"FxRates({len(self)} rates)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FxRates) and self.items() == other.items()

    def __hash__(self) -> int:
        return hash(tuple(self.items()))
