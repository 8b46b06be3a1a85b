"""revcrm: a revenue-focused CRM library over a host application's billing records.

The public API is re-exported here; modules whose names start with ``_`` are private.
"""

from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._discount import Discount, DiscountDuration
from revcrm._facade import CRM, CustomerListRow, MergeResult
from revcrm._facade_credits import CreditAuthority, HostCreditAdjuster
from revcrm._money import (
    DEFAULT_ROUNDING,
    MAX_DIGITS,
    MAX_MAGNITUDE,
    MAX_PLACES,
    MAX_RATE,
    MAX_RATE_DIGITS,
    MIN_RATE,
    FxRates,
    Money,
    format_money,
)
from revcrm._records import (
    AttributeValue,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    PaymentMethod,
    Plan,
    Product,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._referral import ReferralKind, ReferralSource
from revcrm._subscription import (
    ChangeKind,
    Subscription,
    SubscriptionChange,
    SubscriptionState,
    SubscriptionStatus,
)
from revcrm._time import MAX_DATE, MIN_DATE
from revcrm._version import __version__

__all__ = [
    "CRM",
    "DEFAULT_ROUNDING",
    "MAX_DATE",
    "MAX_DIGITS",
    "MAX_MAGNITUDE",
    "MAX_PLACES",
    "MAX_RATE",
    "MAX_RATE_DIGITS",
    "MIN_DATE",
    "MIN_RATE",
    "AttributeValue",
    "BillingCycle",
    "Book",
    "ChangeKind",
    "CreditAuthority",
    "CreditEntry",
    "Customer",
    "CustomerListRow",
    "CycleUnit",
    "Discount",
    "DiscountDuration",
    "FxRates",
    "HostCreditAdjuster",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "LineKind",
    "MergeResult",
    "Money",
    "PaymentMethod",
    "Plan",
    "Product",
    "ReferralKind",
    "ReferralSource",
    "Subscription",
    "SubscriptionChange",
    "SubscriptionState",
    "SubscriptionStatus",
    "Transaction",
    "TransactionKind",
    "TransactionStatus",
    "__version__",
    "format_money",
]
