"""Pure revenue metrics over a :class:`revcrm.Book`.

Every function takes the book and explicit moments or periods; nothing here reads the
clock, the environment or a database.
"""

from revcrm.metrics._mrr import mrr, subscription_mrr, subscription_mrr_timeline
from revcrm.metrics._normalise import monthly_amount
from revcrm.metrics._policy import (
    ChurnDenominator,
    ChurnRecognition,
    DiscountPolicy,
    FxDateRule,
    MetricsPolicy,
)

__all__ = [
    "ChurnDenominator",
    "ChurnRecognition",
    "DiscountPolicy",
    "FxDateRule",
    "MetricsPolicy",
    "monthly_amount",
    "mrr",
    "subscription_mrr",
    "subscription_mrr_timeline",
]
