"""CSV import benchmark: time and peak memory of ``read_csv`` and ``read_lines`` over invoice lines.

    .venv/bin/python benchmarks/bench_import.py --lines 250000 1000000 [--readers lines]

For each size it writes a CSV of monthly invoice lines (one line per invoice; one customer
per 12 lines; a paid or open status; lowercase currency; inclusive service end dates) to a
temporary file (writing is not timed), then, in a fresh child process each, reads it with
``read_csv(kind="invoice_lines", period_end_inclusive=True,
payments_from_paid_invoices=True)``. It prints the wall time, lines per second and the
child's peak resident memory (``ru_maxrss``) minus the interpreter's baseline after
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
t = time.perf_counter()
report = read_csv(sys.argv[1], kind="invoice_lines", timezone="UTC",
                  period_end_inclusive=True, payments_from_paid_invoices=True)
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, base, peak, len(report.book.invoices), len(report.book.transactions))
"""


_LINES_CHILD = """
import resource, sys, time
from revcrm.io import read_lines
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
report = read_lines(sys.argv[1], timezone="UTC", period_end_inclusive=True, engine=sys.argv[2])
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, base, peak, len(report.lines), report.engine)
"""


def write_csv(path: Path, lines: int) -> None:
    start = date(2020, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["invoice_id", "customer_id", "amount", "currency", "issued_at", "status",
             "period_start", "period_end", "description"]
        )  # fmt: skip
        for i in range(lines):
            month = i % 12
            first = date(start.year + (month // 12), month + 1, 1)
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
            w.writerow(
                [f"in_{i}", f"cus_{i // 12}", f"{10 + i % 90}.{i % 100:02d}", "usd",
                 first.isoformat(), "open" if i % 17 == 0 else "paid", first.isoformat(),
                 last.isoformat(), "Hosting plan"]
            )  # fmt: skip


def _report(what: str, lines: int, size: int, out: list[str], made: str) -> None:
    elapsed, base, peak = float(out[0]), int(out[1]), int(out[2])
    scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    print(
        f"{lines:>9,} lines ({size / 1e6:,.0f} MB CSV), {what:<22} {elapsed:6.2f} s, "
        f"{lines / elapsed:>9,.0f} lines/s, peak RSS {peak * scale / 1e6:,.0f} MB "
        f"({(peak - base) * scale / 1e6:,.0f} MB over the {base * scale / 1e6:,.0f} MB baseline); "
        f"{made}"
    )


def run(lines: int, readers: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.csv"
        write_csv(path, lines)
        size = path.stat().st_size
        if "csv" in readers:
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            _report("read_csv:", lines, size, out, f"{out[3]} invoices, {out[4]} payments")
        if "lines" in readers:
            for engine in ("arrow", "python"):
                out = subprocess.run(
                    [sys.executable, "-c", _LINES_CHILD, str(path), engine],
                    capture_output=True, text=True, check=True,
                ).stdout.split()  # fmt: skip
                _report(f"read_lines ({out[4]}):", lines, size, out, f"{out[3]} recurring lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, nargs="+", default=[250_000])
    parser.add_argument("--readers", nargs="+", choices=["csv", "lines"], default=["csv", "lines"])
    args = parser.parse_args()
    for n in args.lines:
        run(n, args.readers)


if __name__ == "__main__":
    main()
