"""What the facade's units of work share: per-customer locks in one order, a bounded
retry of a unit that lost a race, and the checks of ids passed to reads.

Lock order (documented in ``docs/facade.md``): a unit of work that writes several
customers' records locks them all at its start, in sorted id order, with
``store.lock(ids)``; the billing store's own writes of a customer's transactions,
invoices and credits take that customer's lock first. Two units of work therefore never
wait on each other in opposite orders. A :class:`~revcrm.errors.TransientError` (a
deadlock or serialisation failure the database resolved by rolling the unit back) is
retried a bounded number of times when revcrm opened the unit of work itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, TypeVar

from revcrm._time import MAX_DATE, MIN_DATE, as_of_moment
from revcrm.errors import TransientError, ValidationError
from revcrm.metrics._dashboard import MAX_TREND_MONTHS
from revcrm.storage._protocols import Store
from revcrm.storage._query import read_text

__all__ = [
    "ATTEMPTS",
    "MAX_TREND_MONTHS",
    "REPORTING_YEARS",
    "in_transaction",
    "lock_customers",
    "read_id",
    "reporting_moment",
    "retrying",
    "trend_months",
]

_T = TypeVar("_T")

#: How many times a unit of work that lost a race (TransientError) is run in all.
ATTEMPTS: Final = 3

#: The years a report's ``as_of`` may fall in (revcrm._time's supported date range): a
#: trend or a period reaching back from it (up to :data:`MAX_TREND_MONTHS`) stays inside
#: the calendar a datetime can hold.
REPORTING_YEARS: Final = (MIN_DATE.year, MAX_DATE.year)


def reporting_moment(value: object, field: str) -> datetime:
    """A report's moment (a date means 00:00 UTC), inside the supported date range."""
    return as_of_moment(value, field)


def trend_months(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("trend_months", value, "expected a whole number of months")
    if not 1 <= value <= MAX_TREND_MONTHS:
        raise ValidationError("trend_months", value, f"expected 1 to {MAX_TREND_MONTHS}")
    return value


def read_id(value: object, field: str) -> str:
    """An id passed to a read or write: a non-empty string a database can hold (the store
    layer's :func:`~revcrm.storage._query.read_text`: no NUL, no lone surrogate), else a
    :class:`~revcrm.errors.ValidationError` naming ``field``."""
    text = read_text(value, field)
    if not text:
        raise ValidationError(field, value, "expected a non-empty string id")
    return text


def lock_customers(store: Store, customer_ids: Iterable[object]) -> None:
    """Take the billing store's per-customer locks (sorted, inside its transaction)."""
    ids = {read_id(c, "customer_id") for c in customer_ids}
    store.lock(sorted(ids))


def in_transaction(store: Store) -> bool:
    """Whether this thread is inside an open ``store.transaction()``."""
    # A retry re-runs the whole unit of work: only possible when this call opened it (a
    # host's enclosing transaction was rolled back as a whole and is the host's to retry).
    # TODO(store API): a public store.in_transaction(); meanwhile the SQL store's
    # thread-local connection, or the in-memory store's lock owner, says it.
    local = getattr(store, "_local", None)
    if local is not None:
        return getattr(local, "conn", None) is not None
    return getattr(store, "_owner", None) == threading.get_ident()


def retrying(store: Store, unit: Callable[[], _T], *, attempts: int = ATTEMPTS) -> _T:
    """Run ``unit`` (which opens its own ``store.transaction()``), again on a
    :class:`~revcrm.errors.TransientError`, at most ``attempts`` times in all."""
    if in_transaction(store):
        return unit()
    for attempt in range(1, attempts + 1):
        try:
            return unit()
        except TransientError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
