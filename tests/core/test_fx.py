"""FxRates: dated rates, latest on or before a date, reciprocals, missing rates."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import FxRates, Money
from revcrm.errors import MissingRateError, ValidationError
from revcrm.testing import strategies as S

RATES = FxRates.from_rates(
    [
        (date(2024, 1, 1), "EUR", "USD", "1.10"),
        (date(2024, 3, 1), "EUR", "USD", "1.20"),
        (date(2024, 1, 1), "USD", "JPY", 150),
    ]
)


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2024, 1, 1), "1.10"),
        (date(2024, 2, 29), "1.10"),
        (date(2024, 3, 1), "1.20"),
        (date(2031, 1, 1), "1.20"),
    ],
)
def test_latest_rate_on_or_before_the_date(on: date, expected: str) -> None:
    assert RATES.rate("EUR", "USD", on) == Decimal(expected)
    assert RATES.convert(Money("100", "EUR"), "USD", on=on) == Money(Decimal(expected) * 100, "USD")


def test_reverse_pair_uses_the_reciprocal() -> None:
    rates = FxRates.from_rates([(date(2024, 1, 1), "EUR", "USD", "1.25")])
    assert rates.rate("USD", "EUR", date(2024, 6, 1)) == Decimal("0.8")
    assert rates.convert(Money("100", "USD"), "EUR", on=date(2024, 6, 1)) == Money("80", "EUR")
    # 1/150 does not terminate: the reciprocal keeps DIVISION_PRECISION digits.
    jpy_usd = RATES.rate("JPY", "USD", date(2024, 6, 1))
    assert abs(jpy_usd * 150 - 1) < Decimal("1e-39")


def test_direct_pair_wins_over_the_reverse() -> None:
    rates = FxRates.from_rates(
        [(date(2024, 1, 1), "EUR", "USD", "1.25"), (date(2024, 1, 1), "USD", "EUR", "0.9")]
    )
    assert rates.rate("USD", "EUR", date(2024, 2, 1)) == Decimal("0.9")
    assert rates.rate("EUR", "USD", date(2024, 2, 1)) == Decimal("1.25")


def test_reverse_pair_is_used_when_the_direct_one_starts_later() -> None:
    rates = FxRates.from_rates(
        [(date(2024, 6, 1), "EUR", "USD", "1.25"), (date(2024, 1, 1), "USD", "EUR", "0.5")]
    )
    assert rates.rate("EUR", "USD", date(2024, 2, 1)) == Decimal(2)


def test_missing_rate_before_the_first_date() -> None:
    with pytest.raises(MissingRateError) as e:
        RATES.convert(Money("1", "EUR"), "USD", on=date(2023, 12, 31))
    assert (e.value.source, e.value.target, e.value.on) == ("EUR", "USD", date(2023, 12, 31))
    with pytest.raises(MissingRateError):
        RATES.rate("USD", "EUR", date(2023, 12, 31))


def test_missing_rate_for_an_unknown_pair() -> None:
    # No triangulation: EUR->JPY is not derived through USD.
    with pytest.raises(MissingRateError):
        RATES.convert(Money("1", "EUR"), "JPY", on=date(2024, 6, 1))
    with pytest.raises(MissingRateError):
        FxRates.empty().rate("GBP", "USD", date(2024, 1, 1))


@given(S.money(), S.dates())
def test_same_currency_conversion_is_identity(m: Money, on: date) -> None:
    assert FxRates.empty().convert(m, m.currency, on=on) == m
    assert RATES.convert(m, m.currency, on=on) is m
    assert RATES.rate(m.currency, m.currency, on) == 1


@given(
    S.fx_rates(since=date(2018, 1, 1)),
    S.dates(min_value=date(2018, 1, 1)),
    S.money(minor_units=False),
    S.currencies(),
)
def test_convert_uses_the_latest_stored_rate_or_its_reciprocal(
    fx: FxRates, on: date, m: Money, to: str
) -> None:
    items = fx.items()
    if m.currency == to:
        assert fx.convert(m, to, on=on) == m
        return
    direct = [(d, r) for d, s, t, r in items if (s, t) == (m.currency, to) and d <= on]
    reverse = [(d, r) for d, s, t, r in items if (s, t) == (to, m.currency) and d <= on]
    assert direct or reverse  # the strategy covers every pair from `since`
    if direct:
        expected = max(direct)[1]
        converted = fx.convert(m, to, on=on)
        assert converted.currency == to
        assert Fraction(converted.amount) == Fraction(m.amount) * Fraction(expected)
    else:
        reciprocal = fx.rate(m.currency, to, on)
        assert abs(reciprocal * max(reverse)[1] - 1) < Decimal("1e-38")


@given(S.fx_rates())
def test_every_pair_converts_both_ways_from_the_first_day(fx: FxRates) -> None:
    for a, b in itertools.permutations(S.DEFAULT_CURRENCIES, 2):
        assert fx.rate(a, b, date(2014, 1, 1)) > 0
    assert len(fx) == len(fx.items())


class TestValidation:
    def test_same_currency_pair(self) -> None:
        with pytest.raises(ValidationError) as e:
            FxRates.from_rates([(date(2024, 1, 1), "USD", "USD", "1")])
        assert e.value.field == "target"

    @pytest.mark.parametrize("rate", ["0", "-1.1", 0, Decimal("-0.5")])
    def test_rates_must_be_positive(self, rate: str | int | Decimal) -> None:
        with pytest.raises(ValidationError) as e:
            FxRates.from_rates([(date(2024, 1, 1), "EUR", "USD", rate)])
        assert e.value.field == "rate"

    def test_float_rate_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            FxRates.from_rates([(date(2024, 1, 1), "EUR", "USD", 1.1)])  # type: ignore[list-item]

    @given(S.unknown_currency_codes(), st.booleans())
    def test_unknown_currencies(self, code: str, as_source: bool) -> None:
        pair = (code, "USD") if as_source else ("USD", code)
        with pytest.raises(ValidationError) as e:
            FxRates.from_rates([(date(2024, 1, 1), *pair, "1.1")])
        assert e.value.field == ("source" if as_source else "target")
        with pytest.raises(ValidationError) as e:
            RATES.convert(Money("1", "USD"), code, on=date(2024, 1, 1))
        assert e.value.field == "to"

    def test_days_are_dates_not_datetimes(self) -> None:
        with pytest.raises(ValidationError) as e:
            FxRates.from_rates([(datetime(2024, 1, 1), "EUR", "USD", "1.1")])
        assert e.value.field == "day"
        with pytest.raises(ValidationError) as e:
            RATES.convert(Money("1", "EUR"), "USD", on=datetime(2024, 6, 1))
        assert e.value.field == "on"


def test_value_semantics() -> None:
    again = FxRates.from_rates(reversed(RATES.items()))
    assert again == RATES
    assert hash(again) == hash(RATES)
    assert FxRates.empty() != RATES
    assert RATES != "rates"
    assert len(RATES) == 3
    assert repr(RATES) == "FxRates(3 rates)"
    later = RATES.with_rate(date(2024, 5, 1), "EUR", "USD", "1.30")
    assert len(later) == 4
    assert later.rate("EUR", "USD", date(2024, 5, 2)) == Decimal("1.30")
    assert RATES.rate("EUR", "USD", date(2024, 5, 2)) == Decimal("1.20")  # unchanged
    # A later rate for the same pair and day replaces the earlier one.
    assert len(RATES.with_rate(date(2024, 3, 1), "EUR", "USD", "9")) == 3
