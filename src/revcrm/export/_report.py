"""The revenue report: every figure of the dashboard pages, as of one moment, from a store.

:func:`build_report` computes a :class:`Report` (pure: the moment, the locale and the
source are arguments; nothing reads the clock). :func:`render_html` turns it into one
self-contained HTML page (inline CSS and SVG charts, no script, no network);
:func:`render_text` into the plain-text pages ``revcrm demo`` prints; :func:`report_tables`
into the CSV tables. All three render the same :class:`Report`, so they say one thing.

HTML is built with :func:`html.escape` in small functions rather than a template engine:
the page is a fixed layout of tables and charts, escaping is one helper every text goes
through, and the report then needs nothing beyond revcrm's core dependencies (Jinja2 is
in the ``web`` extra only).
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import babel
import babel.numbers

from revcrm._book import Book
from revcrm._calendar import local_moment, months_back, reporting_zone, zone_name
from revcrm._money import Money, format_money
from revcrm._time import as_moment
from revcrm.errors import ValidationError
from revcrm.export._json import decimal_text, money_text
from revcrm.export._svg import (
    month_label,
    svg_bar_chart,
    svg_heatmap,
    svg_lines_chart,
    svg_waterfall_chart,
)
from revcrm.leads import ConversionReport, Funnel, LeadStage, PipelineValue
from revcrm.metrics import (
    Arpa,
    Breakdown,
    ChurnDenominator,
    ChurnPoint,
    Cohort,
    Dashboard,
    Ltv,
    MetricsPolicy,
    RevenueRetention,
    Waterfall,
)
from revcrm.segments import Segment, SegmentCounts

if TYPE_CHECKING:
    from revcrm._facade import CRM
    from revcrm.storage import Store

__all__ = [
    "Report",
    "ReportBreakdown",
    "ReportCard",
    "build_report",
    "render_html",
    "render_text",
    "report_tables",
    "write_csv",
]

#: Months in the trend, the waterfall table, the churn series and the cohort triangle.
TREND_MONTHS: Final = 12


@attrs.frozen(kw_only=True)
class ReportCard:
    """One dashboard card: ``value`` (money, a rate, a count, or ``None`` when undefined)
    and ``note``, the plain words that say what the value counts."""

    key: str
    label: str
    value: Money | Decimal | int | None
    note: str


@attrs.frozen(kw_only=True)
class ReportBreakdown:
    """A revenue breakdown with its title: MRR at ``end`` (``start`` None), or net cash
    collected over ``[start, end)``."""

    title: str
    start: datetime | None
    end: datetime
    breakdown: Breakdown


@attrs.frozen(kw_only=True)
class Report:
    """Every figure of the report, all as of ``as_of``.

    ``waterfalls`` has one bridge per trend month, the last running to ``as_of``
    inclusive (its ``end`` is one microsecond later, and its end MRR is the dashboard's
    MRR); ``churn`` the completed months of the trend; ``cohorts``
    the customers acquired in each trend month. ``funnel``, ``conversion`` and
    ``pipeline_value`` are ``None`` for a billing store without CRM tables.
    """

    as_of: datetime
    currency: str
    locale: str
    source: str
    registered_customers: int
    cards: tuple[ReportCard, ...]
    dashboard: Dashboard
    waterfalls: tuple[Waterfall, ...]
    churn: tuple[ChurnPoint, ...]
    cohorts: tuple[Cohort, ...]
    breakdowns: tuple[ReportBreakdown, ...]
    segments: SegmentCounts
    arpa: Arpa
    ltv: Ltv | None
    retention: RevenueRetention
    quick_ratio: Decimal | None
    funnel: Funnel | None
    conversion: ConversionReport | None
    pipeline_value: PipelineValue | None

    def card(self, key: str) -> ReportCard:
        for c in self.cards:
            if c.key == key:
                return c
        raise ValidationError("key", key, f"one of {', '.join(c.key for c in self.cards)}")


# -- formatting -------------------------------------------------------------------------------


@attrs.frozen
class _Fmt:
    """Every figure's text in one locale: money by babel (rounded once, to the currency's
    minor units), rates as percentages with one decimal, counts with grouping."""

    locale: str
    #: The reporting time zone: days, months and moments are read on its calendar.
    zone: tzinfo = UTC

    def money(self, m: Money | None) -> str:
        return "n/a" if m is None else format_money(m, locale=self.locale)

    def pct(self, rate: Decimal | None) -> str:
        if rate is None:
            return "n/a"
        return babel.numbers.format_percent(rate, format="#,##0.0%", locale=self._parsed())

    def count(self, n: int) -> str:
        return babel.numbers.format_decimal(n, locale=self._parsed())

    def number(self, value: Decimal | None, places: int = 2) -> str:
        if value is None:
            return "n/a"
        pattern = "#,##0." + "0" * places
        return babel.numbers.format_decimal(value, format=pattern, locale=self._parsed())

    def day(self, t: datetime) -> str:
        return f"{t.astimezone(self.zone):%Y-%m-%d}"

    def moment(self, t: datetime) -> str:
        return f"{t.astimezone(self.zone):%Y-%m-%d %H:%M} {zone_name(self.zone)}"

    def month(self, t: datetime) -> str:
        # A reporting month starts at midnight of the zone: its label is the zone's month.
        return month_label(t.astimezone(self.zone), locale=self.locale)

    def card(self, c: ReportCard) -> str:
        v = c.value
        if v is None:
            return "n/a"
        if isinstance(v, Money):
            return self.money(v)
        if isinstance(v, Decimal):
            return self.number(v) if c.key == "quick_ratio" else self.pct(v)
        return self.count(v)

    def _parsed(self) -> babel.Locale:
        try:
            return babel.Locale.parse(self.locale, sep="-" if "-" in self.locale else "_")
        except (babel.UnknownLocaleError, ValueError, TypeError) as e:
            raise ValidationError("locale", self.locale, "unknown locale") from e


# -- building ---------------------------------------------------------------------------------


def build_report(
    source: CRM | Store,
    *,
    as_of: datetime,
    locale: str,
    currency: str | None = None,
    label: str | None = None,
) -> Report:
    """Compute the report of ``source`` (a :class:`~revcrm.CRM` facade, or a billing
    :class:`~revcrm.storage.Store`) as of ``as_of``, texts in ``locale``.

    With a facade the money is in its reporting currency, the segment counts are the
    store's and the lead funnel comes from its CRM store; a bare billing store needs
    ``currency`` and has no funnel. ``label`` names the source in the report (default:
    the store's type).
    """
    from revcrm._facade import CRM

    as_moment(as_of, "as_of")
    _Fmt(locale).pct(Decimal(0))  # an unknown locale fails here, before any work
    if isinstance(source, CRM):
        store = source.store
        cur = source.reporting_currency if currency is None else currency
        policy = source.policy
        leads = source.crm.leads.all()
    else:
        store = source
        if currency is None:
            raise ValidationError("currency", currency, "a billing store needs a currency")
        cur = currency
        policy = store.policy
        leads = None
    # A plain date is the start of that day in the reporting zone.
    moment = as_moment(local_moment(as_of, policy.timezone), "as_of")
    fmt = _Fmt(locale, policy.timezone)
    book = store.book()
    segments = None
    if isinstance(source, CRM) and cur == source.reporting_currency:
        segments = source.segments.counts(as_of=moment)
    return _build(
        book,
        as_of=moment,
        currency=cur,
        policy=policy,
        fmt=fmt,
        label=label or type(store).__name__,
        segments=segments,
        leads=leads,
    )


def _build(
    book: Book,
    *,
    as_of: datetime,
    currency: str,
    policy: MetricsPolicy,
    fmt: _Fmt,
    label: str,
    segments: SegmentCounts | None,
    leads: Sequence[object] | None,
) -> Report:
    from revcrm.leads import Lead, conversion_rate, funnel, open_pipeline_value
    from revcrm.metrics import (
        Frequency,
        analyse,
        arpa_from_mrrs,
        cash_revenue_by_billing_cycle,
        cash_revenue_by_payment_method,
        cash_revenue_by_product,
        churn_series,
        cohorts,
        dashboard,
        ltv,
        mrr_by_billing_cycle,
        mrr_by_product,
        quick_ratio,
        revenue_retention,
    )
    from revcrm.segments import segmentation

    renewals = timedelta(days=30)
    a = analyse(book, currency=currency, policy=policy, horizon=as_of + renewals)
    d = dashboard(
        book, as_of=as_of, currency=currency, policy=policy, analysis=a, renewals_window=renewals
    )
    this_month = d.trend[-1].start
    first = d.trend[0].start
    # The current month's bridge runs to as_of inclusive, so its end MRR is the dashboard's
    # MRR: a period excludes its end, and the MRR at as_of counts what happens at as_of (a
    # service starting at midnight of the report's day), hence one microsecond past it.
    closing = as_of + timedelta(microseconds=1)
    waterfalls = tuple(a.waterfall(m.start, min(m.end, closing)) for m in d.trend)
    churn = tuple(churn_series(a, first, this_month)) if first < this_month else ()
    rows = tuple(cohorts(a, first, as_of, Frequency.MONTH))
    year_ago = months_back(as_of, -12, policy.timezone)
    arpa = arpa_from_mrrs(a.customers_with_mrr(as_of), currency=currency)
    rates = [p.customer_churn.rate for p in churn]
    value = (
        ltv(arpa.value, rates, window=policy.ltv_churn_months) if arpa.value is not None else None
    )
    retention = revenue_retention(a, year_ago, as_of)
    qr = _rate_value(quick_ratio(a, this_month, closing)) if this_month < as_of else None
    if segments is None:
        segments = segmentation(book, as_of=as_of, currency=currency, analysis=a).counts()
    breakdowns = (
        ReportBreakdown(
            title=f"MRR by product at {fmt.day(as_of)}",
            start=None,
            end=as_of,
            breakdown=mrr_by_product(book, at=as_of, currency=currency, policy=policy),
        ),
        ReportBreakdown(
            title=f"MRR by billing cycle at {fmt.day(as_of)}",
            start=None,
            end=as_of,
            breakdown=mrr_by_billing_cycle(book, at=as_of, currency=currency, policy=policy),
        ),
        *(
            ReportBreakdown(
                title=f"Net cash by {name}, {fmt.day(year_ago)} to {fmt.day(as_of)}",
                start=year_ago,
                end=as_of,
                breakdown=fn(book, start=year_ago, end=as_of, currency=currency),
            )
            for name, fn in (
                ("product", cash_revenue_by_product),
                ("billing cycle", cash_revenue_by_billing_cycle),
                ("payment method", cash_revenue_by_payment_method),
            )
        ),
    )
    lead_list = None if leads is None else [lead for lead in leads if isinstance(lead, Lead)]
    stages = conv = pipeline = None
    if lead_list is not None:
        stages = funnel(lead_list, at=as_of)
        conv = conversion_rate(lead_list, start=year_ago, end=as_of, by="source_kind")
        pipeline = open_pipeline_value(lead_list, currency=currency, at=as_of, fx=book.fx)
    cards = _cards(
        d,
        fmt,
        len(book.customers),
        arpa,
        value,
        retention,
        qr,
        policy,
        len(churn),
        pipeline,
    )
    return Report(
        as_of=as_of,
        currency=currency,
        locale=fmt.locale,
        source=label,
        registered_customers=len(book.customers),
        cards=cards,
        dashboard=d,
        waterfalls=waterfalls,
        churn=churn,
        cohorts=rows,
        breakdowns=breakdowns,
        segments=segments,
        arpa=arpa,
        ltv=value,
        retention=retention,
        quick_ratio=qr,
        funnel=stages,
        conversion=conv,
        pipeline_value=pipeline,
    )


def _rate_value(rate: object) -> Decimal | None:
    # A metric's rate result (``.value``), or a bare Decimal from an older call shape.
    if rate is None or isinstance(rate, Decimal):
        return rate
    value = getattr(rate, "value", None)
    return value if isinstance(value, Decimal) else None


def _cards(
    d: Dashboard,
    fmt: _Fmt,
    registered: int,
    arpa: Arpa,
    value: Ltv | None,
    retention: RevenueRetention,
    qr: Decimal | None,
    policy: MetricsPolicy,
    completed: int,
    pipeline: PipelineValue | None,
) -> tuple[ReportCard, ...]:
    rule, window = policy.churn_denominator, policy.ltv_churn_months
    c = d.churn
    start, now = fmt.day(c.start), fmt.day(d.as_of)
    if rule is ChurnDenominator.START:
        counted = f"the {fmt.count(c.denominator)} customers paying on {start}"
    elif rule is ChurnDenominator.START_PLUS_NEW:
        counted = (
            f"{fmt.count(c.denominator)} customers ({fmt.count(c.customers_at_start)} paying "
            f"on {start} and {fmt.count(c.new_customers)} new since)"
        )
    else:
        counted = f"{fmt.count(c.denominator)} customers paying 30 days before {now}"
    this, last = d.revenue_this_month, d.revenue_last_month
    cards = [
        ReportCard(
            key="mrr",
            label="MRR",
            value=d.mrr,
            note=f"monthly recurring revenue at {fmt.moment(d.as_of)}",
        ),
        ReportCard(key="arr", label="ARR", value=d.arr, note="12 times MRR"),
        ReportCard(
            key="paying_customers",
            label="Paying customers",
            value=d.customers,
            note=f"customers with MRR now, of {fmt.count(registered)} registered",
        ),
        ReportCard(
            key="cash_this_month",
            label="Net cash this month",
            value=this.net,
            # The dashboard's cash of the current month is its whole calendar month, also
            # for a past as_of (a known gap of dashboard() and Store.dashboard()).
            note=f"{fmt.money(this.gross)} collected less {fmt.money(this.refunds)} refunded "
            f"in {fmt.month(this.start)}",
        ),
        ReportCard(
            key="cash_last_month",
            label="Net cash last month",
            value=last.net,
            note=f"{fmt.money(last.gross)} collected less {fmt.money(last.refunds)} refunded "
            f"in {fmt.month(last.start)}",
        ),
        ReportCard(
            key="customer_churn",
            label="Customer churn this month",
            value=c.rate,
            note=f"{fmt.count(c.churned)} of {counted} stopped paying by {now}",
        ),
        ReportCard(
            key="renewals",
            label=f"Renewals in the next {d.renewals_window.days} days",
            value=d.renewals_count,
            note=f"services up for renewal, {fmt.money(d.renewals_mrr)} of MRR",
        ),
        ReportCard(
            key="arpa",
            label="ARPA",
            value=arpa.value,
            note=f"MRR divided by the {fmt.count(arpa.paying_customers)} paying customers",
        ),
    ]
    if value is not None:
        life = (
            "an unbounded lifetime"
            if value.lifetime_months is None
            else f"a lifetime of {fmt.number(value.lifetime_months, 1)} months"
        )
        months = fmt.count(min(window, completed))
        cards.append(
            ReportCard(
                key="ltv",
                label="LTV",
                value=value.value,
                note=f"ARPA divided by the average monthly customer churn of the last "
                f"{months} completed months, {fmt.pct(value.churn_rate)}: {life}",
            )
        )
    cards += [
        ReportCard(
            key="net_revenue_retention",
            label="Net revenue retention, 12 months",
            value=retention.net,
            note=f"MRR now of the {fmt.count(retention.customers)} customers paying 12 months "
            f"ago; gross revenue retention {fmt.pct(retention.gross)}",
        ),
        ReportCard(
            key="quick_ratio",
            label="Quick ratio this month",
            value=qr,
            note="MRR gained by new customers, expansion and reactivation divided by MRR lost "
            f"to contraction and churn, {fmt.day(d.trend[-1].start)} to {now}",
        ),
    ]
    if pipeline is not None:
        cards.append(
            ReportCard(
                key="open_pipeline",
                label="Open pipeline value",
                value=pipeline.total,
                note=f"expected monthly value of {fmt.count(pipeline.valued_leads)} of the "
                f"{fmt.count(pipeline.open_leads)} open leads",
            )
        )
    return tuple(cards)


# -- tables (CSV, and the HTML and text tables) ----------------------------------------------

Table = tuple[list[str], list[list[str]]]


def report_tables(report: Report) -> dict[str, Table]:
    """The report's tables by file stem (``cards``, ``trend``, ``waterfall``, ``churn``,
    ``cohorts``, ``breakdown_<dimension>_<measure>``, ``segments``, ``funnel``,
    ``conversion``): a header and rows of text. Money is the rounded amount
    (:func:`~revcrm.export.money_text`) with a currency column, rates exact decimals."""

    def m(x: Money | None) -> str:
        return "" if x is None else money_text(x)

    def r(x: Decimal | None) -> str:
        return "" if x is None else decimal_text(x)

    def t(x: datetime) -> str:
        return x.isoformat()

    cur = report.currency
    out: dict[str, Table] = {}
    cards = []
    for c in report.cards:
        v = c.value
        if isinstance(v, Money):
            text = m(v)
        elif isinstance(v, Decimal):
            text = r(v)
        else:
            text = "" if v is None else str(v)
        cards.append([c.key, c.label, text, v.currency if isinstance(v, Money) else "", c.note])
    out["cards"] = (["key", "label", "value", "currency", "note"], cards)
    out["trend"] = (
        ["start", "end", "cash_gross", "cash_refunds", "cash_net", "payments", "mrr", "currency"],
        [
            [t(x.start), t(x.end), m(x.cash.gross), m(x.cash.refunds), m(x.cash.net),
             str(x.cash.payments), m(x.mrr), cur]
            for x in report.dashboard.trend
        ],
    )  # fmt: skip
    out["waterfall"] = (
        ["start", "end", "start_mrr", "new", "expansion", "reactivation", "contraction",
         "churn", "fx_impact", "end_mrr", "movements", "currency"],
        [
            [t(w.start), t(w.end), m(w.start_mrr), m(w.new), m(w.expansion), m(w.reactivation),
             m(w.contraction), m(w.churn), m(w.fx_impact), m(w.end_mrr), str(w.movement_count),
             cur]
            for w in report.waterfalls
        ],
    )  # fmt: skip
    out["churn"] = (
        ["start", "end", "customers_at_start", "new_customers", "churned", "denominator",
         "customer_churn_rate", "mrr_start", "mrr_churn_gross", "mrr_churn_net", "currency"],
        [
            [t(p.start), t(p.end), str(p.customer_churn.customers_at_start),
             str(p.customer_churn.new_customers), str(p.customer_churn.churned),
             str(p.customer_churn.denominator), r(p.customer_churn.rate),
             m(p.mrr_churn.start_mrr), r(p.mrr_churn.gross), r(p.mrr_churn.net), cur]
            for p in report.churn
        ],
    )  # fmt: skip
    out["cohorts"] = (
        ["cohort_start", "size", "age", "customers", "customer_rate", "mrr", "mrr_rate",
         "currency"],
        [
            [t(c.start), str(c.size), str(cell.age), str(cell.customers), r(cell.customer_rate),
             m(cell.mrr), r(cell.mrr_rate), cur]
            for c in report.cohorts
            for cell in c.cells
        ],
    )  # fmt: skip
    for b in report.breakdowns:
        bd = b.breakdown
        out[f"breakdown_{bd.dimension}_{bd.measure}"] = (
            ["key", "label", "amount", "currency", "customers", "share"],
            [
                [row.key or "", row.label, m(row.amount), bd.currency, str(row.customers),
                 r(row.share)]
                for row in bd.rows
            ],
        )  # fmt: skip
    s = report.segments
    out["segments"] = (
        ["segment", "members", "primary"],
        [[seg.value, str(s.members.get(seg, 0)), str(s.primary.get(seg, 0))] for seg in Segment],
    )
    if report.funnel is not None:
        f = report.funnel
        out["funnel"] = (
            ["stage", "leads", "share"],
            [[st.value, str(f.counts[st]), r(f.share(st))] for st in LeadStage],
        )
    if report.conversion is not None:
        cv = report.conversion
        out["conversion"] = (
            ["group", "leads", "converted", "rate"],
            [
                [g.key or "", str(g.leads), str(g.converted), r(g.rate)]
                for g in (*cv.groups, cv.overall)
            ],
        )
    return out


def write_csv(report: Report, directory: str | Path) -> list[Path]:
    """Write :func:`report_tables` as one CSV file per table (UTF-8, header row) into
    ``directory`` (created if missing); returns the paths written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (header, rows) in report_tables(report).items():
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)
    return written


