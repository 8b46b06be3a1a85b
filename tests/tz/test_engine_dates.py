"""An analysis reads a plain date as the start of that day in the policy's time zone."""

from __future__ import annotations

from datetime import date

from revcrm import Book
from revcrm.metrics import MetricsPolicy, analyse

from .._builders import customer, service, t, usd

# Starts at 23:30 UTC on 29 February: 00:30 on 1 March in Berlin.
BOOK = Book(
    customers=(customer("c1"),),
    subscriptions=(service("s1", "c1", usd(50), at=t(2024, 2, 29, 23, 30)),),
)


def test_a_plain_date_is_midnight_of_the_reporting_zone() -> None:
    utc = analyse(BOOK, currency="USD")
    berlin = analyse(BOOK, currency="USD", policy=MetricsPolicy(timezone="Europe/Berlin"))
    # 1 March 00:00 UTC is after the start; 1 March 00:00 Berlin (23:00 UTC) is before it.
    assert utc.mrr(date(2024, 3, 1)) == usd(50)
    assert berlin.mrr(date(2024, 3, 1)) == usd(0)
    assert berlin.mrr(date(2024, 3, 2)) == usd(50)
    # The same bound read both ways agrees when given as an aware moment.
    assert berlin.mrr(t(2024, 3, 1)) == utc.mrr(t(2024, 3, 1))
    # A waterfall over Berlin's March counts the start as new in March, not February.
    march = berlin.waterfall(date(2024, 3, 1), date(2024, 4, 1))
    assert march.new == usd(50)
    assert berlin.waterfall(date(2024, 2, 1), date(2024, 3, 1)).new == usd(0)
