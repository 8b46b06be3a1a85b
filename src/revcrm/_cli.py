"""The ``revcrm`` command line: ``revcrm demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from revcrm._book import Book
from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm._money import Money, format_money
from revcrm.metrics import MrrAnalysis

if TYPE_CHECKING:
    from revcrm._facade import CRM

__all__ = ["main"]


def _pct(rate: Decimal | None) -> str:
    return "n/a" if rate is None else f"{(rate * 100).quantize(Decimal('0.1'))}%"


def demo(args: argparse.Namespace) -> int:
    as_of = (
        DEMO_AS_OF if args.as_of is None else datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    )
    generated = demo_book(args.customers, seed=args.seed, as_of=as_of)
    locale, cur = args.locale, args.currency
    out = sys.stdout
    book, stored, crm = _through_sqlite(generated, args.db, as_of=as_of, currency=cur)
    try:
        _report(out, book, stored, crm, as_of=as_of, locale=locale, currency=cur, seed=args.seed)
    finally:
        crm.store.close()
    return 0


def _report(
    out: TextIO,
    book: Book,
    stored: str,
    crm: CRM,
    *,
    as_of: datetime,
    locale: str,
    currency: str,
    seed: int,
) -> None:
    """Every page of the demo, in order."""
    from revcrm.metrics import analyse, dashboard, format_dashboard
    from revcrm.metrics._mrr import convert_mrr, subscription_mrr

    cur = currency

    def fm(m: Money) -> str:
        return format_money(m, locale=locale)

    out.write(
        f"revcrm demo: a hosting business with {len(book.customers)} customers, "
        f"{len(book.subscriptions)} services, {len(book.invoices)} invoices, "
        f"{len(book.transactions)} transactions (seed {seed})\n"
    )
    analysis = analyse(book, currency=cur, horizon=as_of)
    out.write(stored + "\n\n")
    d = dashboard(book, as_of=as_of, currency=cur, analysis=analysis)
    out.write(format_dashboard(d, locale=locale) + "\n\n")

    out.write("MRR by billing cycle\n")

    by_cycle: dict[str, Money] = {}
    for sub in book.subscriptions:
        value = subscription_mrr(sub, as_of)
        if value.is_zero():
            continue
        state = sub.state_at(as_of)
        assert state is not None
        key = str(state.cycle)
        converted = convert_mrr(value, sub, as_of, cur, book.fx, analysis.policy)
        by_cycle[key] = by_cycle.get(key, Money.zero(cur)) + converted
    for key, value in sorted(by_cycle.items(), key=lambda kv: -kv[1].amount):
        share = value.ratio(d.mrr) if not d.mrr.is_zero() else None
        out.write(f"  {key:<11} {fm(value):>14}  {_pct(share):>6}\n")

    out.write("\nMRR waterfall, last 12 months\n")
    out.write(
        f"  {'month':<8}{'start':>13}{'new':>12}{'expansion':>12}{'reactiv.':>12}"
        f"{'contraction':>13}{'churn':>12}{'fx':>10}{'end':>13}\n"
    )
    first = d.trend[0].start
    for w in analysis.waterfalls(first, d.trend[-1].end):
        cells = [w.start_mrr, w.new, w.expansion, w.reactivation, w.contraction, w.churn]
        out.write(
            f"  {w.start:%Y-%m}  "
            + "".join(f"{fm(c):>12}" for c in cells)
            + f"{fm(w.fx_impact):>10}{fm(w.end_mrr):>13}\n"
        )

    _analytics(out, book, analysis, as_of, d.trend[-7].start, fm)

    _crm_pages(out, crm, book, analysis, as_of, locale)

    from revcrm._demo import demo_leads
    from revcrm.leads import conversion_rate, format_funnel, funnel, open_pipeline_value

    leads = demo_leads(book, as_of=as_of)
    year_ago = as_of - timedelta(days=365)
    out.write("\n")
    out.write(
        format_funnel(
            funnel(leads, at=as_of),
            conversion=conversion_rate(leads, start=year_ago, end=as_of, by="source_kind"),
            pipeline_value=open_pipeline_value(leads, currency=cur, at=as_of, fx=book.fx),
        )
        + "\n"
    )


def _through_sqlite(
    book: Book, db: str, *, as_of: datetime, currency: str
) -> tuple[Book, str, CRM]:
    """Write the book into a fresh SQLite file, read it back, and check the dashboard the
    database computes (pushed down to SQL) against the pure functions. Returns the book
    read back and a CRM facade over the file (CRM tables in the same database, one unit
    of work); in memory with ``--db -``."""
    from revcrm._facade import CRM
    from revcrm.storage import InMemoryCRMStore, InMemoryStore

    def clock() -> datetime:
        return as_of

    if db == "-":
        memory = InMemoryStore()
        memory.import_book(book)
        crm = CRM(memory, InMemoryCRMStore(), reporting_currency=currency, clock=clock)
        return book, "(kept in memory: --db -)", crm
    try:
        from revcrm.storage import SQLStore
        from revcrm.storage._crm_sql import SQLCRMStore
    except ImportError:  # pragma: no cover - the sql extra is missing
        memory = InMemoryStore()
        memory.import_book(book)
        crm = CRM(memory, InMemoryCRMStore(), reporting_currency=currency, clock=clock)
        hint = "(SQLAlchemy missing: pip install 'revcrm[sql]' to store the book in SQLite)"
        return book, hint, crm
    path = Path(db)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SQLStore(f"sqlite:///{path}")
    try:
        store.create_schema()
        result = store.import_book(book)
        loaded = store.book()
        pushed = store.dashboard(as_of=as_of, currency=currency)
        crm_store = SQLCRMStore.alongside(store)
        crm_store.create_schema()
    except BaseException:
        store.close()
        raise
    from revcrm.metrics import mrr

    pure = mrr(loaded, at=as_of, currency=currency, policy=store.policy)
    check = "equal" if pushed.mrr == pure else f"DIFFERENT ({pushed.mrr} vs {pure})"
    crm = CRM(store, crm_store, reporting_currency=currency, clock=clock)
    return (
        loaded,
        (
            f"Stored in SQLite file {path} ({result.inserted} records) and read back; "
            f"MRR computed in SQL and in Python: {check}"
        ),
        crm,
    )


def _crm_pages(
    out: TextIO, crm: CRM, book: Book, analysis: MrrAnalysis, as_of: datetime, locale: str
) -> None:
    """The CRM pages, through the facade over the stored book: segment cards, the At Risk
    list, the top customer's profile and the intake breakdown."""
    from revcrm._demo import demo_crm_activity
    from revcrm.crm import format_profile
    from revcrm.segments import Segment, segmentation

    def fm(m: Money | None) -> str:
        return "-" if m is None else format_money(m, locale=locale)

    with crm.store.transaction():
        demo_crm_activity(crm, book, as_of=as_of)
    counts = crm.segments.counts(as_of=as_of)
    pure = segmentation(book, as_of=as_of, currency=analysis.currency, analysis=analysis)
    check = "equal" if counts == pure.counts() else "DIFFERENT"
    out.write(
        f"\nSegments ({counts.customers} customers; members, and primary by precedence; "
        f"computed by the store, Python agrees: {check})\n"
    )
    for segment in crm.segment_config.precedence:
        out.write(
            f"  {segment.value:<16}{counts.members.get(segment, 0):>6}"
            f"{counts.primary.get(segment, 0):>8}\n"
        )
    others = pure.customers_in(Segment.OTHER)
    out.write(f"  Other: {len(others)} customers in none of the six segments\n")
    for cid in others[:3]:
        reason = (pure.other_reason(cid) or "").replace("\n", "; ")
        out.write(f"    {cid}: {reason}\n")
    at_risk = crm.customers.list(
        as_of=as_of, segment="at_risk", sort="mrr", direction="desc", limit=5
    )
    out.write("\nAt Risk customers with the most MRR\n")
    for r in at_risk:
        tags = ", ".join(sorted(r.tags)) or "-"
        out.write(
            f"  {r.row.customer.name:<24}{fm(r.row.mrr):>12}  last paid "
            f"{'-' if r.row.last_payment_at is None else f'{r.row.last_payment_at:%Y-%m-%d}'}"
            f"  primary {r.primary_segment.value if r.primary_segment else '-'}  tags {tags}\n"
        )
    paying = analysis.customers_with_mrr(as_of)
    if paying:
        top = max(sorted(paying), key=lambda c: paying[c].amount)
        profile = crm.customers.profile(top, as_of=as_of)
        out.write("\n" + format_profile(profile, locale=locale) + "\n")
    breakdown = crm.intake.breakdown(as_of=as_of)
    out.write("\nIntake: how did you hear about us? (customers, paying, MRR, ARPA)\n")
    for row in breakdown.rows_for("heard"):
        out.write(
            f"  {row.option or '-':<16}{row.customers:>6}{row.paying_customers or 0:>6}"
            f"{fm(row.mrr):>13}{fm(row.arpa):>11}\n"
        )


