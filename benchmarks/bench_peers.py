"""Peer benchmark: a CSV of invoice lines to the monthly MRR series and movements.

    .venv/bin/python benchmarks/bench_peers.py --lines 250000 1000000

Runs, on the same CSV file and in the same run, each in a fresh child process pinned to one
CPU (``--cpus``), ``--repeat`` times round robin keeping each tool's fastest run: revcrm
(``read_lines`` then ``analyse_lines`` when the columnar engine is there, else
``read_csv`` then ``analyse(book, source="invoices")``; the path that ran is printed),
saas-metrics 0.2.1 (``saas_metrics.analyze``) and a DuckDB SQL reference written here (one
thread). Each child times its own work after its imports and reports its figures (wall
and CPU seconds: the machine may be shared); the parent reads each child's peak resident
memory from ``os.wait4``. It prints seconds, CPU seconds, peak RSS and the ratios, and
whether revcrm's monthly MRR and movements equal the DuckDB reference to the cent. It
installs nothing: a missing peer is reported and skipped. Asserts nothing about time.
Method: benchmarks/README.md.

Data: ``saas_metrics.sample.generate(months=36)`` (about 9,000 lines: monthly invoices,
split invoices, credit notes, annual plans paid up front, churn and returns), repeated
with renamed customers until the line count is reached. Its columns are kept for
saas-metrics; revcrm and the reference read the columns added for them: an invoice id
(customer and date: split lines and credit notes share their invoice), ``usd``, ``paid``
and the service period (the annual lines' own; a monthly line's calendar month,
inclusive end dates), none on credit notes (one-off credit lines: they lower their
invoice, not MRR).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

START = "2024-01-01"
MONTHS = 36
END = "2027-01-01"  # START + MONTHS

REVCRM_COLUMNS = {
    "invoice_id": "Invoice",
    "customer_id": "Customer",
    "amount": "Amount",
    "currency": "Currency",
    "issued_at": "Invoice Date",
    "status": "Status",
    "period_start": "Period Start",
    "period_end": "Period End",
}

# Each child prints one JSON line: seconds of work (after imports) and its figures.
_REVCRM = """
import json, sys, time
from datetime import date
from revcrm.io import read_csv, read_lines
from revcrm.metrics import analyse
try:
    from revcrm._ledger import analyse_lines
    where = "_ledger"
except ImportError:
    try:
        from revcrm.metrics._engine import analyse_lines
        where = "metrics._engine"
    except ImportError:
        analyse_lines = None
path, start, end, columns = sys.argv[1], date.fromisoformat(sys.argv[2]), \\
    date.fromisoformat(sys.argv[3]), json.loads(sys.argv[4])
t0, c0 = time.perf_counter(), time.process_time()
if analyse_lines is not None:
    lines = read_lines(path, columns=columns, timezone="UTC", period_end_inclusive=True).lines
    how = f"read_lines -> {where}.analyse_lines"
    t1, c1 = time.perf_counter(), time.process_time()
    a = analyse_lines(lines, currency="USD")
else:
    book = read_csv(path, kind="invoice_lines", columns=columns, timezone="UTC",
                    period_end_inclusive=True).book
    how = "read_csv -> analyse(book, source='invoices') (no _ledger.analyse_lines yet)"
    t1, c1 = time.perf_counter(), time.process_time()
    a = analyse(book, currency="USD", source="invoices")
series = a.series(start, end)
waterfalls = a.waterfalls(start, end)
t2, c2 = time.perf_counter(), time.process_time()
from decimal import Decimal, ROUND_HALF_EVEN
def cents(m):
    return str(m.amount.quantize(Decimal("0.01"), ROUND_HALF_EVEN))
print(json.dumps({
    "seconds": t2 - t0, "read": t1 - t0, "engine": t2 - t1, "path": how,
    "cpu": c2 - c0, "read_cpu": c1 - c0, "engine_cpu": c2 - c1,
    "mrr": [cents(p.mrr) for p in series],
    # Contraction and churn as positive amounts, as the peers print them.
    "moves": [[cents(w.new), cents(w.expansion), cents(-w.contraction), cents(-w.churn),
               cents(w.reactivation)] for w in waterfalls],
}))
"""

# The columnar input alone (what read_lines costs of the revcrm figure above, or would).
_INPUT = """
import json, sys, time
from revcrm.io import read_lines
t0, c0 = time.perf_counter(), time.process_time()
report = read_lines(sys.argv[1], columns=json.loads(sys.argv[4]), timezone="UTC",
                    period_end_inclusive=True)
t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({"seconds": t1 - t0, "cpu": c1 - c0, "path": f"read_lines ({report.engine}), "
                  f"{len(report.lines):,} recurring lines"}))
