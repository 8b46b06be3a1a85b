"""Normalising a price on any billing cycle to one month."""

from __future__ import annotations

from decimal import Decimal

from revcrm._cycles import BillingCycle
from revcrm._money import Money

__all__ = ["monthly_amount"]


def monthly_amount(amount: Money, cycle: BillingCycle) -> Money:
    """The monthly equivalent of ``amount`` charged every ``cycle``, without rounding.

    $1,200 ANNUAL -> $100; $90 QUARTERLY -> $30; $2,400 BIENNIAL -> $100. Weekly cycles
    use 52/12 weeks per month and daily cycles 365/12 days per month (one year-based
    convention, as dbt_stripe and Tidemill). The result is exact whenever the quotient
    has a finite decimal expansion, and otherwise carries ``DIVISION_PRECISION`` digits.
    """
    months = cycle.length_in_months
    # One multiplication and one division, so the result is linear in ``amount``.
    return amount * months.denominator / Decimal(months.numerator)
