"""MRR engine benchmark: series + waterfall over 36 months and the dashboard, per book size.

    .venv/bin/pip install pandas          # only for the comparison, never a revcrm dependency
    .venv/bin/python benchmarks/bench_mrr.py --sizes 1000 10000 100000

For each size it builds the seeded demo book (36 months, ~1.3 subscriptions per customer,
monthly to triennial cycles, upgrades, downgrades, cancellations, reactivations, trials,
invoices and payments, USD/EUR/GBP), then times revcrm and, in the same run, a plain
pandas implementation of the same monthly series and waterfall (month-end snapshots per
customer, the way an analyst would write it). It prints times, peak traced memory and
ratios; it asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from dateutil.relativedelta import relativedelta

from revcrm import Book
from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm.metrics import (
    Frequency,
    MetricsPolicy,
    MrrAnalysis,
    analyse,
    arpa_from_mrrs,
    churn_series,
    cohorts,
    dashboard,
    ltv,
    quick_ratio,
    revenue_retention,
    subscription_mrr_timeline,
)

T = TypeVar("T")


def measure(fn: Callable[[], T]) -> tuple[T, float, float]:
    """Result, seconds, and peak traced MiB of ``fn`` (timed without tracing)."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    del result
    gc.collect()
    tracemalloc.start()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def revcrm_pack(book: Book, start: datetime, end: datetime) -> tuple[Any, ...]:
    analysis = analyse(book, currency="USD", horizon=end)
    series = analysis.series(start, end)
    falls = analysis.waterfalls(start, end)
    dash = dashboard(book, as_of=end, currency="USD", analysis=analysis)
    return series, falls, dash


def kpi_pack(analysis: MrrAnalysis, start: datetime, end: datetime) -> tuple[Any, ...]:
    """Issue 4's pack: monthly cohort triangle, churn series, ARPA, LTV, NRR/GRR, quick ratio."""
    triangle = cohorts(analysis, start, end, Frequency.MONTH)
    series = churn_series(analysis, start, end)
    arpa = arpa_from_mrrs(analysis.customers_with_mrr(end), currency=analysis.currency)
    rates = [p.customer_churn.rate for p in series[:-1]]
    value = ltv(arpa.value, rates, window=6) if arpa.value is not None else None
    retention = revenue_retention(analysis, start, end)
    ratio = quick_ratio(analysis, start, end)
    return triangle, series, value, retention, ratio


def pandas_pack(book: Book, start: datetime, end: datetime) -> Any:
    """Monthly MRR and waterfall in pandas from the subscriptions' MRR steps."""
    import pandas as pd

    policy = MetricsPolicy()
    rows = []
    for sub in book.subscriptions:
        for at, value in subscription_mrr_timeline(sub, policy=policy):
            rate = book.fx.rate(sub.currency, "USD", at.date())
            rows.append((sub.customer_id, sub.id, at, value.amount * rate))
    steps = pd.DataFrame(rows, columns=["customer", "sub", "at", "mrr"])
    steps["mrr"] = steps["mrr"].astype(float)  # what a pandas user would do
    months = []
    m = start
    while m < end:
        m = m + relativedelta(months=1)
        months.append(min(m, end))
    snaps = []
    steps = steps.sort_values("at")
    for close in months:
        upto = steps[steps["at"] < close]
        last = upto.groupby("sub").tail(1)
        per_customer = last.groupby("customer")["mrr"].sum()
        snaps.append(per_customer.rename(close))
    table = pd.concat(snaps, axis=1).fillna(0.0)
    total = table.sum(axis=0)
    prev = table.shift(1, axis=1).fillna(0.0)
    diff = table - prev
    ever = (table > 0).cummax(axis=1).shift(1, axis=1).fillna(False).astype(bool)
    new = diff.where((prev == 0) & (table > 0) & ~ever, 0.0).sum()
    react = diff.where((prev == 0) & (table > 0) & ever, 0.0).sum()
    churn = diff.where((prev > 0) & (table == 0), 0.0).sum()
    exp = diff.where((prev > 0) & (table > prev), 0.0).sum()
    con = diff.where((prev > 0) & (table < prev) & (table > 0), 0.0).sum()
    return pd.DataFrame(
        {"mrr": total, "new": new, "exp": exp, "con": con, "churn": churn, "react": react}
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave the book in the GC's young generations"
    )
    args = parser.parse_args()
    try:
        import pandas  # noqa: F401

        have_pandas = True
    except ImportError:
        have_pandas = False
        print("pandas not installed: `pip install pandas` to print the comparison")
    end = DEMO_AS_OF
    start = datetime(end.year, end.month, 1, tzinfo=UTC) - relativedelta(months=args.months - 1)
    previous: tuple[int, float] | None = None
    for size in args.sizes:
        secs = run_size(
            size, args.months, start, end, freeze=not args.no_freeze, pandas=have_pandas
        )
        if previous is not None:
            print(
                f"growth: {size / previous[0]:.0f}x the customers took "
                f"{secs / previous[1]:.1f}x the time"
            )
        previous = (size, secs)
        gc.unfreeze()
        gc.collect()


def run_size(
    size: int, months: int, start: datetime, end: datetime, *, freeze: bool, pandas: bool
) -> float:
    t0 = time.perf_counter()
    book = demo_book(size, months=months)
    built = time.perf_counter() - t0
    if freeze:
        # The book is long-lived data, as in a host process: keep the cyclic garbage
        # collector from rescanning it during every measurement.
        gc.freeze()
    print(
        f"\n== {size:,} customers: {len(book.subscriptions):,} subscriptions, "
        f"{len(book.invoices):,} invoices, {len(book.transactions):,} transactions "
        f"(built in {built:.1f} s; gc.freeze: {freeze})"
    )
    _, secs, peak = measure(lambda: revcrm_pack(book, start, end))
    print(
        f"revcrm series + waterfall ({months} months) + dashboard: {secs:.2f} s, peak {peak:.0f} MiB traced"
    )
    analysis = analyse(book, currency="USD", horizon=end)
    for label, fn in (
        ("  analyse (timelines, events)", lambda: analyse(book, currency="USD", horizon=end)),
        ("  monthly series", lambda: analysis.series(start, end)),
        ("  monthly waterfalls", lambda: analysis.waterfalls(start, end)),
        (
            "  dashboard (reusing analysis)",
            lambda: dashboard(book, as_of=end, currency="USD", analysis=analysis),
        ),
    ):
        t1 = time.perf_counter()
        fn()
        print(f"{label:<34} {time.perf_counter() - t1:6.2f} s")
    _, ksecs, kpeak = measure(lambda: kpi_pack(analysis, start, end))
    print(
        f"cohort triangle + churn/LTV pack ({months} months): {ksecs:.2f} s, peak {kpeak:.0f} MiB traced"
    )
    if pandas:
        _, psecs, ppeak = measure(lambda: pandas_pack(book, start, end))
        print(f"pandas monthly series + waterfall: {psecs:.2f} s, peak {ppeak:.0f} MiB traced")
        print(f"ratio pandas / revcrm (series + waterfall + dashboard): {psecs / secs:.2f}x")
    return secs


if __name__ == "__main__":
    main()
