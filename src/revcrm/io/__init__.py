"""Importers: Stripe API objects, CSV files and data frames into a :class:`revcrm.Book`.

See ``docs/import.md``.
"""

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
    "RowError",
    "from_frame",
    "from_stripe",
    "read_csv",
]
