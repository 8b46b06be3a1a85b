"""The dashboard: the numbers a panel's CRM home page shows, at an explicit moment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Final, Protocol

import attrs

from revcrm._book import Book
from revcrm._calendar import (
    Frequency,
    local_moment,
    month_label,
    month_start,
    months_back,
    period_bounds,
    reporting_zone,
    shift,
    zone_name,
)
from revcrm._checks import check_instance
from revcrm._ledger._cash import CashColumns, cash_entries, moment_us, period_cash
from revcrm._ledger._renewing import in_force, renewing_mrr
from revcrm._money import EXACT_CONTEXT, Money, format_money
from revcrm._records import Transaction
from revcrm._time import as_moment, as_of_moment, utc
from revcrm.errors import ValidationError
from revcrm.metrics._churn import ChurnRate, customer_churn_rate, customers_at
from revcrm.metrics._engine import MrrAnalysis, MrrSource, analyse
from revcrm.metrics._inputs import book_args, check_analysis_args
from revcrm.metrics._mrr import state_amount
from revcrm.metrics._policy import FxDateRule, MetricsPolicy

__all__ = [
    "CashRevenue",
    "Dashboard",
    "DashboardInputs",
    "MonthTrend",
    "cash_by_period",
    "cash_of_entries",
    "cash_revenue",
    "compose_dashboard",
    "dashboard",
    "dashboard_inputs",
    "format_dashboard",
    "renewals_due",
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
    timezone: str | tzinfo | None = None,
) -> CashRevenue:
    """Cash collected in a period: gross successful payments, refunds, and net of refunds.
    A plain-date bound is midnight of that day in ``timezone`` (UTC by default)."""
    zone = UTC if timezone is None else reporting_zone(timezone)
    a = as_moment(local_moment(start, zone), "start")
    b = as_moment(local_moment(end, zone), "end")
    return cash_by_period(transactions, [a, b], currency=currency, book=book)[0]


def cash_by_period(
    transactions: Iterable[Transaction],
    bounds: Sequence[datetime],
    *,
    currency: str,
    book: Book,
    cash: CashColumns | None = None,
) -> list[CashRevenue]:
    """:func:`cash_revenue` for consecutive periods ``[bounds[i], bounds[i + 1])`` in one pass.

    An aggregation of the ledger's cash entries (:func:`cash_of_entries`): those of
    ``transactions`` in the range, converted with ``book.fx`` at their own dates (only
    they need a rate); or ``cash``, the entries already built in ``currency`` (then
    ``transactions`` is not read)."""
    if cash is None:
        if len(bounds) < 2:
            return []
        cash = cash_entries(
            transactions,
            (),
            book.fx,
            currency,
            since=moment_us(bounds[0]),
            through=moment_us(bounds[-1]) - 1,
        )
    elif cash.reporting_currency != currency:
        raise ValidationError(
            "currency", currency, f"the cash entries are in {cash.reporting_currency}"
        )
    return cash_of_entries(cash, bounds)


def cash_of_entries(cash: CashColumns, bounds: Sequence[datetime]) -> list[CashRevenue]:
    """Cash per period ``[bounds[i], bounds[i + 1])`` from the ledger's cash entries:
    successful payments (gross, counted) and refunds, each already converted at its own
    date, summed as exact units; Money only here, at the boundary."""
    if len(bounds) < 2:
        return []
    sums = period_cash(cash, [moment_us(b) for b in bounds])
    currency = cash.reporting_currency
    out = []
    for i in range(len(bounds) - 1):
        gross = Money(_decimal(int(sums.gross[i]), sums.digits), currency)
        refunds = Money(_decimal(int(sums.refunds[i]), sums.digits), currency)
        out.append(
            CashRevenue(
                start=bounds[i],
                end=bounds[i + 1],
                gross=gross,
                refunds=refunds,
                net=gross - refunds,
                payments=int(sums.payments[i]),
            )
        )
    return out


def _decimal(units: int, digits: int) -> Decimal:
    return Decimal(units).scaleb(-digits, context=EXACT_CONTEXT)


@attrs.frozen(kw_only=True)
class MonthTrend:
    start: datetime
    end: datetime
    cash: CashRevenue
    mrr: Money  # at the close of the month (at ``as_of`` for the current month)


@attrs.frozen(kw_only=True)
class Dashboard:
    """Every card of the dashboard, as of one moment, in the reporting currency.

    The months (this month, last month, the trend) are months of the reporting time
    zone ``timezone`` (an IANA name; the policy's); their bounds are UTC instants.
    ``customers`` counts customers under the policy (see ``free_plans_churn``),
    ``paying_customers`` those with MRR above zero.
    """

    as_of: datetime
    currency: str
    timezone: str
    mrr: Money
    arr: Money
    customers: int
    paying_customers: int
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


def check_trend_months(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TREND_MONTHS:
        raise ValidationError(
            "trend_months", value, f"a whole number of months from 1 to {MAX_TREND_MONTHS}"
        )
    return value


class DashboardInputs(Protocol):
    """What a dashboard is composed of: aggregates a store may compute where its data
    lives (or :func:`dashboard` from an analysis). :func:`compose_dashboard` decides every
    moment and period they are asked for; the inputs only aggregate."""

    def mrr(self, at: datetime) -> Money:
        """MRR at ``at`` (changes effective exactly at ``at`` included)."""
        ...

    def month_closes(self, start: datetime, end: datetime) -> Sequence[Money]:
        """MRR just before the close of each reporting month in ``[start, end)`` (both
        month starts of the reporting zone)."""
        ...

    def cash_by_month(self, start: datetime, end: datetime) -> Sequence[CashRevenue]:
        """Cash of each reporting month in ``[start, end)``."""
        ...

    def customers(self, at: datetime) -> int: ...

    def paying_customers(self, at: datetime) -> int: ...

    def churn(self, start: datetime, end: datetime) -> ChurnRate: ...

    def renewals(self, at: datetime, horizon: datetime) -> tuple[int, Money]:
        """Services renewing in ``(at, horizon]`` and their MRR."""
        ...


def renewals_due(
    book: Book,
    at: datetime,
    horizon: datetime,
    *,
    currency: str,
    policy: MetricsPolicy,
) -> tuple[int, Money]:
    """Active or past-due services whose next renewal after ``at`` falls by ``horizon``:
    their count and MRR at ``at`` (each subscription's state's, converted under the
    policy's FX rule).

    An aggregation over the subscriptions' states in force as arrays
    (:mod:`revcrm._ledger._renewing`: ``next_renewal`` and the billing calendar
    vectorised, ``state_amount`` asked of the services due only, one conversion per
    currency, date and amount): the invoice source's renewals card, whose MRR is not the
    states'."""
    zero = Money.zero(currency)
    t = utc(at, "at")
    rows = in_force(book.subscriptions, t, moment_us(as_moment(horizon, "horizon")))
    if not len(rows):
        return 0, zero
    total = renewing_mrr(
        rows,
        t,
        lambda s, moment: state_amount(s, moment, policy),
        currency=currency,
        fx=book.fx,
        service_period=policy.fx_date is FxDateRule.SERVICE_PERIOD_START,
        # The transaction-date rule's date: the moment's own calendar date (``fx_date``).
        on=at.date(),
    )
    return len(rows), Money(total, currency)


def compose_dashboard(
    inputs: DashboardInputs,
    *,
    as_of: datetime,
    currency: str,
    zone: tzinfo,
    renewals_window: timedelta = timedelta(days=30),
    trend_months: int = 12,
    churn_window: timedelta | None = None,
) -> Dashboard:
    """The dashboard's one definition, from any :class:`DashboardInputs`.

    * MRR at ``as_of``, ARR = 12 x MRR;
    * cash (gross and net of refunds) of the whole reporting month holding ``as_of`` and
      of the month before;
    * customer churn over the month to ``as_of`` (or the trailing ``churn_window``, on the
      zone's wall clock);
    * renewals due within ``renewals_window`` after ``as_of`` (calendar days of the zone);
    * the trend: the last ``trend_months`` months, each with its cash and the MRR at its
      close (the current month's at ``as_of``).
    """
    t = as_of
    check_trend_months(trend_months)
    _check_window(renewals_window, "renewals_window", allow_zero=True)
    if churn_window is not None:
        _check_window(churn_window, "churn_window", allow_zero=False)
    this_month = month_start(t, zone)
    next_month = months_back(this_month, 1, zone)
    last_month = months_back(this_month, -1, zone)
    first = months_back(this_month, 1 - trend_months, zone)
    cash = inputs.cash_by_month(min(first, last_month), next_month)
    by_start = {c.start: c for c in cash}
    closes = list(inputs.month_closes(first, this_month)) if first < this_month else []
    current = inputs.mrr(t)
    churn_start = this_month if churn_window is None else shift(t, -churn_window, zone)
    churn = (
        inputs.churn(churn_start, t)
        if t > churn_start
        else inputs.churn(churn_start, shift(churn_start, timedelta(days=1), zone))
    )
    count, upcoming = inputs.renewals(t, shift(t, renewals_window, zone))
    months = [c for c in cash if c.start >= first]
    trend = tuple(
        MonthTrend(start=c.start, end=c.end, cash=c, mrr=v)
        for c, v in zip(months, [*closes, current], strict=True)
    )
    return Dashboard(
        as_of=t,
        currency=currency,
        timezone=zone_name(zone),
        mrr=current,
        arr=current * 12,
        customers=inputs.customers(t),
        paying_customers=inputs.paying_customers(t),
        revenue_this_month=by_start[this_month],
        revenue_last_month=by_start[last_month],
        churn=churn,
        renewals_count=count,
        renewals_mrr=upcoming,
        renewals_window=renewals_window,
        trend=trend,
    )


@attrs.frozen
class _AnalysisInputs:
    """The dashboard's inputs from the pure functions over a book and its analysis."""

    book: Book
    analysis: MrrAnalysis
    cash: CashColumns | None = None  # the book's cash entries in the analysis' currency

    def mrr(self, at: datetime) -> Money:
        return self.analysis.mrr(at)

    def month_closes(self, start: datetime, end: datetime) -> Sequence[Money]:
        return [p.mrr for p in self.analysis.series(start, end)]

    def cash_by_month(self, start: datetime, end: datetime) -> Sequence[CashRevenue]:
        a = self.analysis
        bounds = period_bounds(Frequency.MONTH, start, end, a.policy.timezone)
        edges = [p for p, _ in bounds] + [bounds[-1][1]] if bounds else []
        return cash_by_period(
            self.book.transactions, edges, currency=a.currency, book=self.book, cash=self.cash
        )

    def customers(self, at: datetime) -> int:
        return customers_at(self.analysis, at)

    def paying_customers(self, at: datetime) -> int:
        return sum(1 for v in self.analysis.customers_with_mrr(at).values() if v.amount > 0)

    def churn(self, start: datetime, end: datetime) -> ChurnRate:
        return customer_churn_rate(self.analysis, start, end)

    def renewals(self, at: datetime, horizon: datetime) -> tuple[int, Money]:
        a = self.analysis
        if a.source is MrrSource.SUBSCRIPTIONS:
            # From the ledger's arrays, converted as the MRR card converts (no per-service
            # MRR walk: 2.5 s -> 0.02 s on the 20k demo book).
            return a.renewals(at, horizon)
        return renewals_due(self.book, at, horizon, currency=a.currency, policy=a.policy)


def dashboard_inputs(
    book: Book, analysis: MrrAnalysis, *, cash: CashColumns | None = None
) -> DashboardInputs:
    """The pure functions as :class:`DashboardInputs` (a store without pushed-down
    aggregates composes its dashboard from these); ``cash``: the book's cash entries in
    the analysis' currency, when already built (else each range's are)."""
    return _AnalysisInputs(book, analysis, cash)


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
    and MRR), and the trend of cash and MRR over the last ``trend_months`` months; the
    months are those of the policy's reporting time zone (see :func:`compose_dashboard`).

    Pass ``analysis`` to reuse an :func:`analyse` result computed for the same book: its
    currency, policy and MRR source then drive every figure (``currency`` and ``policy``
    may be left out; a different one is a ValidationError).
    """
    as_of_moment(as_of, "as_of")
    check_instance(book, Book, "book")
    if analysis is not None:
        check_instance(analysis, MrrAnalysis, "analysis")
        check_analysis_args(analysis, currency, policy)
        currency, policy = analysis.currency, analysis.policy
    else:
        currency, policy = book_args(book, currency, policy)
    # A plain date is the start of that day in the reporting zone.
    t = as_of_moment(local_moment(as_of, policy.timezone), "as_of")
    _check_window(renewals_window, "renewals_window", allow_zero=True)
    check_trend_months(trend_months)
    a = analysis or analyse(
        book,
        currency=currency,
        policy=policy,
        horizon=shift(t, renewals_window, policy.timezone),
    )
    return compose_dashboard(
        _AnalysisInputs(book, a),
        as_of=t,
        currency=currency,
        zone=policy.timezone,
        renewals_window=renewals_window,
        trend_months=trend_months,
        churn_window=churn_window,
    )


def _pct(rate: Decimal | None) -> str:
    return "n/a" if rate is None else f"{(rate * 100).quantize(Decimal('0.01'))}%"


def format_dashboard(d: Dashboard, *, locale: str) -> str:
    """The dashboard as a plain-text block, amounts formatted for ``locale``."""

    def fm(m: Money) -> str:
        return format_money(m, locale=locale)

    zone = reporting_zone(d.timezone)
    lines = [
        f"Dashboard as of {d.as_of.astimezone(zone):%Y-%m-%d %H:%M} {d.timezone} ({d.currency})",
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
    lines += [
        f"    {month_label(m.start, zone)}: {fm(m.cash.net):>14} / {fm(m.mrr):>14}" for m in d.trend
    ]
    return "\n".join(lines)
