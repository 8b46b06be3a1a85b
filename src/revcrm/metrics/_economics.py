"""Unit economics: ARPA, ASP, LTV, CAC, LTV:CAC, payback, NPS and trial conversion.

Conventions shared by every function here (see ``docs/metrics-economics.md``):

* Money stays :class:`~revcrm.Money` at full precision; nothing is rounded.
* Rates and ratios are :class:`~decimal.Decimal`, exact when the quotient terminates and
  otherwise carrying ``DIVISION_PRECISION`` significant digits; they are ``None`` when
  the denominator is zero (no customers, no spend, no responses), never 0 and never an
  exception. A function answering one rate returns a :class:`Rate` with ``value``.
* ARPA and ASP take a book or an :class:`MrrAnalysis` (so an invoice-sourced analysis
  counts), at a moment or over a period; LTV takes a churn rate or a lifespan.
* Results are small frozen values that keep their inputs (numerator and denominator),
  so a report can show how a figure was obtained.
"""

from __future__ import annotations

import decimal
import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Final

import attrs

from revcrm._book import Book
from revcrm._calendar import day_start as local_day_start
from revcrm._calendar import local_moment
from revcrm._calendar import reporting_zone as _zone_arg
from revcrm._ledger._cash import moment_us
from revcrm._ledger._trials import TrialColumns, trial_columns
from revcrm._money import DIVISION_PRECISION, FxRates, Money, check_currency, money_sum, to_decimal
from revcrm._subscription import Subscription
from revcrm._time import as_moment, check_date
from revcrm.errors import ValidationError
from revcrm.metrics._engine import MovementKind, MrrAnalysis, analyse
from revcrm.metrics._inputs import (
    BookOrAnalysis,
    Rate,
    analysis_of,
    book_args,
    check_analysis_args,
)
from revcrm.metrics._mrr import DEFAULT_POLICY, state_mrr
from revcrm.metrics._policy import MetricsPolicy

__all__ = [
    "Arpa",
    "Asp",
    "Cac",
    "CacReport",
    "ChannelCac",
    "Ltv",
    "MarketingSpend",
    "Nps",
    "TrialBasis",
    "TrialConversion",
    "arpa",
    "arpa_from_mrrs",
    "asp",
    "cac",
    "cac_by_channel",
    "cac_payback_months",
    "ltv",
    "ltv_to_cac",
    "marketing_spend",
    "nps",
    "trial_conversion",
    "trial_rows",
]

