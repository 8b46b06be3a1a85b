"""The ``revcrm`` command line: ``revcrm demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm._money import Money, format_money

__all__ = ["main"]


def _pct(rate: Decimal | None) -> str:
    return "n/a" if rate is None else f"{(rate * 100).quantize(Decimal('0.1'))}%"


def demo(args: argparse.Namespace) -> int:
    from revcrm.metrics import analyse, dashboard, format_dashboard
    from revcrm.metrics._mrr import convert_mrr, subscription_mrr

    as_of = (
        DEMO_AS_OF if args.as_of is None else datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    )
    book = demo_book(args.customers, seed=args.seed, as_of=as_of)
    locale, cur = args.locale, args.currency
    analysis = analyse(book, currency=cur)
    out = sys.stdout

    def fm(m: Money) -> str:
        return format_money(m, locale=locale)

    out.write(
        f"revcrm demo: a hosting business with {len(book.customers)} customers, "
        f"{len(book.subscriptions)} services, {len(book.invoices)} invoices, "
        f"{len(book.transactions)} transactions (seed {args.seed})\n\n"
    )
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revcrm", description="Revenue-focused CRM toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build a seeded demo book and print its dashboard")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--locale", default="en_US")
    p.add_argument("--currency", default="USD")
    p.add_argument("--as-of", default=None, help="ISO date-time in UTC (default: the demo's date)")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
