"""BillingCycle: billing dates from an anchor, clamped to month ends, never stepped."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import BillingCycle, CycleUnit
from revcrm.errors import ValidationError
from revcrm.testing import strategies as S

month_cycles = S.billing_cycles(units=(CycleUnit.MONTH, CycleUnit.YEAR))
short_cycles = S.billing_cycles(units=(CycleUnit.WEEK, CycleUnit.DAY))
steps = st.integers(-40, 40)


def months_of(cycle: BillingCycle) -> int:
    return cycle.count * (12 if cycle.unit is CycleUnit.YEAR else 1)


def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def clamped(anchor: date, months: int) -> date:
    """The oracle: anchor's day in the month ``months`` later, or that month's last day."""
    y, m = divmod(month_index(anchor) + months, 12)
    last = calendar.monthrange(y, m + 1)[1]
    return date(y, m + 1, min(anchor.day, last))


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        (
            date(2023, 1, 31),
            [date(2023, 1, 31), date(2023, 2, 28), date(2023, 3, 31), date(2023, 4, 30)],
        ),
        (
            date(2024, 1, 31),
            [date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)],
        ),
    ],
)
def test_anchor_jan_31_bills_month_ends(anchor: date, expected: list[date]) -> None:
    assert [BillingCycle.MONTHLY.advance(anchor, n) for n in range(4)] == expected


def test_leap_day_anchor_on_annual_cycle() -> None:
    a = date(2024, 2, 29)
    assert BillingCycle.ANNUAL.advance(a, 1) == date(2025, 2, 28)
    assert BillingCycle.ANNUAL.advance(a, 4) == date(2028, 2, 29)
    assert BillingCycle.ANNUAL.advance(a, -1) == date(2023, 2, 28)


def test_stepping_from_a_clamped_date_would_drift() -> None:
    # Why advance() always starts from the anchor: Feb 28 + 1 month is Mar 28, not Mar 31.
    a = date(2023, 1, 31)
    stepped = BillingCycle.MONTHLY.advance(BillingCycle.MONTHLY.advance(a, 1), 1)
    assert stepped == date(2023, 3, 28)
    assert BillingCycle.MONTHLY.advance(a, 2) == date(2023, 3, 31)


def test_datetimes_keep_time_and_zone() -> None:
    a = datetime(2024, 1, 31, 13, 45, 7, 123, tzinfo=UTC)
    assert BillingCycle.MONTHLY.advance(a, 1) == datetime(2024, 2, 29, 13, 45, 7, 123, tzinfo=UTC)
    assert BillingCycle.WEEKLY.advance(a, 2) == a + timedelta(days=14)


@given(S.dates(), month_cycles, steps)
def test_never_skips_or_repeats_a_month(anchor: date, cycle: BillingCycle, n: int) -> None:
    assert month_index(cycle.advance(anchor, n)) == month_index(anchor) + n * months_of(cycle)


@given(S.dates(), month_cycles, steps)
def test_keeps_the_anchor_day_whenever_the_month_has_it(
    anchor: date, cycle: BillingCycle, n: int
) -> None:
    d = cycle.advance(anchor, n)
    last = calendar.monthrange(d.year, d.month)[1]
    assert d.day == min(anchor.day, last)
    if anchor.day <= last:
        assert d.day == anchor.day


@given(S.dates(), month_cycles, steps, steps)
def test_advance_is_built_from_the_anchor(
    anchor: date, cycle: BillingCycle, m: int, n: int
) -> None:
    assert cycle.advance(anchor, m + n) == clamped(anchor, (m + n) * months_of(cycle))
    if anchor.day <= 28:  # no clamping anywhere: stepping agrees with the anchor rule
        assert cycle.advance(cycle.advance(anchor, m), n) == cycle.advance(anchor, m + n)


@given(S.moments(), short_cycles, steps)
def test_weeks_and_days_are_fixed_lengths(anchor: datetime, cycle: BillingCycle, n: int) -> None:
    days = cycle.count * (7 if cycle.unit is CycleUnit.WEEK else 1)
    assert cycle.advance(anchor, n) == anchor + timedelta(days=days * n)


def _index_by_bisection(cycle: BillingCycle, anchor: datetime, moment: datetime) -> int:
    # advance() is increasing in n; bound n by 40 years' worth of cycles either way.
    bound = int(Fraction(480) / cycle.length_in_months) + 2
    lo, hi = -bound, bound
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cycle.advance(anchor, mid) <= moment:
            lo = mid
        else:
            hi = mid
    return lo


@given(S.moments(), S.moments(), S.billing_cycles())
def test_period_containing(anchor: datetime, moment: datetime, cycle: BillingCycle) -> None:
    start, end = cycle.period_containing(anchor, moment)
    assert start <= moment < end
    k = _index_by_bisection(cycle, anchor, moment)
    assert (start, end) == (cycle.advance(anchor, k), cycle.advance(anchor, k + 1))
    assert cycle.next_after(anchor, moment) == end > moment


@given(S.dates(), S.dates(), S.billing_cycles())
def test_period_containing_dates(anchor: date, moment: date, cycle: BillingCycle) -> None:
    start, end = cycle.period_containing(anchor, moment)
    assert start <= moment < end
    assert type(start) is date


def test_period_at_a_billing_date_starts_there() -> None:
    a = datetime(2024, 1, 31, tzinfo=UTC)
    feb = datetime(2024, 2, 29, tzinfo=UTC)
    assert BillingCycle.MONTHLY.period_containing(a, feb) == (
        feb,
        datetime(2024, 3, 31, tzinfo=UTC),
    )
    before = feb - timedelta(microseconds=1)
    assert BillingCycle.MONTHLY.period_containing(a, before) == (a, feb)


class TestConstruction:
    def test_named_constants(self) -> None:
        assert BillingCycle.months(1) == BillingCycle.MONTHLY
        assert BillingCycle.months(3) == BillingCycle.QUARTERLY
        assert BillingCycle.months(6) == BillingCycle.SEMIANNUAL
        assert BillingCycle.years(1) == BillingCycle.ANNUAL
        assert BillingCycle.years(2) == BillingCycle.BIENNIAL
        assert BillingCycle.years(3) == BillingCycle.TRIENNIAL
        assert BillingCycle.weeks(1) == BillingCycle.WEEKLY
        assert BillingCycle.days(1) == BillingCycle.DAILY
        assert BillingCycle(2, "week") == BillingCycle.weeks(2)

    @pytest.mark.parametrize("count", [0, -1, True, "1", 1.0])
    def test_count_must_be_a_positive_int(self, count: object) -> None:
        with pytest.raises(ValidationError) as e:
            BillingCycle(count, CycleUnit.MONTH)  # type: ignore[arg-type]
        assert e.value.field == "count"

    def test_unknown_unit(self) -> None:
        with pytest.raises(ValidationError) as e:
            BillingCycle(1, "fortnight")
        assert e.value.field == "unit"

    @pytest.mark.parametrize("n", [True, 1.0, "1", None])
    def test_advance_needs_a_whole_number(self, n: object) -> None:
        with pytest.raises(ValidationError) as e:
            BillingCycle.MONTHLY.advance(date(2024, 1, 1), n)  # type: ignore[arg-type]
        assert e.value.field == "n"

    @pytest.mark.parametrize(
        ("text", "cycle"),
        [
            ("monthly", BillingCycle.MONTHLY),
            (" Annual ", BillingCycle.ANNUAL),
            ("TRIENNIAL", BillingCycle.TRIENNIAL),
            ("3 months", BillingCycle.QUARTERLY),
            ("2 year", BillingCycle.BIENNIAL),
            ("10 days", BillingCycle.days(10)),
            ("1 week", BillingCycle.WEEKLY),
        ],
    )
    def test_parse(self, text: str, cycle: BillingCycle) -> None:
        assert BillingCycle.parse(text) == cycle

    @pytest.mark.parametrize("text", ["fortnightly", "x months", "3 moons", "", "1 2 3"])
    def test_parse_rejects_unknown_text(self, text: str) -> None:
        with pytest.raises(ValidationError) as e:
            BillingCycle.parse(text)
        assert e.value.field == "cycle"

    def test_parse_zero_count(self) -> None:
        with pytest.raises(ValidationError) as e:
            BillingCycle.parse("0 months")
        assert e.value.field == "count"

    @given(S.billing_cycles())
    def test_str_round_trips_through_parse(self, cycle: BillingCycle) -> None:
        assert BillingCycle.parse(str(cycle)) == cycle

    def test_str(self) -> None:
        assert str(BillingCycle.QUARTERLY) == "quarterly"
        assert str(BillingCycle.months(5)) == "5 months"

    @pytest.mark.parametrize(
        ("cycle", "months"),
        [
            (BillingCycle.MONTHLY, Fraction(1)),
            (BillingCycle.QUARTERLY, Fraction(3)),
            (BillingCycle.ANNUAL, Fraction(12)),
            (BillingCycle.TRIENNIAL, Fraction(36)),
            (BillingCycle.WEEKLY, Fraction(12, 52)),
            (BillingCycle.weeks(2), Fraction(24, 52)),
            (BillingCycle.DAILY, Fraction(12, 365)),
        ],
    )
    def test_length_in_months(self, cycle: BillingCycle, months: Fraction) -> None:
        assert cycle.length_in_months == months


# -- hostile arguments (issue 12, found by the fuzz suite) ----------------------------------


@pytest.mark.parametrize("cycle", [BillingCycle.MONTHLY, BillingCycle.WEEKLY, BillingCycle.DAILY])
@pytest.mark.parametrize("n", [2**63, -(2**63), 10**6 * 12])
def test_advance_out_of_the_calendar_is_a_validation_error(cycle: BillingCycle, n: int) -> None:
    # Was a raw OverflowError (a C int) or ValueError (year out of range).
    with pytest.raises(ValidationError) as caught:
        cycle.advance(datetime(2024, 1, 31, tzinfo=UTC), n)
    assert caught.value.field == "n"


@pytest.mark.parametrize("anchor", ["", None, 20240101, len])
def test_advance_and_period_refuse_a_non_date_anchor(anchor: object) -> None:
    # Was a raw AttributeError ('str' object has no attribute 'month').
    at = datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        BillingCycle.MONTHLY.advance(anchor, 1)  # type: ignore[type-var]
    assert caught.value.field == "anchor"
    with pytest.raises(ValidationError) as caught:
        BillingCycle.MONTHLY.period_containing(anchor, at)  # type: ignore[type-var]
    assert caught.value.field == "anchor"
    with pytest.raises(ValidationError) as caught:
        BillingCycle.MONTHLY.period_containing(at, anchor)  # type: ignore[type-var]
    assert caught.value.field == "moment"


@pytest.mark.parametrize(
    ("anchor", "moment"),
    [
        (date(1, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)),  # a date and a datetime
        (datetime(2024, 1, 1), datetime(2024, 3, 1, tzinfo=UTC)),  # naive and aware
    ],
)
def test_period_of_moments_that_do_not_compare_is_refused(anchor: date, moment: date) -> None:
    # Was a raw TypeError (can't compare datetime.datetime to datetime.date).
    with pytest.raises(ValidationError) as caught:
        BillingCycle.MONTHLY.period_containing(anchor, moment)
    assert caught.value.field == "moment"


def test_period_at_the_end_of_the_calendar_is_a_validation_error() -> None:
    anchor = datetime(1, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        BillingCycle.ANNUAL.period_containing(anchor, datetime(9999, 12, 31, tzinfo=UTC))
    assert BillingCycle.ANNUAL.period_containing(date(1, 1, 1), date(2, 6, 1)) == (
        date(2, 1, 1),
        date(3, 1, 1),
    )


@pytest.mark.parametrize(
    ("count", "unit"),
    [(1_201, "month"), (101, "year"), (5_219, "week"), (36_526, "day"), (99_999_999_999, "month")],
)
def test_cycles_longer_than_a_century_are_refused(count: int, unit: str) -> None:
    # Found by an acceptance probe: "99999999999 months" was accepted, stored, and then
    # broke every segment reading of the store with an out-of-range period.
    with pytest.raises(ValidationError) as err:
        BillingCycle(count, CycleUnit(unit))
    assert err.value.field == "count"
    with pytest.raises(ValidationError):
        BillingCycle.parse(f"{count} {unit}s")
    longest = {"month": 1_200, "year": 100, "week": 5_218, "day": 36_525}[unit]
    assert BillingCycle(longest, CycleUnit(unit)).count > 0