# Module contexts, so results never depend on the caller's global decimal context.
_EXACT: Final = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_DIVIDE: Final = decimal.Context(
    prec=DIVISION_PRECISION,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_ONE: Final = Decimal(1)
_HUNDRED: Final = Decimal(100)
_MICROSECOND: Final = timedelta(microseconds=1)


# -- shared helpers (also used by _customer_value and _revenue) -------------------------------


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    """``numerator / denominator`` as a Decimal, or ``None`` when the denominator is zero."""
    if denominator == 0:
        return None
    return _DIVIDE.divide(Decimal(numerator), Decimal(denominator))


def money_ratio(numerator: Money, denominator: Money) -> Decimal | None:
    """``numerator / denominator`` (same currency), or ``None`` when the denominator is zero."""
    if denominator.is_zero():
        # Still check the currencies: a mismatch is a bug whatever the amounts.
        numerator.ratio(Money(1, denominator.currency))
        return None
    return numerator.ratio(denominator)


def check_count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(field, value, "expected a whole number >= 0")
    return value


def check_money(value: object, field: str, currency: str | None = None) -> Money:
    if not isinstance(value, Money):
        raise ValidationError(field, value, "expected Money")
    if currency is not None and value.currency != currency:
        raise ValidationError(field, value, f"expected an amount in {currency}")
    return value


def check_period(
    start: date | datetime, end: date | datetime, zone: tzinfo = UTC
) -> tuple[datetime, datetime]:
    """``[start, end)`` as instants; a plain date is midnight starting that day in the
    reporting zone ``zone``."""
    a = as_moment(local_moment(start, zone), "start")
    b = as_moment(local_moment(end, zone), "end")
    if b < a:
        raise ValidationError("end", end, f"is before start ({start})")
    return a, b


def _fraction(value: object, field: str) -> Decimal:
    """A share in [0, 1] (gross margin, churn rate), given as Decimal, int or str; no floats."""
    d = to_decimal(value, field)
    if not 0 <= d <= 1:
        raise ValidationError(field, value, "must be between 0 and 1 (a fraction, not a percent)")
    return d


def customer_mrrs(
    book: Book,
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    customer_ids: Iterable[str] | None = None,
) -> dict[str, Money]:
    """Each customer's MRR at ``at`` in ``currency``: every id of ``customer_ids`` (zero
    without subscriptions), or by default every customer holding a subscription.

    An aggregation over the ledger: the book's subscriptions analysed once, past ``at``
    (so the renewals of the service-period FX rule reach it), each customer's streams
    added up (:meth:`MrrAnalysis.customers_with_mrr`), so the values add up to
    :func:`revcrm.metrics.mrr`.
    """
    ids = book.subscriptions_by_customer.keys() if customer_ids is None else customer_ids
    analysis = analyse(book, currency=currency, policy=policy, horizon=at + timedelta(days=1))
    paying = analysis.customers_with_mrr(at)
    zero = Money.zero(currency)
    return {cid: paying.get(cid, zero) for cid in ids}


def first_paid_at(subscriptions: Iterable[Subscription], policy: MetricsPolicy) -> datetime | None:
    """The first moment any of the subscriptions had MRR > 0 ("subscriber since"), as
    :func:`first_paid_by_customer` finds it (``None``: never)."""
    return min(_first_paid(tuple(subscriptions), policy).values(), default=None)


def first_paid_by_customer(book: Book, policy: MetricsPolicy) -> dict[str, datetime]:
    """When each customer of the book first had MRR > 0: :meth:`MrrAnalysis.first_paid`
    of the book's subscriptions, without an analysis in one currency (and its rates)."""
    return _first_paid(book.subscriptions, policy)


def _first_paid(
    subscriptions: Sequence[Subscription], policy: MetricsPolicy
) -> dict[str, datetime]:
    # The engine's definition (the customer's first ledger event with MRR above zero),
    # each currency's subscriptions analysed in their own currency: amounts are never
    # negative and rates are positive, so the first moment the converted total is above
    # zero is the earliest of the currencies' own first moments, and no rate is needed
    # (a customer in two currencies without rates answers as before, never
    # MissingRateError).
    by_currency: dict[str, list[Subscription]] = defaultdict(list)
    for sub in subscriptions:
        by_currency[sub.currency].append(sub)
    out: dict[str, datetime] = {}
    for code, subs in sorted(by_currency.items()):
        own = analyse(Book(subscriptions=tuple(subs)), currency=code, policy=policy)
        for cid, first in own.first_paid().items():
            if cid not in out or first < out[cid]:
                out[cid] = first
    return out


# -- ARPA and ASP -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Arpa:
    """Average revenue per account: ``mrr / paying_customers`` (``None`` without any)."""

    mrr: Money
    paying_customers: int
    value: Money | None


def arpa_from_mrrs(mrrs: Mapping[str, Money] | Iterable[Money], *, currency: str) -> Arpa:
    """ARPA from per-customer MRRs: each entry is one customer's total MRR.

    A mapping is keyed by customer id (so each customer is counted once by construction);
    any other iterable must already hold one total per customer. Customers with zero MRR
    are not paying and are left out of both sums. ChartMogul: 1, 1, 3, 5, 5 -> 3.
    """
    check_currency(currency)
    values = mrrs.values() if isinstance(mrrs, Mapping) else mrrs
    paying: list[Money] = []
    for i, m in enumerate(values):
        check_money(m, f"mrrs[{i}]", currency)
        if m.amount < 0:
            raise ValidationError(f"mrrs[{i}]", m, "an MRR cannot be negative")
        if not m.is_zero():
            paying.append(m)
    total = money_sum(paying, currency)
    return Arpa(
        mrr=total, paying_customers=len(paying), value=total / len(paying) if paying else None
    )


def zone_of(source: object, policy: object) -> tzinfo:
    """The reporting zone of a metric's arguments: the analysis's policy, else the policy
    given, else UTC."""
    if isinstance(source, MrrAnalysis):
        return source.policy.timezone
    return policy.timezone if isinstance(policy, MetricsPolicy) else UTC


def _moment_of(
    at: date | datetime | None,
    start: date | datetime | None,
    end: date | datetime | None,
    zone: tzinfo = UTC,
) -> datetime:
    """``at``, or the last moment of the period ``[start, end)`` (just before ``end``)."""
    if at is not None:
        if start is not None or end is not None:
            raise ValidationError("at", at, "give either at= or a period (start, end), not both")
        return as_moment(local_moment(at, zone), "at")
    if start is None or end is None:
        raise ValidationError("at", None, "give at= or a period (start, end)")
    a, b = check_period(start, end, zone)
    if b == a:
        raise ValidationError("end", end, "must be after start")
    # Datetimes have microsecond resolution: the close of [a, b) is b - 1 microsecond.
    return b - _MICROSECOND


def arpa(
    source: BookOrAnalysis,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
    *,
    at: date | datetime | None = None,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
) -> Arpa:
    """ARPA at moment ``at``, or at the close of the period ``[start, end)``: MRR over the
    customers with MRR > 0, each counted once however many subscriptions they hold.

    ``source`` is a book (MRR from its subscriptions; ``currency`` required) or an
    :class:`MrrAnalysis` (its currency, policy and MRR source, e.g. invoices):
    ``arpa(book, at=d, currency="USD")``, ``arpa(analysis, at=d)``,
    ``arpa(analysis, month_start, month_end)``.
    """
    t = _moment_of(at, start, end, zone_of(source, policy))
    if isinstance(source, MrrAnalysis):
        check_analysis_args(source, currency, policy)
        return arpa_from_mrrs(source.customers_with_mrr(t), currency=source.currency)
    cur, pol = book_args(source, currency, policy)
    return arpa_from_mrrs(customer_mrrs(source, t, cur, pol), currency=cur)


@attrs.frozen(kw_only=True)
class Asp:
    """Average sale price: ``new_business_mrr / new_customers`` (``None`` without any)."""

    new_business_mrr: Money
    new_customers: int
    value: Money | None


def asp(
    source: BookOrAnalysis | Money | None = None,
    start: date | datetime | int | None = None,
    end: date | datetime | None = None,
    *,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    new_business_mrr: Money | None = None,
    new_customers: int | None = None,
) -> Asp:
    """ASP (ChartMogul): new-business MRR of the period ``[start, end)`` over the customers
    new in it.

    ``asp(analysis, start, end)`` (or a book with ``currency=``): the new-business MRR is
    the sum of the period's ``new`` movements (the waterfall's ``new``) and the new
    customers are those with a ``new`` movement in it. The figures themselves are still
    accepted, as ``asp(new_business_mrr=m, new_customers=n)`` or ``asp(m, n)``.
    """
    if isinstance(source, Money):
        if new_business_mrr is not None or new_customers is not None or end is not None:
            raise ValidationError("new_business_mrr", source, "given twice")
        return _asp(source, start)
    if source is None:
        if start is not None or end is not None:
            raise ValidationError("start", start, "a period needs an analysis or a book")
        if new_business_mrr is None or new_customers is None:
            raise ValidationError(
                "new_business_mrr", new_business_mrr, "give both figures, or an analysis"
            )
        return _asp(new_business_mrr, new_customers)
    if new_business_mrr is not None or new_customers is not None:
        raise ValidationError(
            "new_business_mrr", new_business_mrr, "give an analysis and a period, or the figures"
        )
    if start is None or end is None or isinstance(start, int):
        raise ValidationError("start", start, "expected a period: start and end moments")
    a, b = check_period(start, end, zone_of(source, policy))
    analysis = analysis_of(source, currency=currency, policy=policy, horizon=b)
    moves = [m for m in analysis.movements(a, b) if m.kind is MovementKind.NEW]
    total = money_sum((m.amount for m in moves), analysis.currency)
    return _asp(total, len({m.customer_id for m in moves}))


def _asp(new_business_mrr: object, new_customers: object) -> Asp:
    check_money(new_business_mrr, "new_business_mrr")
    assert isinstance(new_business_mrr, Money)
    n = check_count(new_customers, "new_customers")
    return Asp(
        new_business_mrr=new_business_mrr,
        new_customers=n,
        value=new_business_mrr / n if n else None,
    )


# -- LTV ----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Ltv:
    """Customer lifetime value: ``arpa x gross_margin / churn_rate``.

    * ``churn_rate`` is the (averaged) monthly customer churn rate used; ``None`` when
      no month of the window had a defined rate, and then ``value`` is ``None`` too.
    * ``lifetime_months`` is ``1 / churn_rate``, capped at ``max_lifetime_months`` when the
      caller gave one; ``None`` when churn is zero and no cap was given (unbounded).
    * ``value`` is ``None`` exactly when the lifetime is unbounded or churn is undefined:
      zero churn never divides by zero and never yields an infinite float.
    * ``capped`` is True when the cap shortened the lifetime.
    """

    arpa: Money
    churn_rate: Decimal | None
    gross_margin: Decimal
    lifetime_months: Decimal | None
    capped: bool
    value: Money | None

    @property
    def unbounded(self) -> bool:
        """Zero churn and no cap: the lifetime (and the LTV) has no finite value."""
        return self.churn_rate == 0 and self.lifetime_months is None


def _average_churn(
    churn: Decimal | int | str | Sequence[Decimal | None], window: int | None
) -> Decimal | None:
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 1
    ):
        raise ValidationError("window", window, "expected a whole number of months >= 1")
    if isinstance(churn, str) or not isinstance(churn, Sequence):
        # One rate; to_decimal rejects floats with a TypeError, as money does.
        return _fraction(churn, "churn")
    recent = list(churn)[-window:] if window is not None else list(churn)
    rates = [_fraction(r, f"churn[{i}]") for i, r in enumerate(recent) if r is not None]
    if not rates:
        return None
    total = Decimal(0)
    for r in rates:
        total = _EXACT.add(total, r)
    return _DIVIDE.divide(total, Decimal(len(rates)))


