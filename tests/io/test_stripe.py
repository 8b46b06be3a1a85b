"""from_stripe over fixtures in Stripe's documented shapes (API version 2024-06-20).

Figures are Stripe's MRR rules (docs.stripe.com/billing/subscriptions/analytics and the
Billing analytics support article) computed by hand: an annual $120 plan is $10 MRR, a
forever coupon counts and a once/repeating one does not, trials count nothing, a refund
moves cash and never MRR, a $10 -> $20 switch halfway through a month is an expansion of
$10 at the switch.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from revcrm import (
    Book,
    FxRates,
    InvoiceStatus,
    Money,
    SubscriptionStatus,
    TransactionKind,
)
from revcrm.errors import ValidationError
from revcrm.io import STRIPE_API_VERSION, from_stripe
from revcrm.metrics import MetricsPolicy, MovementKind, analyse

FIXTURES = Path(__file__).parent / "fixtures"
STRIPE = MetricsPolicy.stripe()
FX = FxRates.from_rates([(date(2024, 1, 1), "JPY", "USD", "0.0065")])


def _load(name: str) -> Any:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert data["stripe_api_version"] == STRIPE_API_VERSION
    return data


def _objects() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = _load("stripe_mrr_2024-06-20.json")["objects"]["data"]
    return data


def _ts(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def _usd(amount: str) -> Money:
    return Money(amount, "USD")


def _records(book: Book) -> tuple[Any, ...]:
    return (
        book.customers,
        book.products,
        book.plans,
        book.subscriptions,
        book.invoices,
        book.transactions,
        book.credits,
    )


@pytest.fixture(scope="module")
def book() -> Book:
    return from_stripe({"object": "list", "data": _objects()}, fx=FX)


def test_mrr_follows_stripes_rules(book: Book) -> None:
    a = analyse(book, currency="USD", policy=STRIPE)
    # 5 Mar: annual 120/12=10, coupon 50-20%=40, trial 0, cancel 25, refund 15,
    # JPY 1200 x 0.0065 = 7.80, upgrade not started.
    assert a.mrr(date(2024, 3, 5)) == _usd("97.80")
    # 20 May: trial converted (+30), cancelled at period end 1 Apr (-25), upgraded to 20.
    assert a.mrr(date(2024, 5, 20)) == _usd("122.80")
    assert a.customer_mrr("cus_annual", date(2024, 6, 1)) == _usd("10")
    assert a.customer_mrr("cus_trial", date(2024, 3, 14)) == _usd("0")
    assert a.customer_mrr("cus_trial", date(2024, 3, 15)) == _usd("30")


def test_movements_and_april_waterfall(book: Book) -> None:
    a = analyse(book, currency="USD", policy=STRIPE)
    moves = [
        (m.customer_id, m.at.date(), m.kind, m.amount)
        for m in a.movements(date(2024, 3, 1), date(2024, 5, 1))
    ]
    assert moves == [
        ("cus_trial", date(2024, 3, 15), MovementKind.NEW, _usd("30")),
        ("cus_cancel", date(2024, 4, 1), MovementKind.CHURN, _usd("-25")),
        ("cus_upgrade", date(2024, 4, 1), MovementKind.NEW, _usd("10")),
        ("cus_upgrade", date(2024, 4, 16), MovementKind.EXPANSION, _usd("10")),
    ]
    w = a.waterfall(date(2024, 4, 1), date(2024, 5, 1))
    assert (w.start_mrr, w.new, w.expansion, w.churn, w.end_mrr) == (
        _usd("127.80"),
        _usd("10"),
        _usd("10"),
        _usd("-25"),
        _usd("122.80"),
    )


def test_jpy_in_its_own_currency(book: Book) -> None:
    sub = book.subscription_index["sub_jpy"]
    assert sub.current.price == Money("1200", "JPY")
    invoice = next(i for i in book.invoices if i.id == "in_jpy_1")
    assert invoice.total == Money("1200", "JPY")


def test_refund_moves_cash_not_mrr(book: Book) -> None:
    cash = {t.id: (t.kind, t.amount, t.invoice_id) for t in book.transactions}
    assert cash["ch_refund_1"] == (TransactionKind.PAYMENT, _usd("15"), "in_refund_1")
    assert cash["re_refund_1"] == (TransactionKind.REFUND, _usd("5"), "in_refund_1")
    a = analyse(book, currency="USD", policy=STRIPE)
    assert a.customer_mrr("cus_refund", date(2024, 2, 21)) == _usd("15")


def test_proration_pair_is_a_pair_of_recurring_lines(book: Book) -> None:
    inv = next(i for i in book.invoices if i.id == "in_upgrade_2")
    # -5.00 unused time + 10.00 remaining time + 20.00 next month = 25.00
    assert inv.total == _usd("25")
    assert inv.status is InvoiceStatus.PAID
    recurring = [line for line in inv.lines if line.kind.value == "recurring"]
    assert [(line.net, line.period_start, line.subscription_id) for line in recurring] == [
        (_usd("-5"), datetime(2024, 4, 16, tzinfo=UTC), "sub_upgrade"),
        (_usd("10"), datetime(2024, 4, 16, tzinfo=UTC), "sub_upgrade"),
        (_usd("20"), datetime(2024, 5, 1, tzinfo=UTC), "sub_upgrade"),
    ]


def test_invoice_source_reads_the_proration_pair_as_the_switch(book: Book) -> None:
    # The lines of sub_upgrade (monthly): 10.00 for April; on 16 Apr, halfway through
    # April's 30 days, -5.00 unused time and +10.00 remaining time, each over [16 Apr,
    # 1 May): half of the monthly cycle holding them, so -10.00 and +20.00 a month.
    # MRR: 10 - 10 + 20 = 20 from the switch, an expansion of 10 then, nothing on 1 May
    # (not 20.14 and -0.14, which 365/12-day months gave).
    a = analyse(book, currency="USD", policy=STRIPE, source="invoices")
    assert a.customer_mrr("cus_upgrade", date(2024, 4, 15)) == _usd("10")
    assert a.customer_mrr("cus_upgrade", date(2024, 4, 16)) == _usd("20")
    assert a.customer_mrr("cus_upgrade", date(2024, 5, 20)) == _usd("20")
    moves = [
        (m.at.date(), m.kind, m.amount)
        for m in a.movements(date(2024, 3, 1), date(2024, 6, 1))
        if m.customer_id == "cus_upgrade"
    ]
    assert moves == [
        (date(2024, 4, 1), MovementKind.NEW, _usd("10")),
        (date(2024, 4, 16), MovementKind.EXPANSION, _usd("10")),
    ]
    # The other lines as they bill: on 5 Mar annual 10 (120 over 12 whole months), the
    # trial's zero line, cancel 25, refund 15 (Feb 10 - Mar 10); the coupon (40 net) and
    # JPY (7.80) lines ended on 1 Mar: on 20 Feb they count, 10 + 40 + 15 + 7.80. On
    # 10 Apr annual 10 + trial 30 + upgrade 10.
    assert a.mrr(date(2024, 2, 20)) == _usd("72.80")
    assert a.mrr(date(2024, 3, 5)) == _usd("50")
    assert a.mrr(date(2024, 4, 10)) == _usd("50")
    assert a.mrr(date(2024, 4, 20)) == _usd("30")


def test_history_from_events_replayed_in_order() -> None:
    data = _load("stripe_events_2024-06-20.json")
    shuffled = copy.deepcopy(data)
    shuffled["data"].reverse()
    for source in (data, shuffled):
        book = from_stripe(source)
        a = analyse(book, currency="USD", policy=STRIPE)
        moves = [
            (m.at.date(), m.kind, m.amount) for m in a.movements(date(2024, 1, 1), date(2025, 1, 1))
        ]
        assert moves == [
            (date(2024, 4, 1), MovementKind.NEW, _usd("10")),
            (date(2024, 4, 16), MovementKind.EXPANSION, _usd("10")),
            (date(2024, 6, 1), MovementKind.CHURN, _usd("-20")),
        ]
        sub = book.subscription_index["sub_upgrade"]
        assert sub.current.status is SubscriptionStatus.CANCELLED
        assert sub.current.cancel_requested_at == datetime(2024, 5, 20, tzinfo=UTC)


def test_a_second_import_changes_nothing() -> None:
    objects = _objects()
    first = from_stripe(objects, fx=FX)
    assert _records(from_stripe(copy.deepcopy(objects), fx=FX)) == _records(first)
    assert _records(from_stripe([*objects, *copy.deepcopy(objects)], fx=FX)) == _records(first)


class _StripeLike:
    """Duck-typed stand-in for a stripe-python object."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