def _analytics(
    out: TextIO,
    book: Book,
    analysis: MrrAnalysis,
    as_of: datetime,
    six_months_ago: datetime,
    fm: Callable[[Money], str],
) -> None:
    """Churn, LTV, cohorts and top products: the KPI page."""
    from revcrm.metrics import (
        Frequency,
        arpa_from_mrrs,
        churn_series,
        cohorts,
        ltv,
        quick_ratio,
        revenue_retention,
        top_products_by_customers,
        top_products_by_revenue,
    )

    cur = analysis.currency
    this_month = as_of.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = churn_series(analysis, six_months_ago, this_month)
    out.write("\nChurn (completed months)\n")
    out.write(
        f"  {'month':<8}{'customers':>10}{'churned':>9}{'rate':>8}{'MRR gross':>11}{'MRR net':>9}\n"
    )
    for p in months:
        c, m = p.customer_churn, p.mrr_churn
        out.write(
            f"  {p.start:%Y-%m}  {c.denominator:>8}{c.churned:>9}{_pct(c.rate):>8}"
            f"{_pct(m.gross):>11}{_pct(m.net):>9}\n"
        )
    rates = [p.customer_churn.rate for p in months]
    a = arpa_from_mrrs(analysis.customers_with_mrr(as_of), currency=cur)
    year_ago = this_month.replace(year=this_month.year - 1)
    nrr = revenue_retention(analysis, year_ago, this_month)
    if a.value is not None:
        value = ltv(a.value, rates, window=analysis.policy.ltv_churn_months)
        lifetime = (
            "unbounded" if value.lifetime_months is None else f"{value.lifetime_months:.1f} months"
        )
        out.write(
            f"\nARPA {fm(a.value)} over {a.paying_customers} paying customers; "
            f"LTV {fm(value.value) if value.value is not None else 'n/a'} "
            f"(6-month average churn {_pct(value.churn_rate)}, lifetime {lifetime})\n"
        )
    qr = quick_ratio(analysis, months[-1].start, months[-1].end)
    out.write(
        f"Net revenue retention over 12 months {_pct(nrr.net)}, gross {_pct(nrr.gross)}; "
        f"quick ratio last month {'n/a' if qr is None else qr.quantize(Decimal('0.01'))}\n"
    )
    out.write("\nCohorts: customers retained by months since first payment\n")
    rows = cohorts(analysis, six_months_ago, as_of, Frequency.MONTH)
    out.write("  cohort  size " + "".join(f"{'m' + str(k):>7}" for k in range(len(rows))) + "\n")
    for r in rows:
        out.write(
            f"  {r.start:%Y-%m} {r.size:>5} "
            + "".join(f"{_pct(cell.customer_rate):>7}" for cell in r.cells)
            + "\n"
        )
    out.write("\nTop products by net cash, last 12 months\n")
    for row in top_products_by_revenue(book, start=year_ago, end=as_of, currency=cur, limit=5):
        out.write(f"  {row.label:<20}{fm(row.amount):>14}  {row.customers:>5} customers\n")
    out.write("Top products by paying customers now\n")
    for row in top_products_by_customers(book, at=as_of, currency=cur, limit=5):
        out.write(f"  {row.label:<20}{row.customers:>6} customers {fm(row.amount):>12} MRR\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revcrm", description="Revenue-focused CRM toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build a seeded demo book and print its dashboard")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--locale", default="en_US")
    p.add_argument("--currency", default="USD")
    p.add_argument("--as-of", default=None, help="ISO date-time in UTC (default: the demo's date)")
    p.add_argument(
        "--db",
        default="revcrm-demo.sqlite",
        help="SQLite file the demo book is written to and read back from ('-': none)",
    )
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
