"""Revenue analytics: MRR and cash by product, billing cycle and payment method; top
products; referral sources. Worked examples, then totals on generated books."""

from __future__ import annotations

import decimal
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    FxRates,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Plan,
    Product,
    Subscription,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm.errors import ValidationError
from revcrm.metrics import cash_revenue, mrr
from revcrm.metrics._economics import ratio
from revcrm.metrics._revenue import (
    Breakdown,
    cash_revenue_by_billing_cycle,
    cash_revenue_by_payment_method,
    cash_revenue_by_product,
    cycle_key,
    mrr_by_billing_cycle,
    mrr_by_product,
    referral_sources,
    top_products_by_customers,
    top_products_by_revenue,
)
from revcrm.testing import strategies as rs
from tests._builders import payment

from ._build import customer, eur, monthly, t, usd

FX = FxRates.from_rates([(date(2020, 1, 1), "EUR", "USD", "1.10")])
PRODUCTS = [
    Product(id="web", name="Web hosting"),
    Product(id="vps", name="VPS"),
    Product(id="dns", name="Domains"),
]
PLANS = [
    Plan(
        id="vps-yearly",
        product_id="vps",
        name="VPS yearly",
        price=usd(1200),
        cycle=BillingCycle.ANNUAL,
    )
]


def _mrr_book() -> Book:
    subs = [
        monthly("s1", "a", usd(10), product_id="web"),
        monthly("s2", "b", usd(20), product_id="web"),
        monthly("s3", "b", eur(100), product_id="vps", cycle=BillingCycle.MONTHLY),
        monthly("s4", "c", usd(2400), product_id="vps", cycle=BillingCycle.BIENNIAL),
        monthly("s5", "c", usd(240), product_id="dns", cycle=BillingCycle.months(12)),
        monthly("s6", "d", usd(5)),  # no product
        monthly("s7", "e", usd(0), product_id="web"),  # free: no MRR, not a paying customer
    ]
    # On the VPS yearly plan, without a product: the product comes from the plan.
    plan_sub = Subscription.start(
        id="s8",
        customer_id="a",
        at=t(2024, 1, 1),
        price=usd(1200),
        cycle=BillingCycle.ANNUAL,
        plan_id="vps-yearly",
    )
    sources = [("a", "google"), ("b", "google"), ("c", "partner"), ("d", None), ("e", "google")]
    return Book.of(
        customers=[customer(c, source=s) for c, s in sources],
        products=PRODUCTS,
        plans=PLANS,
        subscriptions=[*subs, plan_sub],
        fx=FX,
    )


AT = t(2024, 6, 1)


def test_mrr_by_product() -> None:
    book = _mrr_book()
    result = mrr_by_product(book, at=AT, currency="USD")
    # web 10 + 20; vps 110 (100 EUR) + 100 (biennial 2400 / 24) + 100 (plan, 1200 / 12); dns 20.
    assert result.amounts() == {"vps": usd(310), "web": usd(30), "dns": usd(20), None: usd(5)}
    assert result.total == mrr(book, at=AT, currency="USD")
    assert [r.key for r in result.rows] == ["vps", "web", "dns", None]
    vps = result.row("vps")
    assert vps is not None
    assert (vps.label, vps.customers) == ("VPS", 3)
    web = result.row("web")
    assert web is not None
    assert web.customers == 2  # the free subscription of e does not count
    none = result.row(None)
    assert none is not None
    assert none.label == "unattributed"
    assert result.row("nothing") is None
    assert vps.share == ratio(310, 365)
    assert (result.dimension, result.measure, result.currency) == ("product", "mrr", "USD")


def test_mrr_by_billing_cycle_names_long_cycles() -> None:
    result = mrr_by_billing_cycle(_mrr_book(), at=AT, currency="USD")
    # Twelve months is the annual cycle; biennial divided by 24, not counted as monthly.
    assert result.amounts() == {
        "monthly": usd(145),
        "annual": usd(120),
        "biennial": usd(100),
    }