def test_stripe_python_objects_are_read_through_to_dict() -> None:
    objects = _objects()
    book = from_stripe([_StripeLike(o) for o in objects], fx=FX)
    assert _records(book) == _records(from_stripe(objects, fx=FX))


# -- small objects ------------------------------------------------------------------------


def _price(
    pid: str = "price_m", amount: int = 1000, currency: str = "usd", **kw: Any
) -> dict[str, Any]:
    recurring = {"interval": "month", "interval_count": 1, "usage_type": "licensed"}
    recurring.update(kw.pop("recurring", {}))
    return {
        "id": pid,
        "object": "price",
        "currency": currency,
        "product": "prod_x",
        "billing_scheme": "per_unit",
        "type": "recurring",
        "recurring": recurring,
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
        **kw,
    }


def _sub(
    status: str = "active", price: dict[str, Any] | None = None, quantity: int = 1, **kw: Any
) -> dict[str, Any]:
    start = _ts(2024, 1, 1)
    return {
        "id": "sub_x",
        "object": "subscription",
        "customer": "cus_x",
        "status": status,
        "start_date": start,
        "created": start,
        "billing_cycle_anchor": start,
        "current_period_start": _ts(2024, 3, 1),
        "current_period_end": _ts(2024, 4, 1),
        "cancel_at_period_end": False,
        "cancel_at": None,
        "canceled_at": None,
        "ended_at": None,
        "trial_start": None,
        "trial_end": None,
        "discount": None,
        "items": {
            "object": "list",
            "has_more": False,
            "data": [
                {
                    "id": "si_x",
                    "object": "subscription_item",
                    "price": price or _price(),
                    "quantity": quantity,
                }
            ],
        },
        **kw,
    }


