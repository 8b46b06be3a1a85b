"""Invoice figures from the ledger's invoice rows (issue 13): the customer value's invoice
count, average invoice value and outstanding balance, and the facts' overdue invoices and
"ordered by invoice", equal a plain Decimal oracle over the records kept here (the
definitions :func:`revcrm.metrics.customer_value` had before it read the rows: totals
converted at the UTC issue day, remainders after the linked successful payments up to
``as_of`` converted at ``as_of``'s day, drafts and voids left out, uncollectible
invoices written off)."""

from __future__ import annotations

import decimal
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book, FxRates, InvoiceStatus, Money, Transaction
from revcrm._crm_services import invoice_overdue, invoice_unpaid
from revcrm._ledger._cash import cash_columns, moment_us
from revcrm._ledger._facts import fact_columns
from revcrm._ledger._invoices import InvoiceEntry, invoice_columns
from revcrm._ledger._services import first_invoiced_at, service_columns
from revcrm._money import EXACT_CONTEXT, divide
from revcrm._records import TransactionKind, TransactionStatus
from revcrm.errors import MissingRateError
from revcrm.metrics import CustomerValue, MetricsPolicy, customer_value, customer_values
from revcrm.metrics._customer_value import ledger_rows
from revcrm.testing import strategies as rs
from tests._builders import customer, eur, invoice, payment, t

_TICK = timedelta(microseconds=1)


def _oracle(
    book: Book, customer_id: str, at: datetime, currency: str
) -> tuple[int, Decimal | None, Decimal]:
    """(invoice count, average invoice value, outstanding balance) by the records."""
    fx = book.fx
    linked: dict[str, list[Transaction]] = defaultdict(list)
    for tx in book.transactions_by_customer.get(customer_id, ()):
        paying = tx.succeeded and tx.kind is TransactionKind.PAYMENT
        if paying and tx.at <= at and tx.invoice_id is not None:
            linked[tx.invoice_id].append(tx)
    totals: list[Decimal] = []
    owed = Decimal(0)
    with decimal.localcontext(EXACT_CONTEXT):
        for inv in book.invoices_by_customer.get(customer_id, ()):
            if inv.issued_at > at or inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
                continue
            total = inv.total.amount
            totals.append(total * fx.rate(inv.currency, currency, inv.issued_at.date()))
            paid_later = (
                inv.status is InvoiceStatus.PAID and inv.paid_at is not None and inv.paid_at > at
            )
            if inv.status is not InvoiceStatus.OPEN and not paid_later:
                continue
            paid = sum(
                (
                    tx.amount.amount * fx.rate(tx.amount.currency, inv.currency, tx.at.date())
                    for tx in linked[inv.id]
                ),
                Decimal(0),
            )
            if total - paid > 0:
                owed += (total - paid) * fx.rate(inv.currency, currency, at.date())
        average = divide(sum(totals, Decimal(0)), Decimal(len(totals))) if totals else None
    return len(totals), average, owed


def _figures(v: CustomerValue) -> tuple[int, Decimal | None, Decimal]:
    avg = v.average_invoice_value
    return v.invoice_count, None if avg is None else avg.amount, v.outstanding_balance.amount


@st.composite
def _books(draw: st.DrawFn) -> Book:
    """Multi-currency books, with extra payments linked to some invoices: partial or
    whole, succeeded or not, refunds, before or after the invoice, sometimes by another
    customer (whose payment settles nothing of this one's)."""
    book = draw(rs.books(currencies=["USD", "EUR", "GBP"], max_invoices=3))
    ids = [c.id for c in book.customers]
    extra = []
    for k, inv in enumerate(book.invoices):
        if inv.total.amount <= 0 or not draw(st.booleans()):
            continue
        share = draw(st.sampled_from(("0.25", "0.5", "0.333", "1")))
        amount = (inv.total * Decimal(share)).rounded()
        if amount.amount <= 0:
            continue
        extra.append(
            Transaction(
                id=f"pay_linked_{k}",
                customer_id=draw(st.sampled_from([inv.customer_id, inv.customer_id, *ids])),
                kind=draw(st.sampled_from((TransactionKind.PAYMENT,) * 3 + tuple(TransactionKind))),
                status=draw(
                    st.sampled_from((TransactionStatus.SUCCEEDED,) * 3 + tuple(TransactionStatus))
                ),
                amount=amount,
                method="card",
                at=inv.issued_at + timedelta(days=draw(st.integers(-2, 60))),
                invoice_id=inv.id,
            )
        )
    return Book.of(
        customers=book.customers,
        products=book.products,
        plans=book.plans,
        subscriptions=book.subscriptions,
        invoices=book.invoices,
        transactions=[*book.transactions, *extra],
        credits=book.credits,
        fx=book.fx,
    )


