"""ARPA, ASP, LTV, CAC, LTV:CAC, payback, NPS and trial conversion: the reference's worked
figures, zero-denominator conventions and bounds."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import Book, FxRates, Money, SubscriptionStatus
from revcrm.errors import CurrencyMismatchError, ValidationError
from revcrm.metrics import MetricsPolicy, mrr
from revcrm.metrics._economics import (
    MarketingSpend,
    TrialBasis,
    arpa,
    arpa_from_mrrs,
    asp,
    cac,
    cac_by_channel,
    cac_payback_months,
    ltv,
    ltv_to_cac,
    marketing_spend,
    nps,
    ratio,
    trial_conversion,
)
from revcrm.testing import strategies as rs

from ._build import customer, eur, monthly, t, usd

rates = st.decimals(min_value=0, max_value=1, places=4)
margins = st.decimals(min_value="0.01", max_value=1, places=3)
prices = rs.money("USD", min_value=0, max_value=10_000)

# -- ARPA -------------------------------------------------------------------------------------


def test_arpa_reference_example() -> None:
    # ChartMogul: MRRs 1, 1, 3, 5, 5 -> ARPA 3.
    result = arpa_from_mrrs([usd(1), usd(1), usd(3), usd(5), usd(5)], currency="USD")
    assert result.value == usd(3)
    assert result.mrr == usd(15)
    assert result.paying_customers == 5


def test_arpa_counts_each_customer_once_in_a_book() -> None:
    subs = [
        monthly("s1", "c1", usd(1)),
        monthly("s2", "c2", usd(1)),
        monthly("s3", "c3", usd(3)),
        monthly("s4", "c4", usd(5)),
        monthly("s5", "c5", usd(2)),  # c5 holds two subscriptions: 2 + 3 = 5, one account
        monthly("s6", "c5", usd(3)),
    ]
    book = Book.of(customers=[customer(f"c{i}") for i in range(1, 7)], subscriptions=subs)
    result = arpa(book, at=t(2024, 2, 1), currency="USD")
    assert result.paying_customers == 5  # c6 has no subscription and is not paying
    assert result.value == usd(3)  # the reference's 1, 1, 3, 5, 5; per subscription: 2.5
    assert arpa(book, at=t(2023, 6, 1), currency="USD").value is None


def test_arpa_mapping_leaves_out_non_paying_customers() -> None:
    result = arpa_from_mrrs({"a": usd(10), "b": usd(0), "c": usd(20)}, currency="USD")
    assert result.paying_customers == 2
    assert result.value == usd(15)
    empty = arpa_from_mrrs({}, currency="USD")
    assert empty.value is None
    assert empty.mrr == usd(0)


def test_arpa_rejects_bad_mrrs() -> None:
    with pytest.raises(ValidationError):
        arpa_from_mrrs([usd(-1)], currency="USD")
    with pytest.raises(ValidationError):
        arpa_from_mrrs([eur(1)], currency="USD")
    with pytest.raises(ValidationError):
        arpa_from_mrrs([Decimal(1)], currency="USD")  # type: ignore[list-item]


@given(rs.books(single_currency=True, currencies=["USD"]), rs.moments())
def test_arpa_times_paying_customers_is_mrr(book: Book, at: datetime) -> None:
    result = arpa(book, at=at, currency="USD")
    assert result.mrr == mrr(book, at=at, currency="USD")
    if result.value is None:
        assert result.mrr.is_zero()
    else:
        # ARPA carries 40 significant digits; multiplied back it is MRR to that precision.
        error = (result.value * result.paying_customers - result.mrr).amount
        assert abs(error) <= result.mrr.amount * Decimal("1e-38")
        assert result.value.amount > 0


# -- ASP --------------------------------------------------------------------------------------


def test_asp() -> None:
    assert asp(usd(900), 3).value == usd(300)
    none = asp(usd(0), 0)
    assert none.value is None
    assert none.new_customers == 0
    with pytest.raises(ValidationError):
        asp(usd(1), -1)


# -- LTV --------------------------------------------------------------------------------------


def test_ltv_formula_with_gross_margin() -> None:
    # LTV = ARPA x margin / churn: $100 x 80 % / 2 % = $4,000.
    result = ltv(usd(100), Decimal("0.02"), gross_margin=Decimal("0.8"))
    assert result.value == usd(4000)
    assert result.lifetime_months == 50
    assert not result.capped
    assert not result.unbounded
    # Without a margin it is revenue LTV: $100 / 2 % = $5,000.
    assert ltv(usd(100), "0.02").value == usd(5000)


def test_ltv_trailing_average_of_monthly_churn() -> None:
    # ChartMogul: the six-month trailing average, completed months only; a month whose
    # rate is undefined (no customers at its start) is skipped.
    months = [Decimal("0.50"), Decimal("0.01"), Decimal("0.03"), None, Decimal("0.02")]
    months += [Decimal("0.04"), Decimal("0.05"), Decimal("0.03")]
    result = ltv(usd(90), months, window=6)
    # last six: 0.03, None, 0.02, 0.04, 0.05, 0.03 -> mean of five = 0.034
    assert result.churn_rate == Decimal("0.034")
    assert result.value == usd(90) / Decimal("0.034")
    policy_window = MetricsPolicy().ltv_churn_months
    assert ltv(usd(90), months, window=policy_window).value == result.value
    assert ltv(usd(90), months).churn_rate == ratio(Decimal("0.68"), 7)  # all seven months


def test_ltv_zero_churn_is_unbounded_not_a_crash() -> None:
    result = ltv(usd(100), 0)
    assert result.value is None
    assert result.lifetime_months is None
    assert result.unbounded
    capped = ltv(usd(100), 0, gross_margin="0.5", max_lifetime_months=60)
    assert capped.value == usd(3000)
    assert capped.capped
    assert capped.lifetime_months == 60
    assert not capped.unbounded


def test_ltv_cap_only_applies_when_shorter() -> None:
    assert not ltv(usd(100), "0.1", max_lifetime_months=60).capped
    short = ltv(usd(100), "0.01", max_lifetime_months=24)
    assert short.capped
    assert short.value == usd(2400)


def test_ltv_undefined_churn() -> None:
    result = ltv(usd(100), [None, None])
    assert result.churn_rate is None
    assert result.value is None
    assert not result.unbounded
    assert ltv(usd(100), []).value is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"churn": Decimal("1.5")}, "churn"),
        ({"churn": Decimal("-0.1")}, "churn"),
        ({"churn": [Decimal("0.1"), Decimal(2)]}, "churn[1]"),
        ({"churn": "0.1", "gross_margin": 80}, "gross_margin"),
        ({"churn": "0.1", "window": 0}, "window"),
        ({"churn": "0.1", "max_lifetime_months": 0}, "max_lifetime_months"),
    ],
)
def test_ltv_rejects_out_of_range_input(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        ltv(usd(100), **kwargs)  # type: ignore[arg-type]
    assert e.value.field == field


def test_ltv_rejects_floats_and_negative_arpa() -> None:
    with pytest.raises(TypeError):
        ltv(usd(100), 0.05)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ltv(usd(-1), "0.05")


@given(prices, rates, margins, st.integers(1, 240))
def test_ltv_bounds(arpa_: Money, churn: Decimal, margin: Decimal, cap: int) -> None:
    plain = ltv(arpa_, churn, gross_margin=margin)
    capped = ltv(arpa_, churn, gross_margin=margin, max_lifetime_months=cap)
    assert capped.value is not None
    assert capped.value <= arpa_ * cap
    if churn == 0:
        assert plain.value is None
        assert plain.unbounded
    else:
        assert plain.value is not None
        # Lifetime is at least one month (churn <= 1), and the cap never raises LTV.
        assert plain.value >= arpa_ * margin
        assert capped.value <= plain.value
        assert plain.value == arpa_ * margin / churn


# -- CAC, LTV:CAC, payback --------------------------------------------------------------------


def test_cac_reference_example() -> None:
    # $100,000 of sales and marketing spend / 50 new customers = $2,000.
    result = cac(usd(100_000), 50)
    assert result.value == usd(2000)
    assert cac(usd(100_000), 0).value is None


def test_ltv_to_cac_and_payback() -> None:
    assert ltv_to_cac(usd(6000), usd(2000)).value == 3  # 3:1, "healthy"
    assert ltv_to_cac(usd(6000), usd(0)).value is None
    # Payback months = CAC / (ARPA x margin) = 2,000 / (100 x 0.8) = 25.
    assert cac_payback_months(usd(2000), usd(100), gross_margin="0.8").value == 25
    assert cac_payback_months(usd(2000), usd(100)).value == 20
    assert cac_payback_months(usd(2000), usd(0)).value is None
    assert cac_payback_months(usd(2000), usd(100), gross_margin=0).value is None
    with pytest.raises(CurrencyMismatchError):
        ltv_to_cac(usd(1), eur(1))
    with pytest.raises(CurrencyMismatchError):
        cac_payback_months(usd(1), eur(0))


def test_marketing_spend_is_prorated_by_day_and_converted_at_its_start() -> None:
    fx = FxRates.from_rates([(date(2024, 1, 1), "EUR", "USD", "1.10")])
    records = [
        MarketingSpend.for_month(id="m1", year=2024, month=1, amount=usd(3100), channel="ads"),
        MarketingSpend.for_month(id="m2", year=2024, month=12, amount=eur(1000), channel="ads"),
        MarketingSpend(
            id="m3",
            period_start=date(2024, 1, 1),
            period_end=date(2024, 1, 11),
            amount=usd(100),
        ),
    ]
    assert records[1].period_end == date(2025, 1, 1)
    # First ten days of January: 10/31 of $3,100 and all of m3.
    spend = marketing_spend(records, start=t(2024, 1, 1), end=t(2024, 1, 11), currency="USD")
    assert spend == {"ads": usd(1000), None: usd(100)}
    december = marketing_spend(
        records, start=date(2024, 12, 1), end=date(2025, 1, 1), currency="USD", fx=fx
    )
    assert december["ads"] == usd(1100)
    assert december[None] == usd(0)


def test_marketing_spend_validation() -> None:
    with pytest.raises(ValidationError):
        MarketingSpend(
            id="x", period_start=date(2024, 2, 1), period_end=date(2024, 2, 1), amount=usd(1)
        )
    with pytest.raises(ValidationError):
        MarketingSpend(
            id="x", period_start=date(2024, 2, 1), period_end=date(2024, 3, 1), amount=usd(-1)
        )
    with pytest.raises(ValidationError):
        MarketingSpend(
            id="", period_start=date(2024, 2, 1), period_end=date(2024, 3, 1), amount=usd(1)
        )
    with pytest.raises(ValidationError):
        MarketingSpend(
            id="x",
            period_start=t(2024, 2, 1),  # a datetime is not a date here
            period_end=date(2024, 3, 1),
            amount=usd(1),
        )
    dup = MarketingSpend.for_month(id="a", year=2024, month=1, amount=usd(1))
    with pytest.raises(ValidationError):
        marketing_spend([dup, dup], start=date(2024, 1, 1), end=date(2024, 2, 1), currency="USD")


def _acquisition_book() -> Book:
    customers = [
        customer("g1", source="google"),
        customer("g2", source="google"),
        customer("p1", source="partner"),
        customer("n1"),
        customer("old", source="google"),
    ]
    subs = [
        monthly("s1", "g1", usd(10), at=t(2024, 3, 5)),
        monthly("s2", "g2", usd(10), at=t(2024, 3, 20)),
        monthly("s3", "p1", usd(10), at=t(2024, 3, 31, 23)),
        monthly("s4", "n1", usd(10), at=t(2024, 3, 2)),
        monthly("s5", "old", usd(10), at=t(2023, 3, 2)),  # acquired long before
        monthly("s6", "old", usd(10), at=t(2024, 3, 2)),  # a second subscription is not new
    ]
    return Book.of(customers=customers, subscriptions=subs)


def test_cac_by_channel() -> None:
    spend = [
        MarketingSpend.for_month(id="a", year=2024, month=3, amount=usd(1000), channel="google"),
        MarketingSpend.for_month(id="b", year=2024, month=3, amount=usd(300), channel="meetups"),
        MarketingSpend.for_month(id="c", year=2024, month=3, amount=usd(700)),
    ]
    report = cac_by_channel(
        _acquisition_book(), spend, start=date(2024, 3, 1), end=date(2024, 4, 1), currency="USD"
    )
    assert report.blended.spend == usd(2000)
    assert report.blended.new_customers == 4
    assert report.blended.value == usd(500)
    google = report.channel("google")
    assert google is not None
    assert (google.new_customers, google.value) == (2, usd(500))
    meetups = report.channel("meetups")
    assert meetups is not None
    assert (meetups.new_customers, meetups.value) == (0, None)
    partner = report.channel("partner")
    assert partner is not None
    assert (partner.spend, partner.value) == (usd(0), usd(0))
    unattributed = report.channel(None)
    assert unattributed is not None
    assert (unattributed.spend, unattributed.new_customers) == (usd(700), 1)
    assert [c.channel for c in report.channels] == ["google", "meetups", "partner", None]
    assert report.channel("tv") is None


@given(rs.books(single_currency=True, currencies=["USD"]), st.lists(prices, max_size=4))
def test_cac_channels_add_up_to_the_blend(book: Book, amounts: list[Money]) -> None:
    spend = [
        MarketingSpend.for_month(
            id=f"m{i}", year=2020 + i, month=1 + i, amount=a, channel=(None, "google", "ads")[i % 3]
        )
        for i, a in enumerate(amounts)
    ]
    report = cac_by_channel(book, spend, start=t(2018, 1, 1), end=t(2031, 1, 1), currency="USD")
    assert sum(c.new_customers for c in report.channels) == report.blended.new_customers
    total = usd(0)
    for c in report.channels:
        total += c.spend
    assert total == report.blended.spend
    assert report.blended.spend == sum(amounts, usd(0))


# -- NPS ----------------------------------------------------------------------------------------


def test_nps_definition() -> None:
    # 4 promoters (9-10), 3 passives (7-8), 3 detractors (0-6) of 10: 40 % - 30 % = 10.
    result = nps([10, 9, 9, 8, 7, 7, 6, 5, 0, 10])
    assert (result.promoters, result.passives, result.detractors) == (4, 3, 3)
    assert result.responses == 10
    assert result.score == 10
    assert nps([9, 10]).score == 100
    assert nps([0, 6]).score == -100
    assert nps([7, 8]).score == 0  # passives count in the denominator only
    assert nps([]).score is None
    assert nps([10, 10, 0]).score == ratio(100, 3)


@pytest.mark.parametrize("bad", [11, -1, True, 9.5, "9"])
def test_nps_rejects_non_scores(bad: object) -> None:
    with pytest.raises(ValidationError):
        nps([10, bad])  # type: ignore[list-item]


@given(st.lists(st.integers(0, 10)))
def test_nps_is_between_minus_and_plus_hundred(scores: list[int]) -> None:
    result = nps(scores)
    if not scores:
        assert result.score is None
    else:
        assert result.score is not None
        assert -100 <= result.score <= 100
        assert result.responses == len(scores)


# -- trial conversion ---------------------------------------------------------------------------


def _trial_book() -> Book:
    a = monthly("a", "a", usd(20), at=t(2024, 1, 3), trial_end=t(2024, 1, 17))
    a = a.set_status(t(2024, 1, 17), SubscriptionStatus.ACTIVE)  # converted in January
    b = monthly("b", "b", usd(20), at=t(2024, 1, 5), trial_end=t(2024, 1, 19))
    b = b.cancel(t(2024, 1, 10))  # abandoned in January
    c = monthly("c", "c", usd(20), at=t(2024, 1, 25), trial_end=t(2024, 2, 8))
    c = c.set_status(t(2024, 2, 8), SubscriptionStatus.ACTIVE)  # converted in February
    d = monthly("d", "d", usd(20), at=t(2024, 1, 28), trial_end=t(2024, 2, 11))  # still trialing
    e = monthly("e", "e", usd(20), at=t(2023, 12, 20), trial_end=t(2024, 1, 3))
    e = e.set_status(t(2024, 1, 3), SubscriptionStatus.ACTIVE)  # started in December
    f = monthly("f", "f", usd(0), at=t(2024, 1, 8), trial_end=t(2024, 1, 22))
    f = f.set_status(t(2024, 1, 22), SubscriptionStatus.ACTIVE)  # to a free price: not paying
    g = monthly("g", "g", usd(20), at=t(2024, 1, 9))  # no trial at all
    subs = [a, b, c, d, e, f, g]
    return Book.of(customers=[customer(s.customer_id) for s in subs], subscriptions=subs)


def test_trial_conversion_chartmogul_trials_started() -> None:
    book = _trial_book()
    jan, feb = date(2024, 1, 1), date(2024, 2, 1)
    # Started in January: a, b, c, d, f. Converted by the end of January: a.
    result = trial_conversion(book, start=jan, end=feb)
    assert (result.trials, result.converted) == (5, 1)
    assert result.rate == Decimal("0.2")
    assert result.basis is TrialBasis.STARTED
    # Letting them finish: converted by March, a and c.
    later = trial_conversion(book, start=jan, end=feb, as_of=date(2024, 3, 1))
    assert (later.trials, later.converted, later.rate) == (5, 2, Decimal("0.4"))


def test_trial_conversion_stripe_trials_ended() -> None:
    book = _trial_book()
    # Ended in January: a (converted), b (cancelled), e (converted), f (free). 2 of 4.
    result = trial_conversion(book, start=date(2024, 1, 1), end=date(2024, 2, 1), basis="ended")
    assert (result.trials, result.converted, result.rate) == (4, 2, Decimal("0.5"))
    february = trial_conversion(
        book, start=date(2024, 2, 1), end=date(2024, 3, 1), basis=TrialBasis.ENDED
    )
    assert (february.trials, february.converted) == (1, 1)


def test_trial_conversion_without_trials_is_none() -> None:
    result = trial_conversion(_trial_book(), start=date(2022, 1, 1), end=date(2022, 2, 1))
    assert (result.trials, result.converted, result.rate) == (0, 0, None)
    with pytest.raises(ValidationError):
        trial_conversion(_trial_book(), start=date(2022, 2, 1), end=date(2022, 1, 1))
    with pytest.raises(ValidationError, match="basis"):
        trial_conversion(_trial_book(), start=date(2022, 1, 1), end=date(2022, 2, 1), basis="x")


@given(
    rs.books(single_currency=True, currencies=["USD"]),
    rs.moments(),
    st.integers(1, 800),
    st.sampled_from(TrialBasis),
)
def test_trial_conversion_is_a_rate(
    book: Book, start: datetime, days: int, basis: TrialBasis
) -> None:
    end = start + timedelta(days=days)
    result = trial_conversion(book, start=start, end=end, basis=basis)
    assert 0 <= result.converted <= result.trials
    if result.trials == 0:
        assert result.rate is None
    else:
        assert result.rate is not None
        assert 0 <= result.rate <= 1
