"""The MRR breakdowns read one analysis's per-stream MRR (issue 13): equal, to the cent,
to the definitions they replaced, kept here as oracles (each subscription's
``subscription_mrr`` converted by ``convert_mrr``; one ``analyse`` per key of the
invoice source's lines)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    Customer,
    InvoiceStatus,
    Money,
    Product,
    Subscription,
)
from revcrm._records import Invoice, InvoiceLine, LineKind, TransactionKind
from revcrm._subscription import SubscriptionState
from revcrm.crm import IntakeQuestion, intake_breakdown
from revcrm.errors import ValidationError
from revcrm.metrics._customer_value import customer_value, customer_values
from revcrm.metrics._economics import customer_mrrs
from revcrm.metrics._engine import MrrAnalysis, MrrSource, analyse
from revcrm.metrics._mrr import convert_mrr, subscription_mrr
from revcrm.metrics._policy import (
    DiscountPolicy,
    FxDateRule,
    MetricsPolicy,
    Spreading,
)
from revcrm.metrics._revenue import (
    Breakdown,
    _line_cycle,
    _line_product,
    _product_of_state,
    cycle_key,
    mrr_by_billing_cycle,
    mrr_by_product,
)
from revcrm.testing import strategies as rs

POLICIES = st.sampled_from(
    [
        MetricsPolicy(),
        MetricsPolicy(fx_date=FxDateRule.SERVICE_PERIOD_START),
        MetricsPolicy(discounts=DiscountPolicy.FOREVER_ONLY, count_trials=True),
        MetricsPolicy(spreading=Spreading.DAYS, fx_date=FxDateRule.SERVICE_PERIOD_START),
    ]
)

Parts = dict[str | None, dict[str, Money]]


def _per_subscription(
    book: Book,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    key: Callable[[SubscriptionState], str | None],
) -> Parts:
    """The old definition: each subscription's MRR at ``at``, converted on its own."""
    out: Parts = defaultdict(dict)
    for sub in book.subscriptions:
        value = subscription_mrr(sub, at, policy=policy)
        if value.is_zero():
            continue
        state = sub.state_at(at)
        assert state is not None
        k = key(state)
        converted = convert_mrr(value, sub, at, currency, book.fx, policy)
        out[k][sub.customer_id] = out[k].get(sub.customer_id, Money.zero(currency)) + converted
    return out


def _per_key_analyses(
    book: Book,
    analysis: MrrAnalysis,
    at: datetime,
    by_line: Callable[[Invoice, InvoiceLine], str | None],
) -> Parts | None:
    """The old invoice-source definition: the lines grouped by key, one analysis each."""
    groups: dict[str | None, list[Any]] = defaultdict(list)
    for inv in book.invoices:
        by_key: dict[str | None, list[InvoiceLine]] = defaultdict(list)
        for ln in inv.lines:
            if ln.kind is LineKind.RECURRING:
                by_key[by_line(inv, ln)].append(ln)
        for k, lines in by_key.items():
            try:
                groups[k].append(attrs.evolve(inv, lines=tuple(lines)))
            except ValidationError:
                # A key's lines alone can be an invalid invoice (its credit lines exceed
                # its charges): the old definition raised here; the new one does not.
                return None
    out: Parts = {}
    for k, invoices in groups.items():
        part = analyse(
            attrs.evolve(book, invoices=tuple(invoices)),
            currency=analysis.currency,
            policy=analysis.policy,
            source=analysis.source,
            horizon=analysis.horizon,
        )
        found = part.customers_with_mrr(at)
        if found:
            out[k] = found
    return out


def _same(b: Breakdown, parts: Parts) -> None:
    expected = {k: sum(v.values(), Money.zero(b.currency)) for k, v in parts.items() if v}
    assert b.amounts() == expected
    for r in b.rows:
        assert r.customers == sum(1 for m in parts[r.key].values() if not m.is_zero())
        assert r.amount.amount == expected[r.key].amount  # to the last digit


def _keys(book: Book) -> tuple[Callable[[SubscriptionState], str | None], ...]:
    plans = {p.id: p.product_id for p in book.plans}
    return (lambda s: _product_of_state(plans, s), lambda s: cycle_key(s.cycle))


@settings(max_examples=40)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), POLICIES, st.booleans())
def test_subscription_breakdowns_equal_the_per_subscription_definition(
    book: Book, at: datetime, policy: MetricsPolicy, with_analysis: bool
) -> None:
    analysis = analyse(book, currency="USD", policy=policy) if with_analysis else None
    by_product, by_cycle = _keys(book)
    kw: dict[str, Any] = (
        {"analysis": analysis} if analysis is not None else {"currency": "USD", "policy": policy}
    )
    if analysis is not None and at > analysis.horizon:
        return  # past its horizon an analysis keeps the last billing date's rate
    _same(mrr_by_product(book, at=at, **kw), _per_subscription(book, at, "USD", policy, by_product))
    _same(
        mrr_by_billing_cycle(book, at=at, **kw),
        _per_subscription(book, at, "USD", policy, by_cycle),
    )


