"""Issue 14, item 3: the SQL store at 100k customers under 4 readers and 1 writer.

    nice -n 5 .venv/bin/python benchmarks/bench_sql_100k.py --backend sqlite \\
        --customers 100000 --file /tmp/revcrm-100k.sqlite
    nice -n 5 .venv/bin/python benchmarks/bench_sql_100k.py --backend postgres \\
        --customers 100000 [--url postgresql+psycopg://...] [--prefix bench_x_ --keep]

**Import.** A child process builds the seeded demo book (``revcrm._demo.demo_book``: 36
months of a hosting business, about 1.3 services, 10 invoices and 10 payments per
customer, USD/EUR/GBP) and bulk-imports it with ``SQLStore.import_book`` into a fresh
schema (the ledger tables built in the same transaction): wall and CPU seconds of the
import alone (the client's CPU; PostgreSQL's server CPU is not in it) and the child's peak
RSS (``ru_maxrss``: the book in memory included, as in a host importing one);
``--profile-import`` prints where the import's time goes (cProfile). With
``--file`` an SQLite file that already holds a store is reused (no import: the 100k
import is paid once); a missing ``--file`` is created and kept. With ``--prefix`` a
PostgreSQL schema already under that prefix is reused likewise; a random prefix is
dropped at the end unless ``--keep``.

**Load.** Then ``--readers`` reader workers and one writer start together and run for
``--seconds`` (at least ``--min-rounds`` rounds; each call's first run is shown as its
cold run and left out of the percentiles):

* each reader loops over the reads of one web request each, in its own shuffled order
  every round: the dashboard (``store.dashboard``, trend of 12 months), a customer-list
  page (50 rows) for every ``CustomerSort`` (money, counts and dates descending, text
  ascending), a page filtered by segment (High Value, At Risk; by name and by MRR), by
  status (past due, active), with a search, the next page through a keyset cursor, the
  segment counts (``store.segment_counts``) and one random customer's billing summary
  (``store.customer_summary``);
* the writer upserts payments (10.00 in the customer's currency, a random paying
  customer, in the two days before the as-of) back to back: each write maintains the
  ledger tables in its own transaction.

Workers are processes by default (``--workers process``): a host serves revcrm from
several web-server worker processes (gunicorn/uvicorn ``--workers``), each with its own
engine and connection pool and its own GIL, so one worker's Python work does not stall
the others' requests; ``--workers thread`` runs them as threads sharing one store, as
revcrm's own demo server (one uvicorn process, sync handlers in its thread pool) does.
Every read and write records its wall time and its own thread's CPU time
(``time.thread_time``; SQLite runs in the worker, so for SQLite it is the call's whole
cost, for PostgreSQL the client's share): a wall time far above the CPU time is waiting
(for a core on this shared 2-core machine, for a lock, for the server).

It prints each figure's p50/p95/max next to its target (met or missed), the load average
(``os.getloadavg``) around each phase and the commit measured. Nothing is asserted, and it
installs nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

DEFAULT_URL = "postgresql+psycopg://revcrm@127.0.0.1:55432/postgres"
CURRENCY = "USD"
SECRET = b"bench-sql-100k-cursor-secret"  # one cursor key for every worker
PAGE = 50


class _Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class _Queue(Protocol):
    def put(self, item: Any) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True)
class Config:
    url: str
    prefix: str
    seconds: float
    customer_ids: tuple[str, ...]  # a sample, for the summaries
    payers: tuple[tuple[str, str], ...]  # (customer id, currency), for the writes
    write_pause: float = 0.0
    min_rounds: int = 2  # the first round is the cold one
    only: tuple[str, ...] = ()


@dataclass
class Sample:
    op: str
    wall: float
    cpu: float


@dataclass
class WorkerResult:
    role: str
    index: int
    samples: list[Sample] = field(default_factory=list)
    warm: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- the reads -------------------------------------------------------------------------------

_DESC_SORTS = {
    "mrr",
    "ltv",
    "total_paid",
    "credit_balance",
    "active_services",
    "created",
    "last_payment",
}


def _list_pages() -> list[tuple[str, dict[str, Any]]]:
    from revcrm.crm import CustomerStatus
    from revcrm.segments import Segment
    from revcrm.storage import CustomerSort

    pages: list[tuple[str, dict[str, Any]]] = []
    for s in CustomerSort:
        direction = "desc" if s.value in _DESC_SORTS else "asc"
        pages.append((f"list: sort {s.value} {direction}", {"sort": s, "direction": direction}))
    pages += [
        ("list: segment high_value, by name", {"segment": Segment.HIGH_VALUE}),
        ("list: segment at_risk, by name", {"segment": Segment.AT_RISK}),
        (
            "list: segment high_value, by MRR desc",
            {"segment": Segment.HIGH_VALUE, "sort": "mrr", "direction": "desc"},
        ),
        ("list: status past_due, by name", {"status": CustomerStatus.PAST_DUE}),
        (
            "list: status active, by MRR desc",
            {"status": CustomerStatus.ACTIVE, "sort": "mrr", "direction": "desc"},
        ),
        ("list: search 'an', by name", {"search": "an"}),
    ]
    return pages


def _reads(store: Any, cfg: Config) -> list[tuple[str, Callable[[], object]]]:
    from revcrm._demo import DEMO_AS_OF

    at = DEMO_AS_OF
    ops: list[tuple[str, Callable[[], object]]] = [
        ("dashboard", lambda: store.dashboard(as_of=at, currency=CURRENCY)),
        ("segment counts", lambda: store.segment_counts(as_of=at, currency=CURRENCY)),
    ]
    for label, options in _list_pages():

        def page(o: dict[str, Any] = options) -> object:
            return store.customers.page(as_of=at, currency=CURRENCY, limit=PAGE, **o)

        ops.append((label, page))
    for label, options in (
        ("list: next page (cursor), by name", {"sort": "name"}),
        ("list: next page (cursor), by MRR desc", {"sort": "mrr", "direction": "desc"}),
    ):
        first = store.customers.page(as_of=at, currency=CURRENCY, limit=PAGE, **options)
        if first.next_cursor is None:
            continue

        def after(o: dict[str, Any] = options, c: str = first.next_cursor) -> object:
            return store.customers.page(as_of=at, currency=CURRENCY, limit=PAGE, cursor=c, **o)

        ops.append((label, after))
    rng = random.Random(1)
    ids = cfg.customer_ids
    ops.append(
        (
            "customer summary",
            lambda: store.customer_summary(rng.choice(ids), as_of=at, currency=CURRENCY),
        )
    )
    return ops


def _open(cfg: Config) -> Any:
    from revcrm.storage import SQLStore

    return SQLStore(cfg.url, prefix=cfg.prefix, cursor_secret=SECRET)


def _measure(op: str, fn: Callable[[], object]) -> Sample:
    w, c = time.perf_counter(), time.thread_time()
    fn()
    return Sample(op, time.perf_counter() - w, time.thread_time() - c)


def reader(
    cfg: Config, index: int, ready: _Queue, go: _Event, stop: _Event, out: _Queue, shared: Any
) -> None:
    result = WorkerResult("reader", index)
    try:
        store = shared if shared is not None else _open(cfg)
        ops = [(n, f) for n, f in _reads(store, cfg) if _wanted(n, cfg.only)]
    except Exception as e:  # reported, not raised: the parent must not hang
        result.errors.append(f"setup: {type(e).__name__}: {e}")
        ready.put(index)
        out.put(result)
        return
    ready.put(index)
    go.wait()
    rng = random.Random(100 + index)
    deadline = time.perf_counter() + cfg.seconds
    rounds = 0
    # Every call's first run is its cold one (caches, prepared statements, the pool),
    # kept apart; the timed runs go on until the deadline, at least ``min_rounds`` rounds.
    while rounds < cfg.min_rounds or time.perf_counter() < deadline:
        if stop.is_set():
            break
        order = list(ops)
        rng.shuffle(order)
        for name, fn in order:
            if rounds >= cfg.min_rounds and time.perf_counter() >= deadline:
                break
            try:
                (result.warm if rounds == 0 else result.samples).append(_measure(name, fn))
            except Exception as e:
                result.errors.append(f"{name}: {type(e).__name__}: {e}")
        rounds += 1
    if shared is None:
        store.close()
    out.put(result)


def _wanted(name: str, only: tuple[str, ...]) -> bool:
    return not only or any(o in name for o in only)


def writer(cfg: Config, ready: _Queue, go: _Event, stop: _Event, out: _Queue, shared: Any) -> None:
    from revcrm import Money, Transaction
    from revcrm._demo import DEMO_AS_OF

    result = WorkerResult("writer", 0)
    store = shared if shared is not None else _open(cfg)
    rng = random.Random(99)
    tag = uuid.uuid4().hex[:8]
    n = [0]

    def pay() -> None:
        cid, currency = rng.choice(cfg.payers)
        n[0] += 1
        store.transactions.upsert(
            Transaction(
                id=f"bench100k_{tag}_{n[0]}",
                customer_id=cid,
                kind="payment",
                status="succeeded",
                amount=Money("10.00", currency),
                method="card",
                at=DEMO_AS_OF - timedelta(minutes=rng.randrange(1, 48 * 60)),
            )
        )

    try:
        result.warm.append(_measure("payment write", pay))
    except Exception as e:
        result.errors.append(f"warm-up: {type(e).__name__}: {e}")
        ready.put(-1)
        out.put(result)
        return
    ready.put(-1)
    go.wait()
    while not stop.is_set():
        try:
            result.samples.append(_measure("payment write", pay))
        except Exception as e:
            result.errors.append(f"payment write: {type(e).__name__}: {e}")
        if cfg.write_pause:
            time.sleep(cfg.write_pause)
    if shared is None:
        store.close()
    out.put(result)


# -- the import ------------------------------------------------------------------------------


def import_child(
    url: str, prefix: str, customers: int, seed: int, out: _Queue, profile: bool = False
) -> None:
    import cProfile
    import pstats

    from revcrm._demo import DEMO_AS_OF, demo_book
    from revcrm.storage import SQLStore

    t = time.perf_counter()
    book = demo_book(customers, seed=seed, as_of=DEMO_AS_OF)
    generated = time.perf_counter() - t
    rss_book = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = {
        k: len(getattr(book, k))
        for k in ("customers", "subscriptions", "invoices", "transactions", "credits")
    }
    store = SQLStore(url, prefix=prefix)
    store.create_schema()
    profiler = cProfile.Profile() if profile else None
    w, c = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    result = store.import_book(book)
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    if profiler is not None:
        print("import_book under cProfile (times inflated by it), by cumulative time:")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put(
        {
            "generated": generated,
            "rows": rows,
            "inserted": result.inserted,
            "wall": wall,
            "cpu": cpu,
            "rss_book_mb": rss_book / 1024,
            "peak_mb": peak / 1024,
        }
    )


# -- figures ---------------------------------------------------------------------------------


def pct(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} ({len(dirty)} uncommitted files under src/)" if dirty else head


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def report(results: list[WorkerResult], backend: str, imported: dict[str, Any] | None) -> None:
    by_op: dict[str, list[Sample]] = {}
    cold: dict[str, list[float]] = {}
    for r in results:
        for s in r.samples:
            by_op.setdefault(s.op, []).append(s)
        for s in r.warm:
            cold.setdefault(s.op, []).append(s.wall)
    print("\nPer call under load (ms; cpu = the worker thread's own CPU time):")
    print(
        f"  {'call':<40}{'n':>5}{'p50':>9}{'p95':>9}{'max':>9}"
        f"{'cpu p50':>9}{'cpu p95':>9}{'cold max':>10}"
    )
    for op in sorted(by_op, key=lambda o: (not o.startswith("dashboard"), o)):
        times = [s.wall for s in by_op[op]]
        cpus = [s.cpu for s in by_op[op]]
        first = max(cold.get(op, [float("nan")]))
        print(
            f"  {op:<40}{len(times):>5}{ms(pct(times, 50)):>9}{ms(pct(times, 95)):>9}"
            f"{ms(max(times)):>9}{ms(pct(cpus, 50)):>9}{ms(pct(cpus, 95)):>9}{ms(first):>10}"
        )

    def of(pred: Callable[[str], bool]) -> list[Sample]:
        return [s for op, ss in by_op.items() if pred(op) for s in ss]

    lists = {op: ss for op, ss in by_op.items() if op.startswith("list:")}
    rows: list[tuple[str, list[Sample], float, str]] = [
        ("dashboard p95", of(lambda o: o == "dashboard"), 0.300, ""),
    ]
    if lists:
        worst = max(lists, key=lambda o: pct([s.wall for s in lists[o]], 95))
        met = sum(pct([s.wall for s in v], 95) <= 0.05 for v in lists.values())
        rows.append(
            (
                "every list page p95 (the worst)",
                lists[worst],
                0.050,
                f"worst: {worst[6:]}; {met} of {len(lists)} pages met",
            )
        )
    rows += [
        ("segment counts p95", of(lambda o: o == "segment counts"), 0.200, ""),
        ("one customer's summary p95", of(lambda o: o == "customer summary"), 0.020, ""),
        ("payment write + ledger p95", of(lambda o: o == "payment write"), 0.030, ""),
    ]
    print(f"\nTargets ({backend}; wall p95 under load, and the CPU p95 of the same calls):")
    print(f"  {'target':<34}{'limit':>9}{'wall':>11}{'cpu':>11}  verdict (wall / cpu)  notes")
    if imported is not None:
        limit = 60.0 if backend == "sqlite" else 90.0
        w, c = imported["wall"], imported["cpu"]
        print(
            f"  {'bulk import':<34}{limit:>8.0f}s{w:>10.1f}s{c:>10.1f}s  "
            f"{verdict(w, limit) + ' / ' + verdict(c, limit):<20}  "
            f"peak RSS {imported['peak_mb']:,.0f} MB"
        )
    for label, samples, limit, note in rows:
        if not samples:
            print(f"  {label:<34}{ms(limit):>7}ms{'-':>11}{'-':>11}  not measured")
            continue
        w = pct([s.wall for s in samples], 95)
        c = pct([s.cpu for s in samples], 95)
        note = note or f"n {len(samples)}, p50 {ms(pct([s.wall for s in samples], 50))} ms"
        print(
            f"  {label:<34}{ms(limit):>7}ms{ms(w):>9}ms{ms(c):>9}ms  "
            f"{verdict(w, limit) + ' / ' + verdict(c, limit):<20}  {note}"
        )
    errors = [e for r in results for e in r.errors]
    if errors:
        print(f"\n{len(errors)} errors, the first ones:")
        for e in errors[:10]:
            print(f"  {e}")


# -- the run ---------------------------------------------------------------------------------


def sample_ids(store: Any, prefix: str, k: int = 2000) -> tuple[list[str], list[tuple[str, str]]]:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text(f"SELECT id FROM {prefix}customers"))]
        payers = [
            (r[0], r[1])
            for r in conn.execute(
                sa.text(
                    f"SELECT customer_id, MIN(currency) FROM {prefix}transactions"
                    " WHERE kind = 'payment' GROUP BY customer_id"
                )
            )
        ]
    rng = random.Random(5)
    return rng.sample(ids, min(k, len(ids))), rng.sample(payers, min(k, len(payers)))


def _get(q: _Queue, workers: list[Any]) -> Any:
    """The next item, or an error once every worker has ended without sending it."""
    while True:
        try:
            return q.get(timeout=5)
        except queue.Empty:
            if not any(w.is_alive() for w in workers):
                raise RuntimeError("the workers ended early: see their errors above") from None


def run_load(args: argparse.Namespace, url: str, prefix: str) -> list[WorkerResult]:
    from revcrm.storage import SQLStore

    probe = SQLStore(url, prefix=prefix, cursor_secret=SECRET)
    ids, payers = sample_ids(probe, prefix)
    cfg = Config(
        url,
        prefix,
        args.seconds,
        tuple(ids),
        tuple(payers),
        args.write_pause,
        max(2, args.min_rounds),
        tuple(args.ops),
    )
    threads = args.workers == "thread"
    shared = probe if threads else None
    if not threads:
        probe.close()
    ctx = mp.get_context("spawn")
    ready: _Queue
    out: _Queue
    go: _Event
    stop: _Event
    if threads:
        ready, out = queue.Queue(), queue.Queue()
        go, stop = threading.Event(), threading.Event()
    else:
        ready, out = ctx.Queue(), ctx.Queue()
        go, stop = ctx.Event(), ctx.Event()
    workers: list[Any] = []
    for i in range(args.readers):
        a = (cfg, i, ready, go, stop, out, shared)
        workers.append(
            threading.Thread(target=reader, args=a)
            if threads
            else ctx.Process(target=reader, args=a)
        )
    wa = (cfg, ready, go, stop, out, shared)
    workers.append(
        threading.Thread(target=writer, args=wa) if threads else ctx.Process(target=writer, args=wa)
    )
    print(
        f"\n{args.readers} readers + 1 writer ({'threads' if threads else 'processes'}),"
        f" setting up ... load {load()}"
    )
    t = time.perf_counter()
    for w in workers:
        w.start()
    for _ in workers:
        _get(ready, workers)
    print(
        f"  set up in {time.perf_counter() - t:.1f} s; running {args.seconds:.0f} s"
        f" (and at least {cfg.min_rounds} rounds of reads, the first cold) ..."
    )
    t = time.perf_counter()
    go.set()
    results: list[WorkerResult] = []
    while len(results) < args.readers:
        results.append(_get(out, workers))
    stop.set()  # the readers are done: the writer stops too
    results.append(_get(out, workers))
    for w in workers:
        w.join()
    print(f"  done in {time.perf_counter() - t:.1f} s; load {load()}")
    if threads:
        probe.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL URL (--backend postgres)")
    parser.add_argument("--prefix", help="PostgreSQL: reuse (or create and keep) this prefix")
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep the tables")
    parser.add_argument("--file", type=Path, help="SQLite: reuse (or create and keep) this file")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--workers", choices=["process", "thread"], default="process")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the load phase")
    parser.add_argument("--write-pause", type=float, default=0.0, help="seconds between writes")
    parser.add_argument(
        "--min-rounds", type=int, default=2, help="rounds of reads at least (the first cold)"
    )
    parser.add_argument(
        "--ops", nargs="*", default=[], help="only the reads whose name contains one of these"
    )
    parser.add_argument("--label", default="", help="printed with the commit (e.g. a snapshot)")
    parser.add_argument("--import-only", action="store_true")
    parser.add_argument(
        "--profile-import", action="store_true", help="import_book under cProfile (slower)"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    import revcrm

    print(f"revcrm from {Path(revcrm.__file__).parent}")
    label = f" [{args.label}]" if args.label else ""
    print(f"revcrm commit {commit()}{label}, {os.cpu_count()} CPUs, load {load()}")
    tmp: tempfile.TemporaryDirectory[str] | None = None
    drop = False
    if args.backend == "sqlite":
        prefix = "revcrm_"
        if args.file is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench100k-")
            path = Path(tmp.name) / "bench.sqlite"
        else:
            path = args.file
        url = f"sqlite:///{path}"
        fresh = not path.exists()
    else:
        url = args.url
        prefix = args.prefix or f"b100k{uuid.uuid4().hex[:8]}_"
        drop = args.prefix is None and not args.keep
        fresh = args.prefix is None or not _pg_has(url, prefix)
    print(f"{args.backend}: {url if args.backend == 'sqlite' else url + ' prefix ' + prefix}")
    imported: dict[str, Any] | None = None
    try:
        if fresh:
            print(f"importing {args.customers:,} demo customers ... load {load()}")
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            child = ctx.Process(
                target=import_child,
                args=(url, prefix, args.customers, args.seed, q, args.profile_import),
            )
            child.start()
            while True:
                try:
                    imported = q.get(timeout=5)
                    break
                except queue.Empty:
                    if not child.is_alive():
                        print(f"the import failed (exit code {child.exitcode}): see above")
                        return 1
            child.join()
            rows = ", ".join(f"{v:,} {k}" for k, v in imported["rows"].items())
            print(f"  book generated in {imported['generated']:.1f} s: {rows}")
            print(
                f"  import_book: {imported['wall']:.1f} s wall, {imported['cpu']:.1f} s CPU,"
                f" {imported['inserted']:,} records; peak RSS {imported['peak_mb']:,.0f} MB"
                f" (after generating the book {imported['rss_book_mb']:,.0f} MB); load {load()}"
            )
        else:
            from revcrm.storage import SQLStore

            store = SQLStore(url, prefix=prefix)
            t = time.perf_counter()
            version = store.migrate()
            store.close()
            print(
                f"  reusing the existing store (no import); schema {version}"
                f" (migrate {time.perf_counter() - t:.1f} s)"
            )
        if args.import_only:
            return 0
        results = run_load(args, url, prefix)
        report(results, args.backend, imported)
    finally:
        if drop:
            from revcrm.storage import SQLStore

            store = SQLStore(url, prefix=prefix)
            store.drop_schema()
            store.close()
            print(f"dropped the tables under {prefix}")
        if tmp is not None:
            tmp.cleanup()
    return 0


def _pg_has(url: str, prefix: str) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        return bool(sa.inspect(engine).has_table(f"{prefix}customers"))
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
