"""The GET pages: dashboard, segments, customers, profile, leads, analytics.

Each handler reads through the facade and renders one template; book-wide figures that
no store call pushes down (analytics) are computed over the stored book
and cached (see ``_Cache``).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

import attrs
from starlette.responses import Response

from revcrm._calendar import month_start, months_back
from revcrm.crm import (
    CustomerProfile,
    CustomerStatus,
    TicketRef,
    intake_breakdown,
)
from revcrm.export import svg_bar_chart, svg_heatmap, svg_line_chart, svg_lines_chart
from revcrm.export._svg import month_label
from revcrm.leads import OPEN_STAGES, LeadStage, funnel
from revcrm.metrics import Dashboard
from revcrm.segments import CustomSegment, LtvBaseline, Segment
from revcrm.storage import CustomerSort, Direction
from revcrm.web._core import Ctx, HttpError

__all__ = [
    "analytics",
    "customers",
    "dashboard",
    "export_dashboard",
    "export_profile",
    "leads",
    "profile",
    "search",
    "segments",
]

#: The list's columns: (sort key, heading).
COLUMNS: Final = (
    (CustomerSort.NAME, "Name"),
    (CustomerSort.EMAIL, "Email"),
    (CustomerSort.MRR, "MRR"),
    (CustomerSort.LTV, "LTV"),
    (CustomerSort.TOTAL_PAID, "Total paid"),
    (CustomerSort.CREDIT_BALANCE, "Credit"),
    (CustomerSort.ACTIVE_SERVICES, "Services"),
    (CustomerSort.CREATED, "Registered"),
    (CustomerSort.LAST_PAYMENT, "Last payment"),
)
#: The list filters carried in plain query parameters (none is personal data); the
#: search term and the cursor (which holds the last row's name or email) are sealed.
FILTERS: Final = ("segment", "tag", "status", "product", "source", "sort", "dir")
_SEARCH: Final = "customer search"
_CURSOR: Final = "customer cursor"


def _in_zone(d: Dashboard, zone: tzinfo) -> Dashboard:
    """The same dashboard (equal instants) with its months' bounds on the reporting zone's
    clock, so a month's label (its start's date) is the zone's month."""
    return attrs.evolve(
        d,
        trend=tuple(
            attrs.evolve(m, start=m.start.astimezone(zone), end=m.end.astimezone(zone))
            for m in d.trend
        ),
    )


# -- dashboard ------------------------------------------------------------------------------


def dashboard(ctx: Ctx) -> Response:
    crm = ctx.crm
    value = ctx.web.cache.get("dashboard", lambda: crm.metrics.dashboard(trend_months=12))
    if not isinstance(value, Dashboard):
        return ctx.render("pending.html", title="Dashboard")
    d = _in_zone(value, crm.timezone)
    locale = ctx.fmt.locale
    labels = [month_label(m.start, locale=locale) for m in d.trend]
    chart = svg_lines_chart(
        [
            ("MRR", list(zip(labels, [m.mrr.amount for m in d.trend], strict=True))),
            ("Net cash", list(zip(labels, [m.cash.net.amount for m in d.trend], strict=True))),
        ],
        title="Revenue, last 12 months",
        currency=d.currency,
        locale=locale,
    )
    # Every card, churn and renewals included, from the one dashboard definition.
    return ctx.render("dashboard.html", d=d, book=d, chart=chart)


# -- segments -------------------------------------------------------------------------------


def segments(ctx: Ctx) -> Response:
    crm = ctx.crm
    custom_segments = ctx.web.custom_segments
    value = ctx.web.cache.get("segments", lambda: crm.segments.counts(custom=custom_segments))
    if value is None:
        return ctx.render("pending.html", title="Segments")
    counts: Any = value
    cards = [
        (
            s.value,
            s.value.replace("_", " ").title(),
            counts.members.get(s, 0),
            counts.primary.get(s, 0),
        )
        for s in crm.segment_config.precedence
    ]
    custom = [
        (f"custom:{c.name}", c.name, counts.custom.get(c.name, 0), c.description)
        for c in custom_segments
    ]
    chart = svg_bar_chart(
        [(label, Decimal(n)) for _, label, n, _ in cards],
        title="Customers per segment",
        currency=None,
        locale=ctx.fmt.locale,
    )
    return ctx.render("segments.html", counts=counts, cards=cards, custom=custom, chart=chart)


