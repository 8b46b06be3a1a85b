"""The dashboard: the numbers a panel's CRM home page shows, at an explicit moment."""

from __future__ import annotations

import bisect
import decimal
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

import attrs
from dateutil.relativedelta import relativedelta

from revcrm._book import Book
from revcrm._checks import check_instance
from revcrm._money import EXACT_CONTEXT, Money, format_money
from revcrm._records import Transaction, TransactionKind
from revcrm._subscription import SubscriptionStatus
from revcrm._time import as_moment, as_of_moment
from revcrm.errors import ValidationError
from revcrm.metrics._churn import ChurnRate, customer_churn_rate, customers_at
from revcrm.metrics._engine import MrrAnalysis, analyse
from revcrm.metrics._inputs import book_args, check_analysis_args
from revcrm.metrics._mrr import convert_mrr, state_mrr
from revcrm.metrics._policy import MetricsPolicy

__all__ = [
    "CashRevenue",
    "Dashboard",
    "MonthTrend",
    "cash_revenue",
    "dashboard",
    "format_dashboard",
]


@attrs.frozen(kw_only=True)
class CashRevenue:
    """Successful payments and refunds in ``[start, end)``, converted at transaction dates."""

    start: datetime
    end: datetime
    gross: Money
    refunds: Money
    net: Money
    payments: int


def cash_revenue(
    transactions: Iterable[Transaction],
    start: date | datetime,
    end: date | datetime,
    *,
    currency: str,
    book: Book,
) -> CashRevenue:
    """Cash collected in a period: gross successful payments, refunds, and net of refunds."""
    a, b = as_moment(start, "start"), as_moment(end, "end")
    return cash_by_period(transactions, [a, b], currency=currency, book=book)[0]


def cash_by_period(
    transactions: Iterable[Transaction],
    bounds: Sequence[datetime],
    *,
    currency: str,
    book: Book,
) -> list[CashRevenue]:
    """:func:`cash_revenue` for consecutive periods ``[bounds[i], bounds[i + 1])`` in one pass."""
    k = len(bounds) - 1
    gross = [Decimal(0)] * k
    refunds = [Decimal(0)] * k
    counts = [0] * k
    fx = book.fx
    with decimal.localcontext(EXACT_CONTEXT):
        for t in transactions:
            if not t.succeeded:
                continue
            i = bisect.bisect_right(bounds, t.at) - 1
            if not 0 <= i < k:
                continue
            amount = t.amount.amount
            if t.amount.currency != currency:
                amount *= fx.rate(t.amount.currency, currency, t.at.date())
            if t.kind is TransactionKind.PAYMENT:
                gross[i] += amount
                counts[i] += 1
            else:
                refunds[i] += amount
    return [
        CashRevenue(
            start=bounds[i],
            end=bounds[i + 1],
            gross=Money(gross[i], currency),
            refunds=Money(refunds[i], currency),
            net=Money(gross[i], currency) - Money(refunds[i], currency),
            payments=counts[i],
        )
        for i in range(k)
    ]


@attrs.frozen(kw_only=True)
class MonthTrend:
    start: datetime
    end: datetime
    cash: CashRevenue
    mrr: Money  # at the close of the month (at ``as_of`` for the current month)


@attrs.frozen(kw_only=True)
class Dashboard:
    as_of: datetime
    currency: str
    mrr: Money
    arr: Money
    customers: int
    revenue_this_month: CashRevenue
    revenue_last_month: CashRevenue
    churn: ChurnRate
    renewals_count: int
    renewals_mrr: Money
    renewals_window: timedelta
    trend: tuple[MonthTrend, ...]


#: The longest dashboard trend (100 years of months) and the longest window.
MAX_TREND_MONTHS: Final = 1200
MAX_WINDOW: Final = timedelta(days=36525)


def _check_window(value: object, field: str, *, allow_zero: bool) -> None:
    if not isinstance(value, timedelta):
        raise ValidationError(field, value, "expected a timedelta")
    low_ok = value >= timedelta(0) if allow_zero else value > timedelta(0)
    if not low_ok or value > MAX_WINDOW:
        bound = "from zero" if allow_zero else "longer than zero"
        raise ValidationError(field, value, f"a window {bound} up to {MAX_WINDOW.days} days")


