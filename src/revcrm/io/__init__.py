"""Importers: Stripe API objects, CSV files and data frames into a :class:`revcrm.Book`.

See ``docs/import.md``.
"""

from revcrm.io._stripe import IGNORED_OBJECTS, from_stripe
from revcrm.io._stripe_common import STRIPE_API_VERSION, THREE_DECIMAL, ZERO_DECIMAL
from revcrm.io._stripe_subscriptions import STATUS_MAP

__all__ = [
    "IGNORED_OBJECTS",
    "STATUS_MAP",
    "STRIPE_API_VERSION",
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "from_stripe",
]