def test_cycle_keys() -> None:
    assert cycle_key(BillingCycle.months(12)) == "annual"
    assert cycle_key(BillingCycle.months(24)) == "biennial"
    assert cycle_key(BillingCycle.months(6)) == "semiannual"
    assert cycle_key(BillingCycle.days(14)) == "2 weeks"
    assert cycle_key(BillingCycle.months(4)) == "4 months"


def test_empty_breakdown() -> None:
    result = mrr_by_product(_mrr_book(), at=t(2020, 1, 1), currency="USD")
    assert result.rows == ()
    assert result.total == usd(0)


# -- cash -------------------------------------------------------------------------------------


def _line(amount: Money, **kw: object) -> InvoiceLine:
    return InvoiceLine(amount=amount, **kw)  # type: ignore[arg-type]


def _cash_book() -> Book:
    sub = monthly(
        "s1", "a", usd(30), at=t(2024, 1, 1), product_id="web", cycle=BillingCycle.QUARTERLY
    )
    inv1 = Invoice(
        id="inv1",
        customer_id="a",
        currency="USD",
        issued_at=t(2024, 1, 1),
        due_date=date(2024, 1, 10),
        status=InvoiceStatus.PAID,
        paid_at=t(2024, 1, 2),
        lines=(
            _line(
                usd(60),
                kind=LineKind.RECURRING,
                subscription_id="s1",
                period_start=t(2024, 1, 1),
                period_end=t(2024, 4, 1),
            ),
            _line(usd(15), kind=LineKind.ONE_OFF, product_id="web", description="setup"),
            _line(
                usd(20),
                kind=LineKind.RECURRING,
                product_id="dns",
                period_start=t(2024, 1, 1),
                period_end=t(2025, 1, 1),
                tax=usd(5),
            ),
        ),
    )
    inv2 = Invoice(
        id="inv2",
        customer_id="b",
        currency="EUR",
        issued_at=t(2024, 1, 5),
        due_date=date(2024, 1, 10),
        status=InvoiceStatus.PAID,
        lines=tuple(
            _line(
                eur(10),
                kind=LineKind.RECURRING,
                product_id="vps",
                period_start=t(2024, 1, 5),
                period_end=t(2024, 1, 19),
            )
            for _ in range(3)
        ),
    )
    inv3 = Invoice(
        id="inv3",
        customer_id="b",
        currency="EUR",
        issued_at=t(2024, 1, 5),
        due_date=date(2024, 1, 10),
        status=InvoiceStatus.PAID,
        lines=(_line(eur(0), kind=LineKind.ONE_OFF),),
    )

    def txn(
        tid: str,
        cid: str,
        amount: Money,
        at: datetime,
        method: str,
        *,
        kind: str = "payment",
        status: str = "succeeded",
        invoice_id: str | None = None,
    ) -> Transaction:
        return Transaction(
            id=tid,
            customer_id=cid,
            kind=TransactionKind(kind),
            status=TransactionStatus(status),
            amount=amount,
            method=method,
            at=at,
            invoice_id=invoice_id,
        )

    transactions = [
        txn("t1", "a", usd(100), t(2024, 1, 2), "stripe", invoice_id="inv1"),
        txn("t2", "a", usd(20), t(2024, 1, 20), "stripe", invoice_id="inv1", kind="refund"),
        txn("t3", "b", eur(100), t(2024, 1, 6), "paypal", invoice_id="inv2"),
        txn("t4", "b", usd(7), t(2024, 1, 7), "credit"),  # no invoice: unattributed
        txn("t5", "b", eur(50), t(2024, 1, 8), "PayPal", invoice_id="inv3"),  # zero invoice
        txn("t6", "a", usd(999), t(2024, 1, 9), "stripe", status="failed"),
        txn("t7", "a", usd(999), t(2024, 2, 1), "stripe"),  # outside the period
    ]
    return Book.of(
        customers=[customer("a", source="google"), customer("b")],
        products=PRODUCTS,
        subscriptions=[sub],
        invoices=[inv1, inv2, inv3],
        transactions=transactions,
        fx=FX,
    )