def _month_start(t: datetime) -> datetime:
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def dashboard(
    book: Book,
    *,
    as_of: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    renewals_window: timedelta = timedelta(days=30),
    trend_months: int = 12,
    churn_window: timedelta | None = None,
    analysis: MrrAnalysis | None = None,
) -> Dashboard:
    """MRR, ARR (12 x MRR), cash this and last calendar month (gross and net of refunds),
    customer churn for the current period (the calendar month to ``as_of``, or the
    trailing ``churn_window``), renewals due in ``renewals_window`` after ``as_of`` (count
    and MRR), and the trend of cash and MRR over the last ``trend_months`` months.

    Pass ``analysis`` to reuse an :func:`analyse` result computed for the same book: its
    currency, policy and MRR source then drive every figure (``currency`` and ``policy``
    may be left out; a different one is a ValidationError).
    """
    t = as_of_moment(as_of, "as_of")
    check_instance(book, Book, "book")
    if analysis is not None:
        check_instance(analysis, MrrAnalysis, "analysis")
        check_analysis_args(analysis, currency, policy)
        currency, policy = analysis.currency, analysis.policy
    else:
        currency, policy = book_args(book, currency, policy)
    _check_window(renewals_window, "renewals_window", allow_zero=True)
    if churn_window is not None:
        _check_window(churn_window, "churn_window", allow_zero=False)
    if (
        isinstance(trend_months, bool)
        or not isinstance(trend_months, int)
        or not 1 <= trend_months <= MAX_TREND_MONTHS
    ):
        raise ValidationError(
            "trend_months", trend_months, f"a whole number of months from 1 to {MAX_TREND_MONTHS}"
        )
    a = analysis or analyse(book, currency=currency, policy=policy, horizon=t + renewals_window)
    current = a.mrr(t)
    this_month = _month_start(t)
    next_month = this_month + relativedelta(months=1)
    last_month = this_month - relativedelta(months=1)
    txs = book.transactions
    churn_start = t - churn_window if churn_window is not None else this_month
    churn = (
        customer_churn_rate(a, churn_start, t)
        if t > churn_start
        else customer_churn_rate(a, churn_start, churn_start + timedelta(days=1))
    )
    count, upcoming = 0, Money.zero(currency)
    horizon = t + renewals_window
    for sub in book.subscriptions:
        s = sub.state_at(t)
        if s is None or s.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
            continue
        nxt = s.next_renewal(t)
        if nxt is not None and nxt <= horizon:
            count += 1
            value = state_mrr(s, t, policy)
            if not value.is_zero():
                upcoming += convert_mrr(value, sub, t, currency, book.fx, policy)
    months = [this_month - relativedelta(months=k) for k in range(trend_months - 1, -1, -1)]
    closes = [m + relativedelta(months=1) for m in months]
    mrr_points = [a.mrr_before(c) for c in closes[:-1]] + [current]
    cash = cash_by_period(txs, [*months, next_month], currency=currency, book=book)
    trend = tuple(
        MonthTrend(start=m, end=c, cash=cash_m, mrr=v)
        for m, c, cash_m, v in zip(months, closes, cash, mrr_points, strict=True)
    )
    last = cash_by_period(txs, [last_month, this_month], currency=currency, book=book)[0]
    return Dashboard(
        as_of=t,
        currency=currency,
        mrr=current,
        arr=current * 12,
        customers=customers_at(a, t),
        revenue_this_month=cash[-1],
        revenue_last_month=last,
        churn=churn,
        renewals_count=count,
        renewals_mrr=upcoming,
        renewals_window=renewals_window,
        trend=trend,
    )


def _pct(rate: Decimal | None) -> str:
    return "n/a" if rate is None else f"{(rate * 100).quantize(Decimal('0.01'))}%"


def format_dashboard(d: Dashboard, *, locale: str) -> str:
    """The dashboard as a plain-text block, amounts formatted for ``locale``."""

    def fm(m: Money) -> str:
        return format_money(m, locale=locale)

    lines = [
        f"Dashboard as of {d.as_of:%Y-%m-%d %H:%M} UTC ({d.currency})",
        f"  MRR                 {fm(d.mrr)}",
        f"  ARR                 {fm(d.arr)}",
        f"  Customers           {d.customers}",
        f"  Revenue this month  {fm(d.revenue_this_month.gross)} gross, "
        f"{fm(d.revenue_this_month.net)} net of refunds",
        f"  Revenue last month  {fm(d.revenue_last_month.gross)} gross, "
        f"{fm(d.revenue_last_month.net)} net of refunds",
        f"  Customer churn      {_pct(d.churn.rate)} "
        f"({d.churn.churned} of {d.churn.denominator}, {d.churn.denominator_rule.value})",
        f"  Renewals next {d.renewals_window.days}d  {d.renewals_count} services, "
        f"{fm(d.renewals_mrr)} MRR",
        "  Trend (month: net cash / MRR at close)",
    ]
    lines += [f"    {m.start:%Y-%m}: {fm(m.cash.net):>14} / {fm(m.mrr):>14}" for m in d.trend]
    return "\n".join(lines)
