"""CSV import benchmark: time and peak memory of ``read_csv`` and ``read_lines`` over invoice lines.

    .venv/bin/python benchmarks/bench_import.py --lines 250000 1000000 [--readers lines]
        [--credit-every 5]

For each size it writes a CSV of monthly invoice lines (one line per invoice; one customer
per 12 lines; a paid or open status; lowercase currency; inclusive service end dates) to a
temporary file (writing is not timed); with ``--credit-every K`` every K-th invoice also
has a one-off credit line (a credit note: -5.00, no service period) and every 2K-th a
recurring credit line for the second half of its month (a proration credit), counted in
the lines. Then, in a fresh child process each, it reads the file with
``read_csv(kind="invoice_lines", period_end_inclusive=True,
payments_from_paid_invoices=True)``. It prints the wall and CPU time, lines per second and
the child's peak resident memory (``ru_maxrss``) minus the interpreter's baseline after
imports. The same file is then read by ``read_lines`` (the columnar path: no object per
line), with pyarrow and with the ``csv`` module fallback. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

_CHILD = """
import resource, sys, time
import revcrm.io
from revcrm.io import read_csv
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, c = time.perf_counter(), time.process_time()
report = read_csv(sys.argv[1], kind="invoice_lines", timezone="UTC",
                  period_end_inclusive=True, payments_from_paid_invoices=True)
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, base, peak, cpu, len(report.book.invoices), len(report.book.transactions))
"""


_LINES_CHILD = """
import resource, sys, time
from revcrm.io import read_lines
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, c = time.perf_counter(), time.process_time()
report = read_lines(sys.argv[1], timezone="UTC", period_end_inclusive=True, engine=sys.argv[2])
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, base, peak, cpu, len(report.lines), report.engine)
"""


def write_csv(path: Path, lines: int, credit_every: int = 0) -> None:
    start = date(2020, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["invoice_id", "customer_id", "amount", "currency", "issued_at", "status",
             "period_start", "period_end", "description"]
        )  # fmt: skip
        written = i = 0
        while written < lines:
            month = i % 12
            first = date(start.year + (month // 12), month + 1, 1)
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            day, end = first.isoformat(), last.isoformat()
            invoice = [f"in_{i}", f"cus_{i // 12}"]
            status = "open" if i % 17 == 0 else "paid"
            rows = [[*invoice, f"{10 + i % 90}.{i % 100:02d}", "usd", day, status, day, end,
                     "Hosting plan"]]  # fmt: skip
            if credit_every and i % credit_every == 0:
                rows.append([*invoice, "-5.00", "usd", day, status, "", "", "Credit note"])
            if credit_every and i % (2 * credit_every) == 0:
                half = first.replace(day=16).isoformat()
                rows.append([*invoice, "-4.00", "usd", day, status, half, end, "Unused time"])
            w.writerows(rows[: lines - written])
            written += len(rows)
            i += 1


def _report(what: str, lines: int, size: int, out: list[str], made: str) -> None:
    elapsed, base, peak, cpu = float(out[0]), int(out[1]), int(out[2]), float(out[3])
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    print(
        f"{lines:>9,} lines ({size / 1e6:,.0f} MB CSV), {what:<22} {elapsed:6.2f} s "
        f"(CPU {cpu:.2f} s), "
        f"{lines / elapsed:>9,.0f} lines/s, peak RSS {peak * scale / 1e6:,.0f} MB "
        f"({(peak - base) * scale / 1e6:,.0f} MB over the {base * scale / 1e6:,.0f} MB baseline); "
        f"{made}"
    )


def run(lines: int, readers: list[str], credit_every: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.csv"
        write_csv(path, lines, credit_every)
        size = path.stat().st_size
        if "csv" in readers:
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            _report("read_csv:", lines, size, out, f"{out[4]} invoices, {out[5]} payments")
        if "lines" in readers:
            for engine in ("arrow", "python"):
                out = subprocess.run(
                    [sys.executable, "-c", _LINES_CHILD, str(path), engine],
                    capture_output=True, text=True, check=True,
                ).stdout.split()  # fmt: skip
                _report(f"read_lines ({out[5]}):", lines, size, out, f"{out[4]} recurring lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[250_000])
    parser.add_argument("--readers", nargs="+", choices=["csv", "lines"], default=["csv", "lines"])
    parser.add_argument(
        "--credit-every", type=int, default=0, help="a credit note on every K-th invoice"
    )
    args = parser.parse_args()
    for n in args.lines:
        run(n, args.readers, max(0, args.credit_every))


if __name__ == "__main__":
    main()
