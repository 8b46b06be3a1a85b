"""Scalars of :mod:`revcrm.testing.strategies`: currencies, amounts, money, billing
cycles, discounts, moments, dates, ids and exchange rates, and the invalid scalars each
model must reject; import them from there."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Final, TypeVar

import babel.numbers
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._discount import Discount, DiscountDuration
from revcrm._money import FxRates, Money
from revcrm._subscription import SubscriptionStatus

_T = TypeVar("_T")

#: The realistic default set: two-decimal currencies, one without minor units (JPY) and
#: one with three (KWD), so rounding and formatting meet every precision.
DEFAULT_CURRENCIES: Final[tuple[str, ...]] = ("USD", "EUR", "GBP", "JPY", "KWD")

#: Default bounds of every drawn moment (inclusive).
EARLIEST: Final = datetime(2018, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)
_FIRST_DAY: Final = EARLIEST.date()
_LAST_DAY: Final = LATEST.date()

#: Every named billing cycle constant.
NAMED_CYCLES: Final[tuple[BillingCycle, ...]] = (
    BillingCycle.MONTHLY,
    BillingCycle.QUARTERLY,
    BillingCycle.SEMIANNUAL,
    BillingCycle.ANNUAL,
    BillingCycle.BIENNIAL,
    BillingCycle.TRIENNIAL,
    BillingCycle.WEEKLY,
    BillingCycle.DAILY,
)

# Largest count drawn per unit for arbitrary cycles: long enough to meet clamping and
# multi-year periods, short enough that a history fits in the default date range.
_MAX_COUNT: Final = {CycleUnit.DAY: 90, CycleUnit.WEEK: 12, CycleUnit.MONTH: 36, CycleUnit.YEAR: 3}

_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_PAYING: Final = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


def _cldr_codes() -> tuple[str, ...]:
    return tuple(sorted(babel.numbers.list_currencies()))


def _strategy(value: _T | SearchStrategy[_T]) -> SearchStrategy[_T]:
    if isinstance(value, SearchStrategy):
        return value
    return st.just(value)


def minor_units(currency: str) -> int:
    """Decimal places of ``currency`` in CLDR (USD 2, JPY 0, KWD 3); a plain helper."""
    return babel.numbers.get_currency_precision(currency)


# -- scalars --------------------------------------------------------------------------------


def currencies(
    *, among: Iterable[str] | None = None, any_cldr: bool = False
) -> SearchStrategy[str]:
    """ISO 4217 codes: :data:`DEFAULT_CURRENCIES` unless ``among`` names others.

    ``any_cldr=True`` draws from every code CLDR knows (307 in babel 2.18, historical
    ones included), for properties that must hold for any currency revcrm accepts.
    """
    if any_cldr:
        return st.sampled_from(_cldr_codes())
    codes = tuple(among) if among is not None else DEFAULT_CURRENCIES
    if not codes:
        raise ValueError("currencies(among=...) needs at least one code")
    return st.sampled_from(codes)


@st.composite
def _amounts(draw: st.DrawFn, min_value: Decimal, max_value: Decimal, max_places: int) -> Decimal:
    places = draw(st.integers(0, max_places))
    scale = Decimal(10) ** places
    lo = (min_value * scale).to_integral_value(rounding="ROUND_CEILING")
    hi = (max_value * scale).to_integral_value(rounding="ROUND_FLOOR")
    if lo > hi:  # no value with this few places lies in the range; use the most places
        places = max_places
        scale = Decimal(10) ** places
        lo = (min_value * scale).to_integral_value(rounding="ROUND_CEILING")
        hi = (max_value * scale).to_integral_value(rounding="ROUND_FLOOR")
    units = draw(st.integers(int(lo), int(hi)))
    # Built from a string, as a host reading a database column or a form would.
    return Decimal(f"{units}E-{places}") if places else Decimal(str(units))


def amounts(
    *,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 100_000,
    places: int | None = None,
    currency: str | None = None,
) -> SearchStrategy[Decimal]:
    """Exact Decimal amounts in ``[min_value, max_value]`` built from strings, never floats.

    At most ``places`` decimal places (the number of places itself varies, so ``12``,
    ``12.5`` and ``12.50`` all occur). With ``currency`` and no ``places``, the currency's
    CLDR minor units (JPY whole numbers, KWD three places); with neither, four places.
    """
    lo, hi = Decimal(min_value), Decimal(max_value)
    if lo > hi:
        raise ValueError(f"amounts: min_value {lo} > max_value {hi}")
    if places is None:
        places = minor_units(currency) if currency is not None else 4
    if places < 0:
        raise ValueError("amounts: places must be >= 0")
    return _cached_amounts(lo, hi, places)


@functools.cache
def _cached_amounts(lo: Decimal, hi: Decimal, places: int) -> SearchStrategy[Decimal]:
    # Strategies are reused across draws: building a fresh one per draw costs more than
    # the draw itself.
    return _amounts(lo, hi, places)


@st.composite
def _money(
    draw: st.DrawFn,
    currency: SearchStrategy[str],
    min_value: Decimal | int | str,
    max_value: Decimal | int | str,
    use_minor_units: bool,
    places: int | None,
) -> Money:
    code = draw(currency)
    if places is None and not use_minor_units:
        places = minor_units(code) + 4
    amount = draw(amounts(min_value=min_value, max_value=max_value, places=places, currency=code))
    return Money(amount, code)


def money(
    currency: str | SearchStrategy[str] | None = None,
    *,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 100_000,
    minor_units: bool = True,
    places: int | None = None,
) -> SearchStrategy[Money]:
    """:class:`Money` in ``currency`` (a code or a strategy; default :func:`currencies`).

    ``minor_units=True`` (default) gives realistic prices on the currency's minor-unit
    grid (``12.34 USD``, ``1200 JPY``); ``minor_units=False`` adds four more places, for
    arithmetic properties that must not depend on the grid. ``places`` overrides both.
    """
    if isinstance(currency, str):
        return _cached_money(currency, Decimal(min_value), Decimal(max_value), minor_units, places)
    code = currencies() if currency is None else currency
    return _money(code, min_value, max_value, minor_units, places)


@functools.cache
def _cached_money(
    currency: str, lo: Decimal, hi: Decimal, use_minor_units: bool, places: int | None
) -> SearchStrategy[Money]:
    return _money(st.just(currency), lo, hi, use_minor_units, places)


def billing_cycles(
    *,
    named_only: bool = False,
    units: Iterable[CycleUnit] | None = None,
    max_count: int | None = None,
) -> SearchStrategy[BillingCycle]:
    """Billing cycles: every named constant (:data:`NAMED_CYCLES`) and arbitrary count x unit.

    Arbitrary counts go up to 90 days, 12 weeks, 36 months or 3 years (``max_count``
    caps them further); ``units`` restricts both the constants and the arbitrary cycles.
    """
    allowed = tuple(units) if units is not None else tuple(CycleUnit)
    return _cached_cycles(named_only, allowed, max_count)


@functools.cache
def _cached_cycles(
    named_only: bool, allowed: tuple[CycleUnit, ...], max_count: int | None
) -> SearchStrategy[BillingCycle]:
    named = [c for c in NAMED_CYCLES if c.unit in allowed]
    if max_count is not None:
        named = [c for c in named if c.count <= max_count]
    options: list[SearchStrategy[BillingCycle]] = []
    if named:
        options.append(st.sampled_from(named))
    if not named_only:
        for unit in allowed:
            top = _MAX_COUNT[unit] if max_count is None else min(max_count, _MAX_COUNT[unit])
            if top >= 1:
                options.append(st.builds(BillingCycle, st.integers(1, top), st.just(unit)))
    if not options:
        raise ValueError("billing_cycles: no cycle satisfies the options")
    return st.one_of(options)


def moments(
    *,
    min_value: datetime = EARLIEST,
    max_value: datetime = LATEST,
    any_offset: bool = False,
) -> SearchStrategy[datetime]:
    """Aware datetimes in ``[min_value, max_value]``, in UTC.

    ``any_offset=True`` expresses the same instants in fixed UTC offsets (-12h..+14h)
    instead, for properties about normalisation to UTC.
    """
    lo = min_value.astimezone(UTC).replace(tzinfo=None)
    hi = max_value.astimezone(UTC).replace(tzinfo=None)
    utc_moments = st.datetimes(min_value=lo, max_value=hi).map(lambda d: d.replace(tzinfo=UTC))
    if not any_offset:
        return utc_moments
    offsets = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
    return st.tuples(utc_moments, offsets).map(lambda p: p[0].astimezone(p[1]))


def dates(*, min_value: date = _FIRST_DAY, max_value: date = _LAST_DAY) -> SearchStrategy[date]:
    """Plain dates (not datetimes) in ``[min_value, max_value]``."""
    return st.dates(min_value=min_value, max_value=max_value)


def ids(prefix: str) -> SearchStrategy[str]:
    """Readable record ids such as ``cus_k3x9``: ``prefix``, an underscore, 4-8 characters."""
    return st.text(_ID_ALPHABET, min_size=4, max_size=8).map(lambda s: f"{prefix}_{s}")


_DISCOUNT_LENGTHS: Final = st.timedeltas(timedelta(days=1), timedelta(days=730))


@st.composite
def _discounts(
    draw: st.DrawFn,
    currency: SearchStrategy[str] | None,
    after: SearchStrategy[datetime],
    durations: tuple[DiscountDuration, ...],
) -> Discount:
    duration = draw(st.sampled_from(durations))
    ends_at = None
    if duration is DiscountDuration.REPEATING:
        ends_at = draw(after) + draw(_DISCOUNT_LENGTHS)
    if currency is not None and draw(st.booleans()):
        off = draw(money(currency, min_value="0.01", max_value=500))
        if off.amount <= 0:  # JPY and other whole-unit currencies cannot take 0.01
            off = Money(1, off.currency)
        return Discount.amount(off, duration, ends_at=ends_at)
    percent = draw(amounts(min_value="0.01", max_value=100, places=2))
    return Discount.percent(percent, duration, ends_at=ends_at)


def discounts(
    currency: str | SearchStrategy[str] | None = None,
    *,
    after: datetime | SearchStrategy[datetime] | None = None,
    durations: Iterable[DiscountDuration] | None = None,
    percent_only: bool = False,
) -> SearchStrategy[Discount]:
    """Percentage discounts (0.01-100 %) and, unless ``percent_only``, amounts off.

    Amounts off are in ``currency`` (default :func:`currencies`), between 0.01 and 500.
    Repeating discounts end 1-730 days after ``after`` (default: a drawn moment), so a
    discount set at ``after`` is always valid on a subscription.
    """
    code = None if percent_only else (currencies() if currency is None else _strategy(currency))
    start = moments() if after is None else _strategy(after)
    allowed = tuple(durations) if durations is not None else tuple(DiscountDuration)
    return _discounts(code, start, allowed)


@st.composite
def _fx_rates(
    draw: st.DrawFn, codes: tuple[str, ...], since: date, until: date, max_changes: int
) -> FxRates:
    rates: list[tuple[date, str, str, Decimal]] = []
    for a, b in itertools.combinations(codes, 2):
        # Some pairs stored one way, some the other, so lookups meet reciprocals.
        source, target = (a, b) if draw(st.booleans()) else (b, a)
        days = {since} | set(
            draw(st.lists(dates(min_value=since, max_value=until), max_size=max_changes))
        )
        for day in sorted(days):
            mantissa = draw(st.integers(1, 99_999))
            exponent = draw(st.integers(-6, 2))
            rates.append((day, source, target, Decimal(f"{mantissa}E{exponent}")))
    return FxRates.from_rates(rates)


def fx_rates(
    currencies: Iterable[str] = DEFAULT_CURRENCIES,
    *,
    since: date = date(2014, 1, 1),
    until: date = _LAST_DAY,
    max_changes: int = 3,
) -> SearchStrategy[FxRates]:
    """Exchange rates between every pair of ``currencies``, each from ``since`` on.

    Every pair has a first rate dated ``since`` (default 2014-01-01, four years before
    :data:`EARLIEST`, so service periods that start before a subscription, such as a
    triennial period behind a later billing anchor, still convert) and up to
    ``max_changes`` more until ``until``. Rates are positive Decimals between 1e-6 and
    1e7; the pair's direction is drawn, so half the lookups use the reciprocal.
    """
    codes = tuple(sorted(set(currencies)))
    return _fx_rates(codes, since, until, max_changes)


# -- invalid values -------------------------------------------------------------------------


def negative_amounts(*, max_value: Decimal | int | str = "-0.0001") -> SearchStrategy[Decimal]:
    """Decimal amounts below zero (to ``max_value``), for prices and fees that must be >= 0."""
    return amounts(min_value=-1_000_000, max_value=max_value, places=4)


def negative_money(currency: str | SearchStrategy[str] | None = None) -> SearchStrategy[Money]:
    """Money below zero: a valid :class:`Money`, but never a valid price, fee or line amount."""
    return money(currency, min_value=-100_000, max_value="-0.01", minor_units=False, places=2)


def naive_datetimes(
    *, min_value: datetime = EARLIEST, max_value: datetime = LATEST
) -> SearchStrategy[datetime]:
    """Datetimes without a timezone, which every moment field rejects."""
    return st.datetimes(
        min_value=min_value.astimezone(UTC).replace(tzinfo=None),
        max_value=max_value.astimezone(UTC).replace(tzinfo=None),
    )


def float_amounts() -> SearchStrategy[float]:
    """Floats (finite or not), which money rejects with a TypeError however exact they look."""
    return st.floats(allow_nan=True, allow_infinity=True)


def unknown_currency_codes() -> SearchStrategy[str]:
    """Strings that are not an ISO 4217 code CLDR knows: unassigned three-letter codes,
    lowercase codes, wrong lengths, digits and the empty string."""
    known = set(_cldr_codes())
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return st.one_of(
        st.text(letters, min_size=3, max_size=3).filter(lambda c: c not in known),
        st.sampled_from(DEFAULT_CURRENCIES).map(str.lower),
        st.text(letters, min_size=0, max_size=2),
        st.text(letters, min_size=4, max_size=6),
        st.sampled_from(("840", "US$", "€", " USD", "USD ")),
    )


def invalid_amount_strings() -> SearchStrategy[str]:
    """Strings money rejects with a ValidationError: not decimal numbers, or not finite."""
    return st.one_of(
        st.sampled_from(("", "abc", "1,50", "1.2.3", "$5", "NaN", "-Infinity", "inf", "sNaN")),
        st.text("xyz!?", min_size=1, max_size=5),
    )
