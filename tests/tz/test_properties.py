"""Property: under any reporting zone, the SQL store's months (cash by month, MRR at the
closes) and its whole dashboard equal the pure functions', for any small book."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm.errors import MissingRateError
from revcrm.metrics import MetricsPolicy, analyse, cash_revenue, dashboard
from revcrm.storage import SQLStore
from revcrm.testing import strategies

_T = TypeVar("_T")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Adelaide")
POLICIES = (MetricsPolicy(), MetricsPolicy.baremetrics(), MetricsPolicy.stripe())


def _outcome(fn: Callable[[], _T]) -> _T | type[Exception]:
    try:
        return fn()
    except MissingRateError:
        return MissingRateError


@settings(
    deadline=None,
    max_examples=min(12, settings().max_examples),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    book=strategies.books(),
    zone=st.sampled_from(ZONES),
    base=st.sampled_from(POLICIES),
    months=st.integers(1, 5),
    data=st.data(),
)
def test_sql_months_and_dashboard_equal_the_pure_ones(
    book: Book, zone: str, base: MetricsPolicy, months: int, data: st.DataObject
) -> None:
    as_of = data.draw(strategies.moments_near(book), label="as_of")
    policy = attrs.evolve(base, timezone=zone)
    currency = sorted({s.currency for s in book.subscriptions} or {"USD"})[0]
    store = SQLStore("sqlite://", policy=policy)
    store.create_schema()
    try:
        store.import_book(book)
        got = _outcome(lambda: store.dashboard(as_of=as_of, currency=currency, trend_months=months))
        want = _outcome(
            lambda: dashboard(
                book, as_of=as_of, currency=currency, policy=policy, trend_months=months
            )
        )
        assert got == want
        if isinstance(want, type):
            return
        start, end = want.trend[0].start, want.trend[-1].end
        cash = store.cash_by_month(start=start, end=end, currency=currency)
        for m in cash:
            pure = cash_revenue(book.transactions, m.start, m.end, currency=currency, book=book)
            assert (m.gross, m.refunds, m.payments) == (pure.gross, pure.refunds, pure.payments)
        assert [(m.start, m.end) for m in cash] == [(m.start, m.end) for m in want.trend]
        closes = store.mrr_series(start=start, end=end, currency=currency)
        a = analyse(book, currency=currency, policy=policy, horizon=end)
        assert list(closes) == a.series(start, end)
    finally:
        store.close()