@settings(max_examples=40)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), POLICIES)
def test_invoice_source_breakdowns_equal_one_analysis_per_key(
    book: Book, at: datetime, policy: MetricsPolicy
) -> None:
    analysis = analyse(book, currency="EUR", policy=policy, source=MrrSource.INVOICES)
    plans = {p.id: p.product_id for p in book.plans}
    by_product = mrr_by_product(book, at=at, analysis=analysis)
    by_cycle = mrr_by_billing_cycle(book, at=at, analysis=analysis)
    assert by_product.total == analysis.mrr(at) == by_cycle.total
    old = _per_key_analyses(book, analysis, at, lambda i, ln: _line_product(book, plans, i, ln))
    if old is not None:
        _same(by_product, old)
    old = _per_key_analyses(book, analysis, at, lambda i, ln: _line_cycle(book, i, ln))
    if old is not None:
        _same(by_cycle, old)


def test_a_subscriptions_lines_of_two_products_are_two_parts() -> None:
    # One subscription billed for hosting and an add-on domain on the same invoice: under
    # the invoice source its stream holds both lines, yet each product gets its own line.
    def t(m: int, d: int) -> datetime:
        return datetime(2024, m, d, tzinfo=UTC)

    sub = Subscription.start(
        id="s1",
        customer_id="a",
        at=t(1, 1),
        price=Money.of("40", "USD"),
        cycle=BillingCycle.QUARTERLY,
        product_id="web",
    )

    def line(amount: str, product: str) -> InvoiceLine:
        return InvoiceLine(
            description=product,
            amount=Money.of(amount, "USD"),
            kind=LineKind.RECURRING,
            subscription_id="s1",
            product_id=product,
            period_start=t(1, 1),
            period_end=t(4, 1),
        )

    inv = Invoice(
        id="i1",
        customer_id="a",
        currency="USD",
        issued_at=t(1, 1),
        due_date=date(2024, 1, 10),
        status=InvoiceStatus.PAID,
        lines=(line("90", "web"), line("30", "dns")),
    )
    book = Book.of(
        customers=[Customer(id="a", registered_at=t(1, 1))],
        products=[Product(id="web", name="Web"), Product(id="dns", name="DNS")],
        subscriptions=[sub],
        invoices=[inv],
    )
    analysis = analyse(book, currency="USD", source=MrrSource.INVOICES)
    result = mrr_by_product(book, at=t(2, 1), analysis=analysis)
    assert result.amounts() == {"web": Money.of("30", "USD"), "dns": Money.of("10", "USD")}
    assert result.row("dns") is not None
    assert result.total == analysis.mrr(t(2, 1))


@settings(max_examples=30)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), st.booleans())
def test_intake_net_payments_equal_the_transactions_net(
    book: Book, at: datetime, by_source: bool
) -> None:
    # The old definition: each succeeded transaction up to ``at`` converted at its date.
    question = IntakeQuestion(id="q", prompt="Found us?", kind="single_choice", options=("x", "y"))
    answers = [
        question.answer(customer_id=c.id, value="x", at=c.registered_at) for c in book.customers
    ]
    result = intake_breakdown(
        book, [question], answers, at=at, currency="EUR", by_referral_source=by_source
    )
    for row in result.rows:
        ids = {
            c.id
            for c in book.customers
            if row.option == "x"
            and c.registered_at <= at
            and (not by_source or c.referral_source == row.referral_source)
        }
        expected = Money.zero("EUR")
        for tx in book.transactions:
            if tx.succeeded and tx.at <= at and tx.customer_id in ids:
                amount = book.fx.convert(tx.amount, "EUR", on=tx.at.date())
                expected += amount if tx.kind is TransactionKind.PAYMENT else -amount
        assert row.net_payments == expected
        assert row.net_payments is not None
        assert row.net_payments.amount == expected.amount


@settings(max_examples=40)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments(), POLICIES, st.booleans())
def test_customer_mrrs_equal_the_per_subscription_definition(
    book: Book, at: datetime, policy: MetricsPolicy, some: bool
) -> None:
    ids = [c.id for c in book.customers][::2] if some else None
    got = customer_mrrs(book, at, "USD", policy, ids)
    expected: dict[str, Money] = {}
    for cid in book.subscriptions_by_customer if ids is None else ids:
        total = Money.zero("USD")
        for sub in book.subscriptions_by_customer.get(cid, ()):
            value = subscription_mrr(sub, at, policy=policy)
            if not value.is_zero():
                total += convert_mrr(value, sub, at, "USD", book.fx, policy)
        expected[cid] = total
    assert got == expected
    assert all(got[c].amount == expected[c].amount for c in got)


@settings(max_examples=40)
@given(rs.books(currencies=["USD", "EUR"]), rs.moments())
def test_credit_balance_equals_the_credit_ledger_per_currency(book: Book, at: datetime) -> None:
    # The old definition: each currency's balance of the book's credit ledger up to
    # ``at``, converted at ``at``'s date.
    values = {v.customer_id: v for v in customer_values(book, as_of=at, currency="EUR")}
    for c in book.customers:
        expected = Money.zero("EUR")
        for cur in sorted({e.amount.currency for e in book.credits_by_customer.get(c.id, ())}):
            balance = book.credit_balance(c.id, cur, at=at)
            if not balance.is_zero():
                expected += book.fx.convert(balance, "EUR", on=at.date())
        one = customer_value(book, c.id, as_of=at, currency="EUR")
        assert values[c.id].credit_balance == one.credit_balance == expected
        assert one.credit_balance.amount == expected.amount
