"""monthly_amount: any cycle's price as one month, exact where the quotient terminates."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import BillingCycle, Money
from revcrm._money import DIVISION_PRECISION
from revcrm.metrics import monthly_amount
from revcrm.testing import strategies as S

prices = S.money("USD", min_value=0, max_value=10**7, minor_units=False)
factors = st.one_of(st.integers(0, 1000), S.amounts(min_value=0, max_value=1000, places=3))
RELATIVE = Decimal("1e-30")


def exact_monthly(m: Money, cycle: BillingCycle) -> Fraction:
    return Fraction(m.amount) / cycle.length_in_months


def terminates(x: Fraction) -> bool:
    """A finite decimal expansion of at most DIVISION_PRECISION significant digits."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return False
    digits = Decimal(x.numerator) / Decimal(x.denominator)  # exact: d is 2^a 5^b
    return len(digits.normalize().as_tuple().digits) <= DIVISION_PRECISION


def close(a: Money, b: Money) -> bool:
    assert a.currency == b.currency
    if a.amount == b.amount:
        return True
    scale = max(abs(a.amount), abs(b.amount))
    return abs(a.amount - b.amount) <= scale * RELATIVE


@pytest.mark.parametrize(
    ("price", "cycle", "monthly"),
    [
        ("1200", BillingCycle.ANNUAL, "100"),
        ("90", BillingCycle.QUARTERLY, "30"),
        ("2400", BillingCycle.BIENNIAL, "100"),
        ("3600", BillingCycle.TRIENNIAL, "100"),
        ("60", BillingCycle.SEMIANNUAL, "10"),
        ("10", BillingCycle.MONTHLY, "10"),
        ("3", BillingCycle.WEEKLY, "13"),  # 3 x 52 / 12
        ("6", BillingCycle.weeks(2), "13"),
        ("12", BillingCycle.DAILY, "365"),  # 12 x 365 / 12
    ],
)
def test_worked_examples(price: str, cycle: BillingCycle, monthly: str) -> None:
    assert monthly_amount(Money(price, "USD"), cycle) == Money(monthly, "USD")


def test_long_terms_divide_by_their_months() -> None:
    # The peer bug counted biennial and triennial prices as monthly (24x, 36x too high).
    assert monthly_amount(Money("1000", "EUR"), BillingCycle.TRIENNIAL) == Money("1000", "EUR") / 36
    assert monthly_amount(Money("1000", "EUR"), BillingCycle.BIENNIAL) == Money(
        "41.66666666666666666666666666666666666667", "EUR"
    )


def test_no_rounding_to_minor_units() -> None:
    m = monthly_amount(Money("10.00", "USD"), BillingCycle.QUARTERLY)
    assert m == Money("3." + "3" * (DIVISION_PRECISION - 1), "USD")
    assert m != m.rounded()
    assert monthly_amount(Money("1000", "JPY"), BillingCycle.QUARTERLY).currency == "JPY"


@given(prices, S.billing_cycles())
def test_matches_the_exact_quotient(m: Money, cycle: BillingCycle) -> None:
    exact = exact_monthly(m, cycle)
    got = monthly_amount(m, cycle)
    if terminates(exact):
        assert Fraction(got.amount) == exact
    else:
        assert abs(Fraction(got.amount) - exact) <= abs(exact) * Fraction(RELATIVE)


@given(prices, prices, S.billing_cycles())
def test_additive(a: Money, b: Money, cycle: BillingCycle) -> None:
    whole = monthly_amount(a + b, cycle)
    parts = monthly_amount(a, cycle) + monthly_amount(b, cycle)
    if all(terminates(exact_monthly(x, cycle)) for x in (a, b, a + b)):
        assert whole == parts
    else:
        assert close(whole, parts)


@given(prices, factors, S.billing_cycles())
def test_homogeneous(a: Money, k: int | Decimal, cycle: BillingCycle) -> None:
    scaled = monthly_amount(a * k, cycle)
    expected = monthly_amount(a, cycle) * k
    if terminates(exact_monthly(a, cycle)) and terminates(exact_monthly(a * k, cycle)):
        assert scaled == expected
    else:
        assert close(scaled, expected)


@pytest.mark.parametrize(
    ("cycle", "months"),
    [
        (BillingCycle.QUARTERLY, 3),
        (BillingCycle.SEMIANNUAL, 6),
        (BillingCycle.ANNUAL, 12),
        (BillingCycle.BIENNIAL, 24),
        (BillingCycle.TRIENNIAL, 36),
        (BillingCycle.months(7), 7),
    ],
)
@given(m=S.money(minor_units=False))
def test_a_longer_cycle_is_that_many_months(m: Money, cycle: BillingCycle, months: int) -> None:
    assert monthly_amount(m * months, cycle) == monthly_amount(m, BillingCycle.MONTHLY) == m


@given(m=S.money(minor_units=False), weeks=st.integers(1, 12))
def test_weekly_uses_52_weeks_per_12_months(m: Money, weeks: int) -> None:
    monthly = monthly_amount(m, BillingCycle.weeks(weeks))
    # monthly x 12 == price x 52 / weeks, within the division's precision.
    assert close(monthly * 12 * weeks, m * 52)
    # A price divisible by 3 per week gives an exact monthly amount: 3 x 52 / 12 == 13.
    assert monthly_amount(m * 3, BillingCycle.WEEKLY) == m * 13
