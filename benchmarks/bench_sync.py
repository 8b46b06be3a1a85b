"""Host sync benchmark: first full sync, nightly unchanged re-sync, one service change.

    .venv/bin/python benchmarks/bench_sync.py --customers 10000 100000

For each size it builds a host's current views in Python (the rows a panel's tables hold,
already read: building them is timed apart) for ``n`` customers: 1.25 services each
(monthly, quarterly or annual; a tenth suspended, a twentieth cancelled), two invoices
with one line each, two payments each and a credit entry for every tenth customer. Then,
into SQLite (a file in a temporary directory) through ``revcrm.sync.HostSync``, it times:

* the first full sync of every table (target: 60 s for 100k customers);
* a nightly re-sync with nothing changed (target: 15 s), which must write nothing;
* a single service change (target: 20 ms), the median of 20 different services.

It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from revcrm import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    LineKind,
    Money,
    Transaction,
)
from revcrm.storage import SQLStore
from revcrm.sync import HostSync, ServiceState, SyncReport

T = TypeVar("T")
USD = "USD"
_CYCLES = (("Monthly", 1), ("Monthly", 1), ("Quarterly", 3), ("Annually", 12))


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


class HostViews:
    def __init__(self, n: int, sync: HostSync) -> None:
        base = datetime(2022, 1, 1, tzinfo=UTC)
        self.customers: list[Customer] = []
        self.services: list[ServiceState] = []
        self.invoices: list[Invoice] = []
        self.transactions: list[Transaction] = []
        self.credits: list[CreditEntry] = []
        for c in range(1, n + 1):
            reg = base + timedelta(minutes=7 * c)
            cid = str(c)
            self.customers.append(
                Customer(id=cid, registered_at=reg, email=f"u{c}@example.org", name=f"User {c}")
            )
            for k in range(2 if c % 4 == 0 else 1):
                sid = c * 10 + k
                word, months = _CYCLES[sid % 4]
                status = "Suspended" if c % 10 == 3 else "Cancelled" if c % 20 == 7 else "Active"
                started = reg.date()
                self.services.append(
                    ServiceState(
                        id=sid,
                        customer_id=c,
                        product_id=1 + sid % 5,
                        price=Money(Decimal(5 + sid % 7) * months, USD),
                        cycle=word,
                        status=status,
                        started_at=started,
                        ended_at=date(2024, 6, 1) if status == "Cancelled" else None,
                        details={"domain": f"s{sid}.example"},
                    )
                )
            for j in range(2):
                iid = f"{c}-{j}"
                issued = reg + timedelta(days=30 * j)
                amount = Money(Decimal(5 + c % 7), USD)
                self.invoices.append(
                    Invoice(
                        id=iid,
                        customer_id=cid,
                        currency=USD,
                        issued_at=issued,
                        due_date=issued.date(),
                        status="paid",
                        paid_at=issued,
                        lines=(
                            InvoiceLine(
                                kind=LineKind.RECURRING,
                                amount=amount,
                                period_start=issued,
                                period_end=issued + timedelta(days=30),
                                subscription_id=str(c * 10),
                            ),
                        ),
                    )
                )
                self.transactions.append(
                    Transaction(
                        id=iid,
                        customer_id=cid,
                        kind="payment",
                        status="succeeded",
                        amount=amount,
                        method="stripe",
                        at=issued + timedelta(hours=1),
                        invoice_id=iid,
                    )
                )
            if c % 10 == 0:
                self.credits.append(
                    CreditEntry(
                        id=cid, customer_id=cid, amount=Money("5", USD), reason="goodwill", at=reg
                    )
                )

    @property
    def records(self) -> int:
        return (
            len(self.customers)
            + len(self.services)
            + len(self.invoices)
            + len(self.transactions)
            + len(self.credits)
        )


#: Seconds per table of the last full sync (printed for the nightly re-sync).
SPLIT: dict[str, float] = {}


def full_sync(sync: HostSync, views: HostViews, at: datetime) -> list[SyncReport]:
    calls: list[tuple[str, Callable[[], SyncReport]]] = [
        ("customers", lambda: sync.customers(views.customers)),
        ("services", lambda: sync.services(views.services, observed_at=at)),
        ("invoices", lambda: sync.invoices(views.invoices)),
        ("transactions", lambda: sync.transactions(views.transactions)),
        ("credits", lambda: sync.credits(views.credits)),
    ]
    reports = []
    with sync.store.transaction():
        for name, call in calls:
            start = time.perf_counter()
            reports.append(call())
            SPLIT[name] = time.perf_counter() - start
    return reports


def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.create_schema()
        sync = HostSync(store, timezone="America/New_York")
        views, t_build = timed(lambda: HostViews(n, sync))
        print(
            f"\n{n:,} customers: {views.records:,} host rows "
            f"({len(views.services):,} services), built in {t_build:.1f} s"
        )
        first, t_first = timed(lambda: full_sync(sync, views, datetime(2024, 7, 1, 2)))
        print(
            f"  first full sync          {t_first:8.2f} s  (target 60 s at 100k)  "
            f"created {sum(r.created for r in first):,}"
        )
        again, t_again = timed(lambda: full_sync(sync, views, datetime(2024, 7, 2, 2)))
        written = sum(r.written for r in again)
        print(
            f"  nightly re-sync, no change {t_again:6.2f} s  (target 15 s)  "
            f"written {written}, unchanged {sum(r.unchanged for r in again):,}"
        )
        print("    " + ", ".join(f"{name} {t:.2f} s" for name, t in SPLIT.items()))
        times = []
        step = max(1, len(views.services) // 20)
        for k, state in enumerate(views.services[::step][:20]):
            changed = state.replace(price=state.price + Money("1", USD))
            at = datetime(2024, 7, 3, 2) + timedelta(minutes=k)

            def one(s: ServiceState = changed, a: datetime = at) -> SyncReport:
                return sync.services([s], observed_at=a)

            report, t = timed(one)
            assert report.changed == 1, report
            times.append(t)
        print(
            f"  one service change       {statistics.median(times) * 1000:8.1f} ms "
            f"(target 20 ms; max {max(times) * 1000:.1f} ms)"
        )
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000])
    for n in parser.parse_args().customers:
        run(n)


if __name__ == "__main__":
    main()
