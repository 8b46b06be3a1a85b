"""The strategies promise what their docstrings say (other suites rely on it)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import babel.numbers
from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    ChangeKind,
    CreditEntry,
    Customer,
    Discount,
    DiscountDuration,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Product,
    Subscription,
    Transaction,
    TransactionKind,
)
from revcrm.testing import strategies as S

CLDR = frozenset(babel.numbers.list_currencies())


@given(S.currencies())
def test_default_currencies(code: str) -> None:
    assert code in S.DEFAULT_CURRENCIES


@given(S.amounts(min_value="-5", max_value="5", places=3))
def test_amounts_respect_bounds_and_places(x: Decimal) -> None:
    assert Decimal(-5) <= x <= 5
    assert x.as_tuple().exponent >= -3  # type: ignore[operator]


@given(S.amounts(min_value="0.5", max_value="0.7", places=1))
def test_amounts_in_a_narrow_range(x: Decimal) -> None:
    assert x in (Decimal("0.5"), Decimal("0.6"), Decimal("0.7"))


@given(S.money(S.currencies(any_cldr=True)))
def test_money_on_the_minor_unit_grid(m: Money) -> None:
    assert m.currency in CLDR
    assert m.amount.as_tuple().exponent >= -m.minor_units  # type: ignore[operator]
    assert m.amount >= 0


@given(S.moments(), S.moments(any_offset=True))
def test_moments_are_aware_and_bounded(a: datetime, b: datetime) -> None:
    assert a.tzinfo is UTC
    assert b.utcoffset() is not None
    for m in (a, b):
        assert S.EARLIEST <= m <= S.LATEST


@given(S.billing_cycles(named_only=True))
def test_named_cycles(cycle: BillingCycle) -> None:
    assert cycle in S.NAMED_CYCLES


@given(S.discounts("JPY", after=datetime(2024, 1, 1, tzinfo=UTC)))
def test_discounts(d: Discount) -> None:
    if d.amount_off is not None:
        assert d.amount_off.currency == "JPY"
        assert d.amount_off.amount > 0
    if d.duration is DiscountDuration.REPEATING:
        assert d.ends_at is not None
        assert d.ends_at > datetime(2024, 1, 1, tzinfo=UTC)


@given(S.subscriptions("c1", currency="KWD", max_changes=8))
def test_subscriptions(sub: Subscription) -> None:
    assert sub.customer_id == "c1"
    assert sub.currency == "KWD"
    assert sub.history[0].kind is ChangeKind.STARTED
    assert all(a.at <= b.at for a, b in itertools.pairwise(sub.history))
    assert sub.history[-1].at <= S.LATEST
    assert len(sub.history) <= 1 + 8


@given(st.data())
def test_subscriptions_use_the_plans_offered(data: st.DataObject) -> None:
    plan = data.draw(S.plans(product_id="prod", currency="EUR", recurring=True))
    sub = data.draw(S.subscriptions(currency="EUR", plans=[plan]))
    for s in sub.states:
        if s.plan_id is not None:
            assert s.plan_id == plan.id
            assert s.product_id == "prod"


@given(S.subscriptions().flatmap(lambda s: st.tuples(st.just(s), S.invoices(subscription=s))))
def test_invoices_follow_their_subscription(pair: tuple[Subscription, Invoice]) -> None:
    sub, invoice = pair
    assert invoice.customer_id == sub.customer_id
    assert invoice.currency == sub.currency
    for line in invoice.lines:
        if line.kind is LineKind.RECURRING:
            assert line.subscription_id == sub.id
            assert line.period_start is not None
            assert line.period_end is not None
            assert invoice.issued_at == line.period_start
            assert any(
                s.cycle.advance(line.period_start, 1) == line.period_end
                and s.list_amount() == line.amount
                for s in sub.states
            )
    if invoice.status is InvoiceStatus.PAID:
        assert invoice.paid_at is not None
        assert invoice.paid_at >= invoice.issued_at


@given(S.books(max_customers=3))
def test_books_are_consistent(book: Book) -> None:
    codes = {s.currency for s in book.subscriptions} | {i.currency for i in book.invoices}
    codes |= {t.amount.currency for t in book.transactions} | {p.price.currency for p in book.plans}
    assert 1 <= len(book.customers) <= 3
    for a, b in itertools.permutations(codes, 2):
        assert book.fx.rate(a, b, date(2014, 1, 1)) > 0
    by_id = {i.id: i for i in book.invoices}
    for t in book.transactions:
        if t.invoice_id is not None and t.kind is TransactionKind.PAYMENT:
            assert t.amount == by_id[t.invoice_id].total
    for s in book.subscriptions:
        assert s.started_at >= book.customer(s.customer_id).registered_at


@given(S.books(currencies=("GBP", "JPY"), single_currency=True))
def test_single_currency_books(book: Book) -> None:
    codes = {s.currency for s in book.subscriptions} | {i.currency for i in book.invoices}
    assert len(codes) <= 1
    assert codes <= {"GBP", "JPY"}


@given(S.fx_rates(("USD", "EUR"), since=date(2020, 1, 1)))
def test_fx_rates_start_on_since(fx: object) -> None:
    from revcrm import FxRates

    assert isinstance(fx, FxRates)
    assert fx.rate("USD", "EUR", date(2020, 1, 1)) > 0
    assert fx.rate("EUR", "USD", date(2020, 1, 1)) > 0


@given(S.unknown_currency_codes())
def test_unknown_codes_are_unknown(code: str) -> None:
    assert code not in CLDR


@given(S.negative_money(), S.negative_amounts(), S.non_positive_quantities())
def test_negative_values(m: Money, x: Decimal, q: int) -> None:
    assert m.amount < 0
    assert x < 0
    assert q <= 0


@given(S.naive_datetimes())
def test_naive(d: datetime) -> None:
    assert d.tzinfo is None


@given(
    S.customers(),
    S.products(),
    S.credit_entries("c1", invoice_ids=["i1"]),
    S.transactions("c1", currency="KWD"),
    S.invoice_lines("JPY"),
)
def test_free_standing_records(
    customer: Customer, product: Product, credit: CreditEntry, txn: Transaction, line: InvoiceLine
) -> None:
    assert customer.id.startswith("cus_")
    if customer.last_login_at is not None:
        assert customer.last_login_at >= customer.registered_at
    assert product.id.startswith("prod_")
    assert credit.customer_id == "c1"
    assert credit.invoice_id in (None, "i1")
    assert not credit.amount.is_zero()
    assert txn.amount.currency == "KWD"
    assert txn.amount.amount > 0
    assert line.amount.currency == "JPY"
    if line.kind is LineKind.RECURRING:
        assert line.period_start is not None


def test_bad_options_are_reported() -> None:
    import pytest

    with pytest.raises(ValueError, match="min_value"):
        S.amounts(min_value=2, max_value=1)
    with pytest.raises(ValueError, match="places"):
        S.amounts(places=-1)
    with pytest.raises(ValueError, match="at least one"):
        S.currencies(among=())
    with pytest.raises(ValueError, match="at least one"):
        S.books(currencies=())
    with pytest.raises(ValueError, match="no cycle"):
        S.billing_cycles(named_only=True, units=[], max_count=1)
    assert S.minor_units("KWD") == 3
    assert timedelta(0) < S.LATEST - S.EARLIEST
