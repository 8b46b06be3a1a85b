"""Invariants of the MRR engine on generated books, under every vendor preset."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Subscription,
)
from revcrm.metrics import (
    Frequency,
    MetricsPolicy,
    MovementKind,
    MrrSource,
    analyse,
    cohorts,
    customer_churn_rate,
    mrr_churn,
    revenue_retention,
    subscription_mrr,
)
from revcrm.metrics._mrr import convert_mrr
from revcrm.testing.strategies import books

PRESETS = st.sampled_from(
    [
        MetricsPolicy.chartmogul(),
        MetricsPolicy.stripe(),
        MetricsPolicy.baremetrics(),
        MetricsPolicy(grouping_window=None, reactivation_window_days=30),
    ]
)
START = datetime(2018, 1, 1, tzinfo=UTC)
END = datetime(2031, 1, 1, tzinfo=UTC)
LATEST_GENERATED = datetime(2024, 12, 31, tzinfo=UTC)
SMALL = books(latest=LATEST_GENERATED, max_customers=4)


def _currency(book: Book) -> str:
    used = sorted({s.currency for s in book.subscriptions}) or ["USD"]
    return used[0]


@given(book=SMALL, policy=PRESETS)
def test_waterfall_adds_up_in_every_period(book: Book, policy: MetricsPolicy) -> None:
    cur = _currency(book)
    a = analyse(book, currency=cur, policy=policy)
    falls = a.waterfalls(START, datetime(2026, 1, 1, tzinfo=UTC), Frequency.QUARTER)
    single = len({s.currency for s in book.subscriptions}) <= 1
    for prev, w in itertools.pairwise(falls):
        assert w.start_mrr == prev.end_mrr
    for w in falls:
        assert w.start_mrr + w.net_movements + w.fx_impact == w.end_mrr
        assert w.end_mrr == a.mrr_before(w.end)
        assert w.new.amount >= 0
        assert w.expansion.amount >= 0
        assert w.reactivation.amount >= 0
        assert w.contraction.amount <= 0
        assert w.churn.amount <= 0
        if single:
            # One currency: exchange rates cannot explain anything.
            assert w.fx_impact.is_zero()


@given(book=SMALL, policy=PRESETS, offset=st.integers(0, 2500))
def test_mrr_is_the_sum_over_customers_and_over_subscriptions(
    book: Book, policy: MetricsPolicy, offset: int
) -> None:
    cur = _currency(book)
    at = START + timedelta(days=offset, hours=offset % 24)
    a = analyse(book, currency=cur, policy=policy)
    total = a.mrr(at)
    by_customer = sum((a.customer_mrr(c.id, at) for c in book.customers), Money.zero(cur))
    by_subscription = Money.zero(cur)
    for sub in book.subscriptions:
        value = subscription_mrr(sub, at, policy=policy)
        if not value.is_zero():
            by_subscription += convert_mrr(value, sub, at, cur, book.fx, policy)
    assert total == by_customer == by_subscription


@given(book=books(latest=LATEST_GENERATED, single_currency=True), policy=PRESETS)
def test_series_is_the_running_sum_of_movements(book: Book, policy: MetricsPolicy) -> None:
    cur = _currency(book)
    a = analyse(book, currency=cur, policy=policy)
    points = a.series(START, datetime(2026, 1, 1, tzinfo=UTC), Frequency.QUARTER)
    level = Money.zero(cur)
    for p in points:
        level += sum((m.amount for m in a.movements(p.start, p.end)), Money.zero(cur))
        assert level == p.mrr


@given(book=SMALL, policy=PRESETS)
def test_results_do_not_depend_on_record_order(book: Book, policy: MetricsPolicy) -> None:
    shuffled = Book.of(
        customers=reversed(book.customers),
        products=reversed(book.products),
        plans=reversed(book.plans),
        subscriptions=reversed(book.subscriptions),
        invoices=reversed(book.invoices),
        transactions=reversed(book.transactions),
        credits=reversed(book.credits),
        fx=book.fx,
    )
    cur = _currency(book)
    one = analyse(book, currency=cur, policy=policy).movements(START, END)
    two = analyse(shuffled, currency=cur, policy=policy).movements(START, END)
    assert one == two


@given(book=books(latest=LATEST_GENERATED, max_customers=5), policy=PRESETS)
def test_other_customers_never_change_a_customers_movements(
    book: Book, policy: MetricsPolicy
) -> None:
    cur = _currency(book)
    full = analyse(book, currency=cur, policy=policy).movements(START, END)
    for c in book.customers:
        alone = analyse(book.restricted_to([c.id]), currency=cur, policy=policy)
        assert alone.movements(START, END) == [m for m in full if m.customer_id == c.id]


@given(book=SMALL, policy=PRESETS)
def test_rates_stay_within_bounds(book: Book, policy: MetricsPolicy) -> None:
    cur = _currency(book)
    a = analyse(book, currency=cur, policy=policy)
    for year in range(2019, 2025):
        p, q = datetime(year, 1, 1, tzinfo=UTC), datetime(year, 7, 1, tzinfo=UTC)
        churn = customer_churn_rate(a, p, q)
        if churn.denominator == 0:
            assert churn.rate is None
        else:
            assert churn.rate is not None
            assert (
                0
                <= churn.rate
                <= (1 if policy.churn_denominator.value != "start_30_day" else 10**6)
            )
        m = mrr_churn(a, p, q)
        if m.gross is not None:
            assert m.gross >= 0
            if policy.cap_mrr_churn:
                assert m.gross <= 1
        r = revenue_retention(a, p, q)
        if r.gross is not None:
            assert 0 <= r.gross <= 1
            assert r.net is not None
            assert r.net >= r.gross or r.net >= 0


@given(book=books(latest=LATEST_GENERATED, single_currency=True, max_customers=5), policy=PRESETS)
def test_cohort_rows_sum_to_customers_acquired(book: Book, policy: MetricsPolicy) -> None:
    cur = _currency(book)
    a = analyse(book, currency=cur, policy=policy)
    as_of = datetime(2025, 1, 1, tzinfo=UTC)
    rows = cohorts(a, START, as_of, Frequency.QUARTER)
    acquired = {c: t for c, t in a.first_paid().items() if t < as_of}
    assert sum(r.size for r in rows) == len(acquired)
    for r in rows:
        assert all(0 <= cell.customers <= r.size for cell in r.cells)
        assert r.cells[0].mrr == r.initial_mrr


@given(book=books(latest=LATEST_GENERATED, single_currency=True), policy=PRESETS)
def test_nrr_is_one_plus_the_fixed_sets_movements(book: Book, policy: MetricsPolicy) -> None:
    cur = _currency(book)
    a = analyse(book, currency=cur, policy=policy)
    p, q = datetime(2021, 1, 1, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC)
    r = revenue_retention(a, p, q)
    if r.net is None:
        return
    members = {c for c, counted in a.customer_states(p, inclusive=False) if counted}
    moves = [m for m in a.movements(p, q) if m.customer_id in members]
    assert all(m.kind is not MovementKind.NEW for m in moves)
    change = sum((m.amount for m in moves), Money.zero(cur))
    assert r.end_mrr == r.start_mrr + change


# -- invoice-derived and history-derived MRR agree on consistent books -----------------------


BILLED_UNTIL = datetime(2023, 1, 1, tzinfo=UTC)


@st.composite
def consistent_books(draw: st.DrawFn) -> Book:
    """Subscriptions with a fixed price, billed for every period, maybe cancelled at a
    period end: the two MRR sources must agree everywhere."""
    n = draw(st.integers(1, 3))
    customers, subs, invoices = [], [], []
    for i in range(n):
        cid = f"c{i}"
        customers.append(Customer(id=cid, registered_at=START))
        start = START + timedelta(days=draw(st.integers(0, 700)))
        cycle = draw(
            st.sampled_from([BillingCycle.MONTHLY, BillingCycle.QUARTERLY, BillingCycle.ANNUAL])
        )
        price = Money(draw(st.integers(1, 50_000)), "USD") / 100
        periods = draw(st.integers(1, 10))
        sub = Subscription.start(id=f"s{i}", customer_id=cid, at=start, price=price, cycle=cycle)
        end = cycle.advance(start, periods)
        cancelled = draw(st.booleans())
        if cancelled:
            sub = sub.cancel(end, ends_at=end)
        subs.append(sub)
        k = 0
        while (k < periods) if cancelled else (cycle.advance(start, k) < BILLED_UNTIL):
            a, b = cycle.advance(start, k), cycle.advance(start, k + 1)
            k += 1
            invoices.append(
                Invoice(
                    id=f"i{i}-{k}",
                    customer_id=cid,
                    currency="USD",
                    issued_at=a,
                    due_date=a.date(),
                    status=InvoiceStatus.PAID,
                    lines=[
                        InvoiceLine(
                            kind=LineKind.RECURRING,
                            amount=price,
                            tax=price * Decimal("0.2"),
                            period_start=a,
                            period_end=b,
                            subscription_id=f"s{i}",
                        )
                    ],
                )
            )
    return Book.of(customers=customers, subscriptions=subs, invoices=invoices)


@given(book=consistent_books(), offsets=st.lists(st.integers(0, 1700), min_size=1, max_size=5))
def test_invoice_and_history_sources_agree(book: Book, offsets: list[int]) -> None:
    by_history = analyse(book, currency="USD")
    by_invoices = analyse(book, currency="USD", source=MrrSource.INVOICES)
    for days in offsets:
        at = START + timedelta(days=days)
        assert by_history.mrr(at) == by_invoices.mrr(at)
    assert by_history.movements(START, BILLED_UNTIL) == by_invoices.movements(START, BILLED_UNTIL)
