"""Funnel analytics: a worked example for every function, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import FxRates, Money
from revcrm.errors import CurrencyMismatchError, NotFoundError, ValidationError
from revcrm.leads import (
    ConversionRate,
    DurationStats,
    Lead,
    LeadGrouping,
    LeadStage,
    PipelineValue,
    ReferralSource,
    conversion_rate,
    format_funnel,
    funnel,
    lost_reasons,
    open_pipeline_value,
    stage_durations,
    time_to_conversion,
)
from revcrm.testing.strategies import lead_lists, lead_moments

NEW, CONTACTED, QUALIFIED, CONVERTED, LOST = LeadStage
D = timedelta(days=1)


def jan(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, 1, hour, tzinfo=UTC) + (day - 1) * D


def example() -> list[Lead]:
    """Six leads from January and February 2024 (days counted from Jan 1)."""
    l1 = (
        Lead(id="L1", email="l1@example.com", created_at=jan(1), source=ReferralSource.direct(),
             owner_id="s1", expected_value=Money("100", "EUR"))
        .contact(at=jan(3)).qualify(at=jan(6)).convert("cus-1", at=jan(10))
    )  # fmt: skip
    l2 = (
        Lead(id="L2", email="l2@example.com", created_at=jan(2),
             source=ReferralSource.referral("cus-9"), owner_id="s1",
             expected_value=Money("50", "EUR"))
        .contact(at=jan(4)).lose("price", at=jan(8))
    )  # fmt: skip
    l3 = Lead(
        id="L3",
        email="l3@example.com",
        created_at=jan(5),
        source=ReferralSource.campaign("spring"),
        owner_id="s2",
        expected_value=Money("200", "EUR"),
    ).qualify(at=jan(7))
    l4 = Lead(id="L4", email="l4@example.com", created_at=jan(10))
    l5 = (
        Lead(id="L5", email="l5@example.com", created_at=jan(15),
             source=ReferralSource.campaign("spring"), owner_id="s2",
             expected_value=Money("30", "USD"))
        .contact(at=jan(16)).lose("no budget", at=jan(20))
        .reopen(at=jan(32)).convert("cus-5", at=jan(36))
    )  # fmt: skip
    l6 = Lead(
        id="L6",
        email="l6@example.com",
        created_at=jan(34),
        source=ReferralSource.social(),
        owner_id="s1",
        expected_value=Money("80", "EUR"),
    ).lose("price", at=jan(35, 12))
    return [l1, l2, l3, l4, l5, l6]


# -- worked examples -----------------------------------------------------------------------


def test_funnel_counts_at_a_moment() -> None:
    end_of_january = funnel(example(), at=date(2024, 1, 31))
    assert dict(end_of_january.counts) == {
        NEW: 1,
        CONTACTED: 0,
        QUALIFIED: 1,
        CONVERTED: 1,
        LOST: 2,
    }
    assert end_of_january.total == 5  # L6 did not exist yet
    assert end_of_january.share(LOST) == Decimal("0.4")
    assert end_of_january[NEW] == 1
    february = funnel(example(), at=jan(41))
    assert dict(february.counts) == {NEW: 1, CONTACTED: 0, QUALIFIED: 1, CONVERTED: 2, LOST: 2}
    empty = funnel([], at=jan(1))
    assert empty.total == 0
    assert empty.share(NEW) is None


def test_conversion_rate_of_a_cohort() -> None:
    leads = example()
    january = conversion_rate(leads, start=date(2024, 1, 1), end=date(2024, 2, 1))
    assert january.overall == ConversionRate(key=None, leads=5, converted=1)
    assert january.overall.rate == Decimal("0.2")
    assert january.groups == ()
    # reading later lets L5, converted on Feb 5, count for its January cohort
    later = conversion_rate(leads, start=jan(1), end=jan(32), as_of=date(2024, 3, 1))
    assert later.overall.rate == Decimal("0.4")


def test_conversion_rate_per_source_and_owner() -> None:
    leads = example()
    period = {"start": jan(1), "end": jan(32), "as_of": jan(61)}
    kinds = conversion_rate(leads, **period, by=LeadGrouping.SOURCE_KIND)
    assert [(g.key, g.converted, g.leads) for g in kinds.groups] == [
        ("campaign", 1, 2),
        ("direct", 1, 1),
        ("referral", 0, 1),
        (None, 0, 1),
    ]
    assert kinds.group("campaign").rate == Decimal("0.5")
    sources = conversion_rate(leads, **period, by="source")
    assert [g.key for g in sources.groups] == ["campaign:spring", "direct", "referral:cus-9", None]
    owners = conversion_rate(leads, **period, by="owner")
    assert [(g.key, g.converted, g.leads) for g in owners.groups] == [
        ("s1", 1, 2),
        ("s2", 1, 2),
        (None, 0, 1),
    ]
    with pytest.raises(NotFoundError):
        owners.group("s3")


def test_conversion_rate_is_none_without_leads() -> None:
    report = conversion_rate(example(), start=date(2023, 1, 1), end=date(2023, 2, 1))
    assert report.overall.leads == 0
    assert report.overall.rate is None


def test_stage_durations_average_and_median() -> None:
    all_time = stage_durations(example(), end=date(2024, 3, 1))
    # New: 2d, 2d, 2d, 1d, 4d (L5 after reopening), 1.5d
    assert all_time[NEW] == DurationStats(count=6, average=D * 12.5 / 6, median=2 * D)
    assert all_time[NEW].average == timedelta(days=2, hours=2)
    assert all_time[CONTACTED] == DurationStats(count=3, average=D * 11 / 3, median=4 * D)
    assert all_time[QUALIFIED] == DurationStats(count=1, average=4 * D, median=4 * D)
    assert all_time[LOST] == DurationStats(count=1, average=12 * D, median=12 * D)
    assert all_time[CONVERTED] == DurationStats(count=0, average=None, median=None)
    february = stage_durations(example(), start=date(2024, 2, 1), end=date(2024, 3, 1))
    assert february[NEW] == DurationStats(count=2, average=D * 2.75, median=D * 2.75)
    assert february[LOST].count == 1  # L5 reopened on Feb 1
    assert february[CONTACTED].count == 0


def test_time_to_conversion() -> None:
    assert time_to_conversion(example(), start=jan(1), end=jan(61)) == DurationStats(
        count=2, average=15 * D, median=15 * D
    )
    assert time_to_conversion(example(), start=jan(1), end=jan(32)) == DurationStats(
        count=1, average=9 * D, median=9 * D
    )


def test_lost_reasons() -> None:
    result = lost_reasons(example(), start=jan(1), end=jan(61))
    assert result.total == 3
    assert [(r.reason, r.count) for r in result.reasons] == [("price", 2), ("no budget", 1)]
    assert result.reasons[1].share == Decimal("0." + "3" * 40)  # DIVISION_PRECISION digits
    assert result.count("price") == 2
    assert result.count("timing") == 0
    assert lost_reasons(example(), start=jan(32), end=jan(61)).count("price") == 1
    empty = lost_reasons([], start=jan(1), end=jan(2))
    assert (empty.total, empty.reasons) == (0, ())


def test_open_pipeline_value() -> None:
    at_end_of_january = open_pipeline_value(example(), currency="EUR", at=jan(31))
    assert at_end_of_january == PipelineValue(
        at=jan(31), total=Money("200", "EUR"), open_leads=2, valued_leads=1
    )
    # on Jan 18 L5's 30 USD is open too: never added to euros as a plain number
    with pytest.raises(CurrencyMismatchError):
        open_pipeline_value(example(), currency="EUR", at=jan(18))
    fx = FxRates.from_rates([(date(2024, 1, 1), "USD", "EUR", "0.92")])
    mixed = open_pipeline_value(example(), currency="EUR", at=jan(18), fx=fx)
    assert mixed.total == Money("227.60", "EUR")
    assert (mixed.open_leads, mixed.valued_leads) == (3, 2)
    with pytest.raises(ValidationError):
        open_pipeline_value(example(), currency="XYZ", at=jan(18))


def test_format_funnel() -> None:
    leads = example()
    text = format_funnel(
        funnel(leads, at=jan(31)),
        conversion=conversion_rate(leads, start=jan(1), end=jan(32), by="owner"),
        pipeline_value=open_pipeline_value(leads, currency="EUR", at=jan(31)),
    )
    assert text == "\n".join(
        [
            "Lead funnel at 2024-01-31 00:00 UTC",
            "Stage        Leads    Share",
            "New              1    20.0%",
            "Contacted        0     0.0%",
            "Qualified        1    20.0%",
            "Converted        1    20.0%",
            "Lost             2    40.0%",
            "Total            5   100.0%",
            "",
            "Conversion of leads created 2024-01-01 to 2024-02-01 (read 2024-02-01): 1/5 = 20.0%",
            "  s1           1/2    50.0%",
            "  s2           0/2     0.0%",
            "  (none)       0/1     0.0%",
            "",
            "Open pipeline value: 200.00 EUR per month (1 of 2 open leads valued)",
        ]
    )
    assert "Total            0        -" in format_funnel(funnel([], at=jan(1)))
    by_source = format_funnel(
        funnel(leads, at=jan(31)),
        conversion=conversion_rate(leads, start=jan(1), end=jan(32), by="source"),
    )
    assert by_source.splitlines()[-4:] == [  # long keys widen the label column
        "  campaign:spring     0/2     0.0%",
        "  direct              1/1   100.0%",
        "  referral:cus-9      0/1     0.0%",
        "  (none)              0/1     0.0%",
    ]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: conversion_rate([], start=jan(2), end=jan(2)), "end"),
        (lambda: conversion_rate([], start=jan(1), end=jan(2), as_of=jan(1)), "as_of"),
        (lambda: conversion_rate([], start=jan(1), end=jan(2), by="country"), "by"),
        (lambda: stage_durations([], start=jan(3), end=jan(2)), "end"),
        (lambda: funnel([], at=datetime(2024, 1, 1)), "at"),
        (lambda: lost_reasons([], start="2024-01-01", end=jan(2)), "start"),  # type: ignore[arg-type]
    ],
)
def test_bad_periods_name_the_argument(call: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call()  # type: ignore[operator]
    assert info.value.field == field


# -- properties -----------------------------------------------------------------------------


@given(leads=lead_lists(), at=lead_moments())
def test_funnel_counts_sum_to_the_number_of_leads(leads: list[Lead], at: datetime) -> None:
    result = funnel(leads, at=at)
    assert list(result.counts) == list(LeadStage)
    assert result.total == sum(1 for x in leads if x.created_at <= at)
    everyone = funnel(leads, at=datetime(2100, 1, 1, tzinfo=UTC))
    assert sum(everyone.counts.values()) == len(leads)
    assert everyone.counts == {s: sum(1 for x in leads if x.stage is s) for s in LeadStage}


@given(
    leads=lead_lists(),
    start=lead_moments(),
    length=st.integers(1, 800),
    by=st.sampled_from(LeadGrouping),
)
def test_conversion_groups_add_up_to_the_overall_rate(
    leads: list[Lead], start: datetime, length: int, by: LeadGrouping
) -> None:
    report = conversion_rate(leads, start=start, end=start + length * D, by=by)
    assert sum(g.leads for g in report.groups) == report.overall.leads
    assert sum(g.converted for g in report.groups) == report.overall.converted
    for rate in (report.overall, *report.groups):
        assert 0 <= rate.converted <= rate.leads
        assert (rate.rate is None) == (rate.leads == 0)
        if rate.rate is not None:
            assert 0 <= rate.rate <= 1


@given(leads=lead_lists())
def test_every_finished_stay_is_counted_once(leads: list[Lead]) -> None:
    result = stage_durations(leads, end=datetime(2100, 1, 1, tzinfo=UTC))
    assert sum(s.count for s in result.by_stage.values()) == sum(len(x.history) for x in leads)
    for stats in result.by_stage.values():
        if stats.count:
            assert stats.average is not None
            assert stats.median is not None
            assert stats.average >= timedelta(0)


@given(leads=lead_lists(), start=lead_moments(), length=st.integers(1, 800))
def test_losses_and_conversions_in_a_period(
    leads: list[Lead], start: datetime, length: int
) -> None:
    end = start + length * D
    lost = lost_reasons(leads, start=start, end=end)
    moves = [t for x in leads for t in x.history if t.to_stage is LOST and start <= t.at < end]
    assert lost.total == len(moves) == sum(r.count for r in lost.reasons)
    if lost.total:
        assert abs(sum((r.share for r in lost.reasons), Decimal(0)) - 1) < Decimal("1e-25")
    times = time_to_conversion(leads, start=start, end=end)
    converted = [x for x in leads if x.converted_at is not None and start <= x.converted_at < end]
    assert times.count == len(converted)
    if converted:
        spans = [x.converted_at - x.created_at for x in converted if x.converted_at is not None]
        assert times.average is not None
        assert times.median is not None
        assert min(spans) <= times.average <= max(spans)
        assert min(spans) <= times.median <= max(spans)


@given(leads=lead_lists(currencies=("EUR",)), at=lead_moments())
def test_open_pipeline_value_is_the_exact_sum(leads: list[Lead], at: datetime) -> None:
    value = open_pipeline_value(leads, currency="EUR", at=at)
    open_leads = [x for x in leads if (s := x.stage_at(at)) is not None and s.is_open]
    amounts = [x.expected_value.amount for x in open_leads if x.expected_value is not None]
    assert value.total == Money(sum(amounts, Decimal(0)), "EUR")
    assert (value.open_leads, value.valued_leads) == (len(open_leads), len(amounts))
    assert value.open_leads == sum(funnel(leads, at=at)[s] for s in (NEW, CONTACTED, QUALIFIED))


@given(leads=lead_lists(), at=lead_moments())
def test_other_currencies_are_never_added_silently(leads: list[Lead], at: datetime) -> None:
    foreign = [
        x
        for x in leads
        if (s := x.stage_at(at)) is not None
        and s.is_open
        and x.expected_value is not None
        and x.expected_value.currency != "EUR"
    ]
    if foreign:
        with pytest.raises(CurrencyMismatchError):
            open_pipeline_value(leads, currency="EUR", at=at)
    else:
        open_pipeline_value(leads, currency="EUR", at=at)
