"""Issue 12, items 2-4 (construction): every public record refuses a wrong type or an
out-of-range value with a ValidationError naming the field, and what it accepts comes back
from every backend with the same type and value."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    Customer,
    Discount,
    FxRates,
    Invoice,
    InvoiceLine,
    Money,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
    Transaction,
    format_money,
)
from revcrm.crm import (
    Contact,
    CustomAttribute,
    IntakeAnswer,
    IntakeQuestion,
    LoggedCall,
    Note,
    Tag,
    TagChange,
    TicketRef,
)
from revcrm.errors import RevcrmError, ValidationError
from revcrm.leads import Lead, LeadTransition, ReferralSource
from revcrm.metrics import dashboard, mrr_series
from revcrm.storage import InMemoryStore, SQLStore
from revcrm.testing.contract import AS_OF, sample_book

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USD = Money("10", "USD")


def _line(**kw: Any) -> InvoiceLine:
    return InvoiceLine(**{"kind": "one_off", "amount": USD, **kw})


def _sub(**kw: Any) -> Subscription:
    base: dict[str, Any] = {
        "id": "s",
        "customer_id": "c",
        "at": T0,
        "price": USD,
        "cycle": BillingCycle.MONTHLY,
    }
    return Subscription.start(**{**base, **kw})


# Valid keyword arguments of every public record; each test replaces one field.
BUILDERS: dict[str, tuple[Callable[..., object], dict[str, Any]]] = {
    "Customer": (Customer, {"id": "c", "registered_at": T0}),
    "Product": (Product, {"id": "p", "name": "Hosting"}),
    "Plan": (
        Plan,
        {"id": "pl", "product_id": "p", "name": "M", "price": USD, "cycle": BillingCycle.MONTHLY},
    ),
    "InvoiceLine": (InvoiceLine, {"kind": "one_off", "amount": USD}),
    "Invoice": (
        Invoice,
        {
            "id": "i",
            "customer_id": "c",
            "currency": "USD",
            "issued_at": T0,
            "due_date": T0.date(),
            "status": "open",
        },
    ),
    "Transaction": (
        Transaction,
        {
            "id": "t",
            "customer_id": "c",
            "kind": "payment",
            "status": "succeeded",
            "amount": USD,
            "method": "card",
            "at": T0,
        },
    ),
    "CreditEntry": (
        CreditEntry,
        {"id": "e", "customer_id": "c", "amount": USD, "reason": "goodwill", "at": T0},
    ),
    "SubscriptionChange": (SubscriptionChange, {"kind": "plan_changed", "at": T0}),
    "Subscription.start": (
        Subscription.start,
        {"id": "s", "customer_id": "c", "at": T0, "price": USD, "cycle": BillingCycle.MONTHLY},
    ),
    "Discount": (Discount, {"percent_off": Decimal(10)}),
    "ReferralSource": (ReferralSource, {"kind": "campaign", "detail": "spring"}),
    "Note": (
        Note,
        {"id": "n", "customer_id": "c", "author_id": "u", "body": "hi", "created_at": T0},
    ),
    "Tag": (Tag, {"name": "vip"}),
    "TagChange": (TagChange, {"customer_id": "c", "tag": "vip", "action": "added", "at": T0}),
    "Contact": (Contact, {"id": "k", "customer_id": "c", "name": "Ada"}),
    "LoggedCall": (LoggedCall, {"id": "l", "customer_id": "c", "at": T0}),
    "TicketRef": (TicketRef, {"id": "x", "subject": "s", "status": "open", "updated_at": T0}),
    "CustomAttribute": (CustomAttribute, {"key": "k", "type": "string", "value": "v"}),
    "IntakeQuestion": (IntakeQuestion, {"id": "q", "prompt": "Why?", "kind": "free_text"}),
    "IntakeAnswer": (
        IntakeAnswer,
        {"customer_id": "c", "question_id": "q", "answered_at": T0, "text": "because"},
    ),
    "Lead": (Lead, {"id": "ld", "email": "a@b.co", "created_at": T0}),
    "LeadTransition": (
        LeadTransition,
        {"from_stage": "new", "to_stage": "contacted", "at": T0},
    ),
}

# Fields that also accept None (so None is no wrong value for them).
OPTIONAL: set[tuple[str, str]] = {
    ("Plan", "cycle"),
    ("ReferralSource", "detail"),
    ("IntakeAnswer", "text"),
}


def test_every_builder_is_valid() -> None:
    for build, kwargs in BUILDERS.values():
        build(**kwargs)


# -- the holes of the issue, one example each ----------------------------------------------------

HOLES: list[tuple[str, Callable[[], object]]] = [
    ("name", lambda: Customer(id="c", registered_at=T0, name=None)),  # type: ignore[arg-type]
    ("name", lambda: Customer(id="c", registered_at=T0, name=123)),  # type: ignore[arg-type]
    ("username", lambda: Customer(id="c", registered_at=T0, username=["x"])),  # type: ignore[arg-type]
    ("phone", lambda: Customer(id="c", registered_at=T0, phone=5550100)),  # type: ignore[arg-type]
    ("external_id", lambda: Customer(id="c", registered_at=T0, external_id=42)),  # type: ignore[arg-type]
    ("owner_id", lambda: Customer(id="c", registered_at=T0, owner_id="")),
    ("name", lambda: Customer(id="c", registered_at=T0, name="nul\x00")),
    ("company", lambda: Customer(id="c", registered_at=T0, company="lone \ud800")),
    ("custom_attributes", lambda: Customer(id="c", registered_at=T0, custom_attributes=[1, 2])),  # type: ignore[arg-type]
    ("custom_attributes", lambda: Customer(id="c", registered_at=T0, custom_attributes={1: "x"})),  # type: ignore[dict-item]
    (
        "custom_attributes[x]",
        lambda: Customer(id="c", registered_at=T0, custom_attributes={"x": Decimal("NaN")}),
    ),
    (
        "custom_attributes[x]",
        lambda: Customer(id="c", registered_at=T0, custom_attributes={"x": b"bytes"}),  # type: ignore[dict-item]
    ),
    (
        "custom_attributes[x]",
        lambda: Customer(id="c", registered_at=T0, custom_attributes={"x": 10**40}),
    ),
    (
        "custom_attributes[x]",
        lambda: Customer(id="c", registered_at=T0, custom_attributes={"x": Decimal("1E+999")}),
    ),
    ("name", lambda: Product(id="p", name=None)),  # type: ignore[arg-type]
    ("cycle", lambda: Plan(id="p", product_id="x", name="n", price=USD, cycle="monthly")),  # type: ignore[arg-type]
    ("product_id", lambda: Plan(id="p", product_id=7, name="n", price=USD, cycle=None)),  # type: ignore[arg-type]
    ("lines[0]", lambda: Invoice(**{**BUILDERS["Invoice"][1], "lines": ["x"]})),
    ("lines", lambda: Invoice(**{**BUILDERS["Invoice"][1], "lines": 5})),
    ("currency", lambda: Invoice(**{**BUILDERS["Invoice"][1], "currency": None})),
    ("description", lambda: _line(description=None)),
    ("quantity", lambda: _line(quantity=2**40)),
    ("invoice_id", lambda: Transaction(**{**BUILDERS["Transaction"][1], "invoice_id": 3})),
    ("product_id", lambda: SubscriptionChange(kind="plan_changed", at=T0, product_id=5)),  # type: ignore[arg-type]
    ("plan_id", lambda: SubscriptionChange(kind="plan_changed", at=T0, plan_id="")),
    ("note", lambda: SubscriptionChange(kind="plan_changed", at=T0, note=None)),  # type: ignore[arg-type]
    ("details[0]", lambda: _sub(details=[("server", 1)])),
    ("details[0]", lambda: _sub(details=["server"])),
    ("details", lambda: _sub(details=5)),
    ("customer_id", lambda: _sub(customer_id=None)),
    ("history[0]", lambda: Subscription(id="s", customer_id="c", history=["x"])),  # type: ignore[list-item]
    ("amount", lambda: Money(1.5, "USD")),
    ("amount", lambda: Money(None, "USD")),
    ("amount", lambda: Money(True, "USD")),
    ("factor", lambda: USD * 1.5),
    ("divisor", lambda: USD / 0),
    ("other", lambda: USD.ratio(Money.zero("USD"))),
    ("other", lambda: USD + 1),
    ("amount", lambda: Money("9" * 131073, "USD")),
    ("amount", lambda: Money("1E+999999", "USD")),
    ("amount", lambda: Money("1E-999999", "USD")),
    ("amount", lambda: Money("sNaN", "USD")),
    ("amount", lambda: Money("-Infinity", "USD")),
    ("rate", lambda: FxRates.from_rates([(T0.date(), "EUR", "USD", "1e999999")])),
    ("rate", lambda: FxRates.from_rates([(T0.date(), "EUR", "USD", "1e-999999")])),
    ("rates[0]", lambda: FxRates.from_rates([("x",)])),  # type: ignore[list-item]
    ("rounding", lambda: USD.rounded("sideways")),
    ("rounding", lambda: format_money(USD, locale="en_US", rounding="sideways")),
    ("format", lambda: format_money(USD, locale="en_US", format=5)),  # type: ignore[arg-type]
    ("money", lambda: format_money(1, locale="en_US")),  # type: ignore[arg-type]
    ("registered_at", lambda: Customer(id="c", registered_at=datetime(1, 1, 1, tzinfo=UTC))),
    (
        "as_of",
        lambda: dashboard(sample_book(), as_of=datetime(1, 1, 1, tzinfo=UTC), currency="USD"),
    ),
    (
        "trend_months",
        lambda: dashboard(sample_book(), as_of=AS_OF, currency="USD", trend_months=10**6),
    ),
    ("trend_months", lambda: dashboard(sample_book(), as_of=AS_OF, currency="USD", trend_months=0)),
    ("end", lambda: mrr_series(sample_book(), T0, date(9999, 12, 31), currency="USD")),
    ("customers[0]", lambda: Book.of(customers=[1])),  # type: ignore[list-item]
    ("body", lambda: Note(**{**BUILDERS["Note"][1], "body": "x\x00"})),
    ("staff_id", lambda: LeadTransition(from_stage="new", to_stage="contacted", at=T0, staff_id=1)),
    ("position", lambda: IntakeQuestion(id="q", prompt="p", kind="free_text", position=2**40)),
    ("custom_attributes[k]", lambda: CustomAttribute.parse("k", "number", "NaN")),
    ("record", lambda: Note.from_record(None)),  # type: ignore[arg-type]
    ("record", lambda: Lead.from_record({"id": "x"})),  # type: ignore[typeddict-item]
    ("to", lambda: Lead(**BUILDERS["Lead"][1]).move(["x"], at=T0)),  # type: ignore[arg-type]
    ("price", lambda: Discount.percent(10).apply(None)),  # type: ignore[arg-type]
    ("source.detail", lambda: ReferralSource(kind="campaign", detail="x\x00")),
]


@pytest.mark.parametrize(
    ("field", "build"), HOLES, ids=[f"{i}-{f}" for i, (f, _) in enumerate(HOLES)]
)
def test_each_hole_is_a_validation_error_naming_the_field(
    field: str, build: Callable[[], object]
) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field.endswith(field), caught.value


def test_type_errors_stay_type_errors() -> None:
    # Callers who catch the built-in keep working: a wrong type is also a TypeError and a
    # zero divisor also a ZeroDivisionError.
    with pytest.raises(TypeError):
        Money(1.5, "USD")
    with pytest.raises(TypeError):
        Customer(id="c", registered_at=T0, name=None)  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError):
        USD / 0


def test_a_payment_in_another_currency_than_its_invoice_is_refused() -> None:
    customer = Customer(id="c", registered_at=T0)
    invoice = Invoice(**BUILDERS["Invoice"][1])
    payment = Transaction(
        **{**BUILDERS["Transaction"][1], "amount": Money("10", "EUR"), "invoice_id": "i"}
    )
    with pytest.raises(ValidationError) as caught:
        Book.of(customers=[customer], invoices=[invoice], transactions=[payment])
    assert caught.value.field == "transaction[t].amount"


def test_canonical_amounts_keep_their_value() -> None:
    assert str(Money(Decimal("5.10472031E+11"), "USD").amount) == "510472031000"
    # Canonical: one spelling per value (no negative zero, no trailing zeros).
    assert str(Money("-0.00", "USD").amount) == "0"
    assert str(Money("1.50", "USD").amount) == "1.5"
    assert Money("1E-200", "USD").amount == Decimal("1E-200")
    assert Money("9" * 40, "USD").amount == Decimal("9" * 40)


# -- any wrong type for any field ----------------------------------------------------------------

WRONG: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(
        [
            None,
            0,
            -1,
            10**50,
            1.5,
            float("nan"),
            True,
            b"bytes",
            [],
            ["x"],
            {},
            {1: 2},
            object(),
            Decimal("NaN"),
            Decimal("1E+999999"),
            "",
            "\x00",
            "\ud800",
            "bogus",
            datetime(2024, 1, 1),  # naive
            datetime(1, 1, 1, tzinfo=UTC),
            date(1, 1, 1),
            timedelta(days=-1),
            Money("1", "EUR"),
        ]
    ),
    st.text(max_size=5),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_for_any_field_is_accepted_or_a_revcrm_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(BUILDERS)), label="record")
    build, kwargs = BUILDERS[name]
    fields = (
        sorted(kwargs)
        if name != "Customer"
        else sorted(
            [*kwargs, "name", "username", "phone", "external_id", "owner_id", "custom_attributes"]
        )
    )
    field = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(WRONG, label="value")
    # Anything else (TypeError, AttributeError, ...) escapes and fails the test.
    with contextlib.suppress(RevcrmError):
        build(**{**kwargs, field: value})


# No field of any builder accepts these.
NEVER_VALID: list[object] = [1.5, b"x", [object()], {"a": object()}, object()]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_wrong_types_are_validation_errors(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(BUILDERS)), label="record")
    build, kwargs = BUILDERS[name]
    field = data.draw(st.sampled_from(sorted(kwargs)), label="field")
    value = data.draw(st.sampled_from([None, *NEVER_VALID]), label="value")
    if value is None and (name, field) in OPTIONAL:
        return
    with pytest.raises(ValidationError):
        build(**{**kwargs, field: value})


# -- round trips keep type and value on every backend --------------------------------------------

EDGE_ATTRIBUTES: dict[str, Any] = {
    "big": Decimal("5.10472031E+11"),
    "small": Decimal("1E-200"),
    "negzero": Decimal("-0.00"),
    "places": Decimal("1.50"),
    "int": 10**39,
    "negint": -7,
    "zero": 0,
    "yes": True,
    "no": False,
    "text": "ü ß \U0001f600 nul \x00 lone \ud800",
    "empty": "",
    "day": date(1900, 1, 1),
    "": "empty key",
}


def _same(a: object, b: object) -> bool:
    """Equal with the same type and, for Decimals, the same digits and exponent."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Decimal):
        assert isinstance(b, Decimal)
        return a.as_tuple() == b.as_tuple()
    return a == b


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/revcrm.db"
    else:
        url = request.getfixturevalue("postgres_url")
    store = SQLStore(url, prefix=f"h{uuid.uuid4().hex[:12]}_")
    store.create_schema()
    yield store
    store.drop_schema()
    store.close()


