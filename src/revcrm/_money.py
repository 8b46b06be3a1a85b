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

from revcrm._checks import check_instance, check_items
from revcrm._time import check_date
from revcrm.errors import (
    CurrencyMismatchError,
    MissingRateError,
    ValidationError,
    WrongTypeError,
    ZeroDivisorError,
)

__all__ = [
    "DEFAULT_ROUNDING",
    "DIVISION_PRECISION",
    "EXACT_CONTEXT",
    "MAX_DIGITS",
    "MAX_MAGNITUDE",
    "MAX_PLACES",
    "MAX_RATE",
    "MAX_RATE_DIGITS",
    "MIN_RATE",
    "FxRates",
    "Money",
    "canonical",
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


#: The accepted range of every amount, rate and other decimal revcrm takes in or computes:
#: finite, smaller than ``10 ** MAX_MAGNITUDE`` in size, with at most ``MAX_PLACES``
#: decimal places and at most ``MAX_DIGITS`` significant digits. Anything else (NaN,
#: infinities, ``"9" * 131073``, ``1E+999999``, ``1E-999999``) is a
#: :class:`ValidationError`, so no store meets it and no exact sum can exhaust memory.
MAX_MAGNITUDE: Final = 40
MAX_PLACES: Final = 200
MAX_DIGITS: Final = 200
#: Exchange rates lie in ``[MIN_RATE, MAX_RATE]`` (so do their reciprocals) with at most
#: ``MAX_RATE_DIGITS`` significant digits.
MIN_RATE: Final = Decimal("1E-12")
MAX_RATE: Final = Decimal("1E+12")
MAX_RATE_DIGITS: Final = 50

# A context whose arithmetic is exact exactly on the accepted range: more digits or places
# would round (Rounded), larger values overflow. Etiny = Emin - prec + 1 = -MAX_PLACES.
_RANGE: Final = decimal.Context(
    prec=MAX_DIGITS,
    Emax=MAX_MAGNITUDE - 1,
    Emin=MAX_DIGITS - MAX_PLACES - 1,
    traps=[decimal.Overflow, decimal.Rounded, decimal.InvalidOperation],
)
_ONE: Final = Decimal(1)


def check_decimal(value: Decimal, field: str, shown: object = None) -> Decimal:
    """``value`` in revcrm's accepted range, in its canonical form.

    The canonical form has no positive exponent and no negative zero (``5.1E+3`` is
    ``5100``, ``-0.00`` is ``0.00``): the value is unchanged, and PostgreSQL's NUMERIC,
    which knows neither, gives back exactly what was written.
    """
    shown = value if shown is None else shown
    try:
        result = _RANGE.plus(value)  # also turns -0 into 0
    except decimal.Overflow:
        raise ValidationError(
            field, shown, f"out of range: must be below 1E+{MAX_MAGNITUDE}"
        ) from None
    except decimal.Rounded:
        raise ValidationError(
            field, shown, f"more than {MAX_DIGITS} digits or {MAX_PLACES} decimal places"
        ) from None
    except decimal.InvalidOperation:
        raise ValidationError(field, shown, "must be finite") from None
    if not result.is_finite():
        raise ValidationError(field, shown, "must be finite")
    # A positive exponent (5.1E+3): an integer written short; spell it out.
    if result.adjusted() > 0 and not result.same_quantum(_ONE):
        whole = result.to_integral_value()
        if result.same_quantum(whole):
            result = result.quantize(_ONE, context=_EXACT)
    return result


def to_decimal(value: object, field: str = "amount") -> Decimal:
    """Build an exact Decimal from str, int or Decimal within the accepted range.

    Floats, bools and other types are a :class:`WrongTypeError` (a ValidationError and a
    TypeError); text that is not a number and values out of range are a ValidationError.
    """
    if isinstance(value, bool):
        raise WrongTypeError(field, value, "bool is not an amount")
    if isinstance(value, float):
        raise WrongTypeError(field, value, "floats are not accepted for money; pass a str")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValidationError(field, value, f"out of range: must be below 1E+{MAX_MAGNITUDE}")
        result = Decimal(value)
    elif isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise ValidationError(field, value[:40] + "...", "too long for an amount")
        try:
            result = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValidationError(field, value, "not a decimal number") from None
    else:
        raise WrongTypeError(field, value, "expected str, int or Decimal")
    return check_decimal(result, field, value)


_INT_LIMIT: Final = 10**MAX_MAGNITUDE
# Longest amount text worth parsing: every digit allowed, a sign, a point and an exponent.
_MAX_TEXT: Final = MAX_MAGNITUDE + MAX_PLACES + 64


def canonical(value: Decimal) -> Decimal:
    """The one spelling of ``value``: no trailing fractional zeros, no exponent on a whole
    number, no negative zero (``10.000`` and ``1E+1`` are ``10``, ``1.50`` is ``1.5``,
    ``0E+45`` and ``-0.00`` are ``0``).

    Equal values get equal digits and exponent, so ``str`` of an amount is the same
    whatever scale a store kept it with (SQLite's fixed 48 places, PostgreSQL's NUMERIC).
    """
    if not value:
        return _ZERO_AMOUNT
    reduced = value.normalize(_EXACT)
    # normalize() writes 10 as 1E+1; a whole number is spelt out instead. (Cheap tests
    # first: Money is built on every arithmetic step.)
    if reduced.adjusted() > 0 and reduced == reduced.to_integral_value(context=_EXACT):
        reduced = reduced.quantize(_ONE, context=_EXACT)
    return reduced


_ZERO_AMOUNT: Final = Decimal(0)


def _amount_converter(value: object) -> Decimal:
    return canonical(to_decimal(value))


@attrs.frozen(repr=False, order=False, eq=False)
class Money:
    """An exact amount in one ISO 4217 currency.

    ``Money("12.50", "EUR")``. Arithmetic keeps full precision: nothing is rounded until
    :meth:`rounded` is called at the reporting boundary.

    The amount is kept in its canonical form (see :func:`canonical`): ``Money("12.50",
    "EUR").amount`` is ``Decimal("12.5")`` and ``str(Money("10.000", "USD"))`` is
    ``"10 USD"`` on every backend. Use :func:`format_money` (or ``revcrm.export``) to show
    an amount with the currency's minor units.
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
            raise WrongTypeError("other", other, "only Money adds to Money")
        self._same(other, "add")
        return Money(_EXACT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise WrongTypeError("other", other, "only Money subtracts from Money")
        self._same(other, "subtract")
        return Money(_EXACT.subtract(self.amount, other.amount), self.currency)

    def __neg__(self) -> Money:
        return Money(_EXACT.minus(self.amount), self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(_EXACT.abs(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, float):
            raise WrongTypeError(
                "factor", factor, "floats are not accepted for money; multiply by a Decimal"
            )
        if isinstance(factor, bool) or not isinstance(factor, int | Decimal):
            raise WrongTypeError("factor", factor, "Money multiplies by an int or a Decimal")
        return Money(_EXACT.multiply(self.amount, to_decimal(factor, "factor")), self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: object) -> Money:
        if isinstance(divisor, float):
            raise WrongTypeError(
                "divisor", divisor, "floats are not accepted for money; divide by a Decimal"
            )
        if isinstance(divisor, Money):
            # Money / Money would be a ratio, not money: make that explicit with ratio().
            raise WrongTypeError("divisor", divisor, "use ratio() to divide Money by Money")
        if isinstance(divisor, bool) or not isinstance(divisor, int | Decimal):
            raise WrongTypeError("divisor", divisor, "Money divides by an int or a Decimal")
        exact = to_decimal(divisor, "divisor")
        if exact == 0:
            raise ZeroDivisorError("divisor", divisor, "money divided by zero")
        return Money(_divide(self.amount, exact), self.currency)

    def ratio(self, other: Money) -> Decimal:
        """``self / other`` as a Decimal, for shares and rates (same currency only)."""
        if not isinstance(other, Money):
            raise WrongTypeError("other", other, "expected Money")
        self._same(other, "divide")
        if other.amount == 0:
            raise ZeroDivisorError("other", other, "ratio to a zero amount")
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
            raise WrongTypeError("other", other, "Money compares only with Money")
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
        if not isinstance(rounding, str) or rounding not in ROUNDINGS:
            raise ValidationError("rounding", rounding, "expected a decimal.ROUND_* mode")
        exponent = Decimal(1).scaleb(-self.minor_units)
        return Money(
            self.amount.quantize(exponent, rounding=rounding, context=_EXACT), self.currency
        )

    def rounded_amount(self, rounding: str = DEFAULT_ROUNDING) -> Decimal:
        """The amount rounded as :meth:`rounded` does, written with exactly the currency's
        minor units (``Decimal("10.00")`` for ten dollars, ``Decimal("1235")`` for yen) and
        no negative zero: the text a report shows. :attr:`amount` itself is canonical
        (``10``), so use this where the places matter."""
        if not isinstance(rounding, str) or rounding not in ROUNDINGS:
            raise ValidationError("rounding", rounding, "expected a decimal.ROUND_* mode")
        exponent = Decimal(1).scaleb(-self.minor_units)
        value = self.amount.quantize(exponent, rounding=rounding, context=_EXACT)
        return value if value else value.copy_abs()

    def is_zero(self) -> bool:
        return self.amount == 0

    def __repr__(self) -> str:
        return f"Money('{self.amount:f}', '{self.currency}')"

    def __str__(self) -> str:
        # Fixed-point, never an exponent (Decimal's str writes 0.0000001 as 1E-7).
        return f"{self.amount:f} {self.currency}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


#: The decimal module's rounding modes: every rounding argument is one of these.
ROUNDINGS: Final = frozenset(
    {
        decimal.ROUND_05UP,
        decimal.ROUND_CEILING,
        decimal.ROUND_DOWN,
        decimal.ROUND_FLOOR,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_UP,
    }
)


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
    check_instance(money, Money, "money")
    if not isinstance(locale, str) or not locale:
        raise ValidationError("locale", locale, "an explicit locale such as 'en_US' is required")
    if format is not None and not isinstance(format, str):
        raise WrongTypeError("format", format, "expected a CLDR number pattern or None")
    amount = money.rounded(rounding).amount
    try:
        # Accept BCP 47 tags ("en-US") as well as CLDR identifiers ("en_US").
        parsed = babel.Locale.parse(locale, sep="-" if "-" in locale else "_")
        return babel.numbers.format_currency(amount, money.currency, format=format, locale=parsed)
    except (babel.UnknownLocaleError, ValueError) as e:
        raise ValidationError("locale", locale, "unknown locale") from e


def _rate(value: object) -> Decimal:
    rate = to_decimal(value, "rate")
    if rate <= 0:
        raise ValidationError("rate", value, "exchange rates must be positive")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValidationError("rate", value, f"out of range: must be in [{MIN_RATE}, {MAX_RATE}]")
    if len(rate.as_tuple().digits) > MAX_RATE_DIGITS:
        raise ValidationError("rate", value, f"more than {MAX_RATE_DIGITS} significant digits")
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
        for i, item in enumerate(check_items(rates, "rates")):
            if not isinstance(item, tuple | list) or len(item) != 4:
                raise WrongTypeError(f"rates[{i}]", item, "expected (day, source, target, rate)")
            day, source, target, value = item
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
        check_currency(source, "source")
        check_currency(target, "target")
        check_date(on, "on")
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
        check_instance(money, Money, "money")
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
