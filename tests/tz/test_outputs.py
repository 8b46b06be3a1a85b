"""The facade's time-zone setting, the report and the dashboard page under a reporting
zone: months labelled in the zone, texts naming it (never "UTC" for a Berlin business)."""

from __future__ import annotations

import warnings

from starlette.requests import Request

from revcrm import CRM, Book
from revcrm.export import build_report, render_html, render_text
from revcrm.metrics import MetricsPolicy, dashboard
from revcrm.storage import InMemoryCRMStore, InMemoryStore
from revcrm.web import Staff, create_app

from .._builders import customer, payment, service, t, usd

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = t(2024, 3, 15, 12)
BERLIN = MetricsPolicy(timezone="Europe/Berlin")


def _book() -> Book:
    # 00:30 CET on Mar 1: March's revenue in Berlin, February's in UTC.
    return Book.of(
        customers=[customer("c1")],
        subscriptions=[service("s1", "c1", usd(100), at=t(2024, 1, 10))],
        transactions=[payment("p1", "c1", usd(77), t(2024, 2, 29, 23, 30))],
    )


def _crm(policy: MetricsPolicy, **options: object) -> CRM:
    store = InMemoryStore(policy=policy)
    store.import_book(_book())
    return CRM(store, InMemoryCRMStore(), reporting_currency="USD", clock=lambda: NOW, **options)  # type: ignore[arg-type]


def test_the_facade_follows_its_zone() -> None:
    berlin = _crm(BERLIN).metrics.dashboard(trend_months=3)
    assert berlin.timezone == "Europe/Berlin"
    assert (berlin.revenue_this_month.gross, berlin.revenue_last_month.gross) == (usd(77), usd(0))
    # A zone on the facade over a UTC store: the same dashboard, from the stored book.
    assert _crm(MetricsPolicy(), timezone="Europe/Berlin").metrics.dashboard(trend_months=3) == (
        berlin
    )
    utc = _crm(MetricsPolicy()).metrics.dashboard(trend_months=3)
    assert (utc.revenue_this_month.gross, utc.revenue_last_month.gross) == (usd(0), usd(77))
    assert utc == dashboard(_book(), as_of=NOW, currency="USD", trend_months=3)


def test_the_report_labels_months_in_the_zone() -> None:
    report = build_report(_crm(BERLIN), as_of=NOW, locale="en_US")
    assert report.dashboard == _crm(BERLIN).metrics.dashboard(as_of=NOW, trend_months=12)
    text = render_text(report)
    assert "Dashboard as of 2024-03-15 13:00 Europe/Berlin (USD)" in text
    assert " UTC" not in text
    assert "Mar 2024" in text
    assert "Feb 2024" in text
    html = render_html(report)
    assert "Europe/Berlin" in html
    assert " UTC" not in html


def test_the_dashboard_page_labels_months_in_the_zone() -> None:
    crm = _crm(BERLIN)

    def authenticate(_request: Request) -> Staff:
        return Staff(id="s", name="Sam", role="staff")

    client = TestClient(create_app(crm, authenticate=authenticate, cache_seconds=60))
    page = client.get("/").text
    rows = page.split("<tbody>")[1]
    # The last trend row is March (Berlin's month of NOW) with the 00:30 payment in it.
    assert rows.rstrip().split("<tr>")[-1].startswith("<td>Mar 2024</td>")
    assert "$77.00" in rows.split("<tr>")[-1]
    assert "Churn" in page or "churn" in page
    assert "being computed" not in page  # churn and renewals come with the one dashboard