def test_edge_values_round_trip_exactly(any_store: Any) -> None:
    customer = Customer(
        id="c",
        registered_at=T0,
        phone="+1 555 0100",
        external_id="0042",
        custom_attributes=EDGE_ATTRIBUTES,
    )
    any_store.customers.upsert(customer)
    back = any_store.customers.get("c")
    assert back == customer
    assert set(back.custom_attributes) == set(EDGE_ATTRIBUTES)
    for key, value in EDGE_ATTRIBUTES.items():
        assert _same(back.custom_attributes[key], value), (key, back.custom_attributes[key])
    assert (back.phone, back.external_id) == ("+1 555 0100", "0042")

    amounts = ["5.10472031E+11", "1E-200", "9" * 39 + ".5", "-0.1", "1.50"]
    for i, text in enumerate(amounts):
        entry = CreditEntry(
            id=f"e{i}", customer_id="c", amount=Money(text, "USD"), reason="x", at=T0
        )
        any_store.credits.upsert(entry)
        got = any_store.credits.get(f"e{i}")
        assert _same(got.amount.amount, entry.amount.amount), (text, got.amount.amount)
        # Written again unchanged, nothing changes (the digest is the same on every backend).
        any_store.credits.upsert(got)
        assert any_store.credits.get_versioned(f"e{i}").version == 1

    details = (("server", "web-1"), ("host", "ü \x00 \ud800"))
    any_store.subscriptions.upsert(_sub(details=details))
    assert any_store.subscriptions.get("s").details == details


def test_options_with_ints_too_big_for_floats_or_text_are_named_errors() -> None:
    # Found by the fuzz suite: busy_timeout=10**400 overflowed float() before the range
    # check, and MetricsPolicy's messages formatted an int over the 4,300-digit limit.
    from revcrm.errors import PolicyError
    from revcrm.metrics import MetricsPolicy
    from revcrm.storage import SQLStore

    with pytest.raises(ValidationError):
        SQLStore("sqlite://", busy_timeout=10**400)
    with pytest.raises(PolicyError):
        MetricsPolicy(past_due_churn_after_days=10**5000)
