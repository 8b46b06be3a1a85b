"""Columnar ledger benchmark: analyse + 36-month series + monthly waterfalls.

    .venv/bin/python benchmarks/bench_ledger.py                       # every case below
    .venv/bin/python benchmarks/bench_ledger.py --case lines --size 1000000
    .venv/bin/python benchmarks/bench_ledger.py --case demo --customers 20000 --oracle

Cases (each runs in its own process, so its peak RSS is its own):

* ``lines``: synthetic recurring invoice lines made directly as arrays
  (``LineColumns.from_arrays``: monthly service periods, about 12 lines per subscription,
  1.3 subscriptions per customer, prices in cents, one currency), then
  ``analyse_lines`` + ``series`` over 36 months + 36 monthly ``waterfalls``; ``--oracle``
  also builds the same lines as a ``Book`` and times the Decimal engine on it.
* ``demo``: the seeded demo book (``revcrm._demo.demo_book``, USD/EUR/GBP, subscription
  source), ``analyse`` + the same series and waterfalls; ``--oracle`` also times the
  Decimal engine kept as the test oracle (``tests/ledger/_oracle_engine.py``); ``--pack``
  also times the rest of the full pack on the same analysis (dashboard, monthly cohort
  triangle, churn series, ARPA and LTV, NRR/GRR, quick ratio; as ``bench_mrr.py``).

It prints wall times (one core, ``time.perf_counter``) and peak RSS
(``resource.getrusage``); it asserts nothing. Run it on one core and briefly.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from revcrm._ledger._columns import LineColumns
from revcrm.metrics import Frequency, analyse
from revcrm.metrics._engine import analyse_lines

START = datetime(2022, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)
_US_PER_DAY = 86_400_000_000


def synthetic_lines(n: int, seed: int = 5) -> LineColumns:
    """About ``n`` monthly invoice lines (whole calendar months from the 1st)."""
    rng = np.random.default_rng(seed)
    streams = max(1, n // 12)
    customers = max(1, int(streams / 1.3))
    first = rng.integers(0, 36, streams)
    length = np.minimum(rng.integers(1, 25, streams), 48 - first)
    scale = n / int(length.sum())
    length = np.maximum(1, np.round(length * scale).astype(np.int64))
    price = rng.choice(np.array([900, 1900, 2900, 4900, 9900, 19900]), streams)
    owner = rng.integers(0, customers, streams).astype(np.int32)
    stream = np.repeat(np.arange(streams, dtype=np.int32), length)
    offset = np.arange(stream.size) - np.repeat(np.cumsum(length) - length, length)
    month = np.repeat(first, length) + offset  # months since 2022-01
    base = np.datetime64("2022-01", "M")
    start_day = (base + month).astype("datetime64[D]").astype(np.int64)
    end_day = (base + month + 1).astype("datetime64[D]").astype(np.int64)
    return LineColumns.from_arrays(
        customer_ids=[f"cus_{i}" for i in range(customers)],
        stream_ids=[f"sub_{i}" for i in range(streams)],
        currencies=["USD"],
        customer=owner[stream],
        stream=stream,
        currency=np.zeros(stream.size, dtype=np.int16),
        start=start_day * _US_PER_DAY,
        end=end_day * _US_PER_DAY,
        net=np.repeat(price, length).astype(np.int64),
        scale=2,
    )


def _queries(a: Any) -> tuple[float, float]:
    t0 = time.perf_counter()
    a.series(START, END, Frequency.MONTH)
    t1 = time.perf_counter()
    a.waterfalls(START, END, Frequency.MONTH)
    return t1 - t0, time.perf_counter() - t1


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _book_of(cols: LineColumns) -> Any:
    """The same lines as a Book (one invoice per line, no subscription records, so each
    line is its own stream, as in a CSV of invoice lines), for the Decimal engine."""
    from datetime import timedelta
    from decimal import Decimal

    from revcrm import Book, Customer, Invoice, InvoiceLine, InvoiceStatus, LineKind, Money

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    customers = [Customer(id=c, registered_at=START) for c in cols.customer_ids]
    invoices = []
    for i in range(len(cols)):
        a = epoch + timedelta(microseconds=int(cols.start[i]))
        b = epoch + timedelta(microseconds=int(cols.end[i]))
        line = InvoiceLine(
            kind=LineKind.RECURRING,
            amount=Money(Decimal(int(cols.net[i])).scaleb(-cols.scale), "USD"),
            period_start=a,
            period_end=b,
        )
        invoices.append(
            Invoice(
                id=f"inv_{i}",
                customer_id=cols.customer_ids[int(cols.customer[i])],
                currency="USD",
                issued_at=a,
                due_date=a.date(),
                status=InvoiceStatus.PAID,
                lines=[line],
            )
        )
    return Book.of(customers=customers, invoices=invoices)


def _oracle() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.ledger import _oracle_engine

    return _oracle_engine


def run_lines(size: int, oracle: bool = False) -> None:
    t0 = time.perf_counter()
    cols = synthetic_lines(size)
    t1 = time.perf_counter()
    a = analyse_lines(cols, currency="USD")
    t2 = time.perf_counter()
    series, falls = _queries(a)
    total = time.perf_counter() - t1
    print(
        f"lines {len(cols):>9,}: arrays {t1 - t0:6.2f}s | analyse {t2 - t1:6.2f}s"
        f" series {series:5.2f}s waterfalls {falls:5.2f}s | engine total {total:6.2f}s"
        f" | peak RSS {_rss_mb():6.0f} MB | digits {a._steps.digits}"
    )
    if oracle:
        t3 = time.perf_counter()
        book = _book_of(cols)
        t4 = time.perf_counter()
        n = analyse(book, currency="USD", source="invoices")
        t5 = time.perf_counter()
        series, falls = _queries(n)
        t6 = time.perf_counter()
        print(
            f"     same lines as a Book ({t4 - t3:5.2f}s to build), a stream per line:"
            f" new engine (from_book) analyse {t5 - t4:5.2f}s series {series:5.2f}s"
            f" waterfalls {falls:5.2f}s | total {t6 - t4:5.2f}s"
        )
        o = _oracle().analyse(book, currency="USD", source="invoices")
        t7 = time.perf_counter()
        series, falls = _queries(o)
        print(
            f"     oracle (Decimal engine) on that Book: analyse {t7 - t6:6.2f}s"
            f" series {series:5.2f}s waterfalls {falls:5.2f}s"
            f" | total {time.perf_counter() - t6:6.2f}s | peak RSS {_rss_mb():6.0f} MB"
        )


def _pack(book: Any, a: Any, start: datetime, end: datetime) -> tuple[float, float]:
    """The dashboard, then issue 4's KPI pack (as ``bench_mrr.kpi_pack``)."""
    from revcrm.metrics import (
        arpa_from_mrrs,
        churn_series,
        cohorts,
        dashboard,
        ltv,
        quick_ratio,
        revenue_retention,
    )

    t0 = time.perf_counter()
    dashboard(book, as_of=end, currency="USD", analysis=a)
    t1 = time.perf_counter()
    cohorts(a, start, end, Frequency.MONTH)
    series = churn_series(a, start, end)
    arpa = arpa_from_mrrs(a.customers_with_mrr(end), currency=a.currency)
    rates = [p.customer_churn.rate for p in series[:-1]]
    if arpa.value is not None:
        ltv(arpa.value, rates, window=6)
    revenue_retention(a, start, end)
    quick_ratio(a, start, end)
    return t1 - t0, time.perf_counter() - t1


