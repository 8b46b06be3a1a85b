"""Pure revenue metrics over a :class:`revcrm.Book`.

Every function takes the book and explicit moments or periods; nothing here reads the
clock, the environment or a database.
"""

from revcrm.metrics._churn import (
    ChurnPoint,
    ChurnRate,
    Cohort,
    CohortCell,
    MrrChurn,
    RevenueRetention,
    churn_series,
    cohorts,
    customer_churn_rate,
    customer_retention_rate,
    customers_at,
    mrr_churn,
    quick_ratio,
    revenue_retention,
)
from revcrm.metrics._dashboard import (
    CashRevenue,
    Dashboard,
    MonthTrend,
    cash_revenue,
    dashboard,
    format_dashboard,
)
from revcrm.metrics._engine import (
    Frequency,
    Movement,
    MovementKind,
    MrrAnalysis,
    MrrPoint,
    MrrSource,
    Waterfall,
    analyse,
    mrr_movements,
    mrr_series,
    mrr_waterfall,
)
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
    "CashRevenue",
    "ChurnDenominator",
    "ChurnPoint",
    "ChurnRate",
    "ChurnRecognition",
    "Cohort",
    "CohortCell",
    "Dashboard",
    "DiscountPolicy",
    "Frequency",
    "FxDateRule",
    "MetricsPolicy",
    "MonthTrend",
    "Movement",
    "MovementKind",
    "MrrAnalysis",
    "MrrChurn",
    "MrrPoint",
    "MrrSource",
    "RevenueRetention",
    "Waterfall",
    "analyse",
    "cash_revenue",
    "churn_series",
    "cohorts",
    "customer_churn_rate",
    "customer_retention_rate",
    "customers_at",
    "dashboard",
    "format_dashboard",
    "monthly_amount",
    "mrr",
    "mrr_churn",
    "mrr_movements",
    "mrr_series",
    "mrr_waterfall",
    "quick_ratio",
    "revenue_retention",
    "subscription_mrr",
    "subscription_mrr_timeline",
]
