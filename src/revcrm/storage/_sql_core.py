"""Every job of the SQL store in one class, before its repositories are attached.

The jobs build on :class:`~revcrm.storage._sql_base.SQLBase` side by side (none imports
another's module but through this one), so the repositories (``_sql_repos``) can be typed
against the whole store without importing :mod:`revcrm.storage._sql`.
"""

from __future__ import annotations

from revcrm.storage._sql_customers import SQLCustomerList
from revcrm.storage._sql_metrics import SQLMetrics
from revcrm.storage._sql_write import SQLWrites

__all__ = ["SQLCore"]


class SQLCore(SQLMetrics, SQLCustomerList, SQLWrites):
    """Migrations, writes, reads, segments, the customer list and the metric aggregates."""