@st.composite
def _book_and_moment(draw: st.DrawFn) -> tuple[Book, datetime]:
    book = draw(_books())
    moments = [m for i in book.invoices for m in (i.issued_at, i.paid_at) if m is not None]
    near = st.sampled_from(moments).flatmap(lambda m: st.sampled_from((m - _TICK, m, m + _TICK)))
    at = draw(near | rs.moments_near(book) if moments else rs.moments_near(book))
    return book, at


@settings(max_examples=25, deadline=None)
@given(_book_and_moment(), st.sampled_from(("USD", "EUR")))
def test_invoice_figures_equal_the_decimal_oracle(
    case: tuple[Book, datetime], currency: str
) -> None:
    book, at = case
    values = customer_values(book, as_of=at, currency=currency)
    assert [v.customer_id for v in values] == [c.id for c in book.customers]
    for v in values:
        assert _figures(v) == _oracle(book, v.customer_id, at, currency)
        one = customer_value(book, v.customer_id, as_of=at, currency=currency)
        assert (one.invoice_count, one.average_invoice_value, one.outstanding_balance) == (
            v.invoice_count,
            v.average_invoice_value,
            v.outstanding_balance,
        )


@settings(max_examples=25, deadline=None)
@given(rs.busy_books(), st.data())
def test_facts_overdue_and_ordered_equal_the_rules_over_the_records(
    book: Book, data: st.DataObject
) -> None:
    at = data.draw(rs.moments_near(book))
    ids = tuple(c.id for c in book.customers)
    cash = cash_columns(book, "USD", customer_ids=ids, credits=False)
    services = service_columns(book, customer_ids=ids, horizon=at)
    invoices = invoice_columns(book, "USD", customer_ids=ids)
    facts, _ = fact_columns(
        book,
        as_of=at,
        cash=cash,
        services=services,
        mrr={},
        mrr_digits=0,
        first_paid={},
        invoices=invoices,
    )
    built, _ = fact_columns(
        book, as_of=at, cash=cash, services=services, mrr={}, mrr_digits=0, first_paid={}
    )
    by_customer = book.invoices_by_customer
    for i, cid in enumerate(ids):
        own = by_customer.get(cid, ())
        want = sum(invoice_overdue(inv, at) for inv in own)
        assert int(facts.overdue_invoices[i]) == int(built.overdue_invoices[i]) == want
        first = first_invoiced_at(own)
        if first is not None and first <= at:
            assert facts.ordered[i]
            assert built.ordered[i]
    ordered_by_invoice = invoices.ordered_by(moment_us(at))
    for i, cid in enumerate(ids):
        first = first_invoiced_at(by_customer.get(cid, ()))
        assert bool(ordered_by_invoice[i]) == (first is not None and first <= at)
    # The rows' unpaid spans answer invoice_unpaid at every moment.
    unpaid = invoices.unpaid_at(moment_us(at))
    by_id = {inv.id: inv for inv in book.invoices}
    for row, invoice_id in enumerate(invoices.invoice_ids):
        assert bool(unpaid[row]) is invoice_unpaid(by_id[invoice_id], at), invoice_id


# -- a worked example -------------------------------------------------------------------------

FX = FxRates.from_rates(
    [
        (date(2024, 1, 1), "EUR", "USD", "1.10"),
        (date(2024, 3, 10), "EUR", "USD", "1.20"),
        (date(2024, 3, 11), "EUR", "USD", "1.30"),
        (date(2024, 4, 1), "EUR", "USD", "1.25"),
    ]
)
AS_OF = t(2024, 4, 1, 12)


def _example() -> Book:
    return Book.of(
        customers=[customer("c1"), customer("c2")],
        invoices=[
            # Paid in full before as_of: counted, owes nothing.
            invoice("inv_1", "c1", eur(100), issued=t(2024, 3, 10, 12), paid_at=t(2024, 3, 10, 13)),
            # Open, half paid: owes 150 EUR; overdue (due 03-24).
            invoice("inv_2", "c1", eur(200), issued=t(2024, 3, 10, 23), status=InvoiceStatus.OPEN),
            # Paid only after as_of: owes all 30 EUR; overdue (due 03-25).
            invoice("inv_3", "c1", eur(30), issued=t(2024, 3, 11, 9), paid_at=t(2024, 4, 20)),
            # Written off: counted in the average, owes nothing, never overdue.
            invoice(
                "inv_4",
                "c1",
                eur(40),
                issued=t(2024, 3, 11, 10),
                status=InvoiceStatus.UNCOLLECTIBLE,
            ),
            invoice("inv_5", "c1", eur(500), issued=t(2024, 3, 11), status=InvoiceStatus.DRAFT),
            invoice("inv_6", "c1", eur(70), issued=t(2024, 4, 2), status=InvoiceStatus.OPEN),
        ],
        transactions=[
            payment("p1", "c1", eur(100), t(2024, 3, 10, 13), invoice_id="inv_1"),
            payment("p2", "c1", eur(50), t(2024, 3, 12), invoice_id="inv_2"),
            # Another customer's payment and a failed one settle nothing of inv_2.
            payment("p3", "c2", eur(20), t(2024, 3, 12), invoice_id="inv_2"),
            payment("p4", "c1", eur(20), t(2024, 3, 13), invoice_id="inv_2", status="failed"),
            payment("p5", "c1", eur(30), t(2024, 4, 20), invoice_id="inv_3"),
        ],
        fx=FX,
    )


