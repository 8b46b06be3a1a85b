"""One metrics API (issue 16, item 5): book or analysis in, one sign convention, rates with
``.value``; the old call shapes keep working."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from revcrm import (
    BillingCycle,
    Book,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Product,
    Subscription,
)
from revcrm.errors import ValidationError
from revcrm.metrics import (
    MetricsPolicy,
    MrrAnalysis,
    MrrSource,
    Rate,
    analyse,
    arpa,
    arr,
    asp,
    cac_by_channel,
    cac_payback_months,
    churn_series,
    cohorts,
    customer_churn_rate,
    customer_retention_rate,
    customer_value,
    customer_values,
    customers_at,
    dashboard,
    ltv,
    ltv_to_cac,
    mrr,
    mrr_by_billing_cycle,
    mrr_by_product,
    mrr_churn,
    quick_ratio,
    referral_sources,
    revenue_retention,
    top_products_by_customers,
    trial_conversion,
)


def t(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def usd(amount: str | int) -> Money:
    return Money(amount, "USD")


def _line(product: str, amount: str, start: datetime, end: datetime) -> InvoiceLine:
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=usd(amount),
        period_start=start,
        period_end=end,
        product_id=product,
    )


def _invoice(iid: str, cid: str, at: datetime, *lines: InvoiceLine) -> Invoice:
    return Invoice(
        id=iid,
        customer_id=cid,
        currency="USD",
        issued_at=at,
        due_date=at.date(),
        status=InvoiceStatus.PAID,
        lines=list(lines),
    )


def invoice_book() -> Book:
    """Recurring revenue on invoices only (no subscriptions): at 2024-03-15 c1 pays $100 a
    month for "pro" and $1,200 a year for "addon" ($100 a month), c2 $50 a month for
    "pro"; c3 started in March ($30, "lite"), c4 stopped paying at the end of February."""
    mar, apr = t(2024, 3, 1), t(2024, 4, 1)
    invoices = [
        _invoice("i1", "c1", mar, _line("pro", "100", mar, apr)),
        _invoice("i2", "c1", t(2024, 1, 1), _line("addon", "1200", t(2024, 1, 1), t(2025, 1, 1))),
        _invoice("i3", "c2", mar, _line("pro", "50", mar, apr)),
        _invoice("i4", "c3", t(2024, 3, 10), _line("lite", "30", t(2024, 3, 10), t(2024, 4, 10))),
        _invoice("f1", "c1", t(2024, 2, 1), _line("pro", "100", t(2024, 2, 1), mar)),
        _invoice("f2", "c2", t(2024, 2, 1), _line("pro", "50", t(2024, 2, 1), mar)),
        _invoice("f4", "c4", t(2024, 2, 1), _line("pro", "40", t(2024, 2, 1), mar)),
    ]
    customers = [
        Customer(id=c, registered_at=t(2023, 1, 1), referral_source=src)
        for c, src in [("c1", "ads"), ("c2", "ads"), ("c3", None), ("c4", None)]
    ]
    products = [Product(id=p, name=p.title()) for p in ("pro", "addon", "lite")]
    return Book.of(customers=customers, invoices=invoices, products=products)


AT = t(2024, 3, 15)


@pytest.fixture(scope="module")
def inv() -> tuple[Book, MrrAnalysis]:
    book = invoice_book()
    return book, analyse(book, currency="USD", source=MrrSource.INVOICES)


def test_an_invoice_sourced_analysis_drives_every_mrr_metric(inv: tuple[Book, MrrAnalysis]) -> None:
    book, a = inv
    total = usd(280)  # 100 + 100 + 50 + 30
    # The book form reads subscriptions: none here, which is what the issue saw.
    assert mrr(book, at=AT, currency="USD") == usd(0)
    assert arpa(book, at=AT, currency="USD").value is None
    assert mrr(a, at=AT) == total
    assert arr(a, at=AT) == total * 12
    result = arpa(a, at=AT)
    assert (result.mrr, result.paying_customers, result.value) == (
        total,
        3,
        usd("93.33333333333333333333333333333333333333"),
    )
    by_product = mrr_by_product(book, at=AT, analysis=a)
    assert by_product.amounts() == {"pro": usd(150), "addon": usd(100), "lite": usd(30)}
    assert by_product.total == total
    pro = by_product.row("pro")
    assert pro is not None
    assert pro.customers == 2
    by_cycle = mrr_by_billing_cycle(book, at=AT, analysis=a)
    assert by_cycle.amounts() == {"monthly": usd(180), "annual": usd(100)}
    top = top_products_by_customers(book, at=AT, analysis=a)
    assert [r.key for r in top] == ["pro", "addon", "lite"]
    ads, none = referral_sources(book, at=AT, analysis=a)
    assert (ads.mrr, ads.paying_customers, none.mrr, none.paying_customers) == (
        usd(250),
        2,
        usd(30),
        1,
    )


def test_asp_and_arpa_from_an_analysis_and_a_period(inv: tuple[Book, MrrAnalysis]) -> None:
    _, a = inv
    march = (t(2024, 3, 1), t(2024, 4, 1))
    # Only c3 is new in March ($30); c1, c2 renewed, c4 churned.
    result = asp(a, *march)
    assert (result.new_business_mrr, result.new_customers, result.value) == (usd(30), 1, usd(30))
    # ARPA of March: at its close (just before April 1): c1 200, c2 50, c3 30.
    month = arpa(a, *march)
    assert (month.mrr, month.paying_customers) == (usd(280), 3)
    # The figures form still works, positionally and by name.
    assert asp(usd(900), 3).value == usd(300)
    assert asp(new_business_mrr=usd(900), new_customers=3).value == usd(300)
    with pytest.raises(ValidationError):
        arpa(a, *march, at=AT)
    with pytest.raises(ValidationError):
        asp(a, t(2024, 3, 1))
    # A book form of ASP over subscriptions.
    sub = Subscription.start(
        id="s", customer_id="c1", at=t(2024, 3, 5), price=usd(20), cycle=BillingCycle.MONTHLY
    )
    sb = Book.of(customers=[Customer(id="c1", registered_at=t(2023, 1, 1))], subscriptions=[sub])
    assert asp(sb, *march, currency="USD").value == usd(20)


def test_an_analysis_refuses_a_different_currency_or_policy(inv: tuple[Book, MrrAnalysis]) -> None:
    book, a = inv
    with pytest.raises(ValidationError, match="currency"):
        mrr(a, at=AT, currency="EUR")
    with pytest.raises(ValidationError, match="policy"):
        arpa(a, at=AT, policy=MetricsPolicy.stripe())
    with pytest.raises(ValidationError, match="currency"):
        mrr(book, at=AT)
    assert mrr(a, at=AT, currency="USD") == usd(280)


def test_cac_from_an_analysis_counts_invoice_customers(inv: tuple[Book, MrrAnalysis]) -> None:
    book, a = inv
    start, end = t(2024, 3, 1), t(2024, 4, 1)
    old = cac_by_channel(book, [], start=start, end=end, currency="USD")
    assert old.blended.new_customers == 0
    report = cac_by_channel(book, [], start=start, end=end, analysis=a)
    assert report.blended.new_customers == 1  # c3 (no referral source)
    assert report.channel(None) is not None


def test_ltv_from_a_lifespan_is_exact() -> None:
    value = ltv(usd(150), lifespan_months=24, gross_margin="0.8")
    assert value.value == usd(2880)  # 24 x 150 x 0.8, exactly
    assert str(value.value) == "2880 USD"
    assert value.lifetime_months == 24
    # The churn form is unchanged; 1/24 as a rate gives the long expansion the issue saw.
    assert ltv(usd(150), Decimal(1) / Decimal(24)).value != usd(3600)
    assert ltv(usd(150), "0.05").value == usd(3000)
    capped = ltv(usd(10), lifespan_months=100, max_lifetime_months=36)
    assert (capped.value, capped.capped) == (usd(360), True)
    with pytest.raises(ValidationError):
        ltv(usd(1))
    with pytest.raises(ValidationError):
        ltv(usd(1), "0.1", lifespan_months=10)
    with pytest.raises(ValidationError):
        ltv(usd(1), lifespan_months=0)


def _churn_analysis() -> MrrAnalysis:
    mar = t(2024, 3, 1)
    subs = [
        Subscription.start(
            id=f"s{i}",
            customer_id=f"c{i}",
            at=t(2024, 1, 1),
            price=usd(p),
            cycle=BillingCycle.MONTHLY,
        )
        for i, p in enumerate([40, 30, 20, 10])
    ]
    subs[0] = subs[0].change_plan(t(2024, 3, 10), price=usd(30))
    subs[1] = subs[1].cancel(t(2024, 3, 12), ends_at=t(2024, 3, 12))
    book = Book.of(
        customers=[Customer(id=f"c{i}", registered_at=t(2023, 1, 1)) for i in range(4)],
        subscriptions=subs,
    )
    del mar
    return analyse(book, currency="USD")


def test_churn_and_contraction_are_signed_like_the_waterfall() -> None:
    a = _churn_analysis()
    start, end = t(2024, 3, 1), t(2024, 4, 1)
    w = a.waterfall(start, end)
    c = mrr_churn(a, start, end)
    assert (w.churn, w.contraction) == (usd(-30), usd(-10))
    assert (c.churn, c.contraction) == (w.churn, w.contraction)
    assert c.lost == usd(40)
    assert c.gross == Decimal("0.4")
    # The old magnitude still reads, with a warning that says what to use.
    with pytest.warns(DeprecationWarning, match="MrrChurn.churn"):
        assert c.churned == usd(30)


def test_rates_are_one_result_type_with_a_value() -> None:
    a = _churn_analysis()
    start, end = t(2024, 3, 1), t(2024, 4, 1)
    qr = quick_ratio(a, start, end)
    assert isinstance(qr, Rate)
    assert (qr.numerator, qr.denominator, qr.value) == (Decimal(0), Decimal(40), Decimal(0))
    retention = customer_retention_rate(a, start, end)
    assert isinstance(retention, Rate)
    assert retention.value == Decimal("0.75")
    assert customer_churn_rate(a, start, end).value == Decimal("0.25")
    assert isinstance(ltv_to_cac(usd(6000), usd(2000)), Rate)
    assert cac_payback_months(usd(2000), usd(0)).value is None
    book = Book.of(customers=[], subscriptions=[])
    trials = trial_conversion(book, start=date(2024, 1, 1), end=date(2024, 2, 1))
    assert trials.value is None
    assert trials.value == trials.rate


def test_old_book_shapes_still_work_without_warnings() -> None:
    sub = Subscription.start(
        id="s", customer_id="c1", at=t(2024, 1, 1), price=usd(10), cycle=BillingCycle.MONTHLY
    )
    book = Book.of(customers=[Customer(id="c1", registered_at=t(2023, 1, 1))], subscriptions=[sub])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mrr(book, at=AT, currency="USD") == usd(10)
        assert arr(book, at=AT, currency="USD") == usd(120)
        assert arpa(book, at=AT, currency="USD").value == usd(10)
        assert mrr_by_product(book, at=AT, currency="USD").total == usd(10)
        assert mrr_by_billing_cycle(book, at=AT, currency="USD").total == usd(10)
        assert referral_sources(book, at=AT, currency="USD")[0].mrr == usd(10)


def _churn_book() -> Book:
    subs = [
        Subscription.start(
            id=f"s{i}",
            customer_id=f"c{i}",
            at=t(2024, 1, 1),
            price=usd(p),
            cycle=BillingCycle.MONTHLY,
        )
        for i, p in enumerate([40, 30, 20, 10])
    ]
    subs[1] = subs[1].cancel(t(2024, 3, 12), ends_at=t(2024, 3, 12))
    return Book.of(
        customers=[Customer(id=f"c{i}", registered_at=t(2023, 1, 1)) for i in range(4)],
        subscriptions=subs,
    )


def test_period_metrics_take_a_book_as_well() -> None:
    book = _churn_book()
    a = analyse(book, currency="USD")
    start, end = t(2024, 3, 1), t(2024, 4, 1)
    assert customer_churn_rate(book, start, end, currency="USD") == customer_churn_rate(
        a, start, end
    )
    assert mrr_churn(book, start, end, currency="USD") == mrr_churn(a, start, end)
    assert quick_ratio(book, start, end, currency="USD") == quick_ratio(a, start, end)
    assert revenue_retention(book, start, end, currency="USD") == revenue_retention(a, start, end)
    assert customers_at(book, end, currency="USD") == customers_at(a, end) == 3
    assert len(churn_series(book, start, end, currency="USD")) == 1
    assert cohorts(book, t(2024, 1, 1), end, currency="USD")[0].size == 4
    stripe = MetricsPolicy.stripe()
    assert customer_churn_rate(book, start, end, currency="USD", policy=stripe) == (
        customer_churn_rate(analyse(book, currency="USD", policy=stripe), start, end)
    )
    with pytest.raises(ValidationError, match="currency"):
        customer_churn_rate(book, start, end)


def test_dashboard_and_customer_value_follow_the_analysis(inv: tuple[Book, MrrAnalysis]) -> None:
    book, a = inv
    d = dashboard(book, as_of=AT, analysis=a)
    assert (d.currency, d.mrr, d.arr) == ("USD", usd(280), usd(3360))
    with pytest.raises(ValidationError, match="policy"):
        dashboard(book, as_of=AT, analysis=a, policy=MetricsPolicy.stripe())
    # Subscriber since: the first invoice-sourced MRR, which the book form cannot see.
    assert customer_value(book, "c1", as_of=AT, currency="USD").subscriber_since is None
    value = customer_value(book, "c1", as_of=AT, analysis=a)
    assert value.subscriber_since == t(2024, 1, 1)
    assert [v.subscriber_since for v in customer_values(book, as_of=AT, analysis=a)] == [
        t(2024, 1, 1),
        t(2024, 2, 1),
        t(2024, 3, 10),
        t(2024, 2, 1),
    ]
