"""The SQL store's ledger tables (schema 7) on the 20k-customer SQLite demo database.

    .venv/bin/python benchmarks/bench_sql_ledger.py [--customers 20000] [--repeat 7]

Copies the demo database ``bench_web.py`` builds and caches
(``benchmarks/.results/web-demo-<n>.sqlite``; built here the same way when missing) to
``ledger-demo-<n>.sqlite`` beside it, migrates the copy to the latest schema (the ledger
is built from the stored records, progress printed), then prints the median and max of
``--repeat`` runs of: MRR at a moment and a 36-month series from the ledger tables
(``LedgerReads``) next to the engine over the stored records that the store falls back to
(``_engine_mrr``, ``_engine_series``) and the public ``store.mrr`` and ``store.mrr_series`` (the ledger when
it covers the read), paying customers and customer flow likewise,
36 monthly waterfalls from the tables, and a payment write with its ledger upkeep next to
the same write with the upkeep switched off (the target is 30 ms). Every ledger figure
is checked equal to the engine's. Nothing is asserted about times.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from revcrm import Money, Transaction
from revcrm._demo import DEMO_AS_OF
from revcrm._subscription import ChangeKind, SubscriptionChange
from revcrm.storage import SQLStore
from revcrm.storage import _reference as ref
from revcrm.storage._sql_ledger_queries import LedgerReads

RESULTS = Path(__file__).resolve().parent / ".results"


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, float, float]:
    """The result, then the median and max wall time and the median CPU time of this
    process (SQLite runs in it; the shared machine's load inflates wall times)."""
    times = []
    cpu = []
    out = None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return out, statistics.median(times), max(times), statistics.median(cpu)


def _row(label: str, med: float, worst: float, cpu: float) -> None:
    print(
        f"  {label:<46} median {med * 1000:8.1f} ms  max {worst * 1000:8.1f} ms"
        f"  cpu {cpu * 1000:8.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--writes", type=int, default=30)
    parser.add_argument(
        "--db", type=Path, default=None, help="the working copy (default: beside the cache)"
    )
    args = parser.parse_args()
    source = RESULTS / f"web-demo-{args.customers}.sqlite"
    if not source.exists():
        from revcrm.web._serve import build_demo_database

        RESULTS.mkdir(parents=True, exist_ok=True)
        print(f"building the demo database ({args.customers} customers) into {source} ...")
        build_demo_database(source, customers=args.customers)
    db = args.db or RESULTS / f"ledger-demo-{args.customers}.sqlite"
    if not db.exists():
        shutil.copyfile(source, db)
    store = SQLStore(f"sqlite:///{db}")
    last = [0.0]

    def progress(step: str, done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 2 or done == total:
            last[0] = time.perf_counter()
            print(f"  {step}: {done} of {total} customers")

    t = time.perf_counter()
    version = store.migrate(progress=progress)
    print(f"schema {version}: migrate {time.perf_counter() - t:.1f} s")
    currency = store.ledger_currency()
    reads = LedgerReads(store)
    as_of = DEMO_AS_OF
    start = (as_of - relativedelta(months=35)).replace(day=1, hour=0, minute=0, second=0)
    print(f"as of {as_of:%Y-%m-%d}, series {start:%Y-%m} .. {as_of:%Y-%m-%d} in {currency}")

    zone = store.policy.timezone
    months = ref.month_bounds(*ref.reporting_range(start, as_of, zone), zone)
    flow_from = as_of - relativedelta(months=1)
    print(f"  covered by the ledger: {reads.covers(currency, as_of)}")

    old, *times = _timed(lambda: store._engine_mrr(as_of, currency, None), args.repeat)
    _row("MRR at a moment, engine over the records (fallback)", *times)
    new, *times = _timed(lambda: reads.mrr(as_of), args.repeat)
    _row("MRR at a moment, ledger tables", *times)
    pub, *times = _timed(lambda: store.mrr(at=as_of, currency=currency), args.repeat)
    _row("store.mrr (ledger when covered)", *times)
    print(f"    equal: {old == new == pub} ({new})")
    old_s, *times = _timed(lambda: store._engine_series([m[1] for m in months], currency), args.repeat)
    _row("36-month series, engine over the records (fallback)", *times)
    new_s, *times = _timed(lambda: reads.series(start, as_of), args.repeat)
    _row("36-month series, ledger tables", *times)
    pub_s, *times = _timed(
        lambda: store.mrr_series(start=start, end=as_of, currency=currency), args.repeat
    )
    _row("store.mrr_series (ledger when covered)", *times)
    print(f"    equal: {old_s == [p.mrr.amount for p in new_s] == [p.mrr.amount for p in pub_s]}")
    old_p, *times = _timed(lambda: store._engine_paying(as_of, None), args.repeat)
    _row("paying customers, engine over the records (fallback)", *times)
    pub_p, *times = _timed(lambda: store.paying_customers(at=as_of), args.repeat)
    _row("store.paying_customers (ledger when covered)", *times)
    print(f"    equal: {old_p == pub_p} ({pub_p})")
    old_f, *times = _timed(lambda: store._engine_flow(flow_from, as_of, None), args.repeat)
    _row("customer flow, engine over the records (fallback)", *times)
    pub_f, *times = _timed(lambda: store.customer_flow(start=flow_from, end=as_of), args.repeat)
    _row("store.customer_flow (ledger when covered)", *times)
    print(f"    equal: {old_f == pub_f}")
    _, *times = _timed(lambda: reads.waterfalls(start, as_of), args.repeat)
    _row("36 monthly waterfalls, ledger tables", *times)

    rng = random.Random(7)
    subs = store._schema.subscriptions
    with store.engine.connect() as conn:
        owners = sa.select(subs.c.customer_id).distinct().order_by(subs.c.customer_id)
        ids = [r[0] for r in conn.execute(owners)]
    paid: list[str] = []

    def pay(n: int) -> None:
        cid = rng.choice(ids)
        paid.append(cid)
        store.transactions.upsert(
            Transaction(
                id=f"bench_pay_{time.time_ns()}_{n}",
                customer_id=cid,
                kind="payment",
                status="succeeded",
                amount=Money("10.00", currency),
                method="card",
                at=as_of - timedelta(hours=n % 48),
            )
        )

    counter = iter(range(10**9))
    _, *times = _timed(lambda: pay(next(counter)), args.writes)
    _row("payment write with ledger upkeep", *times)
    refresh = store._ledger_refresh

    def off(conn: Any, ids: Any, *, latest: Any = None, cash: Any = ()) -> None:
        return None

    store.__dict__["_ledger_refresh"] = off  # the instance's own, over the method
    _, *times = _timed(lambda: pay(next(counter)), args.writes)
    _row("payment write, upkeep switched off", *times)
    del store.__dict__["_ledger_refresh"]
    store._run(True, lambda conn: refresh(conn, paid))  # the copy's horizon checked again

    # A subscription write rebuilds its customer's MRR rows with the engine.
    with store.engine.connect() as conn:
        open_subs = [
            r[0]
            for r in conn.execute(
                sa.select(subs.c.id).where(subs.c.current_state.like('["active"%')).limit(2000)
            )
        ]
    picked = rng.sample(open_subs, min(args.writes, len(open_subs)))

    def change(n: int) -> None:
        sub = store.subscriptions.get(picked[n % len(picked)])
        s = sub.current
        price = s.price if s.price is not None else Money("1", sub.currency)
        store.subscriptions.append(
            sub.id,
            SubscriptionChange(
                kind=ChangeKind.PLAN_CHANGED,
                at=max(as_of, sub.history[-1].at) + timedelta(minutes=n + 1),
                price=price + Money("1", price.currency),
            ),
        )

    counter = iter(range(10**9))
    _, *times = _timed(lambda: change(next(counter)), len(picked))
    _row("subscription change write with ledger upkeep", *times)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