# -- customers ------------------------------------------------------------------------------


def _segment_filter(ctx: Ctx, value: str | None) -> Segment | CustomSegment | None:
    if value is None:
        return None
    if value.startswith("custom:"):
        name = value[len("custom:") :]
        for c in ctx.web.custom_segments:
            if c.name == name:
                return c
        raise HttpError(400, "Unknown custom segment.")
    try:
        return Segment(value)
    except ValueError:
        raise HttpError(400, "Unknown segment.") from None


def _choice(value: str | None, options: type[Any], what: str) -> Any:
    if value is None:
        return None
    try:
        return options(value)
    except ValueError:
        raise HttpError(400, f"Unknown {what}.") from None


def customers(ctx: Ctx) -> Response:
    crm = ctx.crm
    filters = {name: ctx.param(name) for name in FILTERS}
    sealed_search = ctx.param("s", limit=2000)
    sealed_cursor = ctx.param("c", limit=4000)
    search = ctx.web.sealer.unseal(_SEARCH, sealed_search) if sealed_search else None
    if sealed_search and not isinstance(search, str):
        raise HttpError(400, "This search link is not valid here; search again.")
    cursor = ctx.web.sealer.unseal(_CURSOR, sealed_cursor) if sealed_cursor else None
    if sealed_cursor and not isinstance(cursor, str):
        raise HttpError(400, "This page link is not valid here; start from the first page.")
    sort = _choice(filters["sort"], CustomerSort, "sort column") or CustomerSort.NAME
    direction = _choice(filters["dir"], Direction, "direction") or Direction.ASC
    page = crm.customers.list(
        search=search if isinstance(search, str) else None,
        segment=_segment_filter(ctx, filters["segment"]),
        tag=filters["tag"],
        status=_choice(filters["status"], CustomerStatus, "status"),
        product_id=filters["product"],
        referral_source=filters["source"],
        sort=sort,
        direction=direction,
        limit=ctx.web.page_size,
        cursor=cursor if isinstance(cursor, str) else None,
        ltv_baseline=_ltv_baseline(ctx),
    )
    base = {**filters, "s": sealed_search}
    next_url = None
    if page.next_cursor is not None:
        next_url = ctx.url(
            "/customers", {**base, "c": ctx.web.sealer.seal(_CURSOR, page.next_cursor)}
        )

    def sort_url(column: CustomerSort) -> str:
        flip = column == sort and direction == Direction.ASC
        return ctx.url(
            "/customers", {**base, "sort": column.value, "dir": "desc" if flip else "asc"}
        )

    products = crm.store.products.page(limit=1000).items
    return ctx.render(
        "customers.html",
        page=page,
        columns=COLUMNS,
        sort=sort,
        direction=direction,
        sort_url=sort_url,
        next_url=next_url,
        first_url=ctx.url("/customers", base) if cursor else None,
        filters=filters,
        search=search if isinstance(search, str) else "",
        segments=[(s.value, s.value.replace("_", " ").title()) for s in Segment]
        + [(f"custom:{c.name}", c.name) for c in ctx.web.custom_segments],
        statuses=[(s.value, s.value.replace("_", " ").title()) for s in CustomerStatus],
        products=[(p.id, p.name) for p in products],
        tags=[t.name for t in crm.tags.all()],
    )


def search(ctx: Ctx) -> Response:
    """The filter form, posted: the term goes back sealed, the filters in plain."""
    form = ctx.form
    term = form.text("q", limit=200, required=False, label="Search")
    query: dict[str, str | None] = {}
    for name in FILTERS:
        value = form.text(name, limit=200, required=False)
        query[name] = value or None
    if term:
        query["s"] = ctx.web.sealer.seal(_SEARCH, term)
    return ctx.redirect("/customers", query)


# -- profile --------------------------------------------------------------------------------


