"""Revenue analytics: MRR and cash revenue broken down by product, billing cycle and payment
method; top products; referral-source analytics.

Two measures, never mixed in one breakdown:

* **MRR** at a moment, per subscription through :func:`revcrm.metrics.subscription_mrr`
  and converted with the same FX rule as :func:`revcrm.metrics.mrr` (the policy's
  ``fx_date``), so a breakdown's total equals ``mrr(book, at=...)``.
* **Cash** over a period ``[start, end)``: successful payments minus successful refunds,
  each converted at its transaction date. A plain-date bound is midnight of that day in
  ``timezone`` (the business's reporting zone; UTC by default); an MRR breakdown's
  ``at`` date is midnight in the policy's zone. To attribute cash to products and billing
  cycles, a transaction linked to an invoice is split over the invoice's lines in
  proportion to their totals (tax included, since cash includes tax); the last line takes
  the remainder, so the parts add up to the transaction exactly. Cash with no invoice,
  or whose invoice has no line with a positive total, is "unattributed" (key ``None``).
  Every cash breakdown therefore adds up to the ``net`` of
  :func:`revcrm.metrics.cash_revenue` over the same period.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Final

import attrs
import numpy as np
from dateutil.relativedelta import relativedelta

from revcrm._book import Book
from revcrm._calendar import local_moment, reporting_zone
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._ledger._cash import KIND_CODES, CashColumns, cash_columns, moment_us
from revcrm._ledger._rows import CashKind
from revcrm._money import EXACT_CONTEXT, Money, check_currency, money_sum
from revcrm._records import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from revcrm._subscription import SubscriptionState
from revcrm._time import as_moment
from revcrm.errors import ValidationError
from revcrm.metrics._economics import check_period, customer_mrrs, money_ratio, ratio, zone_of
from revcrm.metrics._engine import MrrAnalysis, _lines_of, analyse, analyse_lines
from revcrm.metrics._inputs import book_args, check_analysis_args, invoice_source
from revcrm.metrics._policy import MetricsPolicy

__all__ = [
    "Breakdown",
    "BreakdownRow",
    "ReferralSourceStats",
    "cash_revenue_by_billing_cycle",
    "cash_revenue_by_payment_method",
    "cash_revenue_by_product",
    "mrr_by_billing_cycle",
    "mrr_by_product",
    "referral_sources",
    "top_products_by_customers",
    "top_products_by_revenue",
]

#: Label of the rows whose key is ``None`` (no product, no invoice, no referral source).
UNATTRIBUTED: Final = "unattributed"
#: Billing-cycle key of one-off invoice lines (setup fees, one-time products).
ONE_OFF: Final = LineKind.ONE_OFF.value
_REFUND: Final = KIND_CODES.index(CashKind.REFUND)
_0: Final = Decimal(0)


@attrs.frozen(kw_only=True)
class BreakdownRow:
    """One slice: ``amount`` and the number of distinct ``customers`` contributing to it.

    ``share`` is ``amount / total`` of the breakdown, ``None`` when the total is zero.
    """

    key: str | None
    label: str
    amount: Money
    customers: int
    share: Decimal | None


@attrs.frozen(kw_only=True)
class Breakdown:
    """A measure (``"mrr"`` or ``"cash"``) split along a dimension; rows by amount, largest first.

    The rows' amounts add up to ``total`` exactly.
    """

    dimension: str
    measure: str
    currency: str
    total: Money
    rows: tuple[BreakdownRow, ...]

    def row(self, key: str | None) -> BreakdownRow | None:
        return next((r for r in self.rows if r.key == key), None)

    def amounts(self) -> dict[str | None, Money]:
        return {r.key: r.amount for r in self.rows}


def _build(
    dimension: str,
    measure: str,
    currency: str,
    parts: Iterable[tuple[str | None, str, Money]],
    labels: Mapping[str, str],
) -> Breakdown:
    amounts: dict[str | None, Money] = {}
    customers: dict[str | None, set[str]] = defaultdict(set)
    for key, customer_id, amount in parts:
        amounts[key] = amounts.get(key, Money.zero(currency)) + amount
        if not amount.is_zero():
            customers[key].add(customer_id)
    return _rows_of(dimension, measure, currency, amounts, customers, labels)


def _rows_of(
    dimension: str,
    measure: str,
    currency: str,
    amounts: Mapping[str | None, Money],
    customers: Mapping[str | None, set[str]],
    labels: Mapping[str, str],
) -> Breakdown:
    """The breakdown of per-key totals (``customers``: those with a non-zero part)."""
    total = money_sum(amounts.values(), currency)
    keys = sorted(amounts, key=lambda k: (-amounts[k].amount, k is None, k or ""))
    rows = tuple(
        BreakdownRow(
            key=k,
            label=UNATTRIBUTED if k is None else labels.get(k, k),
            amount=amounts[k],
            customers=len(customers.get(k, ())),
            share=money_ratio(amounts[k], total),
        )
        for k in keys
    )
    return Breakdown(
        dimension=dimension, measure=measure, currency=currency, total=total, rows=rows
    )


# -- keys ---------------------------------------------------------------------------------------


def cycle_key(cycle: BillingCycle) -> str:
    """A billing cycle's name: ``monthly``, ``quarterly``, ``annual``, ``biennial``, ``2 weeks``.

    Twelve months and one year are the same cycle (and seven days one week).
    """
    if cycle.unit is CycleUnit.MONTH and cycle.count % 12 == 0:
        cycle = BillingCycle.years(cycle.count // 12)
    elif cycle.unit is CycleUnit.DAY and cycle.count % 7 == 0:
        cycle = BillingCycle.weeks(cycle.count // 7)
    return str(cycle)


def _cycle_of_period(start: datetime, end: datetime) -> BillingCycle:
    """The cycle a service period spans: whole (clamped) months, else weeks, else days."""
    approx = round((end - start).days / 30.436875)
    for n in (approx - 1, approx, approx + 1):
        if n > 0 and start + relativedelta(months=n) == end:
            return BillingCycle.months(n)
    days = max((end - start).days, 1)
    return BillingCycle.weeks(days // 7) if days % 7 == 0 else BillingCycle.days(days)


def _product_of_state(plans: Mapping[str, str], state: SubscriptionState) -> str | None:
    """The state's product, else its plan's product (``plans``: plan id -> product id)."""
    if state.product_id is not None:
        return state.product_id
    return plans.get(state.plan_id) if state.plan_id is not None else None


def _plan_products(book: Book) -> dict[str, str]:
    return {p.id: p.product_id for p in book.plans}


def _line_state(book: Book, invoice: Invoice, line: InvoiceLine) -> SubscriptionState | None:
    if line.subscription_id is None:
        return None
    sub = book.subscription_index[line.subscription_id]
    state = sub.state_at(line.period_start or invoice.issued_at)
    return state if state is not None else sub.states[0]


def _line_product(
    book: Book, plans: Mapping[str, str], invoice: Invoice, line: InvoiceLine
) -> str | None:
    if line.product_id is not None:
        return line.product_id
    state = _line_state(book, invoice, line)
    return _product_of_state(plans, state) if state is not None else None


def _line_cycle(book: Book, invoice: Invoice, line: InvoiceLine) -> str:
    if line.kind is LineKind.ONE_OFF:
        return ONE_OFF
    state = _line_state(book, invoice, line)
    if state is not None:
        return cycle_key(state.cycle)
    assert line.period_start is not None
    assert line.period_end is not None
    return cycle_key(_cycle_of_period(line.period_start, line.period_end))


def _product_labels(book: Book) -> dict[str, str]:
    return {p.id: p.name or p.id for p in book.products}


# -- MRR breakdowns -----------------------------------------------------------------------------


def _grouped(
    parts: Iterable[tuple[str | None, str, Money]], currency: str
) -> list[tuple[str | None, str, Money]]:
    """Stream parts added up per (key, customer), zero sums left out (a customer counts in
    a key when its MRR there is not zero, as ``customers_with_mrr`` counts it)."""
    sums: dict[tuple[str | None, str], Money] = {}
    for key, customer_id, amount in parts:
        sums[key, customer_id] = sums.get((key, customer_id), Money.zero(currency)) + amount
    return [(k, c, m) for (k, c), m in sums.items() if not m.is_zero()]


def _split_lines(
    book: Book, analysis: MrrAnalysis, by_line: Callable[[Invoice, InvoiceLine], str | None]
) -> tuple[MrrAnalysis, dict[str, str | None]]:
    """The invoice source's lines analysed once with each stream split by the lines' key
    (a subscription's lines of two products are two streams), and each stream's key."""
    columns = _lines_of(book)
    keys = [
        by_line(inv, ln)
        for inv in book.invoices
        if inv.status not in (InvoiceStatus.VOID, InvoiceStatus.DRAFT)
        for ln in inv.lines
        if ln.kind is LineKind.RECURRING
    ]
    pairs: dict[tuple[int, str | None], int] = {}
    stream = [
        pairs.setdefault((s, k), len(pairs))
        for s, k in zip(columns.stream.tolist(), keys, strict=True)
    ]
    key_of = {str(i): k for (_, k), i in pairs.items()}
    split = attrs.evolve(
        columns,
        stream_ids=tuple(key_of),
        stream=np.array(stream, dtype=np.int32),
    )
    part = analyse_lines(
        split,
        currency=analysis.currency,
        policy=analysis.policy,
        fx=book.fx,
        horizon=analysis.horizon,
    )
    return part, key_of


def _mrr_parts(
    book: Book,
    analysis: MrrAnalysis,
    at: datetime,
    by_state: Callable[[SubscriptionState], str | None],
    by_line: Callable[[Invoice, InvoiceLine], str | None],
) -> list[tuple[str | None, str, Money]]:
    """The analysis's MRR at ``at`` per stream, grouped by the stream's key: a
    subscription's state at ``at``, or (invoice source) its lines' own key. The parts add
    up to ``analysis.mrr(at)``: every part is the engine's own figure (one definition)."""
    if invoice_source(analysis):
        part, key_of = _split_lines(book, analysis, by_line)
        streams = part._stream_mrrs(at)
        return _grouped(((key_of[s], c, m) for s, c, m in streams), analysis.currency)
    subs = book.subscription_index
    parts = []
    for sid, customer_id, amount in analysis._stream_mrrs(at):
        state = subs[sid].state_at(at)
        assert state is not None  # a subscription has MRR only once started
        parts.append((by_state(state), customer_id, amount))
    return _grouped(parts, analysis.currency)


def _analysis_of(
    book: Book, analysis: MrrAnalysis | None, at: datetime, currency: str, policy: MetricsPolicy
) -> MrrAnalysis:
    """``analysis``, else the book's subscriptions analysed past ``at`` (so the renewals
    of the service-period FX rule reach ``at``)."""
    if analysis is not None:
        return analysis
    return analyse(book, currency=currency, policy=policy, horizon=at + timedelta(days=1))


def _mrr_breakdown_args(
    book: Book, analysis: MrrAnalysis | None, currency: str | None, policy: MetricsPolicy | None
) -> tuple[str, MetricsPolicy]:
    if analysis is None:
        return book_args(book, currency, policy)
    if not isinstance(book, Book):
        raise ValidationError("book", type(book).__name__, "expected the analysed Book")
    check_analysis_args(analysis, currency, policy)
    return analysis.currency, analysis.policy


def mrr_by_product(
    book: Book,
    *,
    at: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
) -> Breakdown:
    """MRR at ``at`` per product (the subscription's product, or its plan's product).

    From the book's subscriptions in ``currency``, or from ``analysis`` (an
    :func:`analyse` result of this book: its currency, policy and MRR source). Under the
    invoice source a recurring line's product is its ``product_id``, else its
    subscription's; the rows add up to ``analysis.mrr(at)``.
    """
    t = as_moment(local_moment(at, zone_of(analysis, policy)), "at")
    cur, pol = _mrr_breakdown_args(book, analysis, currency, policy)
    plans = _plan_products(book)
    parts = _mrr_parts(
        book,
        _analysis_of(book, analysis, t, cur, pol),
        t,
        lambda st: _product_of_state(plans, st),
        lambda inv, ln: _line_product(book, plans, inv, ln),
    )
    return _build("product", "mrr", cur, parts, _product_labels(book))


def mrr_by_billing_cycle(
    book: Book,
    *,
    at: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
) -> Breakdown:
    """MRR at ``at`` per billing cycle (keys from :func:`cycle_key`: ``monthly``, ``annual``...).

    From the book's subscriptions, or from ``analysis`` as :func:`mrr_by_product` does
    (a line's cycle is its subscription's, else the length of its service period).
    """
    t = as_moment(local_moment(at, zone_of(analysis, policy)), "at")
    cur, pol = _mrr_breakdown_args(book, analysis, currency, policy)
    parts = _mrr_parts(
        book,
        _analysis_of(book, analysis, t, cur, pol),
        t,
        lambda st: cycle_key(st.cycle),
        lambda inv, ln: _line_cycle(book, inv, ln),
    )
    return _build("billing_cycle", "mrr", cur, parts, {})


# -- cash ---------------------------------------------------------------------------------------


def _zone(timezone: str | tzinfo | None) -> tzinfo:
    """The zone whose midnight a plain-date bound means (UTC unless one is given)."""
    return UTC if timezone is None else reporting_zone(timezone)


def _entries(book: Book, a: datetime, b: datetime, currency: str) -> CashColumns:
    """The ledger's cash entries (payments and refunds) in ``[a, b)``, each converted at
    its own date: what every cash breakdown aggregates."""
    return cash_columns(
        book,
        currency,
        customer_ids=tuple(c.id for c in book.customers),
        since=moment_us(a),
        through=moment_us(b) - 1,
        credits=False,
    )


def _signed_units(cash: CashColumns) -> list[int]:
    """Each entry's converted amount, refunds negative (units of ``10 ** -digits``)."""
    units: list[int] = cash.reporting.tolist()
    return [-u if k == _REFUND else u for u, k in zip(units, cash.kind.tolist(), strict=True)]


def _money(units: int, digits: int, currency: str) -> Money:
    return Money(Decimal(units).scaleb(-digits, context=EXACT_CONTEXT), currency)


_Totals = tuple[dict[str | None, Money], dict[str | None, set[str]]]


def _allocated(
    book: Book,
    a: datetime,
    b: datetime,
    currency: str,
    key: Callable[[Invoice, InvoiceLine], str | None],
) -> _Totals:
    """Each cash entry's signed converted amount split over its invoice's lines (see the
    module doc): the amount per key and the customers with a non-zero part in it."""
    cash = _entries(book, a, b, currency)
    invoices = {inv.id: inv for inv in book.invoices}
    ids, digits = cash.customer_ids, cash.digits
    amounts: dict[str | None, Money] = {}
    customers: dict[str | None, set[str]] = defaultdict(set)
    zero = Money.zero(currency)

    def add(k: str | None, customer_id: str, amount: Money) -> None:
        amounts[k] = amounts.get(k, zero) + amount
        if not amount.is_zero():
            customers[k].add(customer_id)

    # Entries without an invoice to split over add up as units (one Money at the end).
    loose = 0
    split: dict[str, tuple[Invoice, list[InvoiceLine], Decimal] | None] = {}
    for i, units in enumerate(_signed_units(cash)):
        customer_id = ids[int(cash.customer[i])]
        invoice_id = cash.invoice_ids[i]
        how = None
        if invoice_id is not None:
            if invoice_id not in split:
                inv = invoices.get(invoice_id)
                lines = [ln for ln in inv.lines if ln.total.amount > 0] if inv is not None else []
                split[invoice_id] = None
                if inv is not None and lines:
                    weight = money_sum((ln.total for ln in lines), inv.currency).amount
                    split[invoice_id] = (inv, lines, weight)
            how = split[invoice_id]
        if how is None:
            loose += units
            amounts.setdefault(None, zero)
            if units:
                customers[None].add(customer_id)
            continue
        inv, lines, weight = how
        amount = _money(units, digits, currency)
        rest = amount
        for ln in lines[:-1]:
            share = amount * ln.total.amount / weight
            add(key(inv, ln), customer_id, share)
            rest -= share
        add(key(inv, lines[-1]), customer_id, rest)
    if None in amounts:
        amounts[None] += _money(loose, digits, currency)
    return amounts, customers


def cash_revenue_by_product(
    book: Book,
    *,
    start: date | datetime,
    end: date | datetime,
    currency: str,
    timezone: str | tzinfo | None = None,
) -> Breakdown:
    """Net cash over ``[start, end)`` per product, split over invoice lines.

    A line's product is its ``product_id``, else that of its subscription at the start of
    the line's service period (or its plan's product).
    """
    check_currency(currency)
    a, b = check_period(start, end, _zone(timezone))
    plans = _plan_products(book)
    amounts, customers = _allocated(
        book, a, b, currency, lambda inv, ln: _line_product(book, plans, inv, ln)
    )
    return _rows_of("product", "cash", currency, amounts, customers, _product_labels(book))


def cash_revenue_by_billing_cycle(
    book: Book,
    *,
    start: date | datetime,
    end: date | datetime,
    currency: str,
    timezone: str | tzinfo | None = None,
) -> Breakdown:
    """Net cash over ``[start, end)`` per billing cycle, split over invoice lines.

    A recurring line's cycle is its subscription's, else the length of its service period
    (3 months: ``quarterly``); one-off lines have the key ``"one_off"``.
    """
    check_currency(currency)
    a, b = check_period(start, end, _zone(timezone))
    amounts, customers = _allocated(
        book, a, b, currency, lambda inv, ln: _line_cycle(book, inv, ln)
    )
    return _rows_of("billing_cycle", "cash", currency, amounts, customers, {})


def cash_revenue_by_payment_method(
    book: Book,
    *,
    start: date | datetime,
    end: date | datetime,
    currency: str,
    timezone: str | tzinfo | None = None,
) -> Breakdown:
    """Net cash over ``[start, end)`` per payment method (``stripe``, ``paypal``, ``credit``...).

    Payments made from account credit appear under their own method (``credit``): they are
    not new money, so exclude that row for a cash-in figure.
    """
    check_currency(currency)
    a, b = check_period(start, end, _zone(timezone))
    cash = _entries(book, a, b, currency)
    units = _signed_units(cash)
    ids, methods = cash.customer_ids, cash.methods
    amounts: dict[str | None, int] = {}
    customers: dict[str | None, set[str]] = defaultdict(set)
    for m, c, u in zip(cash.method.tolist(), cash.customer.tolist(), units, strict=True):
        key = methods[m]
        amounts[key] = amounts.get(key, 0) + u
        if u:
            customers[key].add(ids[c])
    totals = {k: _money(v, cash.digits, currency) for k, v in amounts.items()}
    return _rows_of("payment_method", "cash", currency, totals, customers, {})


def _net_payments(book: Book, t: datetime, currency: str) -> tuple[dict[str, int], int]:
    """Per customer the net of the cash entries up to ``t`` (payments minus refunds, each
    converted at its own date), in units of ``10 ** -digits``, and ``digits``."""
    ids = tuple(c.id for c in book.customers)
    cash = cash_columns(book, currency, customer_ids=ids, through=moment_us(t), credits=False)
    net: dict[str, int] = {}
    for c, u in zip(cash.customer.tolist(), _signed_units(cash), strict=True):
        net[ids[c]] = net.get(ids[c], 0) + u
    return net, cash.digits


# -- top products -------------------------------------------------------------------------------


def _limit(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("limit", value, "expected a whole number >= 1 or None")
    return value


def top_products_by_revenue(
    book: Book,
    *,
    start: date | datetime,
    end: date | datetime,
    currency: str,
    limit: int | None = 10,
    timezone: str | tzinfo | None = None,
) -> tuple[BreakdownRow, ...]:
    """Products by net cash over ``[start, end)``, largest first (unattributed cash left out)."""
    n = _limit(limit)
    breakdown = cash_revenue_by_product(
        book, start=start, end=end, currency=currency, timezone=timezone
    )
    rows = list(breakdown.rows)
    return tuple(r for r in rows if r.key is not None)[:n]


def top_products_by_customers(
    book: Book,
    *,
    at: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    limit: int | None = 10,
    analysis: MrrAnalysis | None = None,
) -> tuple[BreakdownRow, ...]:
    """Products by the number of paying customers (MRR > 0) at ``at``, then by MRR
    (from ``analysis`` when given, as :func:`mrr_by_product`)."""
    n = _limit(limit)
    breakdown = mrr_by_product(book, at=at, currency=currency, policy=policy, analysis=analysis)
    rows = list(breakdown.rows)
    rows.sort(key=lambda r: (-r.customers, -r.amount.amount, r.key or ""))
    return tuple(r for r in rows if r.key is not None)[:n]


# -- referral sources ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReferralSourceStats:
    """Customers of one referral source (``None``: no source recorded) at a moment.

    * ``customers``: registered at or before the moment; ``paying_customers``: with MRR > 0.
    * ``conversion_rate`` = ``paying_customers / customers``.
    * ``arpa`` = ``mrr / paying_customers`` (``None`` without paying customers).
    * ``net_payments``: successful payments minus refunds of these customers up to the
      moment; ``ltv`` defaults to ``net_payments / customers`` (historical value per
      acquired customer), or what the caller's ``ltv`` function returned.
    """

    source: str | None
    customers: int
    paying_customers: int
    mrr: Money
    arpa: Money | None
    conversion_rate: Decimal | None
    net_payments: Money
    ltv: Money | None


#: ``(source, customer_ids) -> LTV``: lets a caller use ARPA / churn for a source, e.g.
#: ``lambda src, ids: ltv(arpa_of(ids), churn_of(ids)).value``.
LtvFunction = Callable[[str | None, frozenset[str]], Money | None]


def referral_sources(
    book: Book,
    *,
    at: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    ltv: LtvFunction | None = None,
    analysis: MrrAnalysis | None = None,
) -> tuple[ReferralSourceStats, ...]:
    """Per referral source: customers, paying customers, MRR, ARPA, conversion and LTV.

    Sources are ``Customer.referral_source`` values; customers without one are grouped
    under ``None`` (listed last). Rows are in source name order. MRR comes from the book's
    subscriptions, or from ``analysis`` (its currency, policy and MRR source) when given.
    """
    currency, pol = _mrr_breakdown_args(book, analysis, currency, policy)
    t = as_moment(local_moment(at, zone_of(analysis, policy)), "at")
    groups: dict[str | None, list[str]] = defaultdict(list)
    for c in book.customers:
        if c.registered_at <= t:
            groups[c.referral_source].append(c.id)
    members = [cid for ids in groups.values() for cid in ids]
    if analysis is not None:
        paying_now = analysis.customers_with_mrr(t)
        mrrs = {c: paying_now.get(c, Money.zero(currency)) for c in members}
    else:
        mrrs = customer_mrrs(book, t, currency, pol, members)
    net, net_digits = _net_payments(book, t, currency)
    rows = []
    for source in sorted(groups, key=lambda s: (s is None, s or "")):
        ids = groups[source]
        paying = [mrrs[c] for c in ids if not mrrs[c].is_zero()]
        total = money_sum(paying, currency)
        payments = _money(sum(net.get(c, 0) for c in ids), net_digits, currency)
        value = ltv(source, frozenset(ids)) if ltv is not None else payments / len(ids)
        rows.append(
            ReferralSourceStats(
                source=source,
                customers=len(ids),
                paying_customers=len(paying),
                mrr=total,
                arpa=total / len(paying) if paying else None,
                conversion_rate=ratio(len(paying), len(ids)),
                net_payments=payments,
                ltv=value,
            )
        )
    return tuple(rows)
