"""MrrAnalysis.renewals (the dashboard's renewals card from arrays) against the
per-subscription definition: ``SubscriptionState.next_renewal`` and the subscription's MRR
at the moment (``subscription_mrr``, converted under the policy's FX rule)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from revcrm import BillingCycle, Book, Customer, FxRates, Money, Subscription
from revcrm._subscription import SubscriptionStatus
from revcrm.errors import ValidationError
from revcrm.metrics import FxDateRule, MetricsPolicy, MrrSource, analyse
from revcrm.metrics._mrr import convert_mrr, subscription_mrr
from revcrm.testing.strategies import books

BOOKS = books(latest=datetime(2024, 12, 31, tzinfo=UTC), max_customers=4)
POLICIES = st.sampled_from(
    [
        MetricsPolicy(),
        MetricsPolicy.stripe(),
        MetricsPolicy.baremetrics(),
        MetricsPolicy(fx_date=FxDateRule.TRANSACTION_DATE),
    ]
)
MOMENTS = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)


def _due(sub: Subscription, at: datetime, horizon: datetime) -> bool:
    s = sub.state_at(at)
    if s is None or s.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
        return False
    nxt = s.next_renewal(at)
    return nxt is not None and nxt <= horizon


@settings(max_examples=min(40, settings().max_examples), deadline=None)
@given(
    book=BOOKS,
    policy=POLICIES,
    pick=st.integers(0, 2),
    at=MOMENTS,
    days=st.sampled_from([0, 1, 30, 400]),
    on_a_renewal=st.booleans(),
)
def test_renewals_are_the_services_due_and_their_mrr(
    book: Book, policy: MetricsPolicy, pick: int, at: datetime, days: int, on_a_renewal: bool
) -> None:
    used = sorted({s.currency for s in book.subscriptions}) or ["USD"]
    currency = used[pick % len(used)]
    a = analyse(book, currency=currency, policy=policy)
    horizon = at + timedelta(days=days)
    if on_a_renewal:  # the horizon exactly on a billing date: it counts
        nexts = [n for n in (_next(s, at) for s in book.subscriptions) if n is not None]
        horizon = min(nexts, default=horizon)
    due = [s for s in book.subscriptions if _due(s, at, horizon)]
    count, mrr = a.renewals(at, horizon)
    assert count == len(due)
    # The MRR: the per-subscription conversion (``convert_mrr``) and the ledger's agree
    # except before a billing anchor and past the analysis horizon (see the example below).
    fixed_foreign = [
        s
        for s in due
        if s.currency != currency and policy.fx_date is FxDateRule.SERVICE_PERIOD_START
    ]
    assume(at < a.horizon or not fixed_foreign)
    assume(all(_anchor_at(s, at) <= at for s in fixed_foreign))
    want = Money.zero(currency)
    for s in due:
        want += convert_mrr(
            subscription_mrr(s, at, policy=policy), s, at, currency, book.fx, policy
        )
    assert mrr == want


def _next(sub: Subscription, at: datetime) -> datetime | None:
    s = sub.state_at(at)
    return None if s is None else s.next_renewal(at)


def _anchor_at(sub: Subscription, at: datetime) -> datetime:
    s = sub.state_at(at)
    assert s is not None
    return s.billing_anchor


def test_a_service_active_before_its_anchor_counts_the_mrr_card_s_value() -> None:
    """A trial converted before its end: billed from the anchor (the trial end), paying
    before it. The ledger converts that MRR at the change's date (1.2 on Jan 6), as the
    MRR card shows it; the per-subscription ``fx_date`` would take the period before the
    anchor (Dec 21: 1.3). The renewals card adds up with the MRR card."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    sub = Subscription.start(
        id="s1",
        customer_id="c1",
        at=t0,
        price=Money("30", "EUR"),
        cycle=BillingCycle.MONTHLY,
        trial_end=t0 + timedelta(days=20),
    ).set_status(t0 + timedelta(days=5), SubscriptionStatus.ACTIVE)
    fx = FxRates.from_rates(
        [
            (date(2020, 1, 1), "EUR", "USD", Decimal("1.1")),
            (date(2023, 12, 12), "EUR", "USD", Decimal("1.3")),
            (date(2024, 1, 6), "EUR", "USD", Decimal("1.2")),
        ]
    )
    book = Book.of(
        customers=[Customer(id="c1", registered_at=t0 - timedelta(days=1))],
        subscriptions=[sub],
        fx=fx,
    )
    a = analyse(book, currency="USD")
    at = t0 + timedelta(days=10)
    assert a.renewals(at, at + timedelta(days=30)) == (1, Money("36", "USD"))
    assert a.mrr(at) == Money("36", "USD")
    assert a.renewals(at, at + timedelta(days=9)) == (0, Money("0", "USD"))


def test_the_invoice_source_has_no_services() -> None:
    a = analyse(Book.of(), currency="USD", source=MrrSource.INVOICES)
    with pytest.raises(ValidationError):
        a.renewals(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
