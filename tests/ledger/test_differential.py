"""The columnar engine against the Decimal oracle (the engine before issue 13) on generated
books: both sources, several currencies and FX rules, every vendor preset; credit lines and
proration pairs (negative recurring lines over part of a cycle), lines of unknown cycle,
and both spreading rules of the invoice source."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm.metrics import FxDateRule, MetricsPolicy, MrrSource, Spreading
from revcrm.testing.strategies import books
from tests.ledger._compare import compare

POLICIES = st.sampled_from(
    [
        MetricsPolicy(),
        MetricsPolicy.stripe(),
        MetricsPolicy.baremetrics(),
        MetricsPolicy(grouping_window=None, reactivation_window_days=30),
        MetricsPolicy(fx_date=FxDateRule.TRANSACTION_DATE, free_plans_churn=True),
    ]
)
SPREADING = st.sampled_from(tuple(Spreading))
BOOKS = books(latest=datetime(2024, 12, 31, tzinfo=UTC), max_customers=4)


def _reporting(book: Book, pick: int) -> str:
    used = sorted({s.currency for s in book.subscriptions} | {i.currency for i in book.invoices})
    used = used or ["USD"]
    return used[pick % len(used)]


@settings(max_examples=40)
@given(book=BOOKS, policy=POLICIES, pick=st.integers(0, 3))
def test_subscription_source_matches_the_oracle(
    book: Book, policy: MetricsPolicy, pick: int
) -> None:
    compare(book, _reporting(book, pick), policy, MrrSource.SUBSCRIPTIONS)


@settings(max_examples=60)
@given(book=BOOKS, policy=POLICIES, spreading=SPREADING, pick=st.integers(0, 3))
def test_invoice_source_matches_the_oracle(
    book: Book, policy: MetricsPolicy, spreading: Spreading, pick: int
) -> None:
    policy = attrs.evolve(policy, spreading=spreading)
    compare(book, _reporting(book, pick), policy, MrrSource.INVOICES)
