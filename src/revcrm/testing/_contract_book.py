"""The sample book of the storage contract suite (:mod:`revcrm.testing.contract`): one
small book touching every record kind, field and awkward value, and a comparison of books."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    Customer,
    Discount,
    FxRates,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)

if TYPE_CHECKING:
    from revcrm.storage import Store

T0: Final = datetime(2024, 1, 1, tzinfo=UTC)
#: The moment the sample book's figures are asked at.
AS_OF: Final = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
#: A classic injection string: every backend must store and return it as plain data.
INJECTION: Final = "'); DROP TABLE customers; --"


def _usd(amount: str) -> Money:
    return Money(amount, "USD")


def _eur(amount: str) -> Money:
    return Money(amount, "EUR")


def sample_book() -> Book:
    """A small book touching every record kind, field and awkward value the contract needs."""
    customers = [
        Customer(
            id="c1",
            external_id="ext-c1",
            registered_at=T0,
            name="Ada Lovelace",
            email="ada@example.com",
            username="ada",
            company="Analytical Engines",
            phone="+44 20 0000",
            role="owner",
            website="https://ada.example",
            location="London",
            owner_id="staff-1",
            last_login_at=T0 + timedelta(days=30, microseconds=1),
            referral_source="google",
            custom_attributes={
                "tier": "gold",
                "seats": 3,
                "vip": True,
                "since": date(2020, 1, 1),
                "score": Decimal("1.50"),
            },
        ),
        Customer(
            id="c2",
            registered_at=datetime(2024, 2, 3, 4, 5, 6, 789, tzinfo=timezone(timedelta(hours=5))),
            name="Zoë Straße",
            email="zoe@example.de",
            owner_id="staff-2",
            referral_source="partner",
            referrer_id="c1",
        ),
        Customer(
            id="c3",
            registered_at=T0 + timedelta(days=60),
            name=INJECTION,
            username="robert'); --",
            owner_id="staff-1",
        ),
        Customer(id="c4", registered_at=T0 + timedelta(days=90), name="100% _under_ Co"),
    ]
    products = [
        Product(id="p1", name="Hosting", external_id="ext-p1"),
        Product(id="p2", name="Domain"),
    ]
    plans = [
        Plan(
            id="pl1",
            product_id="p1",
            name="Monthly",
            price=_usd("10.00"),
            cycle=BillingCycle.MONTHLY,
        ),
        Plan(
            id="pl2",
            product_id="p1",
            name="Annual",
            price=_usd("100.00"),
            cycle=BillingCycle.ANNUAL,
            setup_fee=_usd("5.00"),
            external_id="ext-pl2",
        ),
        Plan(id="pl3", product_id="p2", name="Registration", price=_usd("12.00"), cycle=None),
    ]
    s1 = (
        Subscription.start(
            id="s1",
            customer_id="c1",
            at=T0,
            price=_usd("10.00"),
            cycle=BillingCycle.MONTHLY,
            plan_id="pl1",
            product_id="p1",
            external_id="ext-s1",
            details=(("server", "web-1"), ("domain", "ada.example")),
        )
        .change_plan(
            datetime(2024, 3, 1, tzinfo=UTC),
            price=_usd("100.00"),
            cycle=BillingCycle.ANNUAL,
            plan_id="pl2",
        )
        .set_discount(datetime(2024, 4, 1, tzinfo=UTC), Discount.percent("10"))
    )
    s2 = Subscription.start(
        id="s2",
        customer_id="c2",
        at=datetime(2024, 2, 10, tzinfo=UTC),
        price=_eur("20.00"),
        cycle=BillingCycle.QUARTERLY,
        quantity=2,
    ).cancel(datetime(2024, 6, 15, tzinfo=UTC))
    s3 = Subscription.start(
        id="s3",
        customer_id="c3",
        at=datetime(2024, 3, 1, tzinfo=UTC),
        price=_usd("5.00"),
        cycle=BillingCycle.MONTHLY,
        trial_end=datetime(2024, 3, 15, tzinfo=UTC),
    ).append(
        SubscriptionChange(
            kind="status_changed",
            at=datetime(2024, 3, 15, tzinfo=UTC),
            status=SubscriptionStatus.ACTIVE,
        )
    )
    s3 = s3.set_status(datetime(2024, 5, 1, tzinfo=UTC), SubscriptionStatus.PAST_DUE)
    s4 = Subscription.start(
        id="s4",
        customer_id="c1",
        at=datetime(2024, 5, 1, tzinfo=UTC),
        price=_usd("7.00"),
        cycle=BillingCycle.WEEKLY,
    )
    invoices = [
        Invoice(
            id="i1",
            customer_id="c1",
            currency="USD",
            issued_at=T0,
            due_date=date(2024, 1, 15),
            status=InvoiceStatus.PAID,
            number="INV-0001",
            external_id="ext-i1",
            paid_at=T0 + timedelta(days=1),
            lines=(
                InvoiceLine(
                    kind=LineKind.RECURRING,
                    amount=_usd("10.00"),
                    tax=_usd("1.00"),
                    description="Hosting, January",
                    period_start=T0,
                    period_end=datetime(2024, 2, 1, tzinfo=UTC),
                    subscription_id="s1",
                    product_id="p1",
                ),
            ),
        ),
        Invoice(
            id="i2",
            customer_id="c2",
            currency="EUR",
            issued_at=datetime(2024, 2, 10, tzinfo=UTC),
            due_date=date(2024, 2, 20),
            status="paid",
            lines=(
                InvoiceLine(
                    kind=LineKind.RECURRING,
                    amount=_eur("40.00"),
                    quantity=2,
                    discount=_eur("20.00"),
                    period_start=datetime(2024, 2, 10, tzinfo=UTC),
                    period_end=datetime(2024, 5, 10, tzinfo=UTC),
                    subscription_id="s2",
                ),
                InvoiceLine(
                    kind=LineKind.ONE_OFF, amount=_eur("0.00"), description="Setup (waived)"
                ),
            ),
        ),
        Invoice(
            id="i3",
            customer_id="c3",
            currency="USD",
            issued_at=datetime(2024, 5, 1, tzinfo=UTC),
            due_date=date(2024, 5, 15),
            status=InvoiceStatus.OPEN,
            lines=(InvoiceLine(kind="one_off", amount=_usd("12.00"), description=INJECTION),),
        ),
    ]
    transactions = [
        Transaction(
            id="t1",
            customer_id="c1",
            kind=TransactionKind.PAYMENT,
            status=TransactionStatus.SUCCEEDED,
            amount=_usd("11.00"),
            method="stripe",
            at=T0 + timedelta(days=1),
            invoice_id="i1",
            external_id="ch_1",
        ),
        Transaction(
            id="t2",
            customer_id="c2",
            kind="payment",
            status="succeeded",
            amount=_eur("20.00"),
            method="paypal",
            at=datetime(2024, 2, 10, 9, tzinfo=UTC),
            invoice_id="i2",
        ),
        Transaction(
            id="t3",
            customer_id="c2",
            kind="refund",
            status="succeeded",
            amount=_eur("5.00"),
            method="paypal",
            at=datetime(2024, 3, 1, tzinfo=UTC),
            invoice_id="i2",
        ),
        Transaction(
            id="t4",
            customer_id="c3",
            kind="payment",
            status="failed",
            amount=_usd("12.00"),
            method="card",
            at=datetime(2024, 5, 2, tzinfo=UTC),
            invoice_id="i3",
        ),
        Transaction(
            id="t5",
            customer_id="c1",
            kind="payment",
            status="succeeded",
            amount=_usd("110.00"),
            method="stripe",
            at=datetime(2024, 3, 1, 10, tzinfo=UTC),
            subscription_id="s1",
        ),
    ]
    credits = [
        CreditEntry(
            id="k1",
            customer_id="c1",
            amount=_usd("15.00"),
            reason="goodwill",
            at=T0,
            staff_id="staff-1",
        ),
        CreditEntry(
            id="k2",
            customer_id="c1",
            amount=_usd("-5.00"),
            reason="applied to invoice",
            at=datetime(2024, 2, 1, tzinfo=UTC),
            invoice_id="i1",
        ),
        CreditEntry(
            id="k3",
            customer_id="c2",
            amount=_eur("3.00"),
            reason="refund as credit",
            at=T0 + timedelta(days=70),
        ),
    ]
    fx = FxRates.from_rates(
        [
            (date(2023, 1, 1), "EUR", "USD", "1.10"),
            (date(2024, 3, 1), "EUR", "USD", "1.08"),
        ]
    )
    return Book.of(
        customers=customers,
        products=products,
        plans=plans,
        subscriptions=[s1, s2, s3, s4],
        invoices=invoices,
        transactions=transactions,
        credits=credits,
        fx=fx,
    )


_KINDS: Final = (
    "customers",
    "products",
    "plans",
    "subscriptions",
    "invoices",
    "transactions",
    "credits",
)


def assert_same_book(a: Book, b: Book) -> None:
    """Every record of ``a`` equals ``b``'s, in id order, and so do the exchange rates."""
    for kind in _KINDS:
        left, right = getattr(a, kind), getattr(b, kind)
        assert [r.id for r in left] == [r.id for r in right], kind
        assert left == right, kind
    assert a.fx == b.fx


def _snapshot(store: Store) -> tuple[Book, dict[str, list[tuple[str, int]]]]:
    """The store's book and the version of every record: what "unchanged" compares."""
    book = store.book()
    versions: dict[str, list[tuple[str, int]]] = {}
    for kind in _KINDS:
        repo = getattr(store, kind)
        versions[kind] = [(r.id, repo.get_versioned(r.id).version) for r in getattr(book, kind)]
    return book, versions


def _assert_unchanged(store: Store, before: tuple[Book, dict[str, list[tuple[str, int]]]]) -> None:
    after = _snapshot(store)
    assert_same_book(before[0], after[0])
    assert before[1] == after[1]
