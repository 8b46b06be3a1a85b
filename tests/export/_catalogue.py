"""Real results of every public kind, computed once from a small demo book through the
real metric functions, stores and the facade (so the export tests see what users see)."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

import attrs
from dateutil.relativedelta import relativedelta

from revcrm import CRM, Book, Money
from revcrm._demo import DEMO_AS_OF, demo_book, demo_crm_activity, demo_leads
from revcrm.leads import Pipeline

AS_OF = DEMO_AS_OF
CURRENCY = "USD"


@attrs.frozen
class Catalogue:
    book: Book
    leads: Pipeline
    results: dict[str, Any]  # name -> a result (or a list of results)


def _month(t: datetime) -> datetime:
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@functools.cache
def catalogue() -> Catalogue:
    from revcrm import crm as crm_pkg
    from revcrm import metrics as m
    from revcrm import segments as seg
    from revcrm import storage as st
    from revcrm.leads import (
        conversion_rate,
        funnel,
        lost_reasons,
        open_pipeline_value,
        stage_durations,
    )

    book = demo_book(60, months=18)
    leads = demo_leads(book, as_of=AS_OF)
    this_month = _month(AS_OF)
    year_ago = this_month - relativedelta(months=12)
    six = this_month - relativedelta(months=6)
    a = m.analyse(book, currency=CURRENCY)
    r: dict[str, Any] = {}
    r["book"] = book
    r["policy"] = a.policy
    r["mrr"] = a.mrr(AS_OF)
    r["series"] = a.series(year_ago, AS_OF)
    r["movements"] = a.movements(year_ago, AS_OF)
    r["waterfall"] = a.waterfall(this_month - relativedelta(months=1), this_month)
    r["waterfalls"] = a.waterfalls(year_ago, this_month)
    r["churn_rate"] = m.customer_churn_rate(a, six, this_month)
    r["mrr_churn"] = m.mrr_churn(a, six, this_month)
    r["quick_ratio"] = m.quick_ratio(a, six, this_month)
    r["retention"] = m.revenue_retention(a, year_ago, this_month)
    r["churn_series"] = m.churn_series(a, year_ago, this_month)
    r["cohorts"] = m.cohorts(a, year_ago, AS_OF)
    r["dashboard"] = m.dashboard(book, as_of=AS_OF, currency=CURRENCY, analysis=a)
    r["cash"] = m.cash_revenue(book.transactions, year_ago, AS_OF, currency=CURRENCY, book=book)
    r["mrr_by_product"] = m.mrr_by_product(book, at=AS_OF, currency=CURRENCY)
    r["mrr_by_cycle"] = m.mrr_by_billing_cycle(book, at=AS_OF, currency=CURRENCY)
    r["cash_by_product"] = m.cash_revenue_by_product(
        book, start=year_ago, end=AS_OF, currency=CURRENCY
    )
    r["cash_by_cycle"] = m.cash_revenue_by_billing_cycle(
        book, start=year_ago, end=AS_OF, currency=CURRENCY
    )
    r["cash_by_method"] = m.cash_revenue_by_payment_method(
        book, start=year_ago, end=AS_OF, currency=CURRENCY
    )
    r["referral_sources"] = m.referral_sources(book, at=AS_OF, currency=CURRENCY)
    arpa = m.arpa_from_mrrs(a.customers_with_mrr(AS_OF), currency=CURRENCY)
    r["arpa"] = arpa
    r["asp"] = m.asp(r["waterfall"].new, 3)
    assert arpa.value is not None
    r["ltv"] = m.ltv(arpa.value, [p.customer_churn.rate for p in r["churn_series"]], window=6)
    spend = [
        m.MarketingSpend(
            id="sp1",
            period_start=year_ago.date(),
            period_end=this_month.date(),
            amount=Money("1200.00", "USD"),
            channel="google",
        ),
        m.MarketingSpend(
            id="sp2",
            period_start=year_ago.date(),
            period_end=this_month.date(),
            amount=Money("300.00", "USD"),
        ),
    ]
    r["spend"] = spend
    r["cac"] = m.cac(Money("1500.00", "USD"), 12)
    r["cac_report"] = m.cac_by_channel(
        book, spend, start=year_ago, end=this_month, currency=CURRENCY
    )
    r["nps"] = m.nps([10, 9, 8, 6, 3])
    r["trials"] = m.trial_conversion(book, start=year_ago, end=this_month, as_of=AS_OF)
    r["customer_values"] = m.customer_values(book, as_of=AS_OF, currency=CURRENCY)
    r["sbg"] = m.fit_sbg([100, 80, 66, 56, 50])

    s = seg.segmentation(book, as_of=AS_OF, currency=CURRENCY, analysis=a)
    r["segmentation"] = s
    r["segment_counts"] = s.counts()
    r["segment_config"] = seg.DEFAULT_CONFIG

    store = st.InMemoryStore()
    r["import_result"] = store.import_book(book)
    crm = CRM(store, st.InMemoryCRMStore(), reporting_currency=CURRENCY, clock=lambda: AS_OF)
    with crm.store.transaction():
        demo_crm_activity(crm, book, as_of=AS_OF)
    r["store_dashboard"] = crm.metrics.dashboard(as_of=AS_OF)
    page = crm.customers.list(as_of=AS_OF, sort="mrr", direction="desc", limit=10)
    r["customer_page"] = page
    r["store_page"] = store.customers.page(as_of=AS_OF, currency=CURRENCY, limit=5)
    paying = a.customers_with_mrr(AS_OF)
    top = max(sorted(paying), key=lambda c: paying[c].amount)
    r["profile"] = crm.customers.profile(top, as_of=AS_OF)
    r["timeline"] = crm_pkg.activity_timeline(book, top, as_of=AS_OF, currency=CURRENCY)
    r["intake_breakdown"] = crm.intake.breakdown(as_of=AS_OF)
    r["store_summary"] = store.customer_summary(top, as_of=AS_OF, currency=CURRENCY)
    r["versioned"] = store.customers.get_versioned(top)
    r["current_states"] = list(
        store.subscriptions.current_states([s.id for s in book.subscriptions[:3]]).values()
    )
    r["flow"] = store.customer_flow(start=six, end=this_month)
    r["cash_months"] = store.cash_by_month(start=six, end=this_month, currency=CURRENCY)

    year = AS_OF - timedelta(days=365)
    r["leads"] = leads
    r["funnel"] = funnel(leads, at=AS_OF)
    r["conversion"] = conversion_rate(leads, start=year, end=AS_OF, by="source_kind")
    r["durations"] = stage_durations(leads, end=AS_OF)
    r["lost"] = lost_reasons(leads, start=year, end=AS_OF)
    r["pipeline_value"] = open_pipeline_value(leads, currency=CURRENCY, at=AS_OF, fx=book.fx)
    r["period"] = st.Period(start=year_ago, end=this_month)
    sub = book.subscriptions[0]
    r["states"] = sub.states
    r["stays"] = list(next(iter(leads)).stays())
    # CRM records, as the profile and the facade's lists carry them.
    t0 = AS_OF - timedelta(days=3)
    r["records"] = (
        crm_pkg.AttributeDefinition(key="plan_size", type=crm_pkg.AttributeType.NUMBER),
        crm_pkg.Contact(id="ct1", customer_id=top, name="Ann Lee", email="ann@example.com"),
        crm_pkg.LoggedCall(
            id="call1", customer_id=top, at=t0, summary="renewal", duration=timedelta(minutes=5)
        ),
        crm_pkg.NoteRevision(
            note_id="n1",
            customer_id=top,
            revision=1,
            action=crm_pkg.NoteAction.CREATED,
            at=t0,
            body="hello",
        ),
        crm_pkg.Tag(name="vip"),
        crm_pkg.TagChange(customer_id=top, tag="vip", action=crm_pkg.TagAction.ADDED, at=t0),
        crm_pkg.TicketRef(id="T-1", subject="DNS", status="open", updated_at=t0),
        crm_pkg.CustomAttribute(key="seats", type=crm_pkg.AttributeType.NUMBER, value=3),
        seg.SegmentMiss(segment=seg.Segment.AT_RISK, reason="no cancellation request"),
    )
    from revcrm import sync

    r["sync_report"] = sync.SyncReport(
        kind="services",
        created=1,
        changes=(sync.AppliedChange(subscription_id=sub.id, change=sub.history[0]),),
    )
    state = sub.states[0]
    r["service_state"] = sync.ServiceState(
        id=sub.id,
        customer_id=sub.customer_id,
        price=state.price,
        cycle=state.cycle,
        status=state.status,
        started_at=t0,
        product_id=state.product_id or "web",
    )
    others = sorted(c for c in paying if c != top)
    r["merge"] = crm.merge(top, others[0], staff_id="staff_1", at=AS_OF)
    return Catalogue(book=book, leads=leads, results={k: v for k, v in r.items() if v is not None})
