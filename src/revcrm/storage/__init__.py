"""Storage: the protocols host applications implement or use, and revcrm's backends.

* :mod:`revcrm.storage` protocols (:class:`Store` and one repository per aggregate) and
  the query and result values they exchange;
* :class:`InMemoryStore`: thread-safe, for tests and small tools;
* :class:`SQLStore`: SQLAlchemy Core 2 over SQLite or PostgreSQL (``revcrm[sql]``,
  ``revcrm[postgres]``). It is imported lazily, so ``import revcrm.storage`` works
  without SQLAlchemy installed.

The contract suite every backend passes lives in :mod:`revcrm.testing.contract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from revcrm.storage._crm import (
    ERASED_TEXT,
    CallRepository,
    ContactRepository,
    CRMStore,
    InMemoryCRMStore,
    IntakeRepository,
    LeadRepository,
    NoteRepository,
    TagRepository,
)
from revcrm.storage._memory import InMemoryStore
from revcrm.storage._protocols import (
    Analytics,
    CreditLedger,
    CurrentState,
    CustomerRepository,
    FxRateRepository,
    InvoiceRepository,
    PlanRepository,
    ProductRepository,
    Repository,
    Store,
    SubscriptionRepository,
    TransactionRepository,
    UnitOfWork,
)
from revcrm.storage._query import (
    MAX_LIMIT,
    CashMonth,
    CustomerFlow,
    CustomerOptions,
    CustomerPages,
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    CustomerSummary,
    Direction,
    ImportResult,
    Page,
    Period,
    RecordQuery,
    StoreDashboard,
    TrendMonth,
    Versioned,
    cursor_as_of,
)

if TYPE_CHECKING:
    from revcrm.storage._crm_sql import SQLCRMStore
    from revcrm.storage._sql import SQLStore

__all__ = [
    "ERASED_TEXT",
    "MAX_LIMIT",
    "Analytics",
    "CRMStore",
    "CallRepository",
    "CashMonth",
    "ContactRepository",
    "CreditLedger",
    "CurrentState",
    "CustomerFlow",
    "CustomerOptions",
    "CustomerPages",
    "CustomerQuery",
    "CustomerRepository",
    "CustomerRow",
    "CustomerSort",
    "CustomerSummary",
    "Direction",
    "FxRateRepository",
    "ImportResult",
    "InMemoryCRMStore",
    "InMemoryStore",
    "IntakeRepository",
    "InvoiceRepository",
    "LeadRepository",
    "NoteRepository",
    "Page",
    "Period",
    "PlanRepository",
    "ProductRepository",
    "RecordQuery",
    "Repository",
    "SQLCRMStore",
    "SQLStore",
    "Store",
    "StoreDashboard",
    "SubscriptionRepository",
    "TagRepository",
    "TransactionRepository",
    "TrendMonth",
    "UnitOfWork",
    "Versioned",
    "cursor_as_of",
]


def __getattr__(name: str) -> Any:
    # SQLStore needs SQLAlchemy (the ``sql`` extra): load it on first use only.
    if name == "SQLStore":
        from revcrm.storage._sql import SQLStore

        return SQLStore
    if name == "SQLCRMStore":
        from revcrm.storage._crm_sql import SQLCRMStore

        return SQLCRMStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
