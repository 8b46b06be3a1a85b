"""``renewals_due`` (the invoice source's renewals card) from the subscriptions' states as
arrays (``revcrm._ledger._renewing``) against the per-subscription loop it replaced:
``state_at``, ``next_renewal``, ``state_mrr`` and ``convert_mrr`` one subscription at a
time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import BillingCycle, Book, Customer, FxRates, Money, Subscription
from revcrm._subscription import SubscriptionStatus
from revcrm.metrics import (
    ChurnRecognition,
    DiscountPolicy,
    FxDateRule,
    MetricsPolicy,
    MrrSource,
    analyse,
    renewals_due,
)
from revcrm.metrics._dashboard import dashboard_inputs
from revcrm.metrics._mrr import convert_mrr, state_mrr
from revcrm.testing.strategies import books, moments_near

BOOKS = books(latest=datetime(2024, 12, 31, tzinfo=UTC), max_customers=4)
POLICIES = st.sampled_from(
    [
        MetricsPolicy(),
        MetricsPolicy.stripe(),
        MetricsPolicy.baremetrics(),
        MetricsPolicy(fx_date=FxDateRule.TRANSACTION_DATE),
        MetricsPolicy(
            fx_date=FxDateRule.TRANSACTION_DATE,
            churn_recognition=ChurnRecognition.WHEN_SCHEDULED,
            count_trials=True,
        ),
        MetricsPolicy(past_due_churn_after_days=10, discounts=DiscountPolicy.NONE),
    ]
)
#: Zones a caller's moment may be given in: the transaction-date rule reads its date.
_ZONES = (UTC, timezone(timedelta(hours=-10)), timezone(timedelta(hours=13)))
ZONES = st.sampled_from(_ZONES)
_OTHER_RULE = {
    FxDateRule.SERVICE_PERIOD_START: FxDateRule.TRANSACTION_DATE,
    FxDateRule.TRANSACTION_DATE: FxDateRule.SERVICE_PERIOD_START,
}


def _oracle(
    book: Book, at: datetime, horizon: datetime, currency: str, policy: MetricsPolicy
) -> tuple[int, Money]:
    """renewals_due as it was."""
    count, upcoming = 0, Money.zero(currency)
    for sub in book.subscriptions:
        s = sub.state_at(at)
        if s is None or s.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
            continue
        nxt = s.next_renewal(at)
        if nxt is not None and nxt <= horizon:
            count += 1
            value = state_mrr(s, at, policy)
            if not value.is_zero():
                upcoming += convert_mrr(value, sub, at, currency, book.fx, policy)
    return count, upcoming


def _next_renewals(book: Book, at: datetime) -> list[datetime]:
    out = []
    for sub in book.subscriptions:
        s = sub.state_at(at)
        nxt = None if s is None else s.next_renewal(at)
        if nxt is not None:
            out.append(nxt)
    return out


def _daily_rates(book: Book, currency: str, around: date) -> FxRates:
    """A rate into ``currency`` for every day of the 450 before ``around`` (and a month
    after), each day's its own, so converting at any other date than the rule's shows."""
    codes = sorted({s.currency for s in book.subscriptions} - {currency})
    rows: list[tuple[date, str, str, Decimal]] = []
    for k, code in enumerate(codes):
        rows.append((date(1990, 1, 1), code, currency, Decimal(k + 2)))
        for i in range(-450, 31):
            day = around + timedelta(days=i)
            rows.append((day, code, currency, Decimal(k + 1) + Decimal(i + 451) / 1000))
    return FxRates.from_rates(rows)


def _moments(book: Book) -> st.SearchStrategy[datetime]:
    """On or a microsecond around one of the book's changes, or near its other moments."""
    changes = [c.at for sub in book.subscriptions for c in sub.history]
    near = moments_near(book, days=(0, 1, 30))
    if not changes:
        return near
    tick = timedelta(microseconds=1)
    on = st.builds(
        lambda t, d: t + d, st.sampled_from(changes), st.sampled_from((-tick, timedelta(0), tick))
    )
    return st.one_of(on, near)


@settings(max_examples=min(25, settings().max_examples), deadline=None)
@given(
    data=st.data(),
    book=BOOKS,
    policy=POLICIES,
    pick=st.integers(0, 2),
    days=st.sampled_from([0, 1, 30, 400]),
    zone=ZONES,
)
def test_renewals_due_is_the_per_subscription_definition(
    data: st.DataObject,
    book: Book,
    policy: MetricsPolicy,
    pick: int,
    days: int,
    zone: timezone,
) -> None:
    used = sorted({s.currency for s in book.subscriptions} | {i.currency for i in book.invoices})
    currency = (used or ["USD"])[pick % max(len(used), 1)]
    at = data.draw(_moments(book)).astimezone(zone)
    horizons = [at + timedelta(days=days)]
    # The horizon on a renewal (it counts), a microsecond before it (it does not).
    nexts = _next_renewals(book, at)
    if nexts:
        first = data.draw(st.sampled_from(nexts))
        horizons += [first, first - timedelta(microseconds=1)]
    # Two rate tables: the book's (a few changes over years), and one changing every day;
    # both FX rules, and the moment in each zone (the transaction-date rule's date).
    daily = Book.of(
        customers=book.customers,
        subscriptions=book.subscriptions,
        fx=_daily_rates(book, currency, at.date()),
    )
    other = attrs.evolve(policy, fx_date=_OTHER_RULE[policy.fx_date])
    for b in (book, daily):
        for pol in (policy, other):
            for z in (zone, *_ZONES):
                for horizon in horizons:
                    t = at.astimezone(z)
                    want = _oracle(b, t, horizon, currency, pol)
                    assert renewals_due(b, t, horizon, currency=currency, policy=pol) == want
    # The dashboard's card under the invoice source is this aggregation.
    a = analyse(book, currency=currency, policy=policy, source=MrrSource.INVOICES)
    horizon = horizons[-1]
    assert dashboard_inputs(book, a).renewals(at, horizon) == _oracle(
        book, at, horizon, currency, policy
    )