def test_worked_example_converts_each_total_on_its_issue_day() -> None:
    # Totals at the issue day's rate: 100 x 1.20 + 200 x 1.20 + 30 x 1.30 + 40 x 1.30 =
    # 451 USD over 4 invoices (a day earlier or later gives 1.10 or 1.30 for the first two,
    # 1.20 or 1.30 for the last two); the remainders 150 + 30 EUR at as_of's 1.25.
    book = _example()
    v = customer_value(book, "c1", as_of=AS_OF, currency="USD")
    assert v.invoice_count == 4
    assert v.average_invoice_value == Money("112.75", "USD")
    assert v.outstanding_balance == Money("225", "USD")
    assert customer_values(book, as_of=AS_OF, currency="USD")[0] == v
    ledger = ledger_rows(book, as_of=AS_OF, currency="USD", policy=MetricsPolicy())
    assert ledger.invoices is not None
    assert int(ledger.facts.overdue_invoices[0]) == 2
    # c2 ordered by its payment only: no invoice of its own.
    assert ledger.facts.ordered.tolist() == [True, True]
    assert ledger.invoices.ordered_by(moment_us(AS_OF)).tolist() == [True, False]
    rows = list(ledger.invoices.rows())
    assert [r.invoice_id for r in rows] == ["inv_1", "inv_2", "inv_5", "inv_3", "inv_4"]
    digits = ledger.invoices.digits
    assert rows[0] == InvoiceEntry(
        invoice_id="inv_1",
        customer_id="c1",
        issued_at=moment_us(t(2024, 3, 10, 12)),
        status="paid",
        paid_at=moment_us(t(2024, 3, 10, 13)),
        currency="EUR",
        total=100 * 10**digits,
        total_reporting=120 * 10**digits,
        digits=digits,
        ordered_at=moment_us(t(2024, 3, 10, 12)),
    )
    assert rows[2].ordered_at is None  # the draft orders nothing
    overdue = {(r.invoice_id, r.start, r.end) for r in ledger.invoices.overdue_rows()}
    assert overdue == {
        ("inv_2", moment_us(t(2024, 3, 25)), None),
        ("inv_3", moment_us(t(2024, 3, 26)), moment_us(t(2024, 4, 20))),
    }


def test_an_invoice_without_a_rate_fails_only_the_figure_converting_it() -> None:
    fx = FxRates.from_rates([(date(2024, 3, 11), "EUR", "USD", "1.30")])
    book = Book.of(
        customers=[customer("c1")],
        invoices=[
            invoice("inv_1", "c1", eur(100), issued=t(2024, 3, 10, 12), status=InvoiceStatus.OPEN)
        ],
        fx=fx,
    )
    with pytest.raises(MissingRateError) as raised:
        customer_value(book, "c1", as_of=AS_OF, currency="USD")
    assert (raised.value.source, raised.value.target, raised.value.on) == (
        "EUR",
        "USD",
        date(2024, 3, 10),
    )
    with pytest.raises(MissingRateError):
        customer_values(book, as_of=AS_OF, currency="USD")
    # The facts read no converted total: the overdue count stands.
    ledger = ledger_rows(book, as_of=AS_OF, currency="USD", policy=MetricsPolicy())
    assert int(ledger.facts.overdue_invoices[0]) == 1
    assert ledger.invoices is not None
    assert [r.total_reporting for r in ledger.invoices.rows()] == [None]


def test_invoice_rows_are_read_through_as_of() -> None:
    book = _example()
    ids = ("c1", "c2")
    every = invoice_columns(book, "USD", customer_ids=ids)
    upto = invoice_columns(book, "USD", customer_ids=ids, through=moment_us(AS_OF))
    assert (len(every), len(upto)) == (6, 5)
    assert upto.bounds() == [0, 5, 5]
    assert upto.issue_day(0) == date(2024, 3, 10)