def ltv(
    arpa: Money,
    churn: Decimal | int | str | Sequence[Decimal | None] | None = None,
    *,
    lifespan_months: Decimal | int | str | None = None,
    gross_margin: Decimal | int | str | None = None,
    window: int | None = None,
    max_lifetime_months: Decimal | int | None = None,
) -> Ltv:
    """LTV = ARPA x gross margin / monthly customer churn rate (ChartMogul's formula), or
    ARPA x gross margin x ``lifespan_months`` when the customer lifespan is known.

    Give exactly one of ``churn`` and ``lifespan_months``. With a lifespan the value is
    exact (``ltv(arpa, lifespan_months=24)`` is 24 x ARPA, not 3599.99... as
    ``1 / (1/24)`` would give), ``lifetime_months`` is the lifespan and ``churn_rate``
    its implied monthly rate ``1 / lifespan``.

    ``churn`` is one monthly rate in [0, 1], or a sequence of monthly rates (oldest first)
    whose arithmetic mean is used: the trailing average. ``window`` keeps only the last
    ``window`` of them (ChartMogul: six, i.e. ``policy.ltv_churn_months``, over completed
    months: leave the current month out of the sequence). ``None`` entries (months whose
    churn rate was undefined) are skipped.

    ``gross_margin`` (a fraction in [0, 1]; ``None`` means 1, revenue LTV). Zero churn
    gives ``value=None`` (unbounded) unless ``max_lifetime_months`` caps the lifetime, in
    which case LTV = ARPA x margin x min(1 / churn, cap).
    """
    check_money(arpa, "arpa")
    if arpa.amount < 0:
        raise ValidationError("arpa", arpa, "cannot be negative")
    margin = _ONE if gross_margin is None else _fraction(gross_margin, "gross_margin")
    cap: Decimal | None = None
    if max_lifetime_months is not None:
        cap = to_decimal(max_lifetime_months, "max_lifetime_months")
        if cap <= 0:
            raise ValidationError("max_lifetime_months", max_lifetime_months, "must be positive")
    if (churn is None) == (lifespan_months is None):
        raise ValidationError(
            "lifespan_months", lifespan_months, "give exactly one of churn and lifespan_months"
        )
    if lifespan_months is not None:
        if window is not None:
            raise ValidationError("window", window, "a window averages churn rates only")
        return _ltv_of_lifespan(arpa, margin, lifespan_months, cap)
    assert churn is not None
    rate = _average_churn(churn, window)
    if rate is None:
        return Ltv(
            arpa=arpa,
            churn_rate=None,
            gross_margin=margin,
            lifetime_months=None,
            capped=False,
            value=None,
        )
    lifetime = None if rate == 0 else _DIVIDE.divide(_ONE, rate)
    if cap is not None and (lifetime is None or lifetime > cap):
        return Ltv(
            arpa=arpa,
            churn_rate=rate,
            gross_margin=margin,
            lifetime_months=cap,
            capped=True,
            value=arpa * margin * cap,
        )
    return Ltv(
        arpa=arpa,
        churn_rate=rate,
        gross_margin=margin,
        lifetime_months=lifetime,
        capped=False,
        # One division, so the value is exact whenever the quotient terminates.
        value=None if rate == 0 else arpa * margin / rate,
    )


