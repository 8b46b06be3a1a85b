"""Host sync: a hosting panel's current-state tables become revcrm history.

A panel keeps the current row of each service (status, price, cycle, next due date) plus
invoices and payments; revcrm keeps each subscription's history. :class:`HostSync` reads
the host's rows (as :class:`ServiceState` values and revcrm records) and appends what
changed, so a nightly full re-sync is safe: stored history is never rewritten and an
unchanged row writes nothing. See ``docs/sync.md``.

Host ids may be integers; :func:`host_id` (used by :class:`ServiceState`) writes them as
decimal strings, and a host builds its records with ``host_id(row.id)`` the same way.
"""

from revcrm.sync._host import AppliedChange, HostSync, SyncReport
from revcrm.sync._records import (
    ImmutableRecordError,
    check_credit,
    check_invoice,
    check_transaction,
)
from revcrm.sync._services import StaleStateError, implied_changes, new_subscription
from revcrm.sync._state import HostMoment, HostZone, ServiceState
from revcrm.sync._vocab import (
    NonRecurring,
    host_cycle,
    host_id,
    invoice_status,
    optional_host_id,
    service_status,
)

__all__ = [
    "AppliedChange",
    "HostMoment",
    "HostSync",
    "HostZone",
    "ImmutableRecordError",
    "NonRecurring",
    "ServiceState",
    "StaleStateError",
    "SyncReport",
    "check_credit",
    "check_invoice",
    "check_transaction",
    "host_cycle",
    "host_id",
    "implied_changes",
    "invoice_status",
    "new_subscription",
    "optional_host_id",
    "service_status",
]