def profile(ctx: Ctx) -> Response:
    crm = ctx.crm
    customer_id = str(ctx.request.path_params["customer_id"])
    if len(customer_id) > 200:
        raise HttpError(400, "Customer id is too long.")
    tickets = () if ctx.web.tickets is None else tuple(ctx.web.tickets(customer_id))
    p = _profile_of(ctx, customer_id, tickets)
    timeline = crm.customers.timeline(customer_id, as_of=p.as_of)
    shown = tuple(reversed(timeline[-100:]))
    history = p.mrr_history
    chart = None
    if history:
        points = [(ctx.fmt.day(t), m.amount) for t, m in history]
        # The MRR now, so a single change still draws a line to today.
        points.append((ctx.fmt.day(p.as_of), p.billing.mrr.amount))
        chart = svg_line_chart(
            points, title="MRR history", currency=p.currency, locale=ctx.fmt.locale
        )
    # The customer's own billing currency first (the form's default), then the others.
    currencies = list(
        dict.fromkeys(
            [*(s.price.currency for s in p.services), p.billing.credit_balance.currency, p.currency]
        )
    )
    balances = [crm.credits.balance(customer_id, c) for c in currencies]
    credits = sorted(crm.store.credits.for_customer(customer_id), key=lambda e: (e.at, e.id))
    lead = crm.leads.lead_for_customer(customer_id)
    return ctx.render(
        "profile.html",
        p=p,
        timeline=shown,
        timeline_total=len(timeline),
        chart=chart,
        currencies=currencies,
        balances=balances,
        credits=tuple(reversed(credits[-20:])),
        lead=lead,
        notice=_notice(ctx),
    )


def _ltv_baseline(ctx: Ctx) -> LtvBaseline | None:
    """The book-wide High Value threshold the list's and the profile's segments compare
    with (a whole-book read, half a second at 20,000 customers), cached like the other
    book-wide figures: the app's own writes clear it, a host's sync shows after at most
    ``cache_seconds``. None while it is still being computed (the facade then reads it)."""
    crm = ctx.crm
    at = crm.now()
    value = ctx.web.cache.get(
        "ltv_baseline", lambda: crm.segments.ltv_baseline(as_of=at), wait=30.0
    )
    return value if isinstance(value, LtvBaseline) else None


def _profile_of(ctx: Ctx, customer_id: str, tickets: tuple[TicketRef, ...]) -> CustomerProfile:
    """``crm.customers.profile`` with the cached LTV baseline (see ``_ltv_baseline``)."""
    return ctx.crm.customers.profile(
        customer_id, as_of=ctx.crm.now(), tickets=tickets, ltv_baseline=_ltv_baseline(ctx)
    )


_NOTICES: Final = {
    "note": "Note added.",
    "note-edited": "Note saved.",
    "pinned": "Note pinned.",
    "unpinned": "Note unpinned.",
    "tag": "Tag added.",
    "untag": "Tag removed.",
    "credit": "Credit adjusted.",
    "merged": "Customers merged.",
    "erased": "Personal data erased.",
    "lead": "Lead added.",
    "moved": "Lead moved.",
    "lost": "Lead marked lost.",
    "converted": "Lead converted.",
}


def _notice(ctx: Ctx) -> str | None:
    done = ctx.param("done", limit=40)
    return None if done is None else _NOTICES.get(done)


# -- leads ----------------------------------------------------------------------------------

STAGE_ORDER: Final = (
    LeadStage.NEW,
    LeadStage.CONTACTED,
    LeadStage.QUALIFIED,
    LeadStage.CONVERTED,
    LeadStage.LOST,
)


def leads(ctx: Ctx) -> Response:
    crm = ctx.crm
    at = crm.now()
    columns = []
    for stage in STAGE_ORDER:
        if stage in OPEN_STAGES:
            page = crm.leads.list(stage=stage, limit=ctx.web.page_size)
            columns.append((stage, page.items, page.next_cursor is not None))
    value = ctx.web.cache.get("funnel", lambda: funnel(crm.leads.all(), at=at))
    if value is None:
        return ctx.render("pending.html", title="Leads")
    f: Any = value
    counts = [(s, f[s]) for s in STAGE_ORDER]
    chart = svg_bar_chart(
        [(s.value.title(), Decimal(n)) for s, n in counts],
        title="Lead funnel",
        currency=None,
        locale=ctx.fmt.locale,
        share=True,
    )
    moves = {
        LeadStage.NEW: (LeadStage.CONTACTED, LeadStage.QUALIFIED),
        LeadStage.CONTACTED: (LeadStage.QUALIFIED,),
        LeadStage.QUALIFIED: (),
    }
    return ctx.render(
        "leads.html",
        columns=columns,
        counts=counts,
        total=f.total,
        chart=chart,
        moves=moves,
        notice=_notice(ctx),
    )