def _mrr(objects: Any, at: date, policy: MetricsPolicy = STRIPE, currency: str = "USD") -> Money:
    return analyse(from_stripe(objects), currency=currency, policy=policy).mrr(at)


@pytest.mark.parametrize(
    ("status", "extra", "revcrm_status", "mrr"),
    [
        ("incomplete", {}, SubscriptionStatus.PENDING, "0"),
        ("incomplete_expired", {"ended_at": _ts(2024, 1, 2)}, SubscriptionStatus.TERMINATED, "0"),
        (
            "trialing",
            {"trial_start": _ts(2024, 1, 1), "trial_end": _ts(2024, 6, 1)},
            SubscriptionStatus.TRIALING,
            "0",
        ),
        ("active", {}, SubscriptionStatus.ACTIVE, "30"),
        ("past_due", {}, SubscriptionStatus.PAST_DUE, "30"),
        (
            "canceled",
            {"canceled_at": _ts(2024, 3, 5), "ended_at": _ts(2024, 3, 5)},
            SubscriptionStatus.CANCELLED,
            "0",
        ),
        ("unpaid", {}, SubscriptionStatus.SUSPENDED, "0"),
        (
            "paused",
            {"trial_start": _ts(2024, 1, 1), "trial_end": _ts(2024, 2, 1)},
            SubscriptionStatus.SUSPENDED,
            "0",
        ),
    ],
)
def test_every_stripe_status(
    status: str, extra: dict[str, Any], revcrm_status: SubscriptionStatus, mrr: str
) -> None:
    book = from_stripe([_sub(status, quantity=3, **extra)])
    sub = book.subscription_index["sub_x"]
    assert sub.current.status is revcrm_status
    assert sub.current.quantity == 3
    a = analyse(book, currency="USD", policy=STRIPE)
    assert a.mrr(date(2024, 3, 20)) == _usd(mrr)
    if status in ("past_due", "unpaid", "canceled"):
        assert a.mrr(date(2024, 2, 1)) == _usd("30")  # it billed before