"""

_SAAS = """
import json, sys, time
import saas_metrics as sm
from saas_metrics.sample import MAPPING
t0, c0 = time.perf_counter(), time.process_time()
rep = sm.analyze(sys.argv[1], mapping=MAPPING, allow_warnings=True)
w = rep.waterfall
t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({
    "seconds": t1 - t0, "cpu": c1 - c0, "path": "saas_metrics.analyze",
    "mrr": [f"{v:.2f}" for v in w["ending"]],
    "moves": [[f"{r.new_logo:.2f}", f"{r.expansion:.2f}", f"{r.contraction:.2f}",
               f"{r.churn:.2f}", f"{r.reactivation:.2f}"] for r in w.itertuples()],
}))
"""

# The reference: revcrm's rules for this data, in SQL. Each recurring line (one with a
# service period) is its own stream: its MRR is its net over its whole months of service. A
# credit note (a one-off negative line, no service period) lowers its invoice, not MRR (as
# ChartMogul and Stripe count only recurring line items in MRR), so it is left out. MRR at
# a month's close sums what is in service then; a customer's change at a month start is new
# (first time), reactivation (back from zero), expansion, contraction or churn (to zero).
# Amounts are exact: cents times 27720 (every month count up to 12 divides it), rounded at
# the end.
_DUCKDB_SQL = """
CREATE TEMP TABLE raw AS
  SELECT * FROM read_csv(?, all_varchar = true, header = true);
CREATE TEMP TABLE line AS
  SELECT "Customer" AS cust,
         CAST(round(CAST("Amount" AS DECIMAL(18, 2)) * 100) AS BIGINT) AS cents,
         CAST("Period Start" AS DATE) AS ps,
         CAST("Period End" AS DATE) + 1 AS pe
  FROM raw
  WHERE lower("Status") NOT IN ('void', 'draft') AND "Period Start" IS NOT NULL;
