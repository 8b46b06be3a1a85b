"""Importers: Stripe API objects, CSV files and data frames into a :class:`revcrm.Book`.

See ``docs/import.md``. For MRR over many invoice lines, :func:`read_lines` reads a CSV
file or a table (pandas, polars, Arrow) straight into columns (no object per line), with
``read_csv``'s options, validation and errors; ``pyarrow`` (extras ``pandas``/``bench``)
makes it fast, the ``csv`` module is the fallback::

    report = read_lines("lines.csv", timezone="UTC", period_end_inclusive=True)
    report.lines  # LineColumns: customer, stream, currency, start, end, net (int64)
    analysis = revcrm.metrics.analyse_lines(report.lines, currency="USD")
"""

from revcrm._ledger._columns import LineColumns
from revcrm.io._columnar import LinesReport, read_lines
from revcrm.io._columns import FIELDS, REQUIRED, RowError
from revcrm.io._csv import ImportReport, from_frame, read_csv
from revcrm.io._stripe import IGNORED_OBJECTS, from_stripe
from revcrm.io._stripe_common import STRIPE_API_VERSION, THREE_DECIMAL, ZERO_DECIMAL
from revcrm.io._stripe_subscriptions import STATUS_MAP

__all__ = [
    "FIELDS",
    "IGNORED_OBJECTS",
    "REQUIRED",
    "STATUS_MAP",
    "STRIPE_API_VERSION",
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "ImportReport",
    "LineColumns",
    "LinesReport",
    "RowError",
    "from_frame",
    "from_stripe",
    "read_csv",
    "read_lines",
]