def _coupon(duration: str, **kw: Any) -> dict[str, Any]:
    coupon = {
        "id": "co",
        "object": "coupon",
        "duration": duration,
        "percent_off": None,
        "amount_off": None,
        "currency": None,
    }
    coupon.update(kw)
    return {
        "id": "di_x",
        "object": "discount",
        "coupon": coupon,
        "start": _ts(2024, 1, 1),
        "end": None,
    }


def test_coupons_once_repeating_forever_and_amount_off() -> None:
    at = date(2024, 2, 15)
    forever = _sub(discount=_coupon("forever", percent_off=25))
    assert _mrr([forever], at) == _usd("7.50")
    # Stripe's MRR leaves out once and repeating coupons; the default policy counts them.
    repeating = _sub(discount=_coupon("repeating", percent_off=50, duration_in_months=3))
    assert _mrr([repeating], at) == _usd("10")
    assert _mrr([repeating], at, MetricsPolicy()) == _usd("5")
    assert _mrr([repeating], date(2024, 4, 2), MetricsPolicy()) == _usd("10")
    once = _sub(discount=_coupon("once", amount_off=300, currency="usd"))
    assert _mrr([once], date(2024, 1, 15), MetricsPolicy()) == _usd("7")
    assert _mrr([once], at, MetricsPolicy()) == _usd("10")


def test_zero_and_three_decimal_currencies() -> None:
    jpy = _sub(price=_price(amount=500, currency="jpy"))
    assert _mrr([jpy], date(2024, 2, 1), currency="JPY") == Money("500", "JPY")
    kwd = _sub(price=_price(amount=12345, currency="kwd"))
    assert _mrr([kwd], date(2024, 2, 1), currency="KWD") == Money("12.345", "KWD")
    decimal = _sub(price=_price(amount=0, unit_amount_decimal="1250.5"))
    assert _mrr([decimal], date(2024, 2, 1)) == _usd("12.505")


def test_intervals_and_counts() -> None:
    quarterly = _sub(price=_price(amount=3000, recurring={"interval_count": 3}))
    assert _mrr([quarterly], date(2024, 2, 1)) == _usd("10")
    yearly = _sub(price=_price(amount=12000, recurring={"interval": "year"}))
    assert _mrr([yearly], date(2024, 2, 1)) == _usd("10")


def test_metered_bills_no_mrr_and_tiered_by_quantity() -> None:
    metered = _sub(
        price=_price(
            recurring={"usage_type": "metered"}, unit_amount=None, unit_amount_decimal=None
        )
    )
    assert _mrr([metered], date(2024, 2, 1)) == _usd("0")
    tiers = [
        {"up_to": 5, "unit_amount": 1000, "flat_amount": None},
        {"up_to": None, "unit_amount": 500, "flat_amount": None},
    ]
    graduated = _price(
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=tiers,
        unit_amount=None,
        unit_amount_decimal=None,
    )
    # 5 x 10 + 2 x 5 = 60
    assert _mrr([_sub(price=graduated, quantity=7)], date(2024, 2, 1)) == _usd("60")


def _invoice(lines: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "id": "in_x",
        "object": "invoice",
        "customer": "cus_x",
        "currency": "usd",
        "created": _ts(2024, 3, 1),
        "status": "paid",
        "status_transitions": {"finalized_at": _ts(2024, 3, 1), "paid_at": _ts(2024, 3, 2)},
        "due_date": None,
        "number": "X-1",
        "lines": {"object": "list", "has_more": False, "data": lines},
        **kw,
    }


def _line(lid: str, amount: object, **kw: Any) -> dict[str, Any]:
    return {
        "id": lid,
        "object": "line_item",
        "amount": amount,
        "currency": "usd",
        "description": lid,
        "period": {"start": _ts(2024, 3, 1), "end": _ts(2024, 3, 1)},
        "proration": False,
        "quantity": 1,
        "type": "invoiceitem",
        "discount_amounts": [],
        "tax_amounts": [],
        **kw,
    }


