"""Every job of the SQL store in one class, before its repositories are attached.

Each job is a class over :class:`~revcrm.storage._sql_base.SQLBase` in its own module,
importing only the jobs it builds on (writes on migrations, the customer list and the
metrics on segments); the repositories (``_sql_repos``) are typed against this class, so
nothing imports :mod:`revcrm.storage._sql` but the package.
"""

from __future__ import annotations

from revcrm.storage._sql_customers import SQLCustomerList
from revcrm.storage._sql_dashboard import SQLDashboard
from revcrm.storage._sql_write import SQLWrites

__all__ = ["SQLCore"]


class SQLCore(SQLDashboard, SQLCustomerList, SQLWrites):
    """Migrations, writes, reads, segments, the customer list and the metric aggregates."""