def run_demo(customers: int, oracle: bool, pack: bool = False) -> None:
    from revcrm._demo import DEMO_AS_OF, demo_book

    t0 = time.perf_counter()
    book = demo_book(customers)
    t1 = time.perf_counter()
    c1 = time.process_time()
    start, end = datetime(DEMO_AS_OF.year - 3, 1, 1, tzinfo=UTC), DEMO_AS_OF
    global START, END
    START, END = start, end
    a = analyse(book, currency="USD")
    t2 = time.perf_counter()
    c2 = time.process_time()
    series, falls = _queries(a)
    total = time.perf_counter() - t1
    cpu = time.process_time() - c1
    print(
        f"demo {customers:>7,} customers ({len(book.subscriptions):,} subscriptions):"
        f" book {t1 - t0:6.1f}s | analyse {t2 - t1:6.2f}s (cpu {c2 - c1:5.2f}s) series"
        f" {series:5.2f}s waterfalls {falls:5.2f}s | engine total {total:6.2f}s (cpu"
        f" {cpu:5.2f}s) | peak RSS {_rss_mb():6.0f} MB | digits {a._steps.digits}"
    )
    if pack:
        c3 = time.process_time()
        dash, kpis = _pack(book, a, start, end)
        pack_cpu = time.process_time() - c3
        # The renewals card from the ledger (MrrAnalysis.renewals), for comparison with the
        # dashboard's own per-subscription card.
        t4 = time.perf_counter()
        if hasattr(a, "renewals"):
            a.renewals(end, end + timedelta(days=30))
        renew = time.perf_counter() - t4
        print(
            f"     pack: dashboard {dash:5.2f}s kpis {kpis:5.2f}s | full pack"
            f" {total + dash + kpis:6.2f}s (cpu {cpu + pack_cpu:5.2f}s) | ledger renewals card"
            f" {renew:5.3f}s | peak RSS {_rss_mb():6.0f} MB"
        )
    if oracle:
        t3 = time.perf_counter()
        o = _oracle().analyse(book, currency="USD")
        t4 = time.perf_counter()
        series, falls = _queries(o)
        print(
            f"     oracle (Decimal engine): analyse {t4 - t3:6.2f}s series {series:5.2f}s"
            f" waterfalls {falls:5.2f}s | total {time.perf_counter() - t3:6.2f}s"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=("lines", "demo"))
    p.add_argument("--size", type=int, default=250_000)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--oracle", action="store_true")
    p.add_argument("--pack", action="store_true")
    args = p.parse_args()
    if args.case == "lines":
        run_lines(args.size, args.oracle)
    elif args.case == "demo":
        run_demo(args.customers, args.oracle, args.pack)
    else:
        me = [sys.executable, __file__]
        subprocess.run([*me, "--case", "lines", "--size", "250000", "--oracle"], check=True)
        subprocess.run([*me, "--case", "lines", "--size", "1000000"], check=True)
        subprocess.run([*me, "--case", "demo", "--customers", "20000", "--oracle"], check=True)


if __name__ == "__main__":
    main()
