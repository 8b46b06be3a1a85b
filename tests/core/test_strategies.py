"""The strategies promise what their docstrings say (other suites rely on it)."""

from __future__ import annotations

import base64
import functools
import itertools
import json
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import babel.numbers
import pytest
from hypothesis import find, given, settings
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
            # The period is one of the state's own billing periods (anchor + n months,
            # clamped: after an anchor on the 31st, Nov 30 is followed by Dec 31, which
            # stepping one month from Nov 30 would miss).
            assert any(
                s.service_period(line.period_start) == (line.period_start, line.period_end)
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


# -- hostile strategies ---------------------------------------------------------------------


def _finds(strategy: st.SearchStrategy[Any], condition: Callable[[Any], bool]) -> None:
    """``strategy`` can draw a value meeting ``condition`` (what its docstring promises)."""
    find(strategy, condition, settings=settings(max_examples=2000, database=None))


def _surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(S.hostile_text())
def test_hostile_text_is_text(text: str) -> None:
    assert isinstance(text, str)


@given(S.hostile_text(long=False))
def test_hostile_text_short_stays_short(text: str) -> None:
    assert len(text) < S.LONG_TEXT_LENGTH


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_hostile_text_meets_every_promise() -> None:
    strategy = S.hostile_text()
    _finds(strategy, _surrogate)
    _finds(strategy, lambda s: "\x00" in s)
    _finds(strategy, lambda s: "\u202e" in s or "\u200f" in s)
    _finds(strategy, lambda s: len(s) == S.LONG_TEXT_LENGTH)
    _finds(strategy, lambda s: "DROP TABLE" in s)
    _finds(strategy, lambda s: "{0}" in s or "%s" in s)
    _finds(strategy, lambda s: any(unicodedata.category(c) == "Cc" for c in s))
    _finds(strategy, lambda s: s.strip() == "")


def _is_exactly(kind: type, value: object) -> bool:
    return type(value) is kind


@given(S.wrong_types())
def test_wrong_types_are_never_text(value: object) -> None:
    assert not isinstance(value, str)


def test_wrong_types_meet_every_promise() -> None:
    strategy = S.wrong_types()
    kinds: tuple[type, ...] = (type(None), bool, bytes, list, dict, tuple, float, complex, set)
    for kind in kinds:
        _finds(strategy, functools.partial(_is_exactly, kind))
    _finds(strategy, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 2**64)
    _finds(strategy, lambda v: callable(v) and not isinstance(v, type))
    _finds(strategy, lambda v: type(v).__module__ == "revcrm.testing.strategies._hostile")


@given(S.hostile_text_or_wrong_type())
def test_hostile_text_or_wrong_type_draws(value: object) -> None:
    assert value is None or isinstance(value, object)


def test_hostile_text_or_wrong_type_draws_both() -> None:
    _finds(S.hostile_text_or_wrong_type(), lambda v: isinstance(v, str) and _surrogate(v))
    _finds(S.hostile_text_or_wrong_type(), lambda v: v is None)


@given(S.hostile_decimals())
def test_hostile_decimals_are_decimals(x: Decimal) -> None:
    assert isinstance(x, Decimal)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_hostile_decimals_meet_every_promise() -> None:
    strategy = S.hostile_decimals()
    _finds(strategy, lambda x: x.is_snan())
    _finds(strategy, lambda x: x.is_qnan())
    _finds(strategy, lambda x: x.is_infinite() and x > 0)
    _finds(strategy, lambda x: x.is_infinite() and x < 0)
    _finds(strategy, lambda x: x.is_finite() and x.adjusted() >= 999_999)
    _finds(strategy, lambda x: x.is_finite() and x != 0 and x.adjusted() <= -999_999)
    _finds(strategy, lambda x: x.is_finite() and len(x.as_tuple().digits) >= S.LONG_TEXT_LENGTH)
    _finds(strategy, lambda x: x.is_zero() and x.is_signed())


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_hostile_numbers_meet_every_promise() -> None:
    strategy = S.hostile_numbers()
    _finds(strategy, lambda v: isinstance(v, float) and v != v)
    _finds(strategy, lambda v: isinstance(v, float) and v == float("inf"))
    _finds(strategy, lambda v: isinstance(v, bool))
    _finds(strategy, lambda v: type(v) is int and abs(v) > 2**64)
    _finds(strategy, lambda v: isinstance(v, str) and v.lower() == "nan")
    _finds(strategy, lambda v: isinstance(v, str) and len(v) >= S.LONG_TEXT_LENGTH)
    _finds(strategy, lambda v: isinstance(v, Fraction))
    _finds(strategy, lambda v: isinstance(v, Decimal) and v.is_nan())


def test_hostile_ints_meet_every_promise() -> None:
    strategy = S.hostile_ints()
    _finds(strategy, lambda v: isinstance(v, bool))
    _finds(strategy, lambda v: type(v) is int and v >= 2**63)
    _finds(strategy, lambda v: type(v) is int and v < 0)
    _finds(strategy, lambda v: v == 0 and type(v) is int)
    _finds(strategy, lambda v: v is None)
    _finds(strategy, lambda v: isinstance(v, float))
    _finds(strategy, lambda v: isinstance(v, str))
    _finds(strategy, lambda v: isinstance(v, Decimal))


def _before_year_one_in_utc(value: object) -> bool:
    if not isinstance(value, datetime) or value.year != 1:
        return False
    offset = value.utcoffset()
    return offset is not None and offset > timedelta(0)


def test_hostile_dates_meet_every_promise() -> None:
    strategy = S.hostile_dates()
    _finds(strategy, lambda v: isinstance(v, datetime) and v.tzinfo is None)
    _finds(strategy, lambda v: isinstance(v, datetime) and v.tzinfo is not None and v.year == 1)
    _finds(strategy, lambda v: isinstance(v, datetime) and v.tzinfo is not None and v.year == 9999)
    _finds(strategy, lambda v: type(v) is date)
    _finds(strategy, lambda v: isinstance(v, str))
    _finds(strategy, lambda v: v is None)
    _finds(strategy, lambda v: isinstance(v, (int, float)))
    # Past either end of the calendar once converted to UTC.
    _finds(strategy, _before_year_one_in_utc)


def _nested(value: object, test: Callable[[object], bool]) -> bool:
    if test(value):
        return True
    if isinstance(value, dict):
        return any(_nested(v, test) for v in value.values())
    return False


def test_hostile_mappings_meet_every_promise() -> None:
    strategy = S.hostile_mappings()
    _finds(strategy, lambda v: isinstance(v, dict) and any(not isinstance(k, str) for k in v))
    _finds(strategy, lambda v: isinstance(v, dict) and any(k is None for k in v))
    _finds(strategy, lambda v: isinstance(v, dict) and _nested(v, lambda x: isinstance(x, bytes)))
    _finds(
        strategy,
        lambda v: (
            isinstance(v, dict) and _nested(v, lambda x: isinstance(x, (Decimal, float)) and x != x)
        ),
    )
    _finds(strategy, lambda v: isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()))
    _finds(strategy, lambda v: not isinstance(v, dict))


@given(S.forged_cursors())
def test_forged_cursors_are_text(cursor: str) -> None:
    assert isinstance(cursor, str)


def test_forged_cursors_include_decodable_json() -> None:
    def decodes(cursor: str) -> bool:
        try:
            json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except ValueError:
            return False
        return True

    _finds(S.forged_cursors(), decodes)
    _finds(S.forged_cursors(), lambda c: not decodes(c))


def test_hostile_values_draw_every_family() -> None:
    strategy = S.hostile_values()
    _finds(strategy, lambda v: isinstance(v, str) and _surrogate(v))
    _finds(strategy, lambda v: isinstance(v, Decimal) and v.is_nan())
    _finds(strategy, lambda v: isinstance(v, datetime) and v.tzinfo is None)
    _finds(strategy, lambda v: isinstance(v, dict) and any(not isinstance(k, str) for k in v))
    _finds(strategy, lambda v: isinstance(v, bytes))


def test_hostile_characters() -> None:
    assert "\x00" in S.HOSTILE_CHARACTERS
    assert any(_surrogate(c) for c in S.HOSTILE_CHARACTERS)
    assert all(len(c) == 1 for c in S.HOSTILE_CHARACTERS)
