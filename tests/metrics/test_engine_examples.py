"""Worked examples from the reference and a regression test per known peer bug."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from revcrm import (
    BillingCycle,
    Book,
    Customer,
    Discount,
    DiscountDuration,
    FxRates,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Subscription,
    SubscriptionStatus,
)
from revcrm.errors import MissingRateError, ValidationError
from revcrm.metrics import (
    ChurnRecognition,
    Frequency,
    MetricsPolicy,
    MovementKind,
    MrrSource,
    analyse,
    cash_revenue,
    customer_churn_rate,
    customer_retention_rate,
    dashboard,
    mrr,
    mrr_churn,
    mrr_movements,
    mrr_series,
    mrr_waterfall,
    quick_ratio,
    revenue_retention,
)
from tests._builders import payment, t, usd


def customer(cid: str) -> Customer:
    return Customer(id=cid, registered_at=t(2018, 1, 1))


def book(*subs: Subscription, **kwargs: object) -> Book:
    ids = sorted({s.customer_id for s in subs} | set(kwargs.pop("extra_customers", ())))  # type: ignore[call-overload]
    return Book.of(customers=[customer(c) for c in ids], subscriptions=subs, **kwargs)  # type: ignore[arg-type]


def monthly(sid: str, cid: str, at: datetime, price: str, **kw: object) -> Subscription:
    return Subscription.start(
        id=sid,
        customer_id=cid,
        at=at,
        price=usd(price),
        cycle=BillingCycle.MONTHLY,
        **kw,  # type: ignore[arg-type]
    )


NO_GROUPING = MetricsPolicy(grouping_window=None)


# -- ChartMogul's upgrade example -------------------------------------------------------------


def test_chartmogul_bronze_to_gold_is_new_then_expansion() -> None:
    sub = monthly("s1", "c1", t(2019, 1, 1), "100").change_plan(t(2019, 2, 1), price=usd("250"))
    b = book(sub)
    moves = mrr_movements(b, t(2019, 1, 1), t(2019, 3, 1), currency="USD")
    assert [(m.kind, m.amount) for m in moves] == [
        (MovementKind.NEW, usd(100)),
        (MovementKind.EXPANSION, usd(150)),
    ]
    assert mrr(b, at=t(2019, 2, 1), currency="USD") == usd(250)
    w = mrr_waterfall(b, t(2019, 2, 1), t(2019, 3, 1), currency="USD")
    assert not isinstance(w, list)
    assert (w.start_mrr, w.expansion, w.end_mrr) == (usd(100), usd(150), usd(250))


def test_grouping_window_merges_a_sale_and_an_upgrade_within_an_hour() -> None:
    sub = monthly("s1", "c1", t(2019, 1, 1), "100").change_plan(
        t(2019, 1, 1) + timedelta(minutes=30), price=usd("250")
    )
    b = book(sub)
    grouped = mrr_movements(b, t(2019, 1, 1), t(2019, 2, 1), currency="USD")
    assert [(m.kind, m.amount) for m in grouped] == [(MovementKind.NEW, usd(250))]
    apart = mrr_movements(b, t(2019, 1, 1), t(2019, 2, 1), currency="USD", policy=NO_GROUPING)
    assert [m.kind for m in apart] == [MovementKind.NEW, MovementKind.EXPANSION]
    later = monthly("s1", "c1", t(2019, 1, 1), "100").change_plan(
        t(2019, 1, 1) + timedelta(minutes=61), price=usd("250")
    )
    assert len(mrr_movements(book(later), t(2019, 1, 1), t(2019, 2, 1), currency="USD")) == 2


# -- when churn is recognised (ProfitWell's example) --------------------------------------


@pytest.mark.parametrize(
    ("policy", "leaves"),
    [
        (MetricsPolicy.chartmogul(), t(2024, 6, 15)),
        (MetricsPolicy(churn_recognition=ChurnRecognition.AT_CANCELLATION), t(2024, 6, 8)),
        (MetricsPolicy.stripe(), t(2024, 6, 8)),
    ],
)
def test_cancellation_leaves_mrr_per_policy(policy: MetricsPolicy, leaves: datetime) -> None:
    sub = monthly("s1", "c1", t(2024, 4, 15), "10").cancel(t(2024, 6, 8))
    b = book(sub)
    assert mrr(b, at=leaves - timedelta(seconds=1), currency="USD", policy=policy) == usd(10)
    assert mrr(b, at=leaves, currency="USD", policy=policy) == usd(0)
    churn = list(mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=policy))
    assert [(m.kind, m.at, m.amount) for m in churn[1:]] == [(MovementKind.CHURN, leaves, usd(-10))]


def test_when_scheduled_takes_mrr_out_at_the_request() -> None:
    sub = (
        monthly("s1", "c1", t(2024, 4, 15), "10")
        .schedule_cancellation(t(2024, 6, 1))
        .cancel(t(2024, 6, 15))
    )
    policy = MetricsPolicy(churn_recognition=ChurnRecognition.WHEN_SCHEDULED)
    b = book(sub)
    assert mrr(b, at=t(2024, 6, 1), currency="USD", policy=policy) == usd(0)
    assert mrr(b, at=t(2024, 6, 1), currency="USD") == usd(10)
    moves = mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=policy)
    assert [(m.kind, m.at) for m in moves][-1] == (MovementKind.CHURN, t(2024, 6, 1))


def test_cancellation_scheduled_then_effective_is_subtracted_once() -> None:
    # Peer bug: a cancellation subtracted twice (once when scheduled, once when effective).
    sub = (
        monthly("s1", "c1", t(2024, 1, 1), "50")
        .schedule_cancellation(t(2024, 3, 10))
        .cancel(t(2024, 4, 1))
    )
    for policy in (MetricsPolicy.chartmogul(), MetricsPolicy.stripe(), MetricsPolicy.baremetrics()):
        moves = mrr_movements(
            book(sub), t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=policy
        )
        churned = [m for m in moves if m.kind is MovementKind.CHURN]
        assert len(churned) == 1
        assert sum((m.amount for m in moves), usd(0)) == usd(0)


# -- churn only at zero; reactivation ---------------------------------------------------------


def test_losing_one_of_two_subscriptions_is_contraction_and_the_last_is_churn() -> None:
    a = monthly("a", "c1", t(2024, 1, 1), "30").cancel(t(2024, 2, 1), ends_at=t(2024, 2, 1))
    b_ = monthly("b", "c1", t(2024, 1, 1), "20").cancel(t(2024, 3, 1), ends_at=t(2024, 3, 1))
    moves = mrr_movements(book(a, b_), t(2024, 1, 1), t(2024, 4, 1), currency="USD")
    assert [(m.kind, m.amount) for m in moves] == [
        (MovementKind.NEW, usd(50)),
        (MovementKind.CONTRACTION, usd(-30)),
        (MovementKind.CHURN, usd(-20)),
    ]
    assert moves[0].subscription_ids == ("a", "b")


def _churn_and_return(gap_days: int) -> Book:
    first = monthly("a", "c1", t(2024, 1, 1), "30").cancel(t(2024, 2, 1), ends_at=t(2024, 2, 1))
    back = monthly("b", "c1", t(2024, 2, 1) + timedelta(days=gap_days), "40")
    return book(first, back)


def test_return_after_churn_is_reactivation_or_new_by_window() -> None:
    b = _churn_and_return(120)
    kinds = [m.kind for m in mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD")]
    assert kinds == [MovementKind.NEW, MovementKind.CHURN, MovementKind.REACTIVATION]
    window = MetricsPolicy(reactivation_window_days=90)
    kinds = [
        m.kind
        for m in mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=window)
    ]
    assert kinds == [MovementKind.NEW, MovementKind.CHURN, MovementKind.NEW]
    b = _churn_and_return(30)
    kinds = [
        m.kind
        for m in mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=window)
    ]
    assert kinds[-1] is MovementKind.REACTIVATION


def test_reactivating_a_cancelled_subscription() -> None:
    sub = (
        monthly("s1", "c1", t(2024, 1, 1), "10")
        .cancel(t(2024, 2, 1), ends_at=t(2024, 2, 1))
        .reactivate(t(2024, 5, 1))
    )
    moves = mrr_movements(book(sub), t(2024, 1, 1), t(2025, 1, 1), currency="USD")
    assert [m.kind for m in moves] == [
        MovementKind.NEW,
        MovementKind.CHURN,
        MovementKind.REACTIVATION,
    ]


# -- past due, suspended, trials, free plans, discounts ---------------------------------------


def test_past_due_counts_until_cancelled_or_churns_after_n_days() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10").set_status(
        t(2024, 3, 1), SubscriptionStatus.PAST_DUE
    )
    b = book(sub)
    assert mrr(b, at=t(2024, 6, 1), currency="USD") == usd(10)
    bm = MetricsPolicy.baremetrics()
    assert mrr(b, at=t(2024, 3, 30), currency="USD", policy=bm) == usd(10)
    assert mrr(b, at=t(2024, 3, 31), currency="USD", policy=bm) == usd(0)
    moves = mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=bm)
    assert [(m.kind, m.at) for m in moves][-1] == (MovementKind.CHURN, t(2024, 3, 31))
    recovered = book(sub.set_status(t(2024, 4, 10), SubscriptionStatus.ACTIVE))
    moves = mrr_movements(recovered, t(2024, 1, 1), t(2025, 1, 1), currency="USD", policy=bm)
    assert [m.kind for m in moves] == [
        MovementKind.NEW,
        MovementKind.CHURN,
        MovementKind.REACTIVATION,
    ]


def test_suspended_services_follow_the_policy() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10").set_status(
        t(2024, 2, 1), SubscriptionStatus.SUSPENDED
    )
    b = book(sub)
    assert mrr(b, at=t(2024, 3, 1), currency="USD") == usd(0)
    assert mrr(
        b, at=t(2024, 3, 1), currency="USD", policy=MetricsPolicy(count_suspended=True)
    ) == usd(10)


def test_trial_is_zero_and_conversion_is_new_business() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10", trial_end=t(2024, 1, 15)).set_status(
        t(2024, 1, 15), SubscriptionStatus.ACTIVE
    )
    b = book(sub)
    assert mrr(b, at=t(2024, 1, 10), currency="USD") == usd(0)
    moves = mrr_movements(b, t(2024, 1, 1), t(2024, 2, 1), currency="USD")
    assert [(m.kind, m.at) for m in moves] == [(MovementKind.NEW, t(2024, 1, 15))]
    assert mrr(
        b, at=t(2024, 1, 10), currency="USD", policy=MetricsPolicy(count_trials=True)
    ) == usd(10)


def test_full_discount_is_churn_for_baremetrics_and_contraction_for_chartmogul() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10").set_discount(
        t(2024, 2, 1), Discount.percent(100, DiscountDuration.FOREVER)
    )
    b = book(sub)
    cm = mrr_movements(b, t(2024, 1, 1), t(2024, 3, 1), currency="USD")
    bm = mrr_movements(
        b, t(2024, 1, 1), t(2024, 3, 1), currency="USD", policy=MetricsPolicy.baremetrics()
    )
    assert cm[-1].kind is MovementKind.CONTRACTION
    assert bm[-1].kind is MovementKind.CHURN
    a = analyse(b, currency="USD")
    assert a.mrr(t(2024, 2, 15)) == usd(0)


def test_discount_examples_from_the_reference() -> None:
    pw = Subscription.start(
        id="s1",
        customer_id="c1",
        at=t(2024, 1, 1),
        price=usd("120"),
        cycle=BillingCycle.ANNUAL,
        discount=Discount.percent(10),
    )
    bm = monthly("s2", "c2", t(2024, 1, 1), "10", discount=Discount.percent(50))
    b = book(pw, bm)
    assert analyse(b, currency="USD").customer_mrr("c1", t(2024, 2, 1)) == usd(9)
    assert analyse(b, currency="USD", policy=MetricsPolicy.baremetrics()).customer_mrr(
        "c2", t(2024, 2, 1)
    ) == usd(5)


def test_stripe_preset_ignores_repeating_coupons() -> None:
    sub = monthly(
        "s1",
        "c1",
        t(2024, 1, 1),
        "10",
        discount=Discount.percent(50, DiscountDuration.REPEATING, ends_at=t(2024, 4, 1)),
    )
    b = book(sub)
    assert mrr(b, at=t(2024, 2, 1), currency="USD") == usd(5)
    assert mrr(b, at=t(2024, 4, 1), currency="USD") == usd(10)
    assert mrr(b, at=t(2024, 2, 1), currency="USD", policy=MetricsPolicy.stripe()) == usd(10)
    # The discount ending is an expansion movement.
    kinds = [m.kind for m in mrr_movements(b, t(2024, 1, 1), t(2024, 5, 1), currency="USD")]
    assert kinds == [MovementKind.NEW, MovementKind.EXPANSION]


# -- the known peer bugs ----------------------------------------------------------------------


def test_biennial_and_triennial_are_not_counted_as_monthly() -> None:
    bi = Subscription.start(
        id="s1", customer_id="c1", at=t(2024, 1, 1), price=usd("2400"), cycle=BillingCycle.BIENNIAL
    )
    tri = Subscription.start(
        id="s2", customer_id="c2", at=t(2024, 1, 1), price=usd("3600"), cycle=BillingCycle.TRIENNIAL
    )
    assert mrr(book(bi, tri), at=t(2024, 6, 1), currency="USD") == usd(200)


def _annual_invoice_book() -> Book:
    line = InvoiceLine(
        kind=LineKind.RECURRING,
        amount=usd("1200"),
        tax=usd("240"),
        period_start=t(2024, 1, 15),
        period_end=t(2025, 1, 15),
    )
    setup = InvoiceLine(kind=LineKind.ONE_OFF, amount=usd("50"))
    inv = Invoice(
        id="i1",
        customer_id="c1",
        currency="USD",
        issued_at=t(2024, 1, 15),
        due_date=date(2024, 1, 22),
        status=InvoiceStatus.PAID,
        lines=[line, setup],
    )
    return Book.of(customers=[customer("c1")], invoices=[inv])


def test_annual_invoice_is_spread_over_its_service_period_not_churned_next_month() -> None:
    b = _annual_invoice_book()
    a = analyse(b, currency="USD", source=MrrSource.INVOICES)
    points = a.series(t(2024, 1, 1), t(2025, 3, 1))
    assert [p.mrr for p in points[:12]] == [usd(100)] * 12  # Jan 2024 .. Dec 2024 closes
    assert points[13].mrr == usd(0)
    moves = a.movements(t(2024, 1, 1), t(2025, 3, 1))
    assert [(m.kind, m.at, m.amount) for m in moves] == [
        (MovementKind.NEW, t(2024, 1, 15), usd(100)),
        (MovementKind.CHURN, t(2025, 1, 15), usd(-100)),
    ]


def test_past_due_renewals_are_not_cash() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10")
    txs = [
        payment("p1", "c1", usd(10), t(2024, 1, 1)),
        payment("p2", "c1", usd(10), t(2024, 2, 1), status="failed"),
        payment("r1", "c1", usd(3), t(2024, 2, 5), kind="refund"),
    ]
    b = book(sub, transactions=txs)
    feb = cash_revenue(b.transactions, t(2024, 2, 1), t(2024, 3, 1), currency="USD", book=b)
    assert (feb.gross, feb.refunds, feb.net) == (usd(0), usd(3), usd(-3))
    jan = cash_revenue(b.transactions, t(2024, 1, 1), t(2024, 2, 1), currency="USD", book=b)
    assert (jan.gross, jan.net, jan.payments) == (usd(10), usd(10), 1)


def test_terminated_services_churn_rather_than_disappear() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10").set_status(
        t(2024, 3, 5), SubscriptionStatus.TERMINATED
    )
    moves = mrr_movements(book(sub), t(2024, 1, 1), t(2025, 1, 1), currency="USD")
    assert [(m.kind, m.at) for m in moves][-1] == (MovementKind.CHURN, t(2024, 3, 5))


def test_day_boundary_churn_drops_in_the_same_day_as_the_movement() -> None:
    sub = monthly("s1", "c1", t(2024, 4, 15), "10").cancel(t(2024, 6, 8))
    b = book(sub)
    days = mrr_series(b, t(2024, 6, 13), t(2024, 6, 17), currency="USD", every=Frequency.DAY)
    assert [(p.start.day, p.mrr) for p in days] == [
        (13, usd(10)),
        (14, usd(10)),
        (15, usd(0)),
        (16, usd(0)),
    ]
    (churn,) = list(mrr_movements(b, t(2024, 6, 15), t(2024, 6, 16), currency="USD"))
    assert churn.kind is MovementKind.CHURN
    assert mrr(b, at=date(2024, 6, 15), currency="USD") == usd(0)
    assert mrr(b, at=date(2024, 6, 14), currency="USD") == usd(10)


def test_history_does_not_change_when_the_current_state_changes() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 1), "10")
    before = [p.mrr for p in mrr_series(book(sub), t(2024, 1, 1), t(2024, 7, 1), currency="USD")]
    later = sub.change_plan(t(2024, 8, 1), price=usd(99)).cancel(t(2024, 9, 3))
    after = [p.mrr for p in mrr_series(book(later), t(2024, 1, 1), t(2024, 7, 1), currency="USD")]
    assert before == after


def test_currencies_are_never_summed_as_plain_numbers() -> None:
    eur = Subscription.start(
        id="s1",
        customer_id="c1",
        at=t(2024, 1, 1),
        price=Money("100", "EUR"),
        cycle=BillingCycle.MONTHLY,
    )
    us = monthly("s2", "c2", t(2024, 1, 1), "100")
    with pytest.raises(MissingRateError):
        mrr(book(eur, us), at=t(2024, 2, 1), currency="USD")
    fx = FxRates.from_rates([(date(2024, 1, 1), "EUR", "USD", "1.10")])
    assert mrr(book(eur, us, fx=fx), at=t(2024, 2, 1), currency="USD") == usd("210")


def test_exchange_rate_changes_are_fx_impact_not_movements() -> None:
    eur = Subscription.start(
        id="s1",
        customer_id="c1",
        at=t(2024, 1, 1),
        price=Money("100", "EUR"),
        cycle=BillingCycle.MONTHLY,
    )
    fx = FxRates.from_rates(
        [(date(2023, 12, 1), "EUR", "USD", "1.10"), (date(2024, 3, 1), "EUR", "USD", "1.20")]
    )
    for policy in (MetricsPolicy.chartmogul(), MetricsPolicy.stripe()):
        a = analyse(book(eur, fx=fx), currency="USD", policy=policy)
        w = a.waterfall(t(2024, 2, 1), t(2024, 5, 1))
        assert w.movement_count == 0
        assert w.start_mrr == usd(110)
        assert w.end_mrr == usd(120)
        assert w.fx_impact == usd(10)
    # Under the service-period rule the new rate applies from the first renewal on or after it.
    a = analyse(book(eur, fx=fx), currency="USD")
    assert a.mrr(t(2024, 3, 1)) == usd(120)
    assert a.mrr(t(2024, 2, 29)) == usd(110)


# -- churn, retention and the dashboard -------------------------------------------------------


def _churn_book() -> Book:
    # Start of March: c1 $40, c2 $30, c3 $20, c4 $10 = $100. In March c1 churns ($40 is
    # too much for the reference example, so it contracts by 10 instead), c2 churns ($10
    # of it), c3 expands by 10, c5 joins.
    subs = [
        monthly("a", "c1", t(2024, 1, 1), "40").change_plan(t(2024, 3, 10), price=usd(30)),
        monthly("b", "c2", t(2024, 1, 1), "10").cancel(t(2024, 3, 12), ends_at=t(2024, 3, 12)),
        monthly("b2", "c2b", t(2024, 1, 1), "20"),
        monthly("c", "c3", t(2024, 1, 1), "20").change_plan(t(2024, 3, 15), price=usd(30)),
        monthly("d", "c4", t(2024, 1, 1), "10"),
        monthly("e", "c5", t(2024, 3, 20), "25"),
    ]
    return book(*subs)


def test_mrr_churn_reference_example() -> None:
    # CM: start $100, churn $10, contraction $10, expansion $10 -> gross 20%, net 10%.
    a = analyse(_churn_book(), currency="USD")
    c = mrr_churn(a, t(2024, 3, 1), t(2024, 4, 1))
    assert c.start_mrr == usd(100)
    # Signed like the waterfall: losses are negative.
    assert (c.churn, c.contraction, c.expansion) == (usd(-10), usd(-10), usd(10))
    assert c.gross == Decimal("0.2")
    assert c.net == Decimal("0.1")


def test_customer_churn_denominators() -> None:
    a = analyse(_churn_book(), currency="USD")
    cm = customer_churn_rate(a, t(2024, 3, 1), t(2024, 4, 1))
    assert (cm.churned, cm.denominator, cm.rate) == (1, 5, Decimal("0.2"))
    st = analyse(_churn_book(), currency="USD", policy=MetricsPolicy.stripe())
    s = customer_churn_rate(st, t(2024, 3, 1), t(2024, 4, 1))
    assert (s.churned, s.denominator) == (1, 6)
    # Retention (E - N) / S = (5 - 1) / 5.
    assert customer_retention_rate(a, t(2024, 3, 1), t(2024, 4, 1)).value == Decimal("0.8")
    # Quick ratio with reactivation (none here): (25 + 10) / (10 + 10).
    assert quick_ratio(a, t(2024, 3, 1), t(2024, 4, 1)).value == Decimal("1.75")


def test_revenue_retention_caps_gross_at_one() -> None:
    a = analyse(_churn_book(), currency="USD")
    r = revenue_retention(a, t(2024, 3, 1), t(2024, 4, 1))
    # c1 30, c2 0, c2b 20, c3 30, c4 10 of 100 at start; c5 is not in the fixed set.
    assert r.net == Decimal("0.9")
    assert r.gross == Decimal("0.8")
    assert r.gross is not None
    assert r.gross <= 1


def test_churn_rate_with_no_customers_is_none() -> None:
    a = analyse(book(), currency="USD")
    assert customer_churn_rate(a, t(2024, 3, 1), t(2024, 4, 1)).rate is None
    assert mrr_churn(a, t(2024, 3, 1), t(2024, 4, 1)).gross is None
    assert quick_ratio(a, t(2024, 3, 1), t(2024, 4, 1)).value is None
    with pytest.raises(ValidationError):
        customer_churn_rate(a, t(2024, 4, 1), t(2024, 3, 1))


def test_dashboard_figures() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 10), "10")
    annual = Subscription.start(
        id="s2", customer_id="c2", at=t(2023, 6, 1), price=usd("1200"), cycle=BillingCycle.ANNUAL
    )
    txs = [payment(f"p{m}", "c1", usd(10), t(2024, m, 10)) for m in range(1, 7)]
    b = book(sub, annual, transactions=txs)
    d = dashboard(b, as_of=t(2024, 5, 20), currency="USD")
    assert d.mrr == usd(110)
    assert d.arr == usd(1320)
    assert d.revenue_this_month.gross == usd(10)
    assert d.revenue_last_month.net == usd(10)
    assert d.renewals_count == 2  # the monthly on Jun 10 and the annual on Jun 1
    assert d.renewals_mrr == usd(110)
    assert len(d.trend) == 12
    assert d.trend[-1].start == t(2024, 5, 1)
    assert d.trend[-1].mrr == usd(110)
    assert d.trend[-6].mrr == usd(100)  # December 2023: only the annual plan


def test_a_scheduled_cancellation_ends_with_the_paid_period_even_if_never_recorded() -> None:
    sub = monthly("s1", "c1", t(2024, 1, 10), "10").schedule_cancellation(t(2024, 3, 2))
    b = book(sub)
    assert mrr(b, at=t(2024, 3, 9), currency="USD") == usd(10)
    assert mrr(b, at=t(2024, 3, 10), currency="USD") == usd(0)
    moves = mrr_movements(b, t(2024, 1, 1), t(2025, 1, 1), currency="USD")
    assert [(m.kind, m.at) for m in moves] == [
        (MovementKind.NEW, t(2024, 1, 10)),
        (MovementKind.CHURN, t(2024, 3, 10)),
    ]
    # Recording the cancellation at the period end changes nothing.
    recorded = book(sub.cancel(t(2024, 3, 10)))
    assert mrr_movements(recorded, t(2024, 1, 1), t(2025, 1, 1), currency="USD") == moves
    # Unscheduling in time keeps the service.
    kept = book(sub.unschedule_cancellation(t(2024, 3, 5)))
    assert mrr(kept, at=t(2024, 6, 1), currency="USD") == usd(10)