T0 = datetime(2024, 1, 1, tzinfo=UTC)
RATES = FxRates.from_rates(
    [
        (date(2020, 1, 1), "EUR", "USD", Decimal("1.1")),
        (date(2023, 12, 12), "EUR", "USD", Decimal("1.3")),
        (date(2024, 1, 6), "EUR", "USD", Decimal("1.2")),
        (date(2024, 1, 11), "EUR", "USD", Decimal("1.25")),
    ]
)


def _book(*subs: Subscription) -> Book:
    return Book.of(
        customers=[Customer(id="c1", registered_at=T0 - timedelta(days=1))],
        subscriptions=list(subs),
        fx=RATES,
    )


def test_a_service_active_before_its_anchor_converts_at_the_period_before_it() -> None:
    """Paying before its anchor (a trial converted early): ``fx_date`` takes the billing
    period before the anchor (from Dec 21: 1.3), not the change's date (Jan 6: 1.2)."""
    sub = Subscription.start(
        id="s1",
        customer_id="c1",
        at=T0,
        price=Money("30", "EUR"),
        cycle=BillingCycle.MONTHLY,
        trial_end=T0 + timedelta(days=20),
    ).set_status(T0 + timedelta(days=5), SubscriptionStatus.ACTIVE)
    book = _book(sub)
    at = T0 + timedelta(days=10)
    policy = MetricsPolicy()
    got = renewals_due(book, at, at + timedelta(days=30), currency="USD", policy=policy)
    assert got == (1, Money("39", "USD"))
    assert got == _oracle(book, at, at + timedelta(days=30), "USD", policy)
    # Due on the anchor (Jan 21): not by a horizon a microsecond before it.
    before = T0 + timedelta(days=20) - timedelta(microseconds=1)
    assert renewals_due(book, at, before, currency="USD", policy=policy) == (
        0,
        Money("0", "USD"),
    )


def test_the_transaction_date_rule_reads_the_moment_s_own_date() -> None:
    sub = Subscription.start(
        id="s1", customer_id="c1", at=T0, price=Money("10", "EUR"), cycle=BillingCycle.MONTHLY
    )
    book = _book(sub)
    policy = MetricsPolicy(fx_date=FxDateRule.TRANSACTION_DATE)
    # 2024-01-10T20:00Z is Jan 11 at UTC+13: the rate of Jan 11 (1.25), not Jan 10's.
    at = datetime(2024, 1, 10, 20, tzinfo=UTC).astimezone(timezone(timedelta(hours=13)))
    got = renewals_due(book, at, at + timedelta(days=30), currency="USD", policy=policy)
    assert got == (1, Money("12.5", "USD"))
    assert got == _oracle(book, at, at + timedelta(days=30), "USD", policy)


@settings(max_examples=min(25, settings().max_examples), deadline=None)
@given(
    trial=st.integers(1, 60),
    paid=st.integers(0, 59),
    cycle=st.sampled_from([BillingCycle.MONTHLY, BillingCycle.ANNUAL, BillingCycle.WEEKLY]),
    later=st.integers(0, 400),
    days=st.sampled_from([1, 30, 400]),
)
def test_services_paying_before_their_anchor(
    trial: int, paid: int, cycle: BillingCycle, later: int, days: int
) -> None:
    """A trial converted before its end: paying before its anchor (the trial end), in
    EUR reported in USD with a rate a day, at moments before and after the anchor."""
    sub = Subscription.start(
        id="s1",
        customer_id="c1",
        at=T0,
        price=Money("30", "EUR"),
        cycle=cycle,
        trial_end=T0 + timedelta(days=trial),
    ).set_status(T0 + timedelta(days=min(paid, trial - 1)), SubscriptionStatus.ACTIVE)
    at = T0 + timedelta(days=min(paid, trial - 1), hours=later)
    book = Book.of(
        customers=[Customer(id="c1", registered_at=T0 - timedelta(days=1))],
        subscriptions=[sub],
        fx=_daily_rates(_book(sub), "USD", at.date()),
    )
    policy = MetricsPolicy()
    horizon = at + timedelta(days=days)
    want = _oracle(book, at, horizon, "USD", policy)
    assert renewals_due(book, at, horizon, currency="USD", policy=policy) == want


def test_equal_amounts_each_count() -> None:
    """Services of one price, currency and conversion date add up, one each."""
    subs = [
        Subscription.start(
            id=f"s{i}",
            customer_id="c1",
            at=T0 + timedelta(hours=i),
            price=Money(price, code),
            cycle=BillingCycle.MONTHLY,
        )
        for i, (price, code) in enumerate(
            [("10", "USD"), ("10", "USD"), ("10", "EUR"), ("10.00", "EUR")]
        )
    ]
    book = _book(*subs)
    at = T0 + timedelta(days=3)
    policy = MetricsPolicy()
    got = renewals_due(book, at, at + timedelta(days=30), currency="USD", policy=policy)
    # The EUR services convert at the rate of their period's start (Jan 1: 1.3).
    assert got == (4, Money("46", "USD"))
    assert got == _oracle(book, at, at + timedelta(days=30), "USD", policy)
