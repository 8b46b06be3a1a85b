"""The service and invoice rules, defined in :mod:`revcrm._crm_services` (below both the
CRM and the segments, which read them too) and importable from here as before."""

from revcrm._crm_services import (
    CustomerStatus,
    customer_book,
    customer_status,
    invoice_overdue,
    invoice_unpaid,
    is_active_service,
    is_troubled_service,
    pending_cancellation,
    status_from,
)

__all__ = [
    "CustomerStatus",
    "customer_book",
    "customer_status",
    "invoice_overdue",
    "invoice_unpaid",
    "is_active_service",
    "is_troubled_service",
    "pending_cancellation",
    "status_from",
]