# -- HTML -------------------------------------------------------------------------------------

_CSS: Final = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:60rem;color:#1b1b1b;
padding:0 1rem;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #ccc;padding-bottom:.2rem}h3{font-size:1rem}
.meta{color:#444;margin-top:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:.6rem;
padding:0;list-style:none}
.card{border:1px solid #bbb;border-radius:6px;padding:.5rem .7rem}
.card .label{font-size:.85rem;color:#333}.card .value{font-size:1.35rem;font-weight:600}
.card .note{font-size:.8rem;color:#444}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border-bottom:1px solid #ddd;padding:.2rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #888}
svg.revcrm-chart{max-width:100%;height:auto;display:block;margin:.5rem 0}
.empty{color:#555;font-style:italic}
@media print{h2{break-after:avoid}svg,table{break-inside:avoid}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> str:
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(key: str, title: str, *parts: str) -> str:
    return (
        f'<section id="{_e(key)}" aria-labelledby="{_e(key)}-h">'
        f'<h2 id="{_e(key)}-h">{_e(title)}</h2>{"".join(parts)}</section>'
    )


def _money_points(values: Sequence[tuple[str, Money]]) -> list[tuple[str, Decimal | None]]:
    # Charts draw the rounded amount, so a bar's length and its label agree.
    return [(label, m.rounded().amount) for label, m in values]


def render_html(report: Report) -> str:
    """The report as one HTML page: inline CSS and SVG charts, every text escaped, no
    script and no reference to anything outside the page."""
    f = _Fmt(report.locale, reporting_zone(report.dashboard.timezone))
    r = report
    cur, loc = r.currency, r.locale
    d = r.dashboard
    cards = "".join(
        f'<li class="card" id="card-{_e(c.key)}"><div class="label">{_e(c.label)}</div>'
        f'<div class="value">{_e(f.card(c))}</div><div class="note">{_e(c.note)}</div></li>'
        for c in r.cards
    )
    sections = [_section("cards", "Dashboard", f'<ul class="cards">{cards}</ul>')]
    months = [f.month(m.start) for m in d.trend]
    trend_chart = svg_lines_chart(
        [
            ("MRR at month end", _money_points(list(zip(months, (m.mrr for m in d.trend),
                                                        strict=True)))),
            ("Net cash collected", _money_points(list(zip(months, (m.cash.net for m in d.trend),
                                                          strict=True)))),
        ],
        title=f"MRR and net cash, last {len(d.trend)} months",
        currency=cur,
        locale=loc,
    )  # fmt: skip
    sections.append(
        _section(
            "trend",
            f"{len(d.trend)}-month trend",
            trend_chart,
            _table(*_trend_rows(r, f), caption=_TREND_NOTE),
        )
    )
    last = r.waterfalls[-1]
    sections.append(
        _section(
            "waterfall",
            "MRR waterfall",
            svg_waterfall_chart(last, locale=loc),
            _table(*_waterfall_rows(r, f), caption="Each month's MRR bridge; "
                   "the last ends at the report's moment"),
        )
    )  # fmt: skip
    if r.churn:
        labels = [f.month(p.start) for p in r.churn]
        chart = svg_lines_chart(
            [
                ("Customer churn", list(zip(labels, (p.customer_churn.rate for p in r.churn),
                                            strict=True))),
                ("Gross MRR churn", list(zip(labels, (p.mrr_churn.gross for p in r.churn),
                                             strict=True))),
                ("Net MRR churn", list(zip(labels, (p.mrr_churn.net for p in r.churn),
                                           strict=True))),
            ],
            title="Churn by completed month",
            currency=None,
            locale=loc,
            percent=True,
        )  # fmt: skip
        sections.append(_section("churn", "Churn over time", chart, _table(*_churn_rows(r, f))))
    else:
        sections.append(_section("churn", "Churn over time", _empty("No completed month yet.")))
    if r.cohorts and any(c.cells for c in r.cohorts):
        sections.append(
            _section(
                "cohorts",
                "Cohorts",
                svg_heatmap(r.cohorts, locale=loc),
                _table(*_cohort_rows(r, f), caption="Customers retained by months since "
                       "first payment; size is the cohort's customers"),
            )
        )  # fmt: skip
    else:
        sections.append(_section("cohorts", "Cohorts", _empty("No cohort in the period.")))
    parts = []
    for b in r.breakdowns:
        bd = b.breakdown
        rows = _chart_rows(bd)
        chart = (
            svg_bar_chart(rows, title=b.title, currency=cur, locale=loc, share=True)
            if rows
            else _empty("Nothing in this period.")
        )
        parts.append(
            f'<div class="breakdown" id="breakdown-{_e(bd.dimension)}-{_e(bd.measure)}">'
            f"<h3>{_e(b.title)}</h3>{chart}" + _table(*_breakdown_rows(b, f)) + "</div>"
        )
    sections.append(_section("revenue", "Revenue breakdowns", *parts))
    s = r.segments
    seg_rows = [(seg.label, Decimal(s.members.get(seg, 0))) for seg in Segment]
    sections.append(
        _section(
            "segments",
            "Segments",
            svg_bar_chart(
                seg_rows,
                title=f"Customers per segment, of {f.count(s.customers)} registered",
                currency=None,
                locale=loc,
            ),
            _table(*_segment_rows(r, f), caption="A customer is a member of every segment it "
                   "qualifies for and has exactly one primary segment"),
        )
    )  # fmt: skip
    sections.append(_section("funnel", "Lead funnel", *_funnel_parts(r, f)))
    title = f"Revenue report as of {f.moment(r.as_of)}"
    meta = (
        f"{_e(r.source)}; {f.count(r.registered_customers)} registered customers; "
        f"amounts in {_e(cur)}, formatted for {_e(loc)}"
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(_lang(loc))}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><p class="meta">{meta}</p></header><main>'
        + "".join(sections)
        + "</main></body></html>\n"
    )


#: Bars in a breakdown chart; the table under it lists every row.
CHART_BARS: Final = 12


def _chart_rows(bd: Breakdown) -> list[tuple[str, Decimal]]:
    rows = [(row.label, row.amount.rounded().amount) for row in bd.rows]
    if len(rows) <= CHART_BARS:
        return rows
    rest = rows[CHART_BARS - 1 :]
    other = sum((amount for _, amount in rest), Decimal(0))
    return [*rows[: CHART_BARS - 1], (f"{len(rest)} others", other)]


_TREND_NOTE: Final = "MRR at each month's end; for the current month, at the report's moment"


def _lang(locale: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", locale.replace("_", "-")) or "en"


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _trend_rows(r: Report, f: _Fmt) -> Table:
    return (
        ["Month", "Collected", "Refunded", "Net cash", "MRR at month end"],
        [
            [f.month(m.start), f.money(m.cash.gross), f.money(m.cash.refunds),
             f.money(m.cash.net), f.money(m.mrr)]
            for m in r.dashboard.trend
        ],
    )  # fmt: skip


def _waterfall_rows(r: Report, f: _Fmt) -> Table:
    return (
        ["Month", "Start MRR", "New", "Expansion", "Reactivation", "Contraction", "Churn",
         "FX", "End MRR"],
        [
            [f.month(w.start), f.money(w.start_mrr), f.money(w.new), f.money(w.expansion),
             f.money(w.reactivation), f.money(w.contraction), f.money(w.churn),
             f.money(w.fx_impact), f.money(w.end_mrr)]
            for w in r.waterfalls
        ],
    )  # fmt: skip


_DENOMINATOR_HEADERS: Final = {
    ChurnDenominator.START: "Paying at start",
    ChurnDenominator.START_PLUS_NEW: "Paying at start and new",
    ChurnDenominator.START_30_DAY: "Paying 30 days before",
}


def _churn_rows(r: Report, f: _Fmt) -> Table:
    rule = r.churn[0].customer_churn.denominator_rule if r.churn else ChurnDenominator.START
    return (
        ["Month", _DENOMINATOR_HEADERS.get(rule, "Counted"), "Stopped paying", "Customer churn", "Gross MRR churn",
         "Net MRR churn"],
        [
            [f.month(p.start), f.count(p.customer_churn.denominator),
             f.count(p.customer_churn.churned), f.pct(p.customer_churn.rate),
             f.pct(p.mrr_churn.gross), f.pct(p.mrr_churn.net)]
            for p in r.churn
        ],
    )  # fmt: skip


def _cohort_rows(r: Report, f: _Fmt) -> Table:
    ages = max((len(c.cells) for c in r.cohorts), default=0)
    return (
        ["Cohort", "Size", *(str(a) for a in range(ages))],
        [
            [f.month(c.start), f.count(c.size),
             *(f.pct(cell.customer_rate) for cell in c.cells),
             *([""] * (ages - len(c.cells)))]
            for c in r.cohorts
        ],
    )  # fmt: skip


def _breakdown_rows(b: ReportBreakdown, f: _Fmt) -> Table:
    bd = b.breakdown
    rows = [
        [row.label, f.money(row.amount), f.count(row.customers), f.pct(row.share)]
        for row in bd.rows
    ]
    rows.append(["Total", f.money(bd.total), "", f.pct(Decimal(1)) if bd.rows else ""])
    return (["", "Amount", "Customers", "Share"], rows)


def _segment_rows(r: Report, f: _Fmt) -> Table:
    s = r.segments
    return (
        ["Segment", "Members", "Primary"],
        [
            [seg.label, f.count(s.members.get(seg, 0)), f.count(s.primary.get(seg, 0))]
            for seg in Segment
        ],
    )


def _funnel_parts(r: Report, f: _Fmt) -> list[str]:
    if r.funnel is None:
        return [_empty("No CRM tables in this database: no leads to show.")]
    fu = r.funnel
    if not fu.total:
        return [_empty(f"No leads at {f.moment(r.as_of)}.")]
    parts = [
        svg_bar_chart(
            [(st.value.title(), Decimal(fu.counts[st])) for st in LeadStage],
            title=f"Leads by stage at {f.moment(fu.at)}",
            currency=None,
            locale=r.locale,
            share=True,
        ),
        _table(
            ["Stage", "Leads", "Share"],
            [[st.value.title(), f.count(fu.counts[st]), f.pct(fu.share(st))] for st in LeadStage]
            + [["Total", f.count(fu.total), f.pct(Decimal(1))]],
        ),
    ]
    if r.conversion is not None:
        cv = r.conversion
        parts.append(
            _table(
                ["Source", "Leads created", "Converted", "Rate"],
                [
                    [g.key or "no source", f.count(g.leads), f.count(g.converted), f.pct(g.rate)]
                    for g in cv.groups
                ]
                + [["All", f.count(cv.overall.leads), f.count(cv.overall.converted),
                    f.pct(cv.overall.rate)]],
                caption=f"Leads created {f.day(cv.start)} to {f.day(cv.end)} and converted "
                f"by {f.day(cv.as_of)}",
            )
        )  # fmt: skip
    return parts


# -- text -------------------------------------------------------------------------------------


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(out)).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def render_text(report: Report) -> str:
    """The report as plain-text pages (what ``revcrm demo`` prints), the same figures
    and labels as :func:`render_html`."""
    f = _Fmt(report.locale, reporting_zone(report.dashboard.timezone))
    r = report
    width = max(len(c.label) for c in r.cards)
    out = [f"Dashboard as of {f.moment(r.as_of)} ({r.currency})"]
    for c in r.cards:
        out.append(f"  {c.label:<{width}}  {f.card(c)}  ({c.note})")
    out += ["", f"{len(r.dashboard.trend)}-month trend ({_TREND_NOTE})"]
    out.append(_text_table(*_trend_rows(r, f)))
    out += ["", "MRR waterfall (the last month ends at the report's moment)"]
    out.append(_text_table(*_waterfall_rows(r, f)))
    out += ["", "Churn by completed month"]
    out.append(_text_table(*_churn_rows(r, f)) if r.churn else "  no completed month yet")
    out += ["", "Cohorts: customers retained by months since first payment"]
    out.append(_text_table(*_cohort_rows(r, f)) if r.cohorts else "  no cohort")
    for b in r.breakdowns:
        out += ["", b.title, _text_table(*_breakdown_rows(b, f))]
    out += ["", f"Segments of the {f.count(r.segments.customers)} registered customers "
            "(members of each segment, and customers for which it is the primary one)",
            _text_table(*_segment_rows(r, f))]  # fmt: skip
    if r.funnel is not None:
        fu = r.funnel
        out += ["", f"Lead funnel at {f.moment(fu.at)}"]
        out.append(
            _text_table(
                ["Stage", "Leads", "Share"],
                [[st.value.title(), f.count(fu.counts[st]), f.pct(fu.share(st))]
                 for st in LeadStage]
                + [["Total", f.count(fu.total), f.pct(Decimal(1) if fu.total else None)]],
            )
        )  # fmt: skip
        if r.conversion is not None:
            cv = r.conversion
            out += [
                f"Conversion of the leads created {f.day(cv.start)} to {f.day(cv.end)}: "
                f"{f.count(cv.overall.converted)} of {f.count(cv.overall.leads)} converted "
                f"({f.pct(cv.overall.rate)})"
            ]
            out += [
                f"  {g.key or 'no source'}: {f.count(g.converted)} of {f.count(g.leads)} "
                f"({f.pct(g.rate)})"
                for g in cv.groups
            ]
    return "\n".join(out)
