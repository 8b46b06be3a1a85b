"""The "subscriber since" without an analysis is the engine's ``first_paid``: the former
per-record definition (each subscription's MRR steps) as the oracle on generated books,
and the analysis' answer where the book's rates allow one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book, FxRates, Subscription
from revcrm.metrics._customer_value import customer_value
from revcrm.metrics._economics import first_paid_at, first_paid_by_customer
from revcrm.metrics._engine import analyse
from revcrm.metrics._mrr import subscription_mrr_timeline
from revcrm.metrics._policy import ChurnRecognition, DiscountPolicy, MetricsPolicy
from revcrm.testing import strategies as rs

_LATER = datetime(2100, 1, 1, tzinfo=UTC)

_policies = st.builds(
    MetricsPolicy,
    discounts=st.sampled_from(DiscountPolicy),
    past_due_churn_after_days=st.one_of(st.none(), st.integers(0, 40)),
    count_suspended=st.booleans(),
    churn_recognition=st.sampled_from(ChurnRecognition),
    count_trials=st.booleans(),
)


def _old_first_paid_at(subs: Iterable[Subscription], policy: MetricsPolicy) -> datetime | None:
    # The former body of ``first_paid_at``: the earliest first step of the subscriptions'
    # own MRR timelines.
    firsts = [
        steps[0][0] for sub in subs if (steps := subscription_mrr_timeline(sub, policy=policy))
    ]
    return min(firsts) if firsts else None


def _old_by_customer(book: Book, policy: MetricsPolicy) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for cid, subs in book.subscriptions_by_customer.items():
        first = _old_first_paid_at(subs, policy)
        if first is not None:
            out[cid] = first
    return out


@settings(max_examples=25, deadline=None)
@given(book=rs.books(max_customers=4, max_subscriptions=3, max_invoices=0), policy=_policies)
def test_first_paid_is_the_former_per_record_rule_and_the_analysis(
    book: Book, policy: MetricsPolicy
) -> None:
    expected = _old_by_customer(book, policy)
    assert first_paid_by_customer(book, policy) == expected
    for cid, subs in book.subscriptions_by_customer.items():
        assert first_paid_at(subs, policy) == expected.get(cid)
    # The analysis (in any of the book's currencies, with the generated rates) agrees.
    codes = sorted({s.currency for s in book.subscriptions})
    if codes:
        assert analyse(book, currency=codes[0], policy=policy).first_paid() == expected


@settings(max_examples=10, deadline=None)
@given(book=rs.books(max_customers=3, max_subscriptions=3, max_invoices=0))
def test_subscriber_since_needs_no_rates(book: Book) -> None:
    # Without any rate, a customer in several currencies still gets its first paid moment.
    bare = Book(
        customers=book.customers,
        products=book.products,
        plans=book.plans,
        subscriptions=book.subscriptions,
        fx=FxRates(),
    )
    policy = MetricsPolicy()
    expected = _old_by_customer(bare, policy)
    assert first_paid_by_customer(bare, policy) == expected
    for c in bare.customers:
        value = customer_value(bare, c.id, as_of=_LATER, currency="USD", policy=policy)
        assert value.subscriber_since == expected.get(c.id)
