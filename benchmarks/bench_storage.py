"""Storage benchmark: bulk import, dashboard, customer list and summary from SQL stores.

    .venv/bin/python benchmarks/bench_storage.py --customers 1000 10000 100000
    .venv/bin/python benchmarks/bench_storage.py --customers 100000 \\
        --postgres postgresql+psycopg://revcrm@127.0.0.1:5432/postgres

For each size it builds the seeded demo book (``revcrm._demo.demo_book``: 36 months of a
hosting business, about 1.3 services, 9 invoices and 9 payments per customer, USD/EUR/
GBP), then for SQLite (a file in a temporary directory) and PostgreSQL (when a URL is
given with ``--postgres`` or ``REVCRM_TEST_POSTGRES_URL``) it times:

* the bulk import of the whole book (target: 60 s for 100k customers into SQLite);
* the dashboard computed in the database (target: 1 s), cold and warm;
* one customer-list page with a search and a sort (target: 50 ms), by name and by MRR;
* one customer's full billing summary (target: 20 ms);
* segments: the segment counts and a page of the list filtered by a built-in segment
  (High Value, At Risk, Active), by status and by product, each with the segments of its
  rows (``segments_of``), computed in the database (target: 50 ms a page);
* in the same run, the same dashboard computed in Python from rows loaded out of the
  store (``store.book()`` then the same figures in plain Python), to show what pushing
  the aggregates down buys. Both dashboards are compared: they must be equal. Likewise
  the segment counts and a segment-filtered page the Python way (``store.book()``, then
  :func:`revcrm.segments.segmentation`, then the page with those ids), compared too.

``--only segments`` runs the import and the segment figures alone.

It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TypeVar

from revcrm import Book, Money
from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm._time import as_moment
from revcrm.crm import CustomerStatus
from revcrm.metrics import MetricsPolicy, MrrPoint
from revcrm.segments import Segment, segmentation
from revcrm.storage import CashMonth, CustomerFlow, SQLStore, StoreDashboard
from revcrm.storage import _reference as ref

T = TypeVar("T")
CURRENCY = "USD"


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def warm(fn: Callable[[], object], runs: int = 5) -> float:
    """Median seconds of ``runs`` calls after the first."""
    times = []
    for _ in range(runs):
        times.append(timed(fn)[1])
    return statistics.median(times)


class PythonFigures:
    """The store's dashboard primitives in plain Python over a loaded book."""

    def __init__(self, book: Book, policy: MetricsPolicy) -> None:
        self.book = book
        self.policy = policy

    def mrr(
        self, *, at: date | datetime, currency: str, customer_ids: Iterable[str] | None = None
    ) -> Money:
        return ref.mrr_at(self.book, at=as_moment(at, "at"), currency=currency, policy=self.policy)

    def mrr_series(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[MrrPoint, ...]:
        a, b = as_moment(start, "start"), as_moment(end, "end")
        return ref.mrr_series(self.book, start=a, end=b, currency=currency, policy=self.policy)

    def cash_by_month(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[CashMonth, ...]:
        a, b = as_moment(start, "start"), as_moment(end, "end")
        return ref.cash_by_month(self.book, start=a, end=b, currency=currency)

    def paying_customers(self, *, at: date | datetime) -> int:
        t = as_moment(at, "at")
        return len(ref.paying_customer_ids(self.book, at=t, policy=self.policy))

    def customer_flow(self, *, start: date | datetime, end: date | datetime) -> CustomerFlow:
        a, b = as_moment(start, "start"), as_moment(end, "end")
        return ref.customer_flow(self.book, start=a, end=b, policy=self.policy)


def python_dashboard(store: SQLStore) -> StoreDashboard:
    book = store.book()
    return ref.compose_dashboard(
        PythonFigures(book, store.policy), as_of=DEMO_AS_OF, currency=CURRENCY, trend_months=12
    )


def line(label: str, seconds: float, target: float | None = None) -> None:
    shown = f"{seconds * 1000:9.1f} ms" if seconds < 1 else f"{seconds:9.2f} s "
    goal = ""
    if target is not None:
        verdict = "ok" if seconds <= target else "OVER"
        goal = (
            f"   target {target * 1000:.0f} ms: {verdict}"
            if target < 1
            else f"   target {target:.0f} s: {verdict}"
        )
    print(f"  {label:<46}{shown}{goal}")


def bench_segments(store: SQLStore, book: Book, *, python: bool) -> None:
    at, cur = DEMO_AS_OF, CURRENCY
    counts, cold = timed(lambda: store.segment_counts(as_of=at, currency=cur))
    line("segment counts in the database, cold", cold, 1.0)
    line(
        "segment counts, warm (median of 3)",
        warm(lambda: store.segment_counts(as_of=at, currency=cur), runs=3),
        1.0,
    )
    members = ", ".join(f"{s.value} {counts.members[s]:,}" for s in Segment)
    print(f"  {'':<46}({members})")
    product = book.products[0].id if book.products else "none"
    pages: list[tuple[str, dict[str, object]]] = [
        (f"page: segment {s.value}, by name", {"segment": s})
        for s in (Segment.HIGH_VALUE, Segment.AT_RISK, Segment.ACTIVE)
    ]
    pages += [
        ("page: segment high_value, by MRR desc", {"segment": Segment.HIGH_VALUE, "sort": "mrr"}),
        ("page: status past_due, by name", {"status": CustomerStatus.PAST_DUE}),
        (f"page: product {product}, by name", {"product_id": product}),
    ]
    for label, options in pages:

        def one(o: dict[str, object] = options) -> object:
            page = store.customers.page(as_of=at, currency=cur, limit=50, **o)  # type: ignore[arg-type]
            return store.segments_of([r.id for r in page], as_of=at, currency=cur)

        line(label + " + segments_of", warm(one, runs=3), 0.05)
    if python:
        loaded, load_seconds = timed(store.book)
        line("load every row into a Book (store.book())", load_seconds)
        seg, seg_seconds = timed(
            lambda: segmentation(loaded, as_of=at, currency=cur, policy=store.policy)
        )
        line("segmentation in Python from those rows", seg_seconds)
        line("  load + Python counts, total", load_seconds + seg_seconds)
        same = seg.counts() == counts
        print(f"  {'same counts in both':<46}{'yes' if same else 'NO: BUG'}")

        def python_page() -> list[str]:
            ids = seg.customers_in(Segment.HIGH_VALUE)
            page = store.customers.page(as_of=at, currency=cur, limit=50, customer_ids=ids)
            return [r.id for r in page]

        py_page, page_seconds = timed(python_page)
        line("  ... then a High Value page by its ids", page_seconds)
        pushed = store.customers.page(as_of=at, currency=cur, limit=50, segment=Segment.HIGH_VALUE)
        same = py_page == [r.id for r in pushed]
        print(f"  {'same High Value page in both':<46}{'yes' if same else 'NO: BUG'}")
        total = load_seconds + seg_seconds + page_seconds
        line("  Python path to one High Value page, total", total)


def bench_store(
    name: str, store: SQLStore, book: Book, *, python: bool, only: str | None = None
) -> None:
    print(f"{name}")
    store.create_schema()
    result, seconds = timed(lambda: store.import_book(book))
    line(f"bulk import ({result.inserted:,} records)", seconds, 60.0)
    if only == "segments":
        bench_segments(store, book, python=python)
        print()
        return
    dash, cold = timed(lambda: store.dashboard(as_of=DEMO_AS_OF, currency=CURRENCY))
    line("dashboard in the database, cold", cold, 1.0)
    line(
        "dashboard in the database, warm (median of 5)",
        warm(lambda: store.dashboard(as_of=DEMO_AS_OF, currency=CURRENCY)),
        1.0,
    )
    for label, options in (
        ("page: search 'an', sort by name", {"search": "an", "sort": "name"}),
        (
            "page: search 'an', sort by MRR desc",
            {"search": "an", "sort": "mrr", "direction": "desc"},
        ),
        ("page: no search, sort by name", {"sort": "name"}),
        ("page: no search, sort by MRR desc", {"sort": "mrr", "direction": "desc"}),
        ("page: no search, sort by last payment", {"sort": "last_payment", "direction": "desc"}),
    ):
        first = store.customers.page(as_of=DEMO_AS_OF, currency=CURRENCY, limit=50, **options)
        line(
            label,
            warm(
                lambda o=options: store.customers.page(
                    as_of=DEMO_AS_OF, currency=CURRENCY, limit=50, **o
                )
            ),
            0.05,
        )
        if first.next_cursor is not None:
            cursor = first.next_cursor
            line(
                "  ... its next page (keyset cursor)",
                warm(
                    lambda o=options, c=cursor: store.customers.page(
                        as_of=DEMO_AS_OF, currency=CURRENCY, limit=50, cursor=c, **o
                    )
                ),
                0.05,
            )
    someone = book.customers[len(book.customers) // 2].id
    line(
        "one customer's billing summary",
        warm(lambda: store.customer_summary(someone, as_of=DEMO_AS_OF, currency=CURRENCY)),
        0.02,
    )
    if python:
        loaded, load_seconds = timed(store.book)
        line("load every row into a Book (store.book())", load_seconds)
        figures, py_seconds = timed(
            lambda: ref.compose_dashboard(
                PythonFigures(loaded, store.policy),
                as_of=DEMO_AS_OF,
                currency=CURRENCY,
                trend_months=12,
            )
        )
        line("same dashboard in Python from those rows", py_seconds)
        line("  load + Python, total", load_seconds + py_seconds)
        print(f"  {'same figures in both':<46}{'yes' if figures == dash else 'NO: BUG'}")
        speedup = (load_seconds + py_seconds) / max(cold, 1e-9)
        print(f"  {'pushdown speed-up (cold dashboard)':<46}{speedup:9.1f} x")
    bench_segments(store, book, python=python)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", default=os.environ.get("REVCRM_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--skip-python", action="store_true", help="skip the load-everything comparison"
    )
    parser.add_argument("--only", choices=["segments"], help="time only these figures")
    args = parser.parse_args()
    for size in args.customers:
        book, seconds = timed(lambda n=size: demo_book(n, seed=args.seed, as_of=DEMO_AS_OF))
        rows = {
            k: len(getattr(book, k))
            for k in ("customers", "subscriptions", "invoices", "transactions", "credits")
        }
        print(
            f"== {size:,} customers: "
            + ", ".join(f"{v:,} {k}" for k, v in rows.items())
            + f" (generated in {seconds:.1f} s)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = SQLStore(f"sqlite:///{tmp}/bench.db")
            bench_store("SQLite (file)", sqlite, book, python=not args.skip_python, only=args.only)
            sqlite.close()
        if args.postgres:
            pg = SQLStore(args.postgres, prefix=f"bench{uuid.uuid4().hex[:8]}_")
            try:
                bench_store("PostgreSQL", pg, book, python=not args.skip_python, only=args.only)
            finally:
                pg.drop_schema()
                pg.close()
        else:
            print("PostgreSQL: skipped (pass --postgres URL or set REVCRM_TEST_POSTGRES_URL)\n")


if __name__ == "__main__":
    main()
