"""Normalising a price on any billing cycle to one month."""

from __future__ import annotations

from decimal import Decimal

from revcrm._cycles import BillingCycle
from revcrm._money import EXACT_CONTEXT, Money, divide

__all__ = ["monthly_amount"]


def monthly_amount(amount: Money, cycle: BillingCycle) -> Money:
    """The monthly equivalent of ``amount`` charged every ``cycle``, without rounding.

    $1,200 ANNUAL -> $100; $90 QUARTERLY -> $30; $2,400 BIENNIAL -> $100. Weekly cycles
    use 52/12 weeks per month and daily cycles 365/12 days per month (one year-based
    convention, as dbt_stripe and Tidemill). The result is exact whenever the quotient
    has a finite decimal expansion, and otherwise carries ``DIVISION_PRECISION`` digits.
    """
    return Money(normalise(amount.amount, cycle), amount.currency)


def normalise(amount: Decimal, cycle: BillingCycle) -> Decimal:
    """:func:`monthly_amount` on a bare Decimal."""
    months = cycle.length_in_months
    if months == 1:
        return amount
    # One multiplication and one division, so the result is linear in ``amount``.
    return divide(
        EXACT_CONTEXT.multiply(amount, Decimal(months.denominator)), Decimal(months.numerator)
    )