JAN, FEB = date(2024, 1, 1), date(2024, 2, 1)


def test_cash_by_product_splits_payments_over_invoice_lines() -> None:
    result = cash_revenue_by_product(_cash_book(), start=JAN, end=FEB, currency="USD")
    # t1 100 over inv1 lines 60 / 15 / 25 (tax included): web 75, dns 25; the refund of 20
    # takes back 15 and 5. t3 110 USD over three equal lines of vps. t4 7 and t5 55 have
    # nothing to split over.
    assert result.amounts() == {"vps": usd(110), "web": usd(60), None: usd(62), "dns": usd(20)}
    assert (
        result.total
        == cash_revenue(_cash_book().transactions, JAN, FEB, currency="USD", book=_cash_book()).net
    )
    web = result.row("web")
    assert web is not None
    assert (web.label, web.customers) == ("Web hosting", 1)


def test_thirds_add_up_exactly() -> None:
    vps = cash_revenue_by_product(_cash_book(), start=JAN, end=FEB, currency="USD").row("vps")
    assert vps is not None
    assert vps.amount == usd(110)  # 36.66... + 36.66... + the remainder


def test_cash_by_billing_cycle() -> None:
    result = cash_revenue_by_billing_cycle(_cash_book(), start=JAN, end=FEB, currency="USD")
    # The subscription's line is quarterly (from the subscription), the dns line annual (a
    # 12-month service period), the two-week vps lines "2 weeks", the setup fee one-off.
    assert result.amounts() == {
        "2 weeks": usd(110),
        None: usd(62),
        "quarterly": usd(48),
        "annual": usd(20),
        "one_off": usd(12),
    }


def test_cash_by_payment_method() -> None:
    result = cash_revenue_by_payment_method(_cash_book(), start=JAN, end=FEB, currency="USD")
    assert result.amounts() == {"paypal": usd(165), "stripe": usd(80), "credit": usd(7)}
    assert result.total == usd(252)
    paypal = result.row("paypal")
    assert paypal is not None
    assert paypal.share == ratio(165, 252)


def test_top_products() -> None:
    by_revenue = top_products_by_revenue(_cash_book(), start=JAN, end=FEB, currency="USD")
    assert [r.key for r in by_revenue] == ["vps", "web", "dns"]
    assert [
        r.key
        for r in top_products_by_revenue(_cash_book(), start=JAN, end=FEB, currency="USD", limit=1)
    ] == ["vps"]
    by_customers = top_products_by_customers(_mrr_book(), at=AT, currency="USD")
    assert [(r.key, r.customers) for r in by_customers] == [("vps", 3), ("web", 2), ("dns", 1)]
    with pytest.raises(ValidationError):
        top_products_by_customers(_mrr_book(), at=AT, currency="USD", limit=0)


def test_period_must_not_run_backwards() -> None:
    with pytest.raises(ValidationError):
        cash_revenue_by_product(
            _cash_book(), start=date(2024, 2, 1), end=date(2024, 1, 1), currency="USD"
        )


# -- referral sources ---------------------------------------------------------------------------


