"""One Dashboard (issue 13.4): every card from one definition, the whole value identical
from the pure function and from every store, on a multi-currency book with FX, under
several policies and reporting time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest

from revcrm._demo import demo_book
from revcrm.metrics import Dashboard, MetricsPolicy, dashboard

from ..tz.conftest import StoreOf, store_of  # noqa: F401  (the fixture, for every backend)

AS_OF = datetime(2025, 3, 31, 22, 30, tzinfo=UTC)  # 00:30 on Apr 1 in Berlin
POLICIES = {
    "chartmogul-utc": MetricsPolicy(),
    "chartmogul-berlin": MetricsPolicy(timezone="Europe/Berlin"),
    "stripe-new-york": attrs.evolve(MetricsPolicy.stripe(), timezone="America/New_York"),
    "baremetrics-adelaide": attrs.evolve(
        MetricsPolicy.baremetrics(), timezone="Australia/Adelaide"
    ),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_store_gives_the_pure_dashboard(store_of: StoreOf, name: str) -> None:  # noqa: F811
    policy = POLICIES[name]
    book = demo_book(40, as_of=AS_OF, months=14)
    assert len({s.currency for s in book.subscriptions}) > 1  # FX on every figure
    store = store_of(book, policy)
    for at in (AS_OF, AS_OF - timedelta(days=45, hours=7)):
        got = store.dashboard(as_of=at, currency="USD", trend_months=6)
        want = dashboard(book, as_of=at, currency="USD", policy=policy, trend_months=6)
        assert isinstance(got, Dashboard)
        assert got == want
    assert want.mrr.amount > 0
    assert want.renewals_count > 0
    assert want.churn.denominator > 0
    assert want.timezone == policy.timezone.key


def test_the_cards() -> None:
    """Each card by its definition, on the demo book."""
    book = demo_book(40, as_of=AS_OF, months=14)
    policy = POLICIES["chartmogul-berlin"]
    d = dashboard(book, as_of=AS_OF, currency="USD", policy=policy, trend_months=12)
    assert d.arr == d.mrr * 12
    assert len(d.trend) == 12
    assert d.trend[-1].mrr == d.mrr
    assert d.trend[-1].cash == d.revenue_this_month
    assert d.trend[-2].cash == d.revenue_last_month
    assert d.revenue_this_month.start == datetime(2025, 3, 31, 22, tzinfo=UTC)  # Apr 1, CEST
    assert d.churn.start == d.revenue_this_month.start
    assert d.paying_customers <= d.customers or policy.free_plans_churn
    for earlier, later in zip(d.trend, d.trend[1:], strict=False):
        assert earlier.end == later.start
