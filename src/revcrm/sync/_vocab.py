"""Hosting-panel vocabularies: billing cycles, service and invoice statuses, host ids."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Final

from revcrm._cycles import BillingCycle
from revcrm._records import InvoiceStatus
from revcrm._subscription import SubscriptionStatus
from revcrm.errors import ValidationError

__all__ = [
    "NonRecurring",
    "host_cycle",
    "host_id",
    "invoice_status",
    "optional_host_id",
    "service_status",
]

_SEPARATORS: Final = re.compile(r"[\s_-]+")


def _key(text: str) -> str:
    return _SEPARATORS.sub("", text.strip().lower())


class NonRecurring(enum.StrEnum):
    """A panel "billing cycle" that is not a cycle.

    ``ONE_TIME``: a one-off sale; it is no subscription (its revenue is its invoice lines),
    so :meth:`HostSync.services` skips it. ``FREE``: a free account; it is a subscription
    at price zero on a monthly cycle, so it counts as an active service with MRR zero.
    """

    ONE_TIME = "one_time"
    FREE = "free"


_NON_RECURRING: Final = {
    "onetime": NonRecurring.ONE_TIME,
    "freeaccount": NonRecurring.FREE,
    "free": NonRecurring.FREE,
}


def host_cycle(value: object) -> BillingCycle | NonRecurring:
    """A panel's billing cycle word: a :class:`~revcrm.BillingCycle` or a :class:`NonRecurring`.

    Recurring words are read by :meth:`BillingCycle.parse` (Monthly, Quarterly,
    Semi-Annually, Annually, Biennially, Triennially, "12 months"...); "One Time" and "Free
    Account" give :class:`NonRecurring`.
    """
    if isinstance(value, BillingCycle | NonRecurring):
        return value
    if not isinstance(value, str):
        raise ValidationError("cycle", value, "expected a BillingCycle or a cycle name")
    found = _NON_RECURRING.get(_key(value))
    return found if found is not None else BillingCycle.parse(value)


_SERVICE: Final = {
    "pending": SubscriptionStatus.PENDING,
    "active": SubscriptionStatus.ACTIVE,
    "suspended": SubscriptionStatus.SUSPENDED,
    "terminated": SubscriptionStatus.TERMINATED,
    "cancelled": SubscriptionStatus.CANCELLED,
    "canceled": SubscriptionStatus.CANCELLED,
    # An order flagged as fraud is a service that ends: no revenue is expected from it.
    "fraud": SubscriptionStatus.TERMINATED,
    "trialing": SubscriptionStatus.TRIALING,
    "pastdue": SubscriptionStatus.PAST_DUE,
}


def service_status(value: object) -> SubscriptionStatus:
    """A panel's service status: Pending, Active, Suspended, Terminated, Cancelled, Fraud.

    Fraud is read as ``TERMINATED``. A :class:`~revcrm.SubscriptionStatus` (or its value)
    is accepted as is.
    """
    if isinstance(value, SubscriptionStatus):
        return value
    if not isinstance(value, str):
        raise ValidationError("status", value, "expected a service status name")
    found = _SERVICE.get(_key(value))
    if found is None:
        raise ValidationError("status", value, f"unknown service status; one of {_words(_SERVICE)}")
    return found


_INVOICE: Final = {
    "draft": InvoiceStatus.DRAFT,
    "unpaid": InvoiceStatus.OPEN,
    "open": InvoiceStatus.OPEN,
    "paymentpending": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    # The money came in; giving it back is a refund Transaction, which cash metrics net.
    "refunded": InvoiceStatus.PAID,
    "cancelled": InvoiceStatus.VOID,
    "canceled": InvoiceStatus.VOID,
    "void": InvoiceStatus.VOID,
    "collections": InvoiceStatus.UNCOLLECTIBLE,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}


def invoice_status(value: object) -> InvoiceStatus:
    """A panel's invoice status as an :class:`~revcrm.InvoiceStatus`.

    Unpaid and Payment Pending are ``OPEN`` (overdue is derived from the due date), Paid
    and Refunded are ``PAID`` (the refund itself is a refund transaction), Cancelled is
    ``VOID``, Collections is ``UNCOLLECTIBLE`` and Draft is ``DRAFT``.
    """
    if isinstance(value, InvoiceStatus):
        return value
    if not isinstance(value, str):
        raise ValidationError("status", value, "expected an invoice status name")
    found = _INVOICE.get(_key(value))
    if found is None:
        raise ValidationError("status", value, f"unknown invoice status; one of {_words(_INVOICE)}")
    return found


def _words(table: Mapping[str, object]) -> str:
    return ", ".join(sorted(table))


def host_id(value: object, field: str = "id") -> str:
    """A host id as revcrm's string id: integers are written in decimal, strings stripped.

    Booleans, floats and empty strings are refused (``ValidationError`` naming ``field``).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(field, value, "a host id is an integer or a string")
    text = str(value).strip()
    if not text:
        raise ValidationError(field, value, "must not be empty")
    return text


def optional_host_id(value: object, field: str) -> str | None:
    return None if value is None else host_id(value, field)