def _ltv_of_lifespan(
    arpa: Money, margin: Decimal, lifespan_months: object, cap: Decimal | None
) -> Ltv:
    lifespan = to_decimal(lifespan_months, "lifespan_months")
    if lifespan <= 0:
        raise ValidationError("lifespan_months", lifespan_months, "must be positive")
    capped = cap is not None and lifespan > cap
    months = cap if capped and cap is not None else lifespan
    return Ltv(
        arpa=arpa,
        churn_rate=_DIVIDE.divide(_ONE, lifespan),
        gross_margin=margin,
        lifetime_months=months,
        capped=capped,
        value=arpa * margin * months,
    )


# -- marketing spend and CAC ------------------------------------------------------------------


def _period_start(value: object) -> date:
    return check_date(value, "period_start")


def _period_end(value: object) -> date:
    return check_date(value, "period_end")


def _spend_amount(value: object) -> Money:
    money = check_money(value, "amount")
    if money.amount < 0:
        raise ValidationError("amount", value, "spend cannot be negative")
    return money


def _channel(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("channel", value, "expected a non-empty name or None")
    return value.strip()


def _spend_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("marketing_spend.id", value, "must be a non-empty string")
    return value


@attrs.frozen(kw_only=True)
class MarketingSpend:
    """Sales and marketing spend over the days ``[period_start, period_end)``.

    ``channel`` names the acquisition channel and matches ``Customer.referral_source``;
    ``None`` is spend not attributed to any channel (salaries, brand): it counts in the
    blended CAC only.
    """

    id: str = attrs.field(converter=_spend_id)
    period_start: date = attrs.field(converter=_period_start)
    period_end: date = attrs.field(converter=_period_end)
    amount: Money = attrs.field(converter=_spend_amount)
    channel: str | None = attrs.field(default=None, converter=_channel)

    def __attrs_post_init__(self) -> None:
        if self.period_end <= self.period_start:
            raise ValidationError("period_end", self.period_end, "must be after period_start")

    @classmethod
    def for_month(
        cls, *, id: str, year: int, month: int, amount: Money, channel: str | None = None
    ) -> MarketingSpend:
        """Spend of one calendar month."""
        start = date(year, month, 1)
        end = date(year + month // 12, month % 12 + 1, 1)
        return cls(id=id, period_start=start, period_end=end, amount=amount, channel=channel)

    def within(
        self, start: datetime, end: datetime, currency: str, fx: FxRates, zone: tzinfo = UTC
    ) -> Money:
        """The part of this spend falling in ``[start, end)``, in ``currency``.

        Spend is spread evenly over its days (days of the reporting zone ``zone``;
        prorated by the overlap, to the microsecond) and converted at the rate of its
        ``period_start``.
        """
        a, b = local_day_start(self.period_start, zone), local_day_start(self.period_end, zone)
        lo, hi = max(a, start), min(b, end)
        if hi <= lo:
            return Money.zero(currency)
        amount = fx.convert(self.amount, currency, on=self.period_start)
        if lo == a and hi == b:
            return amount
        # Multiply first, divide once: exact whenever the share terminates.
        return amount * ((hi - lo) // _MICROSECOND) / ((b - a) // _MICROSECOND)


def marketing_spend(
    records: Iterable[MarketingSpend],
    *,
    start: date | datetime,
    end: date | datetime,
    currency: str,
    fx: FxRates | None = None,
    timezone: str | tzinfo | None = None,
) -> dict[str | None, Money]:
    """Spend in ``[start, end)`` per channel (``None``: unattributed), in ``currency``;
    days (the spend's and plain-date bounds) are those of the reporting ``timezone``
    (UTC by default)."""
    check_currency(currency)
    zone = UTC if timezone is None else _zone_arg(timezone)
    a, b = check_period(start, end, zone)
    rates = fx if fx is not None else FxRates()
    out: dict[str | None, Money] = {}
    seen: set[str] = set()
    for r in records:
        if not isinstance(r, MarketingSpend):
            raise ValidationError("records", r, "expected MarketingSpend")
        if r.id in seen:
            raise ValidationError("records", r.id, "duplicate marketing spend id")
        seen.add(r.id)
        part = r.within(a, b, currency, rates, zone)
        out[r.channel] = out.get(r.channel, Money.zero(currency)) + part
    return out


@attrs.frozen(kw_only=True)
class Cac:
    """Customer acquisition cost: ``spend / new_customers`` (``None`` without new customers)."""

    spend: Money
    new_customers: int
    value: Money | None


def cac(spend: Money, new_customers: int) -> Cac:
    """CAC = sales and marketing spend / new customers ($100,000 / 50 = $2,000)."""
    check_money(spend, "spend")
    if spend.amount < 0:
        raise ValidationError("spend", spend, "cannot be negative")
    n = check_count(new_customers, "new_customers")
    return Cac(spend=spend, new_customers=n, value=spend / n if n else None)


@attrs.frozen(kw_only=True)
class ChannelCac:
    """CAC of one channel; ``channel`` ``None`` gathers unattributed spend and customers."""

    channel: str | None
    spend: Money
    new_customers: int
    value: Money | None


@attrs.frozen(kw_only=True)
class CacReport:
    """Blended CAC (all spend over all new customers) and CAC per channel.

    The channels' spend adds up to ``blended.spend`` and their new customers to
    ``blended.new_customers``.
    """

    start: datetime
    end: datetime
    blended: Cac
    channels: tuple[ChannelCac, ...]

    def channel(self, name: str | None) -> ChannelCac | None:
        return next((c for c in self.channels if c.channel == name), None)


def cac_by_channel(
    book: Book,
    spend: Iterable[MarketingSpend],
    *,
    start: date | datetime,
    end: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
) -> CacReport:
    """CAC over ``[start, end)``, blended and per channel.

    New customers are those whose first MRR (first moment with MRR > 0, the new-business
    moment) falls in the period; a customer's channel is its ``referral_source``. Spend is
    prorated into the period by :meth:`MarketingSpend.within` and converted with
    ``book.fx`` at each record's ``period_start``.

    Pass ``analysis`` (an :func:`analyse` result of the same book) to take the first MRR
    from it, with its policy, currency and MRR source (invoices too).
    """
    if analysis is not None:
        check_analysis_args(analysis, currency, policy)
        currency = analysis.currency
        firsts = analysis.first_paid()
    else:
        currency, pol = book_args(book, currency, policy)
        firsts = first_paid_by_customer(book, pol)
    zone = analysis.policy.timezone if analysis is not None else pol.timezone
    a, b = check_period(start, end, zone)
    by_channel = marketing_spend(
        spend, start=a, end=b, currency=currency, fx=book.fx, timezone=zone
    )
    new: dict[str | None, int] = defaultdict(int)
    for cid, first in firsts.items():
        if a <= first < b:
            new[book.customer_index[cid].referral_source] += 1
    names = sorted(set(by_channel) | set(new), key=lambda c: (c is None, c or ""))
    rows = []
    for name in names:
        money = by_channel.get(name, Money.zero(currency))
        count = new.get(name, 0)
        rows.append(
            ChannelCac(
                channel=name,
                spend=money,
                new_customers=count,
                value=money / count if count else None,
            )
        )
    total = money_sum((r.spend for r in rows), currency)
    return CacReport(
        start=a, end=b, blended=cac(total, sum(r.new_customers for r in rows)), channels=tuple(rows)
    )


def _money_rate(numerator: Money, denominator: Money) -> Rate:
    return Rate(
        numerator=numerator.amount,
        denominator=denominator.amount,
        value=money_ratio(numerator, denominator),
    )


def ltv_to_cac(ltv: Money, cac: Money) -> Rate:
    """LTV:CAC as a :class:`Rate` (``value`` 3 means 3:1, called healthy); ``value`` is
    ``None`` when CAC is zero."""
    check_money(ltv, "ltv")
    check_money(cac, "cac")
    return _money_rate(ltv, cac)


def cac_payback_months(
    cac: Money, arpa: Money, *, gross_margin: Decimal | int | str | None = None
) -> Rate:
    """Months to recover CAC as a :class:`Rate`: ``cac / (arpa x gross_margin)``;
    ``value`` is ``None`` when the monthly gross profit per account is zero (never paid
    back)."""
    check_money(cac, "cac")
    check_money(arpa, "arpa")
    margin = _ONE if gross_margin is None else _fraction(gross_margin, "gross_margin")
    return _money_rate(cac, arpa * margin)


# -- NPS ----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Nps:
    """Net promoter score: ``100 x (promoters - detractors) / responses``.

    Promoters answered 9-10, passives 7-8, detractors 0-6; passives count in the
    denominator only. ``score`` is in [-100, 100], ``None`` without responses.
    """

    promoters: int
    passives: int
    detractors: int
    score: Decimal | None

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors


def nps(scores: Iterable[int]) -> Nps:
    """NPS of 0-10 survey answers (whole numbers; anything else is a ValidationError)."""
    promoters = passives = detractors = 0
    for i, s in enumerate(scores):
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 10:
            raise ValidationError(f"scores[{i}]", s, "expected a whole number from 0 to 10")
        if s >= 9:
            promoters += 1
        elif s >= 7:
            passives += 1
        else:
            detractors += 1
    n = promoters + passives + detractors
    score = ratio(_HUNDRED * (promoters - detractors), n)
    return Nps(promoters=promoters, passives=passives, detractors=detractors, score=score)


# -- trial conversion ---------------------------------------------------------------------------


class TrialBasis(enum.StrEnum):
    """Which trials a trial conversion rate is measured over."""

    STARTED = "started"  # ChartMogul: trials started in the interval; converted by as_of
    ENDED = "ended"  # Stripe: trials that ended in the interval; converted when they ended


@attrs.frozen(kw_only=True)
class TrialConversion:
    """``converted / trials``; ``None`` when there were no trials."""

    basis: TrialBasis
    trials: int
    converted: int
    rate: Decimal | None

    @property
    def value(self) -> Decimal | None:
        """The rate (the same as :attr:`rate`): every rate result has a ``value``."""
        return self.rate


def trial_rows(book: Book, policy: MetricsPolicy = DEFAULT_POLICY) -> TrialColumns:
    """The book's trials as ledger rows (:mod:`revcrm._ledger._trials`): each stretch of
    TRIALING status of a subscription, converted when the subscription then had MRR > 0
    under ``policy`` (ACTIVE or PAST_DUE on a paid price); cancelling, terminating or
    moving to a free price ends it unconverted. Build once, pass to
    :func:`trial_conversion` as ``trials=`` for any number of periods."""
    return trial_columns(
        book.subscriptions, lambda s, at: not state_mrr(s, at, policy).is_zero(), policy
    )


def trial_conversion(
    book: Book,
    *,
    start: date | datetime,
    end: date | datetime,
    basis: TrialBasis | str = TrialBasis.STARTED,
    as_of: date | datetime | None = None,
    policy: MetricsPolicy = DEFAULT_POLICY,
    trials: TrialColumns | None = None,
) -> TrialConversion:
    """Trial-to-paid conversion over ``[start, end)``; each trial is one subscription's
    stretch of TRIALING status.

    * ``STARTED`` (ChartMogul): trials that started in the interval, of which those that
      converted by ``as_of`` (default: ``end``; pass a later moment to let recent trials
      finish).
    * ``ENDED`` (Stripe): trials that ended in the interval (converted or not), of which
      those that converted; ``as_of`` is not used.

    An aggregation over the book's trial rows: pass ``trials`` (:func:`trial_rows` of the
    same book and policy) to build them once for several periods.
    """
    a, b = check_period(start, end, zone_of(None, policy))
    try:
        kind = TrialBasis(basis)
    except ValueError:
        raise ValidationError("basis", basis, "expected 'started' or 'ended'") from None
    cutoff = None if as_of is None else as_moment(local_moment(as_of, policy.timezone), "as_of")
    if trials is None:
        trials = trial_rows(book, policy)
    elif not isinstance(trials, TrialColumns) or trials.rule != policy:
        raise ValidationError("trials", trials, "expected trial_rows(book, policy) of this policy")
    lo, hi = moment_us(a), moment_us(b)
    if kind is TrialBasis.STARTED:
        # Datetimes have microsecond resolution: "before end" is "at or before end - 1".
        by = hi - 1 if cutoff is None else moment_us(cutoff)
        count, converted = trials.started(lo, hi, by)
    else:
        count, converted = trials.ended(lo, hi)
    return TrialConversion(
        basis=kind, trials=count, converted=converted, rate=ratio(converted, count)
    )
