"""Billing cycles and billing dates computed from an anchor."""

from __future__ import annotations

import enum
import functools
import re
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import ClassVar, Final, TypeVar

import attrs

from revcrm._checks import as_enum
from revcrm.errors import ValidationError, WrongTypeError

__all__ = ["BillingCycle", "CycleUnit"]

_D = TypeVar("_D", date, datetime)

#: Weeks per month used to normalise weekly cycles: 52 / 12 (dbt_stripe and Tidemill).
WEEKS_PER_MONTH: Final = Fraction(52, 12)
#: Days per month used to normalise daily cycles: 365 / 12, the same year-based convention.
DAYS_PER_MONTH: Final = Fraction(365, 12)


_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_months(value: _D, months: int) -> _D:
    """``value`` plus ``months`` calendar months, the day clamped to the month's last day.

    The same result as ``value + relativedelta(months=months)``, several times faster:
    billing dates are computed for every renewal of every subscription.
    """
    y, m = divmod(value.month - 1 + months, 12)
    year = value.year + y
    last = _MONTH_DAYS[m]
    if m == 1 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        last = 29
    day = value.day
    return value.replace(year=year, month=m + 1, day=day if day <= last else last)


class CycleUnit(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


def _check_day(value: object, field: str) -> None:
    if not isinstance(value, date):
        raise WrongTypeError(field, value, "expected a date or datetime")


def _positive(_i: object, _a: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError("count", value, "a billing cycle needs a positive whole count")


def _unit(value: object) -> CycleUnit:
    return as_enum(CycleUnit, value, "unit")


#: The longest cycle per unit: 100 years.
_LONGEST: Final = {
    CycleUnit.DAY: 36_525,
    CycleUnit.WEEK: 5_218,
    CycleUnit.MONTH: 1_200,
    CycleUnit.YEAR: 100,
}


@attrs.frozen
class BillingCycle:
    """A recurring interval: ``count`` x ``unit`` (3 months, 1 year, 2 weeks).

    One-off charges are not a cycle: model them as one-off invoice lines or a plan
    without a cycle (:func:`revcrm.sync.host_cycle` reads a panel's "One Time" and "Free
    Account" that way).

    A whole number of years given in months is stored as years: ``BillingCycle.months(12)
    == BillingCycle.ANNUAL``, since both bill on the same dates.
    """

    count: int = attrs.field(validator=_positive)
    unit: CycleUnit = attrs.field(converter=_unit)

    def __attrs_post_init__(self) -> None:
        longest = _LONGEST[self.unit]
        if self.count > longest:
            # Longer cycles cannot renew within the supported dates; refused here so no
            # store holds a service whose periods no reading can compute.
            raise ValidationError(
                "count", self.count, f"at most {longest} {self.unit.value}s (100 years)"
            )
        if self.unit is CycleUnit.MONTH and self.count % 12 == 0:
            object.__setattr__(self, "count", self.count // 12)
            object.__setattr__(self, "unit", CycleUnit.YEAR)

    MONTHLY: ClassVar[BillingCycle]
    QUARTERLY: ClassVar[BillingCycle]
    SEMIANNUAL: ClassVar[BillingCycle]
    ANNUAL: ClassVar[BillingCycle]
    BIENNIAL: ClassVar[BillingCycle]
    TRIENNIAL: ClassVar[BillingCycle]
    WEEKLY: ClassVar[BillingCycle]
    DAILY: ClassVar[BillingCycle]

    @classmethod
    def months(cls, count: int) -> BillingCycle:
        return cls(count, CycleUnit.MONTH)

    @classmethod
    def years(cls, count: int) -> BillingCycle:
        return cls(count, CycleUnit.YEAR)

    @classmethod
    def weeks(cls, count: int) -> BillingCycle:
        return cls(count, CycleUnit.WEEK)

    @classmethod
    def days(cls, count: int) -> BillingCycle:
        return cls(count, CycleUnit.DAY)

    @classmethod
    def parse(cls, text: str) -> BillingCycle:
        """Parse ``"monthly"``, ``"annual"``, ``"3 month"``, ``"2 years"`` and similar.

        Hosting-panel words are accepted too, in any case and with any spaces, hyphens or
        underscores: Monthly, Quarterly, Semi-Annually, Annually, Biennially, Triennially
        (and "12 months" is :attr:`ANNUAL`). "One Time" and "Free Account" are not cycles:
        they are rejected here and read by :func:`revcrm.sync.host_cycle`.
        """
        if not isinstance(text, str):
            raise ValidationError("cycle", text, "expected a billing cycle name")
        key = text.strip().lower()
        compact = _SEPARATORS.sub("", key)
        named = _NAMES.get(compact) or _HOST_NAMES.get(compact)
        if named is not None:
            return named
        if compact in _NOT_RECURRING:
            raise ValidationError(
                "cycle", text, "not a recurring cycle (read it with revcrm.sync.host_cycle)"
            )
        parts = key.split()
        if len(parts) == 2 and parts[0].isdigit():
            unit = parts[1].removesuffix("s")
            if unit in CycleUnit.__members__.values():
                return cls(int(parts[0]), CycleUnit(unit))
        raise ValidationError("cycle", text, "unknown billing cycle")

    @functools.cached_property
    def length_in_months(self) -> Fraction:
        """Exact length in months; weeks and days by the documented year-based convention."""
        match self.unit:
            case CycleUnit.MONTH:
                return Fraction(self.count)
            case CycleUnit.YEAR:
                return Fraction(12 * self.count)
            case CycleUnit.WEEK:
                return self.count / WEEKS_PER_MONTH
            case CycleUnit.DAY:
                return self.count / DAYS_PER_MONTH

    def advance(self, anchor: _D, n: int) -> _D:
        """The date ``n`` cycles after ``anchor``, clamped to the end of shorter months.

        Always computed from the anchor, never stepped from the previous date, so an
        anchor of Jan 31 bills Feb 28 (29), Mar 31, Apr 30.
        """
        _check_day(anchor, "anchor")
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValidationError("n", n, "expected a whole number of cycles")
        try:
            return self._step(anchor, n)
        except (OverflowError, ValueError):
            raise ValidationError("n", n, "the billing date is out of the date range") from None

    def period_containing(self, anchor: _D, moment: _D) -> tuple[_D, _D]:
        """The service period ``[start, end)`` of this cycle that contains ``moment``.

        ``anchor`` and ``moment`` are both dates or both datetimes (both naive or both
        aware), since only those compare.
        """
        _check_day(anchor, "anchor")
        _check_day(moment, "moment")
        if isinstance(anchor, datetime) != isinstance(moment, datetime) or (
            isinstance(anchor, datetime)
            and isinstance(moment, datetime)
            and (anchor.tzinfo is None) != (moment.tzinfo is None)
        ):
            raise ValidationError(
                "moment", moment, "must be of the anchor's kind (date, naive or aware datetime)"
            )
        try:
            n = self._index(anchor, moment)
            return self._step(anchor, n), self._step(anchor, n + 1)
        except (OverflowError, ValueError):
            raise ValidationError("moment", moment, "the period is out of the date range") from None

    def next_after(self, anchor: _D, moment: _D) -> _D:
        """The first billing date strictly after ``moment``."""
        return self.period_containing(anchor, moment)[1]

    def _step(self, anchor: _D, n: int) -> _D:
        match self.unit:
            case CycleUnit.MONTH:
                return add_months(anchor, self.count * n)
            case CycleUnit.YEAR:
                return add_months(anchor, 12 * self.count * n)
            case CycleUnit.WEEK:
                return anchor + timedelta(weeks=self.count * n)
            case CycleUnit.DAY:
                return anchor + timedelta(days=self.count * n)

    def _index(self, anchor: _D, moment: _D) -> int:
        # A first guess from the mean cycle length, then corrected against the exact
        # clamped dates, so the answer never depends on stepping.
        if self.unit in (CycleUnit.MONTH, CycleUnit.YEAR):
            months = (moment.year - anchor.year) * 12 + moment.month - anchor.month
            n = months // int(self.length_in_months)
        else:
            days = (moment - anchor) // timedelta(days=1)
            n = int(days // (self.length_in_months * Fraction(36525, 1200)))
        while self._step(anchor, n) > moment:
            n -= 1
        while self._step(anchor, n + 1) <= moment:
            n += 1
        return n

    def __str__(self) -> str:
        for name, cycle in _NAMES.items():
            if cycle == self:
                return name
        return f"{self.count} {self.unit.value}s"


BillingCycle.MONTHLY = BillingCycle(1, CycleUnit.MONTH)
BillingCycle.QUARTERLY = BillingCycle(3, CycleUnit.MONTH)
BillingCycle.SEMIANNUAL = BillingCycle(6, CycleUnit.MONTH)
BillingCycle.ANNUAL = BillingCycle(1, CycleUnit.YEAR)
BillingCycle.BIENNIAL = BillingCycle(2, CycleUnit.YEAR)
BillingCycle.TRIENNIAL = BillingCycle(3, CycleUnit.YEAR)
BillingCycle.WEEKLY = BillingCycle(1, CycleUnit.WEEK)
BillingCycle.DAILY = BillingCycle(1, CycleUnit.DAY)

_NAMES: Final[dict[str, BillingCycle]] = {
    "monthly": BillingCycle.MONTHLY,
    "quarterly": BillingCycle.QUARTERLY,
    "semiannual": BillingCycle.SEMIANNUAL,
    "annual": BillingCycle.ANNUAL,
    "biennial": BillingCycle.BIENNIAL,
    "triennial": BillingCycle.TRIENNIAL,
    "weekly": BillingCycle.WEEKLY,
    "daily": BillingCycle.DAILY,
}

_SEPARATORS: Final = re.compile(r"[\s_-]+")

# The billing-cycle words of hosting panels (WHMCS, Blesta and the like).
_HOST_NAMES: Final[dict[str, BillingCycle]] = {
    "semiannually": BillingCycle.SEMIANNUAL,
    "annually": BillingCycle.ANNUAL,
    "yearly": BillingCycle.ANNUAL,
    "biennially": BillingCycle.BIENNIAL,
    "triennially": BillingCycle.TRIENNIAL,
}

_NOT_RECURRING: Final = frozenset({"onetime", "freeaccount", "free"})
