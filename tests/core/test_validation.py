"""Every bad value is rejected with a ValidationError naming the field (floats in Money
itself are a TypeError); nothing half-built survives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    Customer,
    Discount,
    DiscountDuration,
    Invoice,
    InvoiceLine,
    Money,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    Transaction,
)
from revcrm.errors import ValidationError
from revcrm.metrics import mrr, subscription_mrr
from revcrm.testing import strategies as S
from tests._builders import usd

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 2, 1, tzinfo=UTC)


def sub(**kw: Any) -> Subscription:
    args: dict[str, Any] = {
        "id": "s1",
        "customer_id": "c1",
        "at": T0,
        "price": usd("10"),
        "cycle": BillingCycle.MONTHLY,
    }
    args.update(kw)
    return Subscription.start(**args)


def plan(**kw: Any) -> Plan:
    args: dict[str, Any] = {
        "id": "p1",
        "product_id": "prod",
        "name": "Gold",
        "price": usd(10),
        "cycle": BillingCycle.MONTHLY,
    }
    args.update(kw)
    return Plan(**args)


def line(**kw: Any) -> InvoiceLine:
    args: dict[str, Any] = {"kind": "one_off", "amount": usd(10)}
    args.update(kw)
    return InvoiceLine(**args)


def invoice(**kw: Any) -> Invoice:
    args: dict[str, Any] = {
        "id": "i1",
        "customer_id": "c1",
        "currency": "USD",
        "issued_at": T0,
        "due_date": date(2024, 1, 15),
        "status": "open",
        "lines": [line()],
    }
    args.update(kw)
    return Invoice(**args)


def transaction(**kw: Any) -> Transaction:
    args: dict[str, Any] = {
        "id": "t1",
        "customer_id": "c1",
        "kind": "payment",
        "status": "succeeded",
        "amount": usd(10),
        "method": "card",
        "at": T0,
    }
    args.update(kw)
    return Transaction(**args)


def credit(**kw: Any) -> CreditEntry:
    args: dict[str, Any] = {
        "id": "cr1",
        "customer_id": "c1",
        "amount": usd(5),
        "reason": "goodwill",
        "at": T0,
    }
    args.update(kw)
    return CreditEntry(**args)


def customer(**kw: Any) -> Customer:
    args: dict[str, Any] = {"id": "c1", "registered_at": T0}
    args.update(kw)
    return Customer(**args)


def assert_rejected(build: Callable[[], object], field: str, value: object = None) -> None:
    with pytest.raises(ValidationError) as e:
        build()
    assert e.value.field == field, e.value
    if value is not None:
        assert e.value.value == value


def test_the_valid_builders_are_valid() -> None:
    # Each negative test below changes one value of these.
    sub(), plan(), line(), invoice(), transaction(), credit(), customer()


# -- negative prices ---------------------------------------------------------------------------

NEGATIVE_MONEY_FIELDS: list[tuple[str, Callable[[Money], object]]] = [
    ("price", lambda m: sub(price=m)),
    ("price", lambda m: sub().change_plan(T1, price=m)),
    ("price", lambda m: sub().cancel(T1).reactivate(T1, price=m)),
    ("price", lambda m: plan(price=m)),
    ("setup_fee", lambda m: plan(setup_fee=m)),
    ("discount", lambda m: line(discount=m)),
    ("tax", lambda m: line(tax=m)),
    ("amount", lambda m: transaction(amount=m)),
    ("amount_off", lambda m: Discount.amount(m)),
]


@pytest.mark.parametrize(("field", "build"), NEGATIVE_MONEY_FIELDS)
@given(m=S.negative_money("USD"))
def test_negative_amounts_are_rejected(
    field: str, build: Callable[[Money], object], m: Money
) -> None:
    assert_rejected(lambda: build(m), field, m)


def test_zero_is_a_valid_price_but_not_a_payment() -> None:
    assert plan(price=usd(0)).price.is_zero()
    assert sub(price=usd(0)).current.price.is_zero()
    assert_rejected(lambda: transaction(amount=usd(0)), "amount")
    assert_rejected(lambda: credit(amount=usd(0)), "amount")
    assert_rejected(lambda: Discount.amount(usd(0)), "amount_off")


@pytest.mark.parametrize("percent", ["0", "-5", "100.01", 101])
def test_percent_off_must_be_in_range(percent: str | int) -> None:
    assert_rejected(lambda: Discount.percent(percent), "percent_off")


# -- quantities --------------------------------------------------------------------------------

QUANTITY_FIELDS: list[Callable[[Any], object]] = [
    lambda q: sub(quantity=q),
    lambda q: sub().change_plan(T1, quantity=q),
    lambda q: line(quantity=q),
]


@pytest.mark.parametrize("build", QUANTITY_FIELDS)
@given(q=S.non_positive_quantities())
def test_quantity_must_be_positive(build: Callable[[int], object], q: int) -> None:
    assert_rejected(lambda: build(q), "quantity", q)


@pytest.mark.parametrize("build", QUANTITY_FIELDS)
@given(q=S.invalid_quantities())
def test_quantity_must_be_a_whole_number(build: Callable[[object], object], q: object) -> None:
    assert_rejected(lambda: build(q), "quantity")


# -- ends before starts ------------------------------------------------------------------------


@given(S.moments(), st.timedeltas(timedelta(0), timedelta(days=400)))
def test_invoice_line_period_must_end_after_it_starts(start: datetime, back: timedelta) -> None:
    end = start - back
    assert_rejected(
        lambda: line(kind="recurring", period_start=start, period_end=end), "period_end", end
    )


def test_invoice_line_periods_come_in_pairs() -> None:
    assert_rejected(lambda: line(period_start=T0), "period_end")
    assert_rejected(lambda: line(period_end=T1), "period_end")
    assert_rejected(lambda: line(kind="recurring"), "period_start")


@given(S.moments(), st.timedeltas(timedelta(microseconds=1), timedelta(days=400)))
def test_trial_cannot_end_before_the_start(start: datetime, back: timedelta) -> None:
    assert_rejected(lambda: sub(at=start, trial_end=start - back), "subscription[s1].trial_end")


@given(S.subscriptions(id="s9"), st.timedeltas(timedelta(microseconds=1), timedelta(days=400)))
def test_service_cannot_end_before_the_cancellation(s: Subscription, back: timedelta) -> None:
    if s.current.status.is_ended:
        return
    at = s.current.as_of
    assert_rejected(lambda: s.cancel(at, ends_at=at - back), "subscription[s9].ends_at")


def test_invoice_due_before_issue() -> None:
    assert_rejected(lambda: invoice(due_date=date(2023, 12, 31)), "due_date", date(2023, 12, 31))


# -- currencies --------------------------------------------------------------------------------

CURRENCY_FIELDS: list[tuple[str, Callable[[str], object]]] = [
    ("currency", lambda c: Money("1", c)),
    ("currency", lambda c: Money.zero(c)),
    ("currency", lambda c: invoice(currency=c, lines=[])),
    ("currency", lambda c: mrr(Book.of(), at=T0, currency=c)),
]


@pytest.mark.parametrize(("field", "build"), CURRENCY_FIELDS)
@given(code=S.unknown_currency_codes())
def test_unknown_currency_codes(field: str, build: Callable[[str], object], code: str) -> None:
    assert_rejected(lambda: build(code), field, code)


def test_mixed_currencies_inside_records() -> None:
    eur = Money("1", "EUR")
    assert_rejected(lambda: invoice(lines=[line(amount=eur)]), "lines[0].amount")
    assert_rejected(lambda: line(tax=eur), "tax")
    assert_rejected(lambda: line(discount=eur), "discount")
    assert_rejected(lambda: plan(setup_fee=eur), "setup_fee")
    assert_rejected(lambda: line(discount=usd(11)), "discount")  # more than the amount


# -- naive datetimes ---------------------------------------------------------------------------

MOMENT_FIELDS: list[tuple[str, Callable[[datetime], object]]] = [
    ("registered_at", lambda d: customer(registered_at=d)),
    ("last_login_at", lambda d: customer(last_login_at=d)),
    ("at", lambda d: sub(at=d)),
    ("trial_end", lambda d: sub(trial_end=d)),
    ("billing_anchor", lambda d: sub(billing_anchor=d)),
    ("at", lambda d: sub().change_plan(d, price=usd(1))),
    ("at", lambda d: sub().set_status(d, SubscriptionStatus.PAST_DUE)),
    ("at", lambda d: sub().cancel(d)),
    ("ends_at", lambda d: sub().cancel(T1, ends_at=d)),
    ("at", lambda d: sub().state_at(d)),
    ("at", lambda d: subscription_mrr(sub(), d)),
    ("at", lambda d: mrr(Book.of(), at=d, currency="USD")),
    ("ends_at", lambda d: Discount.percent(5, DiscountDuration.REPEATING, ends_at=d)),
    ("period_start", lambda d: line(kind="recurring", period_start=d, period_end=T1)),
    ("period_end", lambda d: line(kind="recurring", period_start=T0, period_end=d)),
    ("issued_at", lambda d: invoice(issued_at=d)),
    ("paid_at", lambda d: invoice(paid_at=d)),
    ("at", lambda d: transaction(at=d)),
    ("at", lambda d: credit(at=d)),
    ("at", lambda d: Book.of().credit_balance("c1", "USD", at=d)),
]


@pytest.mark.parametrize(("field", "build"), MOMENT_FIELDS)
@given(d=S.naive_datetimes())
def test_naive_datetimes_are_rejected(
    field: str, build: Callable[[datetime], object], d: datetime
) -> None:
    assert_rejected(lambda: build(d), field, d)


@pytest.mark.parametrize(("field", "build"), MOMENT_FIELDS[:3])
def test_dates_are_not_moments(field: str, build: Callable[[Any], object]) -> None:
    assert_rejected(lambda: build(date(2024, 1, 1)), field)


def test_due_date_is_a_date_not_a_datetime() -> None:
    assert_rejected(lambda: invoice(due_date=T1), "due_date")


@given(S.moments(any_offset=True))
def test_aware_moments_in_any_zone_are_stored_in_utc(d: datetime) -> None:
    c = customer(registered_at=d)
    assert c.registered_at == d
    assert c.registered_at.tzinfo is UTC


# -- floats ------------------------------------------------------------------------------------

FLOAT_MONEY_FIELDS: list[tuple[str, Callable[[float], object]]] = [
    ("price", lambda f: sub(price=f)),
    ("price", lambda f: plan(price=f)),
    ("setup_fee", lambda f: plan(setup_fee=f)),
    ("amount", lambda f: line(amount=f)),
    ("tax", lambda f: line(tax=f)),
    ("amount", lambda f: transaction(amount=f)),
    ("amount", lambda f: credit(amount=f)),
    ("amount_off", lambda f: Discount(amount_off=f)),  # type: ignore[arg-type]
    ("custom_attributes[score]", lambda f: customer(custom_attributes={"score": f})),
]


@pytest.mark.parametrize(("field", "build"), FLOAT_MONEY_FIELDS)
@given(f=S.float_amounts())
def test_floats_where_money_belongs(field: str, build: Callable[[float], object], f: float) -> None:
    assert_rejected(lambda: build(f), field)


@given(S.float_amounts())
def test_floats_in_amounts_are_type_errors(f: float) -> None:
    with pytest.raises(TypeError):
        Money(f, "USD")
    with pytest.raises(TypeError):
        Discount.percent(f)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _ = usd(1) * f


# -- other fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "build"),
    [
        ("customer.id", lambda: customer(id="")),
        ("customer.id", lambda: customer(id="  ")),
        ("product.id", lambda: Product(id="", name="x")),
        ("plan.id", lambda: plan(id=None)),
        ("invoice.id", lambda: invoice(id="")),
        ("transaction.id", lambda: transaction(id="")),
        ("credit.id", lambda: credit(id="")),
        ("email", lambda: customer(email="not an email")),
        ("email", lambda: customer(email="a@b")),
        ("custom_attributes[x]", lambda: customer(custom_attributes={"x": [1]})),
        ("kind", lambda: line(kind="monthly")),
        ("status", lambda: invoice(status="settled")),
        ("kind", lambda: transaction(kind="chargeback")),
        ("status", lambda: transaction(status="ok")),
        ("method", lambda: transaction(method=" ")),
        ("reason", lambda: credit(reason="")),
        ("reason", lambda: credit(reason=None)),
        ("amount", lambda: credit(amount="5")),
        ("price", lambda: plan(price=None)),
        ("amount", lambda: line(amount=None)),
        ("discount", lambda: Discount()),
        ("discount", lambda: Discount(percent_off=5, amount_off=usd(1))),
        ("ends_at", lambda: Discount.percent(5, DiscountDuration.REPEATING)),
        ("ends_at", lambda: Discount.percent(5, DiscountDuration.FOREVER, ends_at=T1)),
        ("duration", lambda: Discount.percent(5, "weekly")),  # type: ignore[arg-type]
        ("amount_off", lambda: Discount(amount_off="5")),  # type: ignore[arg-type]
    ],
)
def test_other_bad_values(field: str, build: Callable[[], object]) -> None:
    assert_rejected(build, field)


def test_valid_optional_fields() -> None:
    c = customer(
        email=" Ann@Example.com ",
        custom_attributes={"seats": 3, "vip": True, "mrr": Decimal("9.5")},
    )
    assert c.email == "Ann@Example.com"
    assert customer(email="").email is None
    assert dict(c.custom_attributes) == {"seats": 3, "vip": True, "mrr": Decimal("9.5")}
    assert transaction(method=" PayPal ").method == "paypal"


@given(S.invalid_amount_strings())
def test_amount_strings_in_discounts(text: str) -> None:
    assert_rejected(lambda: Discount.percent(text), "percent_off")


def test_subscription_change_fields_name_themselves() -> None:
    assert_rejected(lambda: SubscriptionChange(kind="plan_changed", at=T0, price="10"), "price")
    assert_rejected(lambda: SubscriptionChange(kind="plan_changed", at=T0, quantity=0), "quantity")


def test_custom_attributes_hold_dates_not_datetimes() -> None:
    from revcrm import Customer

    moment = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as e:
        Customer(id="c", registered_at=moment, custom_attributes={"since": moment})
    assert e.value.field == "custom_attributes[since]"
    ok = Customer(id="c", registered_at=moment, custom_attributes={"since": moment.date()})
    assert ok.custom_attributes["since"] == moment.date()
