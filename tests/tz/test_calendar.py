"""The reporting calendar itself, the zone setting's errors, and the pure metrics reading
plain dates and 30-day windows in the zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest

from revcrm import CRM, Book
from revcrm._calendar import Frequency, month_start, period_bounds, reporting_zone, shift
from revcrm.errors import PolicyError, ValidationError
from revcrm.metrics import (
    MarketingSpend,
    MetricsPolicy,
    analyse,
    cash_revenue_by_payment_method,
    customer_churn_rate,
    dashboard,
    marketing_spend,
)
from revcrm.storage import InMemoryCRMStore, InMemoryStore

from .._builders import customer, payment, service, t, usd

BERLIN = ZoneInfo("Europe/Berlin")


def test_month_bounds_across_dst() -> None:
    bounds = period_bounds(Frequency.MONTH, t(2024, 3, 1), t(2024, 11, 1), BERLIN)
    # Midnight CET is 23:00 UTC, midnight CEST 22:00 UTC.
    assert bounds[0][0] == t(2024, 2, 29, 23)
    assert bounds[0][1] == t(2024, 3, 31, 22)  # April starts in summer time
    assert bounds[-2][1] == t(2024, 10, 31, 23)  # November in winter time again
    assert bounds[-1][0] == bounds[-2][1]  # 01:00 on Nov 1 (the end) is in November
    assert month_start(t(2024, 3, 31, 21, 59), BERLIN) == t(2024, 2, 29, 23)
    assert month_start(t(2024, 3, 31, 22), BERLIN) == t(2024, 3, 31, 22)
    kolkata = ZoneInfo("Asia/Kolkata")
    assert month_start(t(2024, 1, 31, 18, 30), kolkata) == t(2024, 1, 31, 18, 30)
    assert month_start(t(2024, 1, 31, 18, 29), kolkata) == t(2023, 12, 31, 18, 30)
    # Thirty days on the zone's clock across the change back to winter time: 30 x 24 h + 1 h.
    assert shift(t(2024, 10, 15, 10), timedelta(days=30), BERLIN) == t(2024, 11, 14, 11)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", " Europe/Berlin", "../etc/passwd", 3])
def test_a_bad_zone_is_one_clear_error(name: object) -> None:
    with pytest.raises(PolicyError, match="timezone="):
        MetricsPolicy(timezone=name)
    with pytest.raises(ValidationError) as caught:
        reporting_zone(name)
    assert caught.value.field == "timezone"
    with pytest.raises(ValidationError) as on_facade:
        CRM(
            InMemoryStore(),
            InMemoryCRMStore(),
            reporting_currency="USD",
            clock=lambda: t(2024, 1, 1),
            timezone=name,  # type: ignore[arg-type]
        )
    assert on_facade.value.field == "timezone"


def _book() -> Book:
    # c1 pays and cancels at 00:30 CET on Mar 1 (23:30 UTC on Feb 29): March's churn
    # in Berlin, February's in UTC.
    s1 = service("s1", "c1", usd(100), at=t(2024, 1, 10)).cancel(
        t(2024, 2, 29, 23, 30), ends_at=t(2024, 2, 29, 23, 30)
    )
    s2 = service("s2", "c2", usd(50), at=t(2024, 1, 10))
    return Book.of(
        customers=[customer("c1"), customer("c2")],
        subscriptions=[s1, s2],
        transactions=[payment("p1", "c1", usd(100), t(2024, 2, 29, 23, 30))],
    )


def test_plain_dates_and_windows_are_days_of_the_zone() -> None:
    book = _book()
    berlin = analyse(book, currency="USD", policy=MetricsPolicy(timezone="Europe/Berlin"))
    utc = analyse(book, currency="USD")
    march = (date(2024, 3, 1), date(2024, 4, 1))
    assert customer_churn_rate(berlin, *march).churned == 1
    assert customer_churn_rate(utc, *march).churned == 0
    assert customer_churn_rate(utc, date(2024, 2, 1), date(2024, 3, 1)).churned == 1
    d = dashboard(book, as_of=date(2024, 3, 1), analysis=berlin)
    assert d.as_of == t(2024, 2, 29, 23)  # the date's Berlin midnight
    # 23:30 UTC on Feb 29 is 00:30 on Mar 1 in Berlin: March's cash (the whole month).
    assert (d.revenue_this_month.gross, d.revenue_last_month.gross) == (usd(100), usd(0))
    in_utc = dashboard(book, as_of=date(2024, 3, 1), analysis=utc)
    assert (in_utc.revenue_this_month.gross, in_utc.revenue_last_month.gross) == (usd(0), usd(100))
    # Baremetrics' 30-day denominator: 30 days of the zone's calendar.
    bare = MetricsPolicy.baremetrics()
    bare_berlin = analyse(
        book, currency="USD", policy=attrs.evolve(bare, timezone=ZoneInfo("Europe/Berlin"))
    )
    rate = customer_churn_rate(bare_berlin, date(2024, 3, 1), date(2024, 4, 1))
    # Midnight on Mar 2 (CET), not 30 x 24 h before 00:00 CEST on Apr 1 (23:00 on Mar 1).
    assert rate.start == datetime(2024, 3, 2, tzinfo=BERLIN).astimezone(UTC)
    assert (rate.customers_at_start, rate.churned) == (1, 0)  # c1 left on Mar 1, before it


def test_breakdowns_read_plain_dates_in_the_zone() -> None:
    book = _book()
    start, end = date(2024, 3, 1), date(2024, 4, 1)
    berlin = cash_revenue_by_payment_method(
        book, start=start, end=end, currency="USD", timezone="Europe/Berlin"
    )
    assert berlin.amounts() == {"stripe": usd(100)}  # 00:30 CET on Mar 1
    utc = cash_revenue_by_payment_method(book, start=start, end=end, currency="USD")
    assert utc.amounts() == {}
    spend = [MarketingSpend.for_month(id="m", year=2024, month=3, amount=usd(310))]
    # March's spend is March's, whole, on Berlin's calendar too.
    assert marketing_spend(
        spend, start=start, end=end, currency="USD", timezone="Europe/Berlin"
    ) == {None: usd(310)}
    with pytest.raises(ValidationError):
        cash_revenue_by_payment_method(
            book, start=start, end=end, currency="USD", timezone="Berlin"
        )