def test_referral_sources() -> None:
    book = Book.of(
        customers=[
            customer("a", source="google"),
            customer("b", source="google"),
            customer("c", source="google"),
            customer("d"),
            customer("late", source="google", registered=t(2025, 1, 1)),
        ],
        subscriptions=[monthly("s1", "a", usd(30)), monthly("s2", "d", usd(10))],
        transactions=[
            payment("t1", "a", usd(90), t(2024, 3, 1)),
            payment("t2", "b", usd(30), t(2024, 2, 1)),
            payment("t3", "b", usd(30), t(2024, 2, 2), kind="refund"),
            payment("t4", "c", usd(15), t(2024, 7, 1)),
        ],
    )
    google, none = referral_sources(book, at=AT, currency="USD")
    assert google.source == "google"
    assert (google.customers, google.paying_customers) == (3, 1)  # "late" registers after AT
    assert google.mrr == usd(30)
    assert google.arpa == usd(30)
    assert google.conversion_rate == ratio(1, 3)
    assert google.net_payments == usd(90)  # b's payment was refunded; c pays after AT
    assert google.ltv == usd(30)  # 90 over three customers
    assert none.source is None
    assert (none.customers, none.paying_customers) == (1, 1)
    assert none.conversion_rate == 1
    assert none.net_payments == usd(0)
    assert none.ltv == usd(0)

    seen: list[tuple[str | None, frozenset[str]]] = []

    def by_churn(source: str | None, ids: frozenset[str]) -> Money | None:
        seen.append((source, ids))
        return None if source is None else usd(600)

    custom = referral_sources(book, at=AT, currency="USD", ltv=by_churn)
    assert [r.ltv for r in custom] == [usd(600), None]
    assert seen == [("google", frozenset({"a", "b", "c"})), (None, frozenset({"d"}))]


# -- totals on generated books --------------------------------------------------------------


def _adds_up(b: Breakdown) -> None:
    total = Money.zero(b.currency)
    for r in b.rows:
        total += r.amount
        assert r.customers >= 0
    assert total == b.total
    keys = [r.key for r in b.rows]
    assert len(keys) == len(set(keys))
    if not b.total.is_zero():
        shares = [r.share for r in b.rows if r.share is not None]
        with decimal.localcontext(prec=200):
            # Each share carries 40 significant digits; refunds can make some exceed 1.
            error = abs(sum(shares, Decimal(0)) - 1)
            assert error <= max([Decimal(1), *map(abs, shares)]) * len(shares) * Decimal("1e-39")
    else:
        assert all(r.share is None for r in b.rows)


@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), st.integers(1, 1500))
def test_cash_breakdowns_add_up_to_cash_revenue(book: Book, start: datetime, days: int) -> None:
    end = start + timedelta(days=days)
    cash = cash_revenue(book.transactions, start, end, currency="EUR", book=book)
    net = cash.gross - cash.refunds
    for fn in (
        cash_revenue_by_product,
        cash_revenue_by_billing_cycle,
        cash_revenue_by_payment_method,
    ):
        b = fn(book, start=start, end=end, currency="EUR")
        _adds_up(b)
        assert b.total == net


@given(rs.books(currencies=["USD", "EUR"]), rs.moments())
def test_mrr_breakdowns_add_up_to_mrr(book: Book, at: datetime) -> None:
    total = mrr(book, at=at, currency="USD")
    for fn in (mrr_by_product, mrr_by_billing_cycle):
        b = fn(book, at=at, currency="USD")
        _adds_up(b)
        assert b.total == total
        assert all(r.amount.amount > 0 for r in b.rows)


@given(rs.books(single_currency=True, currencies=["USD"]), rs.moments())
def test_referral_sources_partition_the_customers(book: Book, at: datetime) -> None:
    rows = referral_sources(book, at=at, currency="USD")
    registered = [c for c in book.customers if c.registered_at <= at]
    assert sum(r.customers for r in rows) == len(registered)
    total = usd(0)
    for r in rows:
        total += r.mrr
        assert 0 <= r.paying_customers <= r.customers
        assert r.conversion_rate is not None
        assert 0 <= r.conversion_rate <= 1
        assert r.ltv is not None
        error = (r.ltv * r.customers - r.net_payments).amount
        assert abs(error) <= abs(r.net_payments.amount) * Decimal("1e-38")
    # Subscriptions start after their customer registers, so no MRR is left out.
    assert total == mrr(book, at=at, currency="USD")
