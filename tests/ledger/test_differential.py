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
from revcrm.metrics import FxDateRule, MetricsPolicy, MrrSource, Spreading, analyse
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


@settings(max_examples=min(40, settings().max_examples))
@given(book=BOOKS, policy=POLICIES, pick=st.integers(0, 3))
def test_subscription_source_matches_the_oracle(
    book: Book, policy: MetricsPolicy, pick: int
) -> None:
    compare(book, _reporting(book, pick), policy, MrrSource.SUBSCRIPTIONS)


@settings(max_examples=min(40, settings().max_examples))
@given(book=BOOKS, policy=POLICIES, spreading=SPREADING, pick=st.integers(0, 3))
def test_invoice_source_matches_the_oracle(
    book: Book, policy: MetricsPolicy, spreading: Spreading, pick: int
) -> None:
    policy = attrs.evolve(policy, spreading=spreading)
    compare(book, _reporting(book, pick), policy, MrrSource.INVOICES)


def test_mrr_of_every_customer_in_another_stream_order() -> None:
    # Streams sort by key, customers by id: here a's stream ("sub_z") comes after b's
    # ("in_b#0"), so the customers' streams in customer order are every stream, permuted
    # (the engine once read each stream's step count in stream order for them).
    from datetime import timedelta

    from revcrm import BillingCycle, Customer, Invoice, InvoiceLine, Money, Subscription

    at = datetime(2024, 1, 1, tzinfo=UTC)
    sub = Subscription.start(
        id="sub_z", customer_id="a", at=at, price=Money("10", "USD"), cycle=BillingCycle.MONTHLY
    )

    def inv(iid: str, cid: str, amount: str, sid: str | None, days: int) -> Invoice:
        line = InvoiceLine(
            kind="recurring",
            amount=Money(amount, "USD"),
            period_start=at + timedelta(days=days),
            period_end=at + timedelta(days=31),
            subscription_id=sid,
        )
        return Invoice(
            id=iid, customer_id=cid, currency="USD", issued_at=at, due_date=at.date(),
            status="paid", lines=[line], paid_at=at,
        )  # fmt: skip

    book = Book.of(
        customers=[Customer(id=c, registered_at=at) for c in "ab"],
        subscriptions=[sub],
        invoices=[inv("in_a", "a", "10", "sub_z", 0), inv("in_b", "b", "3", None, 14)],
    )
    a = analyse(book, currency="USD", source=MrrSource.INVOICES)
    assert a.mrr(at + timedelta(days=5), customer_ids=["a", "b"]) == Money("10", "USD")
    for policy in (MetricsPolicy(), MetricsPolicy(spreading=Spreading.DAYS)):
        compare(book, "USD", policy, MrrSource.INVOICES)
