"""Money: exact Decimal amounts in one currency, rounding and formatting at the boundary."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import DEFAULT_ROUNDING, Money, format_money
from revcrm._money import DIVISION_PRECISION, money_sum
from revcrm.errors import CurrencyMismatchError, ValidationError
from revcrm.testing import strategies as S

# Wide, sub-minor-unit amounts: arithmetic properties must not depend on the grid.
fine_money = S.money("USD", min_value=-(10**9), max_value=10**9, minor_units=False)


class TestConstruction:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("12.50", Decimal("12.50")),
            (" 7.25 ", Decimal("7.25")),
            ("-3", Decimal(-3)),
            ("1E+3", Decimal(1000)),
            (12, Decimal(12)),
            (0, Decimal(0)),
            (Decimal("0.1"), Decimal("0.1")),
        ],
    )
    def test_from_str_int_and_decimal(self, value: str | int | Decimal, expected: Decimal) -> None:
        m = Money(value, "USD")
        assert m.amount == expected
        assert isinstance(m.amount, Decimal)
        assert m.currency == "USD"
        assert Money.of(value, "USD") == m

    def test_str_keeps_the_written_digits(self) -> None:
        # "0.1" must not become 0.1000000000000000055511151231257827 as a float would.
        assert Money("0.1", "EUR").amount.as_tuple() == Decimal("0.1").as_tuple()

    @given(S.float_amounts())
    def test_float_is_a_type_error(self, value: float) -> None:
        with pytest.raises(TypeError, match="float"):
            Money(value, "USD")

    @pytest.mark.parametrize("value", [True, False])
    def test_bool_is_rejected(self, value: bool) -> None:
        with pytest.raises(TypeError, match="bool"):
            Money(value, "USD")

    @pytest.mark.parametrize("value", [None, [1], b"1", Fraction(1, 2), complex(1, 0)])
    def test_other_types_are_rejected(self, value: object) -> None:
        with pytest.raises(TypeError):
            Money(value, "USD")

    @given(S.invalid_amount_strings())
    def test_bad_strings_name_the_amount(self, value: str) -> None:
        with pytest.raises(ValidationError) as e:
            Money(value, "USD")
        assert e.value.field == "amount"
        assert e.value.value == value

    @pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
    def test_non_finite_decimals_are_rejected(self, value: Decimal) -> None:
        with pytest.raises(ValidationError) as e:
            Money(value, "USD")
        assert e.value.field == "amount"

    @given(S.unknown_currency_codes())
    def test_unknown_currency_is_a_validation_error(self, code: str) -> None:
        with pytest.raises(ValidationError) as e:
            Money("1", code)
        assert e.value.field == "currency"
        assert e.value.value == code
        with pytest.raises(ValidationError):
            Money.zero(code)

    def test_currency_must_be_a_string(self) -> None:
        with pytest.raises(ValidationError) as e:
            Money("1", 840)  # type: ignore[arg-type]
        assert e.value.field == "currency"

    @given(S.currencies(any_cldr=True))
    def test_every_cldr_currency_is_accepted(self, code: str) -> None:
        assert Money("1", code).currency == code

    def test_zero(self) -> None:
        z = Money.zero("JPY")
        assert z == Money(0, "JPY")
        assert z.is_zero()
        assert not z
        assert Money("0.01", "USD")

    def test_repr_and_str(self) -> None:
        m = Money("12.50", "EUR")
        assert repr(m) == "Money('12.5', 'EUR')"
        assert str(m) == "12.5 EUR"
        assert f"{m:>12}" == "    12.5 EUR"

    @pytest.mark.parametrize(
        ("written", "canonical"),
        [
            ("10", "10"),
            ("10.000", "10"),
            ("1E+1", "10"),
            ("10.000000000000000000000000000000000000000000000000", "10"),
            ("0E+45", "0"),
            ("-0.00", "0"),
            ("1.50", "1.5"),
            ("5.10472031E+11", "510472031000"),
            ("1E-40", "1E-40"),
            ("-123.4500", "-123.45"),
        ],
    )
    def test_amounts_are_canonical(self, written: str, canonical: str) -> None:
        # Same value, same digits and exponent: str is the same whatever scale a store kept.
        m = Money(written, "USD")
        assert str(m.amount) == canonical
        assert m.amount.as_tuple() == Decimal(canonical).as_tuple()
        assert str(m) == f"{Decimal(canonical):f} USD"  # fixed-point, never an exponent
        assert hash(m) == hash(Money(canonical, "USD"))
        assert m == Money(canonical, "USD")

    @given(S.currencies(any_cldr=True).flatmap(lambda c: S.money(c, minor_units=False)))
    def test_equal_amounts_have_one_spelling(self, m: Money) -> None:
        # The same value with two more trailing zeros (within the accepted places).
        places = -int(m.amount.as_tuple().exponent)
        padded = Money(m.amount * (Decimal("1.00") if places < 190 else 1), m.currency)
        assert padded == m
        assert (str(padded), repr(padded)) == (str(m), repr(m))

    def test_str_and_repr_never_use_an_exponent(self) -> None:
        assert str(Money("0.0000001", "USD")) == "0.0000001 USD"
        assert repr(Money("1E-7", "EUR")) == "Money('0.0000001', 'EUR')"
        assert eval(repr(Money("1E-40", "USD"))) == Money("1E-40", "USD")

    def test_rounded_amount_keeps_the_minor_units(self) -> None:
        assert str(Money("10", "USD").rounded_amount()) == "10.00"
        assert str(Money("1234.5", "JPY").rounded_amount()) == "1234"
        assert str(Money("-0.004", "USD").rounded_amount()) == "0.00"
        assert str(Money("0.0005", "KWD").rounded_amount(ROUND_HALF_UP)) == "0.001"


class TestArithmetic:
    def test_add_and_subtract_same_currency(self) -> None:
        assert Money("10.10", "USD") + Money("0.90", "USD") == Money("11", "USD")
        assert Money("10", "USD") - Money("0.01", "USD") == Money("9.99", "USD")

    @pytest.mark.parametrize("op", ["add", "subtract"])
    def test_mixing_currencies_raises(self, op: str) -> None:
        a, b = Money("1", "USD"), Money("1", "EUR")
        with pytest.raises(CurrencyMismatchError) as e:
            _ = a + b if op == "add" else a - b
        assert (e.value.left, e.value.right, e.value.operation) == ("USD", "EUR", op)

    @pytest.mark.parametrize("other", [1, Decimal(1), "1"])
    def test_adding_a_plain_number_is_a_type_error(self, other: object) -> None:
        with pytest.raises(TypeError):
            _ = Money("1", "USD") + other
        with pytest.raises(TypeError):
            _ = Money("1", "USD") - other

    def test_multiply_by_int_and_decimal(self) -> None:
        m = Money("19.99", "USD")
        assert m * 3 == Money("59.97", "USD")
        assert 3 * m == Money("59.97", "USD")
        assert m * Decimal("0.5") == Money("9.995", "USD")  # not rounded
        assert Decimal("0.1") * m == Money("1.999", "USD")

    @pytest.mark.parametrize("factor", [1.5, True, "2", Money("2", "USD")])
    def test_multiply_rejects_floats_bools_and_money(self, factor: object) -> None:
        with pytest.raises(TypeError):
            _ = Money("1", "USD") * factor

    def test_divide_by_int_and_decimal(self) -> None:
        assert Money("1200", "USD") / 12 == Money("100", "USD")
        assert Money("90", "USD") / Decimal(3) == Money("30", "USD")
        assert Money("1", "USD") / Decimal("0.25") == Money("4", "USD")

    def test_division_keeps_division_precision_digits(self) -> None:
        third = (Money("1", "USD") / 3).amount
        assert DIVISION_PRECISION == 40
        assert third == Decimal("0." + "3" * DIVISION_PRECISION)
        assert len(third.as_tuple().digits) == DIVISION_PRECISION

    @pytest.mark.parametrize("divisor", [1.5, True, "2", Money("2", "USD")])
    def test_divide_rejects_floats_bools_and_money(self, divisor: object) -> None:
        with pytest.raises(TypeError):
            _ = Money("1", "USD") / divisor

    @pytest.mark.parametrize("zero", [0, Decimal(0), Decimal("0.00")])
    def test_divide_by_zero(self, zero: int | Decimal) -> None:
        with pytest.raises(ZeroDivisionError):
            _ = Money("1", "USD") / zero

    def test_ratio(self) -> None:
        assert Money("25", "USD").ratio(Money("100", "USD")) == Decimal("0.25")
        with pytest.raises(CurrencyMismatchError):
            Money("1", "USD").ratio(Money("1", "EUR"))
        with pytest.raises(ZeroDivisionError):
            Money("1", "USD").ratio(Money.zero("USD"))

    def test_unary_operators(self) -> None:
        m = Money("-2.50", "GBP")
        assert -m == Money("2.50", "GBP")
        assert +m is m
        assert abs(m) == Money("2.50", "GBP")

    @given(fine_money, fine_money)
    def test_add_then_subtract_is_exact(self, a: Money, b: Money) -> None:
        assert a + b - b == a
        assert (a + b - b).amount == a.amount

    @given(st.lists(S.money("KWD", minor_units=False, max_value=10**12), max_size=60))
    def test_sums_of_many_amounts_are_exact(self, items: list[Money]) -> None:
        expected = sum((Fraction(m.amount) for m in items), Fraction(0))
        total = money_sum(items, "KWD")
        assert Fraction(total.amount) == expected
        folded = Money.zero("KWD")
        for m in items:
            folded += m
        assert folded == total

    def test_tiny_and_huge_amounts_add_exactly(self) -> None:
        big, tiny = Money("1E+30", "USD"), Money("1E-20", "USD")
        assert (big + tiny).amount == Decimal(
            "1000000000000000000000000000000.00000000000000000001"
        )
        assert big + tiny - big == tiny

    def test_arithmetic_ignores_the_callers_decimal_context(self) -> None:
        with localcontext() as ctx:
            ctx.prec = 3
            ctx.rounding = ROUND_DOWN
            assert Money("1234.5678", "USD") + Money("0.0001", "USD") == Money("1234.5679", "USD")
            assert Money("1234.5678", "USD") * 3 == Money("3703.7034", "USD")
            assert money_sum([Money("999.99", "USD")] * 3, "USD") == Money("2999.97", "USD")

    def test_money_sum(self) -> None:
        assert money_sum([], "EUR") == Money.zero("EUR")
        with pytest.raises(CurrencyMismatchError):
            money_sum([Money("1", "USD")], "EUR")

    @given(fine_money, st.integers(-1000, 1000), st.integers(-1000, 1000))
    def test_multiplication_distributes_exactly(self, m: Money, j: int, k: int) -> None:
        assert m * (j + k) == m * j + m * k


class TestComparison:
    @given(fine_money, fine_money)
    def test_ordering_follows_amounts_within_a_currency(self, a: Money, b: Money) -> None:
        assert (a < b) == (a.amount < b.amount)
        assert (a <= b) == (a.amount <= b.amount)
        assert (a > b) == (a.amount > b.amount)
        assert (a >= b) == (a.amount >= b.amount)
        assert (a == b) == (a.amount == b.amount)
        assert (a != b) == (a.amount != b.amount)

    @pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
    def test_comparing_across_currencies_raises(self, op: str) -> None:
        a, b = Money("1", "USD"), Money("2", "EUR")
        with pytest.raises(CurrencyMismatchError):
            {"<": a.__lt__, "<=": a.__le__, ">": a.__gt__, ">=": a.__ge__}[op](b)

    def test_comparing_with_a_number_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            _ = Money("1", "USD") < 2

    @pytest.mark.parametrize("other", [Decimal(1), 1, "1", "1 USD", None, ("1", "USD")])
    def test_equality_with_non_money_is_false(self, other: object) -> None:
        m = Money("1", "USD")
        assert (m == other) is False
        assert (m != other) is True

    def test_same_amount_other_currency_is_not_equal(self) -> None:
        assert Money("1", "USD") != Money("1", "EUR")

    def test_equal_values_hash_alike(self) -> None:
        assert Money("1.0", "USD") == Money("1.00", "USD")
        assert hash(Money("1.0", "USD")) == hash(Money("1.00", "USD"))
        assert len({Money("1.0", "USD"), Money("1", "USD"), Money("1", "EUR")}) == 2


class TestRounding:
    @pytest.mark.parametrize(
        ("amount", "currency", "places", "expected"),
        [
            ("1.2345", "USD", 2, "1.23"),
            ("1.235", "USD", 2, "1.24"),
            ("1234.5", "JPY", 0, "1234"),
            ("1235.5", "JPY", 0, "1236"),
            ("1.23456", "KWD", 3, "1.235"),
            ("1.2345", "KWD", 3, "1.234"),
        ],
    )
    def test_cldr_minor_units_half_even_by_default(
        self, amount: str, currency: str, places: int, expected: str
    ) -> None:
        m = Money(amount, currency)
        assert m.minor_units == places
        r = m.rounded()
        assert r == Money(expected, currency)
        assert r.amount.as_tuple().exponent == -places

    def test_explicit_modes_differ_on_a_half(self) -> None:
        m = Money("0.125", "USD")
        assert DEFAULT_ROUNDING == ROUND_HALF_EVEN
        assert m.rounded() == Money("0.12", "USD")
        assert m.rounded(ROUND_HALF_EVEN) == Money("0.12", "USD")
        assert m.rounded(ROUND_HALF_UP) == Money("0.13", "USD")
        assert Money("-0.125", "USD").rounded(ROUND_HALF_UP) == Money("-0.13", "USD")

    @given(S.currencies(any_cldr=True).flatmap(lambda c: S.money(c, minor_units=False)))
    def test_rounded_is_on_the_grid_and_within_half_a_unit(self, m: Money) -> None:
        r = m.rounded()
        unit = Decimal(1).scaleb(-m.minor_units)
        assert r.currency == m.currency
        assert -int(r.amount.as_tuple().exponent) <= m.minor_units  # canonical, on the grid
        assert r.rounded_amount().as_tuple().exponent == -m.minor_units
        assert abs(r.amount - m.amount) <= unit / 2
        assert r.rounded() == r

    def test_rounding_is_not_applied_by_arithmetic(self) -> None:
        third = Money("10", "USD") / 3
        assert third != third.rounded()
        assert third * 3 != Money("10", "USD")  # 40 digits, not a rounded 9.99
        assert (third * 3).rounded() == Money("10.00", "USD")


class TestFormatting:
    @pytest.mark.parametrize(
        ("money", "locale", "expected"),
        [
            (Money("1234.5", "USD"), "en_US", "$1,234.50"),
            (Money("1234567.891", "USD"), "en_US", "$1,234,567.89"),
            (Money("1234.5", "EUR"), "de_DE", "1.234,50\xa0€"),
            (Money("-1234.5", "EUR"), "de_DE", "-1.234,50\xa0€"),
            (Money("1234.5", "USD"), "de_DE", "1.234,50\xa0$"),
            (Money("1234.5", "JPY"), "ja_JP", "￥1,234"),
            (Money("1234.5678", "KWD"), "en_US", "KWD1,234.568"),
        ],
    )
    def test_explicit_locales(self, money: Money, locale: str, expected: str) -> None:
        assert format_money(money, locale=locale) == expected

    def test_rounding_mode_reaches_the_display(self) -> None:
        assert format_money(Money("0.125", "USD"), locale="en_US") == "$0.12"
        assert (
            format_money(Money("0.125", "USD"), locale="en_US", rounding=ROUND_HALF_UP) == "$0.13"
        )
        assert (
            format_money(Money("1234.5", "JPY"), locale="ja_JP", rounding=ROUND_HALF_UP)
            == "￥1,235"
        )

    @pytest.mark.parametrize("locale", ["xx_XX", "zz", "not a locale", "", None])
    def test_unknown_locale_is_a_validation_error(self, locale: object) -> None:
        with pytest.raises(ValidationError) as e:
            format_money(Money("1", "USD"), locale=locale)  # type: ignore[arg-type]
        assert e.value.field == "locale"


@pytest.mark.parametrize("rounding", [[], {}, None, 1, "round_half_up"])
def test_a_rounding_that_is_no_mode_is_a_validation_error(rounding: object) -> None:
    # An unhashable rounding ([]) was a raw TypeError from the set lookup.
    with pytest.raises(ValidationError) as caught:
        Money("1.005", "USD").rounded(rounding)  # type: ignore[arg-type]
    assert caught.value.field == "rounding"
    with pytest.raises(ValidationError):
        format_money(Money("1", "USD"), locale="en_US", rounding=rounding)  # type: ignore[arg-type]
