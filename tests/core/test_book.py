"""Book: unique ids, resolved references, canonical order, and MRR through FxRates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    Customer,
    FxRates,
    Invoice,
    InvoiceLine,
    Money,
    Plan,
    Product,
    Subscription,
    Transaction,
)
from revcrm._money import money_sum
from revcrm.errors import (
    DuplicateError,
    MissingRateError,
    NotFoundError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.metrics import MetricsPolicy, mrr, subscription_mrr
from revcrm.testing import strategies as S
from tests._builders import t

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def cust(id: str = "c1") -> Customer:
    return Customer(id=id, registered_at=T0)


def sub(
    id: str = "s1", customer_id: str = "c1", price: Money | None = None, **kw: Any
) -> Subscription:
    return Subscription.start(
        id=id,
        customer_id=customer_id,
        at=kw.pop("at", T0),
        price=price or Money("10", "USD"),
        cycle=kw.pop("cycle", BillingCycle.MONTHLY),
        **kw,
    )


def inv(id: str = "i1", customer_id: str = "c1", sub_id: str | None = None) -> Invoice:
    line = InvoiceLine(
        kind="recurring",
        amount=Money("10", "USD"),
        period_start=T0,
        period_end=t(2024, 2, 1),
        subscription_id=sub_id,
    )
    return Invoice(
        id=id,
        customer_id=customer_id,
        currency="USD",
        issued_at=T0,
        due_date=date(2024, 1, 1),
        status="paid",
        lines=[line],
        paid_at=T0,
    )


def txn(id: str = "t1", customer_id: str = "c1", **kw: Any) -> Transaction:
    return Transaction(
        id=id,
        customer_id=customer_id,
        kind="payment",
        status="succeeded",
        amount=Money("10", "USD"),
        method="card",
        at=T0,
        **kw,
    )


def cred(id: str = "cr1", customer_id: str = "c1", amount: str = "5", **kw: Any) -> CreditEntry:
    return CreditEntry(
        id=id,
        customer_id=customer_id,
        amount=Money(amount, "USD"),
        reason="goodwill",
        at=kw.pop("at", T0),
        **kw,
    )


PRODUCT = Product(id="prod", name="Hosting")
PLAN = Plan(
    id="gold", product_id="prod", name="Gold", price=Money("10", "USD"), cycle=BillingCycle.MONTHLY
)


def full(**override: Any) -> dict[str, Any]:
    records: dict[str, Any] = {
        "customers": [cust("c1"), cust("c2")],
        "products": [PRODUCT],
        "plans": [PLAN],
        "subscriptions": [sub("s1", plan_id="gold")],
        "invoices": [inv("i1", sub_id="s1")],
        "transactions": [txn("t1", invoice_id="i1", subscription_id="s1")],
        "credits": [cred("cr1", invoice_id="i1")],
    }
    records.update(override)
    return records


def test_a_consistent_book_builds() -> None:
    book = Book.of(**full())
    assert len(book) == 2
    assert book.customer("c1") == cust("c1")
    assert [s.id for s in book.subscriptions_by_customer["c1"]] == ["s1"]
    assert [i.id for i in book.invoices_by_customer["c1"]] == ["i1"]
    assert [x.id for x in book.transactions_by_customer["c1"]] == ["t1"]
    assert [c.id for c in book.credits_by_customer["c1"]] == ["cr1"]
    assert book.subscription_index["s1"].customer_id == "c1"


DUPLICATES: list[tuple[str, str, dict[str, Any]]] = [
    ("customer", "c1", {"customers": [cust("c1"), cust("c1")]}),
    ("product", "prod", {"products": [PRODUCT, PRODUCT]}),
    ("plan", "gold", {"plans": [PLAN, attrs.evolve(PLAN, name="Gold 2")]}),
    ("subscription", "s1", {"subscriptions": [sub("s1"), sub("s1", customer_id="c2")]}),
    (
        "invoice",
        "i1",
        {"invoices": [inv("i1"), inv("i1", customer_id="c2")], "transactions": [], "credits": []},
    ),
    ("transaction", "t1", {"transactions": [txn("t1"), txn("t1", customer_id="c2")]}),
    ("credit", "cr1", {"credits": [cred("cr1"), cred("cr1", amount="7")]}),
]


@pytest.mark.parametrize(("kind", "key", "override"), DUPLICATES)
def test_duplicate_ids(kind: str, key: str, override: dict[str, Any]) -> None:
    with pytest.raises(DuplicateError) as e:
        Book.of(**full(**override))
    assert (e.value.kind, e.value.key) == (kind, key)


REFERENCES: list[tuple[str, str, dict[str, Any]]] = [
    ("plan[gold].product_id", "nope", {"plans": [attrs.evolve(PLAN, product_id="nope")]}),
    ("subscription[s1].customer_id", "c9", {"subscriptions": [sub("s1", customer_id="c9")]}),
    ("subscription[s1].plan_id", "silver", {"subscriptions": [sub("s1", plan_id="silver")]}),
    ("invoice[i2].customer_id", "c9", {"invoices": [inv("i1"), inv("i2", customer_id="c9")]}),
    ("invoice[i1].lines.subscription_id", "s9", {"invoices": [inv("i1", sub_id="s9")]}),
    ("transaction[t1].customer_id", "c9", {"transactions": [txn("t1", customer_id="c9")]}),
    ("transaction[t1].invoice_id", "i9", {"transactions": [txn("t1", invoice_id="i9")]}),
    ("transaction[t1].subscription_id", "s9", {"transactions": [txn("t1", subscription_id="s9")]}),
    ("credit[cr1].customer_id", "c9", {"credits": [cred("cr1", customer_id="c9")]}),
    ("credit[cr1].invoice_id", "i9", {"credits": [cred("cr1", invoice_id="i9")]}),
]


@pytest.mark.parametrize(("field", "value", "override"), REFERENCES)
def test_unknown_references(field: str, value: str, override: dict[str, Any]) -> None:
    with pytest.raises(UnknownReferenceError) as e:
        Book.of(**full(**override))
    assert (e.value.field, e.value.value) == (field, value)


def test_plan_ids_are_only_checked_when_the_host_supplies_plans() -> None:
    Book.of(**full(plans=[], products=[], subscriptions=[sub("s1", plan_id="anything")]))


def test_unknown_customer_lookup() -> None:
    with pytest.raises(NotFoundError) as e:
        Book.of(**full()).customer("c9")
    assert (e.value.kind, e.value.key) == ("customer", "c9")


@given(S.books(), st.randoms(use_true_random=False))
def test_input_order_does_not_change_the_book(book: Book, rnd: Any) -> None:
    def shuffled(items: tuple[Any, ...]) -> list[Any]:
        out = list(items)
        rnd.shuffle(out)
        return out

    again = Book.of(
        customers=shuffled(book.customers),
        products=shuffled(book.products),
        plans=shuffled(book.plans),
        subscriptions=shuffled(book.subscriptions),
        invoices=shuffled(book.invoices),
        transactions=shuffled(book.transactions),
        credits=shuffled(book.credits),
        fx=FxRates.from_rates(shuffled(tuple(book.fx.items()))),
    )
    for field in (
        "customers",
        "products",
        "plans",
        "subscriptions",
        "invoices",
        "transactions",
        "credits",
        "fx",
    ):
        assert getattr(again, field) == getattr(book, field), field
    assert [c.id for c in again.customers] == sorted(c.id for c in book.customers)
    assert again.subscriptions_by_customer == book.subscriptions_by_customer


def test_credit_balance_and_restriction() -> None:
    book = Book.of(
        **full(
            credits=[
                cred("cr1", amount="5"),
                cred("cr2", amount="-2", at=t(2024, 3, 1)),
                cred("cr3", customer_id="c2"),
            ]
        )
    )
    assert book.credit_balance("c1", "USD") == Money("3", "USD")
    assert book.credit_balance("c1", "USD", at=t(2024, 2, 1)) == Money("5", "USD")
    assert book.credit_balance("c1", "EUR") == Money.zero("EUR")
    assert book.credit_balance("c9", "USD") == Money.zero("USD")
    only = book.restricted_to(["c2"])
    assert [c.id for c in only.customers] == ["c2"]
    assert only.subscriptions == ()
    assert [c.id for c in only.credits] == ["cr3"]
    assert only.fx == book.fx


# -- MRR over a book -------------------------------------------------------------------------------


def test_mrr_converts_each_subscription_through_fx() -> None:
    fx = FxRates.from_rates(
        [
            (date(2024, 1, 1), "EUR", "USD", "1.10"),
            (date(2024, 6, 1), "EUR", "USD", "1.20"),
            (date(2024, 1, 1), "USD", "GBP", "0.80"),
        ]
    )
    book = Book.of(
        customers=[cust("c1"), cust("c2")],
        subscriptions=[
            sub("s1", price=Money("100", "EUR"), at=t(2024, 1, 25)),
            sub("s2", customer_id="c2", price=Money("1200", "USD"), cycle=BillingCycle.ANNUAL),
        ],
        fx=fx,
    )
    at = t(2024, 6, 10)
    # Default (ChartMogul): the rate of the service period start (May 25 -> 1.10).
    assert mrr(book, at=at, currency="USD") == Money("210", "USD")
    # Stripe preset: the rate of the measured day (Jun 10 -> 1.20).
    assert mrr(book, at=at, currency="USD", policy=MetricsPolicy.stripe()) == Money("220", "USD")
    # Reverse pair: USD -> EUR uses 1 / 1.10 for s2 (its period started Jan 1).
    eur = mrr(book, at=at, currency="EUR")
    expected = 100 + Fraction(100) / Fraction("1.10")
    assert abs(Fraction(eur.amount) - expected) < Fraction(1, 10**36)
    assert mrr(book, at=at, currency="USD", customer_ids=["c2"]) == Money("100", "USD")


def test_missing_rate_is_an_error_not_a_plain_sum() -> None:
    book = Book.of(customers=[cust()], subscriptions=[sub(price=Money("100", "EUR"))])
    assert mrr(book, at=t(2024, 2, 1), currency="EUR") == Money("100", "EUR")
    with pytest.raises(MissingRateError) as e:
        mrr(book, at=t(2024, 2, 1), currency="USD")
    assert (e.value.source, e.value.target) == ("EUR", "USD")
    late = attrs.evolve(book, fx=FxRates.from_rates([(date(2024, 3, 1), "EUR", "USD", "1.1")]))
    with pytest.raises(MissingRateError):
        mrr(late, at=t(2024, 2, 1), currency="USD")


def test_zero_mrr_needs_no_rate() -> None:
    book = Book.of(
        customers=[cust()], subscriptions=[sub(price=Money("100", "EUR"), at=t(2025, 1, 1))]
    )
    assert mrr(book, at=t(2024, 2, 1), currency="USD") == Money.zero("USD")


@given(S.books(single_currency=True), S.moments())
def test_single_currency_mrr_is_the_exact_sum_of_subscriptions(book: Book, at: datetime) -> None:
    (currency,) = {s.currency for s in book.subscriptions} or {"USD"}
    expected = money_sum((subscription_mrr(s, at) for s in book.subscriptions), currency)
    assert mrr(book, at=at, currency=currency) == expected


@pytest.mark.parametrize(
    "policy", [MetricsPolicy(), MetricsPolicy.stripe()], ids=["chartmogul", "stripe"]
)
@given(
    book=S.books(currencies=("USD", "EUR", "JPY")),
    at=S.moments(),
    currency=S.currencies(among=("USD", "EUR", "JPY")),
)
def test_mrr_is_the_sum_of_converted_subscription_values(
    policy: MetricsPolicy, book: Book, at: datetime, currency: str
) -> None:
    total = Money.zero(currency)
    for s in book.subscriptions:
        value = subscription_mrr(s, at, policy=policy)
        if value.is_zero():
            continue
        state = s.state_at(at)
        assert state is not None
        if policy.fx_date.value == "service_period_start":
            on = state.service_period(at)[0].date()
        else:
            on = at.date()
        total += book.fx.convert(value, currency, on=on)
    assert mrr(book, at=at, currency=currency, policy=policy) == total


@given(S.books(), S.moments())
def test_customer_subsets_add_up(book: Book, at: datetime) -> None:
    currency = book.subscriptions[0].currency if book.subscriptions else "USD"
    ids = [c.id for c in book.customers]
    whole = mrr(book, at=at, currency=currency)
    parts = [mrr(book, at=at, currency=currency, customer_ids=[i]) for i in ids]
    assert money_sum(parts, currency) == whole
    assert mrr(book, at=at, currency=currency, customer_ids=[]) == Money.zero(currency)


def test_credit_balance_rejects_naive_at() -> None:
    with pytest.raises(ValidationError):
        Book.of(**full()).credit_balance("c1", "USD", at=datetime(2024, 1, 1))


def test_a_credit_entry_naming_an_invoice_is_in_its_currency() -> None:
    # Found by an acceptance probe: a EUR credit entry could name a USD invoice.
    from datetime import UTC, date, datetime

    from revcrm import Book, CreditEntry, Customer, Invoice, InvoiceLine, Money
    from revcrm.errors import ValidationError

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    invoice = Invoice(
        id="i1",
        customer_id="a",
        currency="USD",
        issued_at=t0,
        due_date=date(2024, 1, 10),
        status="open",
        lines=[InvoiceLine(kind="one_off", amount=Money("10", "USD"))],
    )
    entry = CreditEntry(
        id="c2", customer_id="a", amount=Money("-1", "EUR"), reason="r", at=t0, invoice_id="i1"
    )
    with pytest.raises(ValidationError) as err:
        Book.of(customers=[Customer(id="a", registered_at=t0)], invoices=[invoice], credits=[entry])
    assert err.value.field == "credit[c2].amount"
