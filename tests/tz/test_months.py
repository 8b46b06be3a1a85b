"""The reporting time zone on every store: a payment's month, an MRR change's month and
the dashboard's months follow the business's calendar (issue 15.5).

Each case is a moment near a month end, written by hand with the month it belongs to in
the zone: across DST changes (Europe/Berlin's last Sundays of March and October,
America/New_York's) and in zones off the whole hour (Asia/Kolkata, Australia/Adelaide).
UTC, the default, keeps today's months.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from revcrm import Book, FxRates, Money
from revcrm.metrics import MetricsPolicy, analyse, dashboard, format_dashboard

from .._builders import customer, eur, payment, service, t, usd
from .conftest import StoreOf

#: zone -> (UTC moment of a payment, the month it is revenue of in that zone).
PAYMENTS: dict[str, list[tuple[datetime, str]]] = {
    "Europe/Berlin": [
        (t(2024, 1, 31, 22, 30), "2024-01"),  # 23:30 CET on Jan 31
        (t(2024, 2, 29, 23, 30), "2024-03"),  # 00:30 CET on Mar 1
        (t(2024, 3, 31, 21, 30), "2024-03"),  # 23:30 CEST, the day summer time began
        (t(2024, 3, 31, 22, 30), "2024-04"),  # 00:30 CEST on Apr 1
        (t(2024, 10, 31, 22, 30), "2024-10"),  # 23:30 CET, after summer time ended
        (t(2024, 10, 31, 23, 30), "2024-11"),
    ],
    "America/New_York": [
        (t(2024, 2, 1, 3, 0), "2024-01"),  # 22:00 EST on Jan 31
        (t(2024, 2, 1, 5, 30), "2024-02"),
        (t(2024, 4, 1, 3, 30), "2024-03"),  # 23:30 EDT on Mar 31
        (t(2024, 4, 1, 4, 30), "2024-04"),
        (t(2024, 11, 1, 3, 30), "2024-10"),  # 23:30 EDT on Oct 31
    ],
    "Asia/Kolkata": [
        (t(2024, 1, 31, 18, 15), "2024-01"),  # 23:45 IST
        (t(2024, 1, 31, 18, 45), "2024-02"),  # 00:15 IST on Feb 1
    ],
    "Australia/Adelaide": [
        (t(2024, 3, 31, 13, 15), "2024-03"),  # 23:45 ACDT (UTC+10:30)
        (t(2024, 3, 31, 13, 45), "2024-04"),  # 00:15 ACDT on Apr 1
        (t(2024, 4, 30, 14, 15), "2024-04"),  # 23:45 ACST (UTC+9:30, after Apr 7)
        (t(2024, 4, 30, 14, 45), "2024-05"),
    ],
}
#: zone -> (UTC moment of a price change 100 -> 150, first month closing at 150 there,
#: and in UTC).
CHANGES: dict[str, tuple[datetime, str, str]] = {
    "Europe/Berlin": (t(2024, 3, 31, 22, 30), "2024-04", "2024-03"),
    "America/New_York": (t(2024, 4, 1, 3, 30), "2024-03", "2024-04"),
    "Asia/Kolkata": (t(2024, 1, 31, 18, 45), "2024-02", "2024-01"),
    "Australia/Adelaide": (t(2024, 3, 31, 13, 45), "2024-04", "2024-03"),
}
ZONES = list(PAYMENTS)
AS_OF = t(2024, 4, 15, 12)


def _book(zone: str) -> Book:
    change = CHANGES[zone][0]
    s1 = service("s1", "c1", usd(100), at=t(2023, 12, 1)).change_plan(change, price=usd(150))
    s2 = service("s2", "c2", eur(50), at=t(2024, 1, 15, 23, 30))  # converted per period
    txs = [payment(f"p{i}", "c1", usd(2**i), at) for i, (at, _) in enumerate(PAYMENTS[zone])]
    txs.append(payment("e1", "c2", eur(10), t(2024, 3, 31, 21)))
    fx = FxRates.from_rates(
        [(date(2023, 1, 1), "EUR", "USD", "1.10"), (date(2024, 2, 15), "EUR", "USD", "1.20")]
    )
    return Book.of(
        customers=[customer("c1"), customer("c2")],
        subscriptions=[s1, s2],
        transactions=txs,
        fx=fx,
    )


def _label(moment: datetime, zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m}"


def _expected_cash(zone: str, labels: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = dict.fromkeys(labels, Decimal(0))
    for i, (_, month) in enumerate(PAYMENTS[zone]):
        out[month] += 2**i
    return out


def _year(zone: str) -> tuple[datetime, datetime]:
    z = ZoneInfo(zone)
    return datetime(2024, 1, 1, tzinfo=z), datetime(2024, 12, 1, tzinfo=z)


@pytest.mark.parametrize("zone", ZONES)
def test_months_follow_the_reporting_zone(store_of: StoreOf, zone: str) -> None:
    book = _book(zone)
    policy = MetricsPolicy(timezone=zone)
    store = store_of(book, policy)
    start, end = _year(zone)
    months = store.cash_by_month(start=start, end=end, currency="USD")
    labels = [_label(m.start, zone) for m in months]
    assert labels == [f"2024-{k:02}" for k in range(1, 12)]
    for m in months:  # each month starts at midnight on the 1st, on the zone's clock
        local = m.start.astimezone(ZoneInfo(zone))
        assert (local.day, local.hour, local.minute) == (1, 0, 0)
    usd_only = {
        lb: m.gross.amount - (Decimal(12) if lb == _label(t(2024, 3, 31, 21), zone) else 0)
        for lb, m in zip(labels, months, strict=True)
    }
    assert usd_only == _expected_cash(zone, labels)

    first_new = CHANGES[zone][1]
    closes = store.mrr_series(start=start, end=end, currency="USD")
    assert [_label(p.start, zone) for p in closes] == labels
    assert list(closes) == analyse(book, currency="USD", policy=policy).series(start, end)
    c1 = Book.of(customers=[customer("c1")], subscriptions=[book.subscriptions[0]])
    c1_closes = store_of(c1, policy).mrr_series(start=start, end=end, currency="USD")
    assert {_label(p.start, zone): p.mrr for p in c1_closes} == {
        lb: usd(150 if lb >= first_new else 100) for lb in labels
    }

    d = store.dashboard(as_of=AS_OF, currency="USD", trend_months=4)
    assert d == dashboard(book, as_of=AS_OF, currency="USD", policy=policy, trend_months=4)
    assert d.timezone == zone
    assert [_label(m.start, zone) for m in d.trend] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    cash = _expected_cash(zone, labels)
    eur_march = Decimal(12) if _label(t(2024, 3, 31, 21), zone) == "2024-03" else Decimal(0)
    assert d.revenue_last_month.gross.amount == cash["2024-03"] + eur_march
    assert d.revenue_this_month.gross.amount == cash["2024-04"] + (12 - eur_march)
    text = format_dashboard(d, locale="en_US")
    assert zone in text
    assert "UTC" not in text


def test_utc_is_the_default_and_keeps_utc_months(store_of: StoreOf) -> None:
    zone = "Europe/Berlin"
    book = _book(zone)
    store = store_of(book, MetricsPolicy())
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC)
    months = store.cash_by_month(start=start, end=end, currency="USD")
    assert [m.start for m in months] == [datetime(2024, k, 1, tzinfo=UTC) for k in range(1, 12)]
    by_month: dict[int, Decimal] = {}
    for i, (at, _) in enumerate(PAYMENTS[zone]):
        by_month[at.month] = by_month.get(at.month, Decimal(0)) + 2**i
    by_month[3] += 12  # the EUR payment at 21:00 UTC on Mar 31
    assert {m.start.month: m.gross.amount for m in months if m.gross.amount} == by_month
    # Berlin's 00:30 CET payment on Mar 1 is February's in UTC.
    assert months[1].gross == usd(2)
    d = store.dashboard(as_of=AS_OF, currency="USD", trend_months=3)
    assert d.timezone == "UTC"
    assert d == dashboard(book, as_of=AS_OF, currency="USD", trend_months=3)
    assert d.trend[-2].mrr == usd(150) + Money("60.00", "USD")  # March's close: 150, EUR 50