# -- analytics ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Analytics:
    at: datetime
    charts: tuple[str, ...]
    by_product: Any
    by_cycle: Any
    by_method: Any
    mrr_by_product: Any
    churn: tuple[Any, ...]
    top_revenue: tuple[Any, ...]
    top_customers: tuple[Any, ...]
    sources: tuple[Any, ...]
    intake: Any
    cohorts: tuple[Any, ...]


def _bars(breakdown: Any, title: str, locale: str) -> str:
    rows = [(r.label, r.amount.amount) for r in breakdown.rows][:12]
    if not rows:
        return ""
    return svg_bar_chart(rows, title=title, currency=breakdown.currency, locale=locale, share=True)


def _build_analytics(ctx: Ctx, at: datetime) -> _Analytics:
    from revcrm import metrics as m

    crm = ctx.crm
    cur = crm.reporting_currency
    book, analysis = ctx.web.cache.book(crm)
    zone = crm.timezone
    this_month = month_start(at, zone)
    year_ago = months_back(this_month, -12, zone)
    by_product = m.cash_revenue_by_product(book, start=year_ago, end=at, currency=cur)
    by_cycle = m.cash_revenue_by_billing_cycle(book, start=year_ago, end=at, currency=cur)
    by_method = m.cash_revenue_by_payment_method(book, start=year_ago, end=at, currency=cur)
    churn = tuple(m.churn_series(analysis, year_ago, this_month))
    first = months_back(this_month, -11, zone)
    rows = tuple(m.cohorts(analysis, first, at, m.Frequency.MONTH))
    locale = ctx.fmt.locale
    charts = [
        _bars(by_product, "Net cash by product, last 12 months", locale),
        _bars(by_cycle, "Net cash by billing cycle, last 12 months", locale),
        _bars(by_method, "Net cash by payment method, last 12 months", locale),
    ]
    if churn:
        charts.append(
            svg_line_chart(
                [
                    (
                        month_label(p.start.astimezone(zone), locale=locale),
                        p.customer_churn.rate or Decimal(0),
                    )
                    for p in churn
                ],
                title="Customer churn per month",
                currency=None,
                locale=locale,
                percent=True,
            )
        )
    if rows:
        charts.append(svg_heatmap(rows, locale=locale, title="Cohorts: customers retained"))
    return _Analytics(
        at=at,
        charts=tuple(c for c in charts if c),
        by_product=by_product,
        by_cycle=by_cycle,
        by_method=by_method,
        mrr_by_product=m.mrr_by_product(book, at=at, currency=cur, policy=crm.policy),
        churn=churn,
        top_revenue=tuple(
            m.top_products_by_revenue(book, start=year_ago, end=at, currency=cur, limit=5)
        ),
        top_customers=tuple(
            m.top_products_by_customers(book, at=at, currency=cur, policy=crm.policy, limit=5)
        ),
        sources=tuple(m.referral_sources(book, at=at, currency=cur, policy=crm.policy)),
        # The facade's breakdown, over the book already read.
        intake=intake_breakdown(
            book,
            crm.crm.intake.questions(include_retired=True),
            crm.crm.intake.answers(as_of=at),
            at=at,
            currency=cur,
            policy=crm.policy,
        ),
        cohorts=rows,
    )


def analytics(ctx: Ctx) -> Response:
    at = ctx.crm.now()
    value = ctx.web.cache.get(f"analytics:{ctx.fmt.locale}", lambda: _build_analytics(ctx, at))
    if not isinstance(value, _Analytics):
        return ctx.render("pending.html", title="Analytics")
    return ctx.render("analytics.html", a=value)


# -- exports --------------------------------------------------------------------------------


def _json(value: object, ctx: Ctx, name: str) -> Response:
    import json

    from revcrm.export import to_jsonable

    body = json.dumps(to_jsonable(value, locale=ctx.fmt.locale), ensure_ascii=False)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )


def export_dashboard(ctx: Ctx) -> Response:
    """The store's dashboard figures as JSON (``revcrm.export.to_jsonable``)."""
    return _json(ctx.crm.metrics.dashboard(trend_months=12), ctx, "dashboard")


def export_profile(ctx: Ctx) -> Response:
    """One customer's profile as JSON."""
    customer_id = str(ctx.request.path_params["customer_id"])
    if len(customer_id) > 200:
        raise HttpError(400, "Customer id is too long.")
    tickets = () if ctx.web.tickets is None else tuple(ctx.web.tickets(customer_id))
    return _json(_profile_of(ctx, customer_id, tickets), ctx, "customer")