CREATE TEMP TABLE ev AS
  SELECT cust, t, sum(d) AS d FROM (
    SELECT cust, ps AS t, CAST(cents AS HUGEINT) * (27720 // datediff('month', ps, pe)) AS d
      FROM line
    UNION ALL
    SELECT cust, pe, -CAST(cents AS HUGEINT) * (27720 // datediff('month', ps, pe))
      FROM line
  ) GROUP BY cust, t;
CREATE TEMP TABLE lvl AS
  SELECT cust, t, sum(d) OVER (PARTITION BY cust ORDER BY t) AS after,
         coalesce(sum(d) OVER (PARTITION BY cust ORDER BY t
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,
         row_number() OVER (PARTITION BY cust ORDER BY t) AS k
  FROM ev;
"""
_DUCKDB_MRR = """
WITH m AS (SELECT CAST(range AS DATE) AS m FROM range(CAST(? AS DATE), CAST(? AS DATE),
                                                         INTERVAL 1 MONTH)),
     byt AS (SELECT t, sum(d) AS d FROM ev GROUP BY t)
SELECT m.m, coalesce((SELECT sum(d) FROM byt WHERE byt.t <= m.m), 0) AS units
FROM m ORDER BY m.m
"""
_DUCKDB_MOVES = """
SELECT date_trunc('month', t) AS m,
  sum(CASE WHEN before = 0 AND after > 0 AND k = 1 THEN after ELSE 0 END),
  sum(CASE WHEN before > 0 AND after > before THEN after - before ELSE 0 END),
  sum(CASE WHEN after > 0 AND after < before THEN before - after ELSE 0 END),
  sum(CASE WHEN before > 0 AND after = 0 THEN before ELSE 0 END),
  sum(CASE WHEN before = 0 AND after > 0 AND k > 1 THEN after ELSE 0 END)
FROM lvl WHERE after <> before GROUP BY 1
"""

_DUCKDB = """
import json, sys, time
from datetime import date
from decimal import Decimal, ROUND_HALF_EVEN
import duckdb
SETUP, MRR, MOVES = json.loads(sys.argv[4])
t0, c0 = time.perf_counter(), time.process_time()
con = duckdb.connect()
con.execute("SET threads = 1")
for statement in SETUP.split(";"):
    if statement.strip():
        con.execute(statement, [sys.argv[1]] if "?" in statement else [])
rows = con.execute(MRR, [sys.argv[2], sys.argv[3]]).fetchall()
moves = {m.date() if hasattr(m, "date") else m: v
         for m, *v in con.execute(MOVES).fetchall()}
t1, c1 = time.perf_counter(), time.process_time()
def cents(units):
    return str((Decimal(int(units)) / 2772000).quantize(Decimal("0.01"), ROUND_HALF_EVEN))
print(json.dumps({
    "seconds": t1 - t0, "cpu": c1 - c0, "path": "DuckDB SQL (1 thread)",
    "mrr": [cents(u) for _, u in rows],
    "moves": [[cents(x) for x in moves.get(m, [0] * 5)] for m, _ in rows],
}))
"""


def write_csv(path: Path, lines: int) -> int:
    """saas-metrics' sample, repeated with renamed customers up to ``lines`` lines."""
    import pandas as pd
    from saas_metrics.sample import generate  # type: ignore[import-untyped]

    base = generate(months=MONTHS)
    copies = -(-lines // len(base))
    frame = pd.concat(
        [base.assign(Customer=base["Customer"] + f"-{k}") for k in range(copies)],
        ignore_index=True,
    ).iloc[:lines]
    day = pd.to_datetime(frame["Invoice Date"])
    first = day.dt.to_period("M").dt.start_time
    last = day.dt.to_period("M").dt.end_time.dt.normalize()
    annual = frame["Service Start"].fillna("") != ""
    credit = frame["Amount"].str.startswith("-")
    iso = "%Y-%m-%d"
    start = first.dt.strftime(iso).where(~annual, frame["Service Start"]).where(~credit, "")
    end = last.dt.strftime(iso).where(~annual, frame["Service End"]).where(~credit, "")
    frame = frame.assign(
        Invoice=frame["Customer"] + "/" + frame["Invoice Date"],
        Currency="usd",
        Status="paid",
        **{"Period Start": start, "Period End": end},
    )
    frame.to_csv(path, index=False)
    return len(frame)


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _child(code: str, args: list[str], cpus: int) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter on ``cpus`` CPUs; its JSON and its peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cores = sorted(os.sched_getaffinity(0))[:cpus] if hasattr(os, "sched_getaffinity") else []

        def pin() -> None:
            if cores:
                os.sched_setaffinity(0, cores)

        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=out, stderr=err, preexec_fn=pin
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            return {"error": err.read().strip().splitlines()[-1:] or ["failed"]}
        result: dict[str, Any] = json.loads(out.read().strip().splitlines()[-1])
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KiB on Linux
    result["rss_mb"] = usage.ru_maxrss * scale / 1e6
    result["wall"] = wall
    return result


def _compare(a: list[Any], b: list[Any]) -> str:
    if len(a) != len(b):
        return f"different lengths ({len(a)} vs {len(b)})"
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if not diff:
        return f"equal to the cent in all {len(a)} months"
    i = diff[0]
    return f"{len(diff)} of {len(a)} months differ (first: month {i + 1}: {a[i]} vs {b[i]})"


def run(lines: int, cpus: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.csv"
        n = write_csv(path, lines)
        size = path.stat().st_size / 1e6
        print(f"\n{n:,} lines ({size:,.0f} MB CSV), {MONTHS} months from {START}:")
        common = [str(path), START, END]
        jobs: dict[str, tuple[str, list[str]]] = {
            "revcrm": (_REVCRM, [*common, json.dumps(REVCRM_COLUMNS)]),
            "  input only": (_INPUT, [*common, json.dumps(REVCRM_COLUMNS)]),
        }
        if _have("saas_metrics"):
            jobs["saas-metrics"] = (_SAAS, common)
        else:
            print("  saas-metrics: not installed (see benchmarks/README.md), skipped")
        if _have("duckdb"):
            sql = json.dumps([_DUCKDB_SQL, _DUCKDB_MRR, _DUCKDB_MOVES])
            jobs["duckdb"] = (_DUCKDB, [*common, sql])
        else:
            print("  DuckDB: not installed (pip install duckdb, or the bench extra), skipped")
        # Round robin, the fastest run of each kept: a busy machine slows runs, never speeds them.
        results: dict[str, dict[str, Any]] = {}
        for _ in range(repeat):
            for name, (code, args) in jobs.items():
                r = _child(code, args, cpus)
                best = results.get(name)
                if best is None or "error" in best or r.get("seconds", 1e9) < best["seconds"]:
                    results[name] = r
    mine = results["revcrm"]
    for name, r in results.items():
        if "error" in r:
            print(f"  {name:<13} failed: {r['error'][0]}")
            continue
        ratio = ""
        if name in ("saas-metrics", "duckdb") and "seconds" in mine:
            x = r["seconds"] / mine["seconds"]
            ratio = f"; revcrm {x:.2f}x faster" if x >= 1 else f"; revcrm {1 / x:.2f}x slower"
        split = f" (read {r['read']:.2f} s + engine {r['engine']:.2f} s)" if "read" in r else ""
        cpu = f"; CPU {r['cpu']:.2f} s" if "cpu" in r else ""
        if "read_cpu" in r:
            cpu += f" ({r['read_cpu']:.2f} + {r['engine_cpu']:.2f})"
        print(
            f"  {name:<13} {r['seconds']:7.2f} s{split}{cpu}, peak RSS {r['rss_mb']:6,.0f} MB, "
            f"{r['wall']:.2f} s with start-up{ratio} [{r['path']}]"
        )
    ref = results.get("duckdb", {})
    if "mrr" in mine and "mrr" in ref:
        print(f"  revcrm vs DuckDB reference: monthly MRR {_compare(mine['mrr'], ref['mrr'])}")
        print(f"  revcrm vs DuckDB reference: movements {_compare(mine['moves'], ref['moves'])}")
    peer = results.get("saas-metrics", {})
    if "mrr" in mine and "mrr" in peer:
        print(
            f"  revcrm vs saas-metrics: monthly MRR {_compare(mine['mrr'], peer['mrr'])} "
            "(saas-metrics spreads annual lines by days)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[250_000])
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each child may use")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest is kept")
    args = parser.parse_args()
    if not _have("saas_metrics"):
        print("saas-metrics is not installed: see benchmarks/README.md (it is not in any extra)")
    for n in args.lines:
        run(n, args.cpus, max(1, args.repeat))


if __name__ == "__main__":
    main()
