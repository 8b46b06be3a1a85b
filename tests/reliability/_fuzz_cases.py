"""Valid records and valid calls the fuzz test perturbs one argument at a time.

Each value here is the *otherwise valid* half of a fuzz case: a record every field of
which is valid, or a public call with valid arguments. :mod:`.test_fuzz` checks that
each of them succeeds as written (so a hostile variant failing means the hostile value
was refused, not that the case was broken), then replaces one field or argument with a
hostile value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs

from revcrm import (
    BillingCycle,
    Book,
    ChangeKind,
    CreditEntry,
    Customer,
    CycleUnit,
    Discount,
    DiscountDuration,
    FxRates,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    PaymentMethod,
    Plan,
    Product,
    ReferralKind,
    ReferralSource,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
    format_money,
)
from revcrm.crm import (
    AttributeDefinition,
    AttributeType,
    Contact,
    CustomAttribute,
    IntakeAnswer,
    IntakeQuestion,
    IntakeScope,
    LoggedCall,
    Note,
    NoteAction,
    NoteRevision,
    QuestionKind,
    Tag,
    TagAction,
    TagChange,
    TicketRef,
)
from revcrm.leads import Lead, LeadStage, normalise_email
from revcrm.metrics import MetricsPolicy
from revcrm.segments import SegmentConfig
from revcrm.storage import Period

T0: Final = datetime(2025, 1, 10, 9, 30, tzinfo=UTC)
AS_OF: Final = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
DAY: Final = date(2025, 1, 1)
USD10: Final = Money(Decimal("10.00"), "USD")

CUSTOMER: Final = Customer(
    id="cus_a",
    registered_at=T0,
    external_id="ext_cus_a",
    email="alice@example.com",
    username="alice",
    name="Alice Example",
    company="Example Ltd",
    phone="+44 20 7946 0000",
    role="CTO",
    website="https://alice.example",
    location="London",
    owner_id="staff_1",
    last_login_at=T0 + timedelta(days=3),
    referral_source="direct",
    custom_attributes={"tier": "gold", "seats": 3, "vip": True},
)
CUSTOMER_B: Final = Customer(
    id="cus_b", registered_at=T0 + timedelta(days=1), name="Bob", referrer_id="cus_a"
)
PRODUCT: Final = Product(id="prod_a", name="Hosting", external_id="ext_prod_a")
PLAN: Final = Plan(
    id="plan_a",
    product_id="prod_a",
    name="Monthly hosting",
    price=USD10,
    cycle=BillingCycle.MONTHLY,
    setup_fee=Money(Decimal("5.00"), "USD"),
    external_id="ext_plan_a",
)
SUBSCRIPTION: Final = Subscription.start(
    id="sub_a",
    customer_id="cus_a",
    at=T0,
    price=USD10,
    cycle=BillingCycle.MONTHLY,
    product_id="prod_a",
    plan_id="plan_a",
    external_id="ext_sub_a",
    details=(("server", "s1.example"),),
)
SUBSCRIPTION_B: Final = Subscription.start(
    id="sub_b",
    customer_id="cus_b",
    at=T0 + timedelta(days=2),
    price=Money(Decimal("20.00"), "EUR"),
    cycle=BillingCycle.ANNUAL,
).cancel(T0 + timedelta(days=40))
CHANGE: Final = SubscriptionChange(
    kind=ChangeKind.PLAN_CHANGED,
    at=T0 + timedelta(days=20),
    price=Money(Decimal("12.00"), "USD"),
    cycle=BillingCycle.MONTHLY,
    quantity=2,
    product_id="prod_a",
    plan_id="plan_a",
)
LINE: Final = InvoiceLine(
    kind=LineKind.RECURRING,
    amount=USD10,
    description="Hosting, January",
    quantity=1,
    discount=Money(Decimal("1.00"), "USD"),
    tax=Money(Decimal("1.80"), "USD"),
    period_start=T0,
    period_end=T0 + timedelta(days=31),
    subscription_id="sub_a",
    product_id="prod_a",
)
INVOICE: Final = Invoice(
    id="inv_a",
    customer_id="cus_a",
    currency="USD",
    issued_at=T0,
    due_date=date(2025, 1, 24),
    status=InvoiceStatus.PAID,
    lines=(LINE,),
    number="2025-0001",
    external_id="ext_inv_a",
    paid_at=T0 + timedelta(days=1),
)
TRANSACTION: Final = Transaction(
    id="txn_a",
    customer_id="cus_a",
    kind=TransactionKind.PAYMENT,
    status=TransactionStatus.SUCCEEDED,
    amount=Money(Decimal("10.80"), "USD"),
    method=PaymentMethod.CARD,
    at=T0 + timedelta(days=1),
    invoice_id="inv_a",
    subscription_id="sub_a",
    external_id="ext_txn_a",
)
CREDIT: Final = CreditEntry(
    id="cre_a",
    customer_id="cus_a",
    amount=Money(Decimal("5.00"), "USD"),
    reason="goodwill",
    at=T0 + timedelta(days=2),
    staff_id="staff_1",
)
FX: Final = FxRates.from_rates([(DAY, "EUR", "USD", "1.1"), (DAY, "USD", "EUR", "0.9")])
BOOK: Final = Book.of(
    customers=[CUSTOMER, CUSTOMER_B],
    products=[PRODUCT],
    plans=[PLAN],
    subscriptions=[SUBSCRIPTION, SUBSCRIPTION_B],
    invoices=[INVOICE],
    transactions=[TRANSACTION],
    credits=[CREDIT],
    fx=FX,
)

DISCOUNT: Final = Discount.percent("10", DiscountDuration.REPEATING, ends_at=AS_OF)
DISCOUNT_OFF: Final = Discount.amount(Money(Decimal("2.00"), "USD"))

NOTE: Final = Note(
    id="note_a",
    customer_id="cus_a",
    author_id="staff_1",
    body="Called about the renewal.",
    pinned=True,
    created_at=T0,
    edited_at=T0 + timedelta(hours=1),
    revision=2,
    changed_at=T0 + timedelta(hours=1),
)
NOTE_REVISION: Final = NoteRevision(
    note_id="note_a",
    customer_id="cus_a",
    revision=1,
    action=NoteAction.CREATED,
    at=T0,
    staff_id="staff_1",
    body="Called about the renewal.",
)
TAG: Final = Tag(name="VIP", colour="#ff0000")
TAG_CHANGE: Final = TagChange(
    customer_id="cus_a", tag="VIP", action=TagAction.ADDED, at=T0, staff_id="staff_1"
)
CONTACT: Final = Contact(
    id="con_a",
    customer_id="cus_a",
    name="Carol Billing",
    title="Accounts",
    email="carol@example.com",
    phone="+44 20 7946 0001",
    notes="Send invoices here.",
)
CALL: Final = LoggedCall(
    id="call_a",
    customer_id="cus_a",
    at=T0,
    staff_id="staff_1",
    summary="Renewal",
    duration=timedelta(minutes=5),
)
TICKET: Final = TicketRef(
    id="t_1", subject="Cannot log in", status="open", updated_at=T0, url="https://help.example/1"
)
ATTRIBUTE: Final = CustomAttribute(key="seats", type=AttributeType.NUMBER, value=3)
DEFINITION: Final = AttributeDefinition(
    key="seats", type=AttributeType.NUMBER, label="Seats", required=True
)
QUESTION: Final = IntakeQuestion(
    id="q_goal",
    prompt="What brings you here?",
    kind=QuestionKind.SINGLE_CHOICE,
    options=("Blog", "Shop"),
    scope=IntakeScope.REGISTRATION,
    required=False,
    position=1,
)
ANSWER: Final = IntakeAnswer(
    customer_id="cus_a", question_id="q_goal", answered_at=T0, choices=("Blog",)
)
LEAD: Final = Lead(
    id="lead_a",
    email="dave@example.com",
    created_at=T0,
    name="Dave",
    company="Dave Co",
    phone="+1 555 0100",
    source=ReferralSource(kind=ReferralKind.CAMPAIGN, detail="spring"),
    owner_id="staff_1",
    expected_value=USD10,
    notes="Met at a fair.",
)
LEAD_MOVED: Final = LEAD.move(LeadStage.CONTACTED, at=T0 + timedelta(days=1), note="emailed")
TRANSITION: Final = LEAD_MOVED.history[-1]

#: One valid instance of every public record and value class, by name; each field of
#: each is perturbed in turn (``attrs.evolve``-style, through the class's constructor).
RECORDS: Final[Mapping[str, object]] = {
    "Customer": CUSTOMER,
    "Product": PRODUCT,
    "Plan": PLAN,
    "InvoiceLine": LINE,
    "Invoice": INVOICE,
    "Transaction": TRANSACTION,
    "CreditEntry": CREDIT,
    "Money": USD10,
    "BillingCycle": BillingCycle(count=3, unit=CycleUnit.MONTH),
    "Discount": DISCOUNT,
    "DiscountAmount": DISCOUNT_OFF,
    "SubscriptionChange": CHANGE,
    "Subscription": SUBSCRIPTION,
    "ReferralSource": ReferralSource(kind=ReferralKind.CAMPAIGN, detail="spring"),
    "MetricsPolicy": MetricsPolicy(
        past_due_churn_after_days=30, reactivation_window_days=60, ltv_churn_months=6
    ),
    "SegmentConfig": SegmentConfig(),
    "Period": Period(start=T0, end=AS_OF),
    "Note": NOTE,
    "NoteRevision": NOTE_REVISION,
    "Tag": TAG,
    "TagChange": TAG_CHANGE,
    "Contact": CONTACT,
    "LoggedCall": CALL,
    "TicketRef": TICKET,
    "CustomAttribute": ATTRIBUTE,
    "AttributeDefinition": DEFINITION,
    "IntakeQuestion": QUESTION,
    "IntakeAnswer": ANSWER,
    "Lead": LEAD_MOVED,
    "LeadTransition": TRANSITION,
}


def init_kwargs(record: object) -> dict[str, Any]:
    """The keyword arguments that rebuild ``record`` through its class."""
    # Private fields (``FxRates._series``) are not part of the public constructor.
    return {
        f.alias: getattr(record, f.name)
        for f in attrs.fields(type(record))  # type: ignore[arg-type]
        if f.init and not f.alias.startswith("_")
    }


def record_fields(name: str) -> list[str]:
    return list(init_kwargs(RECORDS[name]))


@dataclass(frozen=True)
class Call:
    """A public call with valid arguments: ``fn(*positional, **keywords)``.

    ``args`` names every argument in order; the first ``positional`` are passed by
    position (the protocols do not fix those parameters' names), the rest by keyword.
    """

    label: str
    fn: Callable[..., object]
    args: Mapping[str, object]
    positional: int = 0
    kinds: Mapping[str, str] = field(default_factory=dict)  # argument -> hostile kind

    def __call__(self, overrides: Mapping[str, object] | None = None) -> object:
        values = {**self.args, **(overrides or {})}
        names = list(self.args)
        pos = [values[n] for n in names[: self.positional]]
        kw = {n: values[n] for n in names[self.positional :]}
        return self.fn(*pos, **kw)


def value_calls() -> list[Call]:
    """Named constructors, operators and methods of the value objects."""
    m = USD10
    cycle = BillingCycle.MONTHLY
    return [
        Call("Money.of", Money.of, {"amount": "10.00", "currency": "USD"}, 2),
        Call("Money.zero", Money.zero, {"currency": "USD"}, 1),
        Call("Money.__add__", m.__add__, {"other": m}, 1),
        Call("Money.__sub__", m.__sub__, {"other": m}, 1),
        Call("Money.__mul__", lambda other: m * other, {"other": 3}, 1),
        Call("Money.__truediv__", lambda other: m / other, {"other": 4}, 1),
        Call("Money.__lt__", lambda other: m < other, {"other": m}, 1),
        Call("Money.ratio", m.ratio, {"other": m}, 1),
        Call("Money.rounded", m.rounded, {"rounding": "ROUND_HALF_UP"}, 1),
        Call(
            "format_money",
            format_money,
            {"money": m, "locale": "en_GB", "rounding": "ROUND_HALF_EVEN", "format": None},
            1,
        ),
        Call("FxRates.from_rates", FxRates.from_rates, {"rates": [(DAY, "EUR", "USD", "1.1")]}, 1),
        Call(
            "FxRates.from_rates.day",
            lambda v: FxRates.from_rates([(v, "EUR", "USD", "1.1")]),
            {"day": DAY},
            1,
        ),
        Call(
            "FxRates.from_rates.rate",
            lambda v: FxRates.from_rates([(DAY, "EUR", "USD", v)]),
            {"rate": "1.1"},
            1,
        ),
        Call(
            "FxRates.with_rate",
            FX.with_rate,
            {"day": DAY, "source": "GBP", "target": "USD", "rate": "1.25"},
            4,
        ),
        Call("FxRates.rate", FX.rate, {"source": "EUR", "target": "USD", "on": AS_OF.date()}, 3),
        Call("FxRates.convert", FX.convert, {"money": m, "to": "EUR", "on": AS_OF.date()}, 2),
        Call("BillingCycle.parse", BillingCycle.parse, {"text": "3 months"}, 1),
        Call("BillingCycle.months", BillingCycle.months, {"count": 2}, 1),
        Call("BillingCycle.days", BillingCycle.days, {"count": 2}, 1),
        Call("BillingCycle.advance", cycle.advance, {"anchor": T0, "n": 2}, 2),
        Call(
            "BillingCycle.period_containing",
            cycle.period_containing,
            {"anchor": T0, "moment": AS_OF},
            2,
        ),
        Call(
            "Discount.percent",
            Discount.percent,
            {"percent_off": "10", "duration": DiscountDuration.FOREVER, "ends_at": None},
            2,
        ),
        Call(
            "Discount.amount",
            Discount.amount,
            {"amount_off": m, "duration": DiscountDuration.FOREVER, "ends_at": None},
            2,
        ),
        Call("Discount.apply", DISCOUNT.apply, {"price": m}, 1),
        Call(
            "Subscription.start",
            Subscription.start,
            {
                "id": "sub_x",
                "customer_id": "cus_a",
                "at": T0,
                "price": m,
                "cycle": cycle,
                "quantity": 1,
                "product_id": "prod_a",
                "plan_id": None,
                "discount": None,
                "trial_end": None,
                "billing_anchor": None,
                "status": None,
                "external_id": None,
                "details": (("server", "s1"),),
            },
        ),
        Call("Subscription.append", SUBSCRIPTION.append, {"change": CHANGE}, 1),
        Call(
            "Subscription.change_plan",
            SUBSCRIPTION.change_plan,
            {
                "at": AS_OF,
                "price": m,
                "cycle": cycle,
                "quantity": 2,
                "product_id": "prod_a",
                "plan_id": "plan_a",
            },
            1,
        ),
        Call(
            "Subscription.set_discount",
            SUBSCRIPTION.set_discount,
            {"at": AS_OF, "discount": DISCOUNT},
            2,
        ),
        Call(
            "Subscription.set_status",
            SUBSCRIPTION.set_status,
            {"at": AS_OF, "status": SubscriptionStatus.PAST_DUE},
            2,
        ),
        Call("Subscription.cancel", SUBSCRIPTION.cancel, {"at": AS_OF, "ends_at": None}, 1),
        Call(
            "Subscription.reactivate",
            SUBSCRIPTION_B.reactivate,
            {"at": AS_OF, "price": Money(Decimal("20.00"), "EUR")},
            1,
        ),
        Call("Subscription.state_at", SUBSCRIPTION.state_at, {"at": AS_OF}, 1),
        Call("ReferralSource.parse", ReferralSource.parse, {"text": "campaign:spring"}, 1),
        Call("ReferralSource.referral", ReferralSource.referral, {"referrer_id": "cus_a"}, 1),
        Call("ReferralSource.custom", ReferralSource.custom, {"name": "podcast"}, 1),
        Call(
            "Lead.move",
            LEAD_MOVED.move,
            {
                "to": LeadStage.QUALIFIED,
                "at": AS_OF,
                "staff_id": "staff_1",
                "note": "",
                "lost_reason": None,
                "customer_id": None,
            },
            1,
        ),
        Call("normalise_email", normalise_email, {"email": "Dave@Example.com"}, 1),
        Call("Invoice.is_overdue", INVOICE.is_overdue, {"on": AS_OF.date()}, 1),
        Call(
            "Book.of",
            Book.of,
            {
                "customers": [CUSTOMER],
                "products": [PRODUCT],
                "plans": [PLAN],
                "subscriptions": [SUBSCRIPTION],
                "invoices": [INVOICE],
                "transactions": [TRANSACTION],
                "credits": [CREDIT],
                "fx": FX,
            },
        ),
    ]


# -- store calls ------------------------------------------------------------------------------

_REPOS: Final = (
    ("customers", "cus_a", "ext_cus_a"),
    ("products", "prod_a", "ext_prod_a"),
    ("plans", "plan_a", "ext_plan_a"),
    ("subscriptions", "sub_a", "ext_sub_a"),
    ("invoices", "inv_a", "ext_inv_a"),
    ("transactions", "txn_a", "ext_txn_a"),
    ("credits", "cre_a", None),
)

#: The hostile kind of an argument, by name: which strategy the fuzz test draws it from.
KINDS: Final[Mapping[str, str]] = {
    "cursor": "cursor",
    "limit": "int",
    "trend_months": "int",
    "expected_version": "int",
    "quantity": "int",
    "n": "int",
    "count": "int",
    "at": "date",
    "as_of": "date",
    "start": "date",
    "end": "date",
    "since": "date",
    "until": "date",
    "on": "date",
    "day": "date",
    "registered_from": "date",
    "registered_before": "date",
    "horizon": "date",
    "ends_at": "date",
    "anchor": "date",
    "moment": "date",
    "rate": "number",
    "amount": "number",
    "other": "number",
    "percent_off": "number",
    "custom_attributes": "mapping",
}


def read_calls(store: Any) -> list[Call]:
    """Every read of the :class:`~revcrm.storage.Store` protocol, with valid arguments."""
    calls: list[Call] = []
    for name, key, external in _REPOS:
        repo = getattr(store, name)
        calls += [
            Call(f"{name}.get", repo.get, {"id": key}, 1),
            Call(f"{name}.find", repo.find, {"id": key}, 1),
            Call(f"{name}.get_versioned", repo.get_versioned, {"id": key}, 1),
        ]
        if external is not None:
            calls.append(
                Call(
                    f"{name}.find_by_external_id",
                    repo.find_by_external_id,
                    {"external_id": external},
                    1,
                )
            )
        if name != "customers":
            window = (
                {}
                if name in ("products", "plans")
                else {"customer_id": "cus_a", "since": T0, "until": AS_OF}
            )
            extra: dict[str, object] = {}
            if name == "invoices":
                extra = {"status": "paid"}
            if name == "transactions":
                extra = {"status": "succeeded", "kind": "payment"}
            calls.append(
                Call(
                    f"{name}.page",
                    repo.page,
                    {**window, **extra, "direction": "asc", "limit": 10, "cursor": None},
                )
            )
        if name not in ("customers", "products", "plans"):
            calls.append(
                Call(f"{name}.for_customer", repo.for_customer, {"customer_id": "cus_a"}, 1)
            )
    calls += [
        Call("plans.for_product", store.plans.for_product, {"product_id": "prod_a"}, 1),
        Call(
            "credits.balance",
            store.credits.balance,
            {"customer_id": "cus_a", "currency": "USD", "at": AS_OF},
            2,
        ),
        Call(
            "customers.page",
            store.customers.page,
            {
                "as_of": AS_OF,
                "currency": "USD",
                "search": "ali",
                "owner_id": "staff_1",
                "referral_source": "direct",
                "registered_from": T0 - timedelta(days=1),
                "registered_before": AS_OF,
                "paying": True,
                "has_active_services": True,
                "customer_ids": ["cus_a", "cus_b"],
                "status": "active",
                "product_id": "prod_a",
                "segment": None,
                "segment_config": SegmentConfig(),
                "sort": "name",
                "direction": "asc",
                "limit": 10,
                "cursor": None,
            },
        ),
        Call(
            "customers.page(segment)",
            store.customers.page,
            {
                "as_of": AS_OF,
                "currency": "USD",
                "segment": "active",
                "sort": "mrr",
                "direction": "desc",
                "limit": 1,
            },
        ),
        Call(
            "book", store.book, {"customer_ids": ["cus_a"], "period": Period(start=T0, end=AS_OF)}
        ),
        Call("fx.rates", store.fx.rates, {}),
        Call("mrr", store.mrr, {"at": AS_OF, "currency": "USD", "customer_ids": ["cus_a"]}),
        Call("mrr_series", store.mrr_series, {"start": T0, "end": AS_OF, "currency": "USD"}),
        Call("cash_by_month", store.cash_by_month, {"start": T0, "end": AS_OF, "currency": "USD"}),
        Call("paying_customers", store.paying_customers, {"at": AS_OF}),
        Call("customer_flow", store.customer_flow, {"start": T0, "end": AS_OF}),
        Call("dashboard", store.dashboard, {"as_of": AS_OF, "currency": "USD", "trend_months": 3}),
        Call(
            "customer_summary",
            store.customer_summary,
            {"customer_id": "cus_a", "as_of": AS_OF, "currency": "USD"},
            1,
        ),
        Call("ltv_baseline", store.ltv_baseline, {"as_of": AS_OF, "currency": "USD"}),
        Call(
            "segment_counts",
            store.segment_counts,
            {"as_of": AS_OF, "currency": "USD", "config": SegmentConfig()},
        ),
        Call(
            "segments_of",
            store.segments_of,
            {
                "customer_ids": ["cus_a", "cus_b"],
                "as_of": AS_OF,
                "currency": "USD",
                "config": SegmentConfig(),
            },
            1,
        ),
    ]
    return calls


#: Record each repository's upserts start from: an update of a stored record, and an
#: insert of a new one (same fields, a fresh id and external id).
CUSTOMER_NEW: Final = attrs.evolve(CUSTOMER, id="cus_new", external_id="ext_new")
UPSERT_BASES: Final[Mapping[str, tuple[object, object]]] = {
    "customers": (CUSTOMER, CUSTOMER_NEW),
    "products": (PRODUCT, attrs.evolve(PRODUCT, id="prod_new", external_id="ext_new")),
    "plans": (PLAN, attrs.evolve(PLAN, id="plan_new", external_id="ext_new")),
    "subscriptions": (
        SUBSCRIPTION,
        attrs.evolve(SUBSCRIPTION, id="sub_new", external_id="ext_new"),
    ),
    "invoices": (INVOICE, attrs.evolve(INVOICE, id="inv_new", external_id="ext_new")),
    "transactions": (
        TRANSACTION,
        attrs.evolve(TRANSACTION, id="txn_new", external_id="ext_new", invoice_id=None),
    ),
    "credits": (CREDIT, attrs.evolve(CREDIT, id="cre_new")),
}


def write_calls(store: Any) -> list[Call]:
    """Every write of the Store protocol, with valid arguments (``record`` is replaced by
    a hostile record variant, the other arguments by hostile values)."""
    calls: list[Call] = []
    for name, (update, insert) in UPSERT_BASES.items():
        repo = getattr(store, name)
        calls += [
            Call(f"{name}.upsert", repo.upsert, {"record": insert, "expected_version": 0}, 1),
            Call(
                f"{name}.upsert(update)", repo.upsert, {"record": update, "expected_version": 1}, 1
            ),
            Call(
                f"{name}.upsert_many",
                lambda records, _r=repo: _r.upsert_many(records),
                {"records": [insert]},
                1,
            ),
        ]
    calls += [
        Call("customers.delete", store.customers.delete, {"id": "cus_b", "cascade": True}, 1),
        Call(
            "subscriptions.append",
            store.subscriptions.append,
            {"id": "sub_a", "change": CHANGE, "expected_version": 1},
            2,
        ),
        Call(
            "fx.put",
            store.fx.put,
            {"day": date(2025, 3, 1), "source": "GBP", "target": "USD", "rate": "1.27"},
            4,
        ),
        Call(
            "fx.put_many",
            store.fx.put_many,
            {"rates": FxRates.from_rates([(date(2025, 3, 1), "GBP", "USD", "1.27")])},
            1,
        ),
        Call(
            "import_book",
            store.import_book,
            {"book": Book.of(customers=[CUSTOMER_NEW])},
            1,
        ),
    ]
    return calls


# -- the CRM facade ---------------------------------------------------------------------------


def seeded_crm(store: Any, crm_store: Any) -> Any:
    """A CRM facade over ``BOOK`` with a note, a tag, a contact, a call, an intake
    question and answer and a lead, every moment before ``AS_OF`` (the clock's time)."""
    from revcrm import CRM

    store.import_book(BOOK)
    crm = CRM(store, crm_store, reporting_currency="USD", clock=lambda: AS_OF)
    crm.notes.add("cus_a", "Called about the renewal.", author_id="staff_1", id="note_a", at=T0)
    crm.tags.create("VIP")
    crm.tags.assign("cus_a", "VIP", staff_id="staff_1", at=T0)
    crm.contacts.save(CONTACT)
    crm.calls.log("cus_a", "Renewal", staff_id="staff_1", at=T0, id="call_a")
    crm.intake.define(attrs.evolve(QUESTION, scope=IntakeScope.REGISTRATION))
    crm.intake.answer("cus_a", "q_goal", "Blog", at=T0 + timedelta(hours=1))
    crm.leads.add(LEAD)
    return crm


def facade_calls(crm: Any) -> list[Call]:
    """Every public method of the CRM facade, with valid arguments."""
    lead_b = attrs.evolve(LEAD, id="lead_b", email="erin@example.com", history=())
    customer_c = Customer(
        id="cus_c", registered_at=AS_OF - timedelta(days=1), email="dave@example.com"
    )
    contact_b = attrs.evolve(CONTACT, id="con_b")
    question_b = attrs.evolve(QUESTION, id="q_size", position=2)
    return [
        Call(
            "customers.list",
            crm.customers.list,
            {
                "as_of": AS_OF,
                "search": "ali",
                "referral_source": "direct",
                "has_active_services": True,
                "segment": None,
                "tag": "VIP",
                "status": "active",
                "product_id": "prod_a",
                "sort": "name",
                "direction": "asc",
                "limit": 10,
                "cursor": None,
            },
        ),
        Call(
            "customers.list(segment)",
            crm.customers.list,
            {"as_of": AS_OF, "segment": "active", "sort": "mrr", "limit": 1},
        ),
        Call(
            "customers.profile",
            crm.customers.profile,
            {"customer_id": "cus_a", "as_of": AS_OF, "tickets": (TICKET,)},
            1,
        ),
        Call(
            "customers.timeline",
            crm.customers.timeline,
            {"customer_id": "cus_a", "as_of": AS_OF},
            1,
        ),
        Call(
            "notes.add",
            crm.notes.add,
            {
                "customer_id": "cus_a",
                "body": "Hello",
                "author_id": "staff_1",
                "pinned": False,
                "id": "note_b",
                "at": AS_OF,
            },
            2,
        ),
        Call(
            "notes.edit",
            crm.notes.edit,
            {"note_id": "note_a", "body": "Edited", "staff_id": "staff_1", "at": AS_OF},
            2,
        ),
        Call(
            "notes.delete",
            crm.notes.delete,
            {"note_id": "note_a", "staff_id": "staff_1", "at": AS_OF},
            1,
        ),
        Call(
            "notes.pin", crm.notes.pin, {"note_id": "note_a", "staff_id": "staff_1", "at": AS_OF}, 1
        ),
        Call("notes.list", crm.notes.list, {"customer_id": "cus_a"}, 1),
        Call("tags.create", crm.tags.create, {"name": "Churn risk", "colour": "#00ff00"}, 2),
        Call(
            "tags.assign",
            crm.tags.assign,
            {"customer_id": "cus_b", "tag": "VIP", "staff_id": "staff_1", "at": AS_OF},
            2,
        ),
        Call(
            "tags.remove",
            crm.tags.remove,
            {"customer_id": "cus_a", "tag": "VIP", "staff_id": "staff_1", "at": AS_OF},
            2,
        ),
        Call("tags.counts", crm.tags.counts, {"as_of": AS_OF}),
        Call("tags.customers_with", crm.tags.customers_with, {"tag": "VIP", "as_of": AS_OF}, 1),
        Call("segments.counts", crm.segments.counts, {"as_of": AS_OF, "custom": ()}),
        Call("segments.members", crm.segments.members, {"segment": "active", "as_of": AS_OF}, 1),
        Call(
            "credits.balance", crm.credits.balance, {"customer_id": "cus_a", "currency": "USD"}, 2
        ),
        Call(
            "credits.adjust",
            crm.credits.adjust,
            {
                "customer_id": "cus_a",
                "amount": Money(Decimal("-2.00"), "USD"),
                "reason": "spend",
                "staff_id": "staff_1",
                "at": AS_OF,
                "id": "cre_b",
            },
            2,
        ),
        Call(
            "credits.apply_to_invoice",
            crm.credits.apply_to_invoice,
            {
                "invoice_id": "inv_a",
                "amount": Money(Decimal("1.00"), "USD"),
                "staff_id": "staff_1",
                "at": AS_OF,
                "id": "cre_c",
            },
            2,
        ),
        Call("metrics.dashboard", crm.metrics.dashboard, {"as_of": AS_OF, "trend_months": 3}),
        Call("metrics.analysis", crm.metrics.analysis, {"horizon": AS_OF}),
        Call("metrics.customer_values", crm.metrics.customer_values, {"as_of": AS_OF}),
        Call("contacts.save", crm.contacts.save, {"contact": contact_b}, 1),
        Call("contacts.remove", crm.contacts.remove, {"contact_id": "con_a"}, 1),
        Call("contacts.list", crm.contacts.list, {"customer_id": "cus_a"}, 1),
        Call(
            "calls.log",
            crm.calls.log,
            {
                "customer_id": "cus_a",
                "summary": "Hi",
                "staff_id": "staff_1",
                "duration": timedelta(minutes=2),
                "at": AS_OF,
                "id": "call_b",
            },
            2,
        ),
        Call("calls.list", crm.calls.list, {"customer_id": "cus_a"}, 1),
        Call("intake.define", crm.intake.define, {"question": question_b}, 1),
        Call("intake.retire", crm.intake.retire, {"question_id": "q_goal", "at": AS_OF}, 1),
        Call(
            "intake.questions",
            crm.intake.questions,
            {"scope": "registration", "include_retired": True},
        ),
        Call(
            "intake.answer",
            crm.intake.answer,
            {
                "customer_id": "cus_a",
                "question_id": "q_goal",
                "value": "Shop",
                "subscription_id": None,
                "staff_id": "staff_1",
                "at": AS_OF,
            },
            3,
        ),
        Call("intake.of", crm.intake.of, {"customer_id": "cus_a", "as_of": AS_OF}, 1),
        Call(
            "intake.breakdown", crm.intake.breakdown, {"as_of": AS_OF, "by_referral_source": True}
        ),
        Call("leads.add", crm.leads.add, {"lead": lead_b}, 1),
        Call("leads.get", crm.leads.get, {"lead_id": "lead_a"}, 1),
        Call("leads.list", crm.leads.list, {"stage": "new", "limit": 10, "cursor": None}),
        Call(
            "leads.move",
            crm.leads.move,
            {
                "lead_id": "lead_a",
                "to": "contacted",
                "staff_id": "staff_1",
                "at": AS_OF,
                "note": "emailed",
                "lost_reason": None,
            },
            2,
        ),
        Call(
            "leads.convert",
            crm.leads.convert,
            {"lead_id": "lead_a", "customer_id": "cus_b", "staff_id": "staff_1", "at": AS_OF},
            2,
        ),
        Call(
            "leads.match_registration",
            crm.leads.match_registration,
            {"customer": customer_c, "at": AS_OF, "staff_id": "staff_1"},
            1,
        ),
        Call(
            "merge",
            crm.merge,
            {
                "primary_id": "cus_a",
                "secondary_id": "cus_b",
                "staff_id": "staff_1",
                "at": AS_OF,
                "keep_secondary": False,
            },
            2,
        ),
        Call(
            "erase",
            crm.erase,
            {"customer_id": "cus_b", "mode": "anonymise", "staff_id": "staff_1"},
            1,
        ),
        Call("segmentation", crm.segmentation, {"as_of": AS_OF}),
    ]


def crm_state(crm: Any) -> object:
    """Everything the facade's stores hold, comparable with ``==``."""
    store, c = crm.store, crm.crm
    ids = [*sorted(x.id for x in store.book().customers), "cus_a", "cus_b"]
    per_customer = [
        (
            cid,
            c.notes.for_customer(cid, include_deleted=True),
            c.contacts.for_customer(cid),
            c.calls.for_customer(cid),
            c.intake.answers_for(cid),
            c.tags.tags_of(cid, as_of=AS_OF),
        )
        for cid in ids
    ]
    notes = [c.notes.history(n.id) for n in c.notes.for_customer("cus_a", include_deleted=True)]
    return (
        store_state(store),
        per_customer,
        notes,
        c.tags.all(),
        c.tags.changes(),
        c.intake.questions(include_retired=True),
        sorted(c.leads.all(), key=lambda lead: lead.id),
    )


def store_state(store: Any) -> object:
    """Everything a billing store holds, comparable with ``==``."""
    book = store.book()
    # Book compares by identity: compare its collections.
    records = tuple(getattr(book, f.name) for f in attrs.fields(Book))
    counts = tuple(getattr(store, name).count() for name, _, _ in _REPOS)
    return (records, counts, tuple(store.fx.rates().items()))


# -- the CRM stores ---------------------------------------------------------------------------

CRM_NOTE: Final = Note.create(
    id="note_a", customer_id="cus_a", author_id="staff_1", body="Called about it.", at=T0
)
LEAD_B: Final = Lead(id="lead_b", email="erin@example.com", created_at=T0 + timedelta(hours=1))


def seed_crm_store(s: Any) -> Any:
    """A CRM store holding one record of each kind (the facade's seed, written directly)."""
    s.notes.add(CRM_NOTE)
    s.tags.create(TAG)
    s.tags.record(TAG_CHANGE)
    s.contacts.upsert(CONTACT)
    s.calls.add(CALL)
    s.intake.save_question(QUESTION)
    s.intake.record(ANSWER)
    s.leads.add(LEAD_MOVED)
    s.leads.add(LEAD_B)
    return s


def crm_store_calls(s: Any) -> list[Call]:
    """Every public method of a CRM store's repositories, with valid arguments."""
    edited, entry = CRM_NOTE.edit("Called again.", at=T0 + timedelta(hours=2), staff_id="s")
    customer = {"customer_id": "cus_a"}
    move = {"from_customer": "cus_a", "to_customer": "cus_b"}
    calls = [
        Call("notes.get", s.notes.get, {"id": "note_a"}, 1),
        Call("notes.find", s.notes.find, {"id": "note_a"}, 1),
        Call(
            "notes.for_customer",
            s.notes.for_customer,
            {"customer_id": "cus_a", "include_deleted": True},
            1,
        ),
        Call("notes.history", s.notes.history, {"note_id": "note_a"}, 1),
        Call("notes.add", s.notes.add, {"note": attrs.evolve(CRM_NOTE, id="note_b")}, 1),
        Call("notes.save", s.notes.save, {"note": edited, "entry": entry}, 2),
        Call("tags.get", s.tags.get, {"name": "vip"}, 1),
        Call("tags.all", s.tags.all, {}),
        Call("tags.changes", s.tags.changes, customer, 1),
        Call("tags.tags_of", s.tags.tags_of, {**customer, "as_of": AS_OF}, 1),
        Call("tags.customers_with", s.tags.customers_with, {"name": "VIP", "as_of": AS_OF}, 1),
        Call("tags.counts", s.tags.counts, {"as_of": AS_OF}),
        Call("tags.create", s.tags.create, {"tag": Tag(name="Trial", colour="#00ff00")}, 1),
        Call("tags.record", s.tags.record, {"change": attrs.evolve(TAG_CHANGE, at=AS_OF)}, 1),
        Call("leads.get", s.leads.get, {"id": "lead_a"}, 1),
        Call("leads.find", s.leads.find, {"id": "lead_a"}, 1),
        Call("leads.version", s.leads.version, {"id": "lead_a"}, 1),
        Call("leads.all", s.leads.all, {}),
        Call("leads.open_lead_for", s.leads.open_lead_for, {"email": "dave@example.com"}, 1),
        Call("leads.lead_for_customer", s.leads.lead_for_customer, customer, 1),
        Call("leads.count", s.leads.count, {}),
        Call("leads.page", s.leads.page, {"stage": "new", "limit": 1, "cursor": None}),
        Call(
            "leads.add",
            s.leads.add,
            {"lead": attrs.evolve(LEAD_B, id="lead_c", email="fay@example.com")},
            1,
        ),
        Call(
            "leads.save",
            s.leads.save,
            {"lead": LEAD_MOVED.qualify(at=T0 + timedelta(days=2)), "expected_version": 1},
            1,
        ),
        Call("leads.relink", s.leads.relink, move, 2),
        Call("leads.erase_history", s.leads.erase_history, {"lead_id": "lead_a"}, 1),
        Call("contacts.get", s.contacts.get, {"id": "con_a"}, 1),
        Call("contacts.find", s.contacts.find, {"id": "con_a"}, 1),
        Call("contacts.for_customer", s.contacts.for_customer, customer, 1),
        Call("contacts.upsert", s.contacts.upsert, {"contact": attrs.evolve(CONTACT, id="b")}, 1),
        Call("contacts.remove", s.contacts.remove, {"id": "con_a"}, 1),
        Call("calls.get", s.calls.get, {"id": "call_a"}, 1),
        Call("calls.for_customer", s.calls.for_customer, customer, 1),
        Call("calls.add", s.calls.add, {"call": attrs.evolve(CALL, id="call_b")}, 1),
        Call("intake.question", s.intake.question, {"id": "q_goal"}, 1),
        Call(
            "intake.questions",
            s.intake.questions,
            {"scope": "registration", "include_retired": True},
        ),
        Call("intake.save_question", s.intake.save_question, {"question": QUESTION}, 1),
        Call("intake.record", s.intake.record, {"answer": ANSWER}, 1),
        Call("intake.answers_for", s.intake.answers_for, customer, 1),
        Call("intake.answers", s.intake.answers, {"as_of": AS_OF}),
    ]
    for repo in ("notes", "contacts", "calls", "intake"):
        r = getattr(s, repo)
        calls += [
            Call(f"{repo}.rehome", r.rehome, move, 2),
            Call(f"{repo}.erase_customer", r.erase_customer, customer, 1),
        ]
    for repo in ("notes", "tags", "contacts", "calls", "intake"):
        r = getattr(s, repo)
        calls.append(Call(f"{repo}.delete_customer", r.delete_customer, customer, 1))
    return calls


def crm_store_state(s: Any) -> object:
    """Everything a CRM store holds for the seeded customers, comparable with ``==``."""
    per_customer = [
        (
            s.notes.for_customer(cid, include_deleted=True),
            s.contacts.for_customer(cid),
            s.calls.for_customer(cid),
            s.intake.answers_for(cid),
            s.tags.changes(cid),
        )
        for cid in ("cus_a", "cus_b")
    ]
    notes = [s.notes.history(n.id) for n in s.notes.for_customer("cus_a", include_deleted=True)]
    return (
        per_customer,
        notes,
        s.tags.all(),
        s.tags.changes(),
        s.intake.questions(include_retired=True),
        s.leads.all(),
    )