def test_invoice_lines_tax_discount_and_negative_total() -> None:
    lines = [
        _line(
            "il_a",
            1000,
            tax_amounts=[{"amount": 190, "inclusive": False}],
            discount_amounts=[{"amount": 100}],
        ),
        _line("il_b", -2000, description="credit"),
    ]
    book = from_stripe([_invoice(lines)])
    inv = book.invoices[0]
    assert inv.paid_at == datetime(2024, 3, 2, tzinfo=UTC)
    assert inv.total == _usd("0")
    # The 20.00 credit takes the 9.00 net and the 1.90 tax; Stripe credits the rest
    # (9.10) to the customer's balance.
    assert [c.amount for c in book.credits] == [_usd("9.10")]
    assert book.customers[0].id == "cus_x"  # referred to, not given: made from its records


def test_credit_notes() -> None:
    invoice = _invoice([_line("il_a", 5000)], status="open")
    pre = {
        "id": "cn_pre",
        "object": "credit_note",
        "type": "pre_payment",
        "status": "issued",
        "amount": 1000,
        "currency": "usd",
        "customer": "cus_x",
        "invoice": "in_x",
        "created": _ts(2024, 3, 3),
    }
    post = {
        "id": "cn_post",
        "object": "credit_note",
        "type": "post_payment",
        "status": "issued",
        "amount": 700,
        "currency": "usd",
        "customer": "cus_x",
        "invoice": "in_x",
        "created": _ts(2024, 3, 4),
        "customer_balance_transaction": "cbtxn_1",
        "refund": None,
        "out_of_band_amount": None,
    }
    void = {**post, "id": "cn_void", "status": "void"}
    book = from_stripe([invoice, pre, post, void])
    assert book.invoices[0].total == _usd("40")
    assert [(c.id, c.amount) for c in book.credits] == [("cn_post", _usd("7"))]


def test_history_from_invoice_lines_dates_a_change() -> None:
    # Without events: the subscription now bills 20, its invoices show 10 until 16 Mar.
    sub = _sub(price=_price("price_20", 2000))
    lines = [
        _line(
            "il_1",
            1000,
            type="subscription",
            subscription="sub_x",
            price=_price("price_10", 1000),
            period={"start": _ts(2024, 2, 1), "end": _ts(2024, 3, 1)},
        ),
    ]
    prorated = [
        _line(
            "il_2",
            1000,
            proration=True,
            subscription="sub_x",
            price=_price("price_20", 2000),
            period={"start": _ts(2024, 3, 16), "end": _ts(2024, 4, 1)},
        ),
    ]
    book = from_stripe([sub, _invoice(lines, id="in_1"), _invoice(prorated, id="in_2")])
    a = analyse(book, currency="USD", policy=STRIPE)
    assert a.mrr(date(2024, 3, 15)) == _usd("10")
    assert a.mrr(date(2024, 3, 16)) == _usd("20")


@pytest.mark.parametrize(
    ("objects", "field"),
    [
        ([{"id": "x_1", "object": "widget"}], "objects[0].object"),
        ([_sub("resting")], "subscription[sub_x].status"),
        (
            [{**_sub(), "items": {"object": "list", "has_more": True, "data": []}}],
            "subscription[sub_x].items.has_more",
        ),
        ([_sub(price=_price(currency="zzz"))], "price[price_m].currency"),
        ([_invoice([_line("il_a", 10)], status="paidish")], "invoice[in_x].status"),
        ([_invoice([_line("il_a", "10")])], "invoice[in_x].line_item[il_a].amount"),
        ([{"object": "customer", "created": 1}], "customer.id"),
        (
            [
                {
                    "id": "re_1",
                    "object": "refund",
                    "amount": 5,
                    "charge": "ch_missing",
                    "currency": "usd",
                    "created": 1,
                    "status": "succeeded",
                }
            ],
            "refund[re_1].charge",
        ),
    ],
)
def test_malformed_objects_name_object_and_field(objects: list[Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        from_stripe(objects)
    assert info.value.field.startswith(field), info.value.field
