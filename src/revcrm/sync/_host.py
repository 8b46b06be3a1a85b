"""HostSync: a host's current-state tables become appended revcrm history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, tzinfo
from typing import TypeVar

import attrs

from revcrm._records import CreditEntry, Customer, Invoice, Product, Transaction
from revcrm._subscription import Subscription, SubscriptionChange
from revcrm.errors import ConflictError, NotFoundError, ValidationError
from revcrm.storage import ImportResult, Store, Versioned
from revcrm.storage._protocols import CurrentState
from revcrm.sync._records import check_credit, check_invoice, check_transaction, upsert
from revcrm.sync._services import StaleStateError, changes_from_state, new_subscription
from revcrm.sync._state import HostZone, ServiceState

__all__ = ["AppliedChange", "HostSync", "SyncReport"]

_R = TypeVar("_R")


@attrs.frozen(kw_only=True)
class AppliedChange:
    """One change a sync appended to a stored service's history."""

    subscription_id: str
    change: SubscriptionChange


@attrs.frozen(kw_only=True)
class SyncReport:
    """What one sync call did: records created, changed and found equal (nothing written).

    ``changes`` lists the changes appended to services revcrm already held (a created
    service's history is not listed); ``skipped`` the ids of host services that are no
    subscription (one-time sales).
    """

    kind: str
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: tuple[str, ...] = ()
    changes: tuple[AppliedChange, ...] = ()

    @property
    def written(self) -> int:
        return self.created + self.changed

    @classmethod
    def of_import(cls, kind: str, result: ImportResult) -> SyncReport:
        return cls(
            kind=kind, created=result.inserted, changed=result.updated, unchanged=result.unchanged
        )


def _batch(kind: str, records: Iterable[_R], cls: type) -> list[_R]:
    if isinstance(records, str | bytes | cls) or not isinstance(records, Iterable):
        raise ValidationError(kind, records, f"expected an iterable of {cls.__name__}")
    items = list(records)
    seen: set[str] = set()
    for i, r in enumerate(items):
        if not isinstance(r, cls):
            raise ValidationError(f"{kind}[{i}]", r, f"expected a {cls.__name__}")
        key: str = r.id  # type: ignore[attr-defined]
        if key in seen:
            raise ValidationError(f"{kind}[{i}].id", key, "appears twice in one batch")
        seen.add(key)
    return items


class _Reader:
    """Reads a stored service's whole history once, and only when a change needs it,
    checking that it is still the version whose current state was compared."""

    __slots__ = ("_found", "_read", "_store")

    def __init__(self, store: Store, found: CurrentState) -> None:
        self._store = store
        self._found = found
        self._read: Versioned[Subscription] | None = None

    def versioned(self) -> Versioned[Subscription]:
        if self._read is None:
            key, version = self._found.id, self._found.version
            try:
                read = self._store.subscriptions.get_versioned(key)
            except NotFoundError:
                raise ConflictError("subscription", key, version, None) from None
            if read.version != version:
                raise ConflictError("subscription", key, version, read.version)
            self._read = read
        return self._read

    def record(self) -> Subscription:
        return self.versioned().record


class HostSync:
    """Turns a host panel's current rows into revcrm records, appending history only.

    ``timezone`` is the host's time zone (a zoneinfo name or a ``tzinfo``): naive host
    datetimes are read in it, and a ``date`` means the start of that day there. It is
    never the machine's zone. Every call is one all-or-nothing batch (``with
    store.transaction():``) and returns a :class:`SyncReport`; running it again on the same
    rows writes nothing.
    """

    def __init__(self, store: Store, *, timezone: str | tzinfo) -> None:
        if not all(hasattr(store, a) for a in ("transaction", "subscriptions", "customers")):
            raise ValidationError("store", store, "expected a revcrm.storage.Store")
        self._store = store
        self._zone = HostZone(timezone)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def timezone(self) -> tzinfo:
        return self._zone.zone

    def moment(self, value: object, field: str = "at") -> datetime:
        """A host moment (naive datetime, aware datetime or date) as an aware UTC datetime."""
        return self._zone.moment(value, field)

    def optional_moment(self, value: object, field: str = "at") -> datetime | None:
        return self._zone.optional(value, field)

    # -- services -----------------------------------------------------------------------

    def services(
        self,
        states: Iterable[ServiceState],
        *,
        observed_at: datetime | date,
        allow_backdating: bool = False,
    ) -> SyncReport:
        """Sync the host's current view of services, observed at ``observed_at``.

        An unknown id creates the subscription (see :func:`new_subscription`). A known id
        is compared with its stored last state, and the implied changes are appended,
        each at the host's own moment for it or at ``observed_at``, never before a change
        already stored. A state equal to the stored one writes nothing.

        A state observed before the last stored change of its service raises
        :class:`StaleStateError` (when it implies any change) and the batch writes nothing.
        With ``allow_backdating=True`` it is accepted and its changes are recorded at the
        last stored change instead (history stays append-only, but the MRR from that
        moment on may change, which is what back-dating means).
        """
        observed = self._zone.moment(observed_at, "observed_at")
        if not isinstance(allow_backdating, bool):
            raise ValidationError("allow_backdating", allow_backdating, "expected a bool")
        items = _batch("services", states, ServiceState)
        store = self._store
        created: list[Subscription] = []
        skipped: list[str] = []
        applied: list[AppliedChange] = []
        changed = unchanged = 0
        with store.transaction():
            # Current states only: an unchanged service (most of a nightly re-sync) is
            # compared without reading or replaying its history.
            stored = store.subscriptions.current_states([s.id for s in items])
            for s in items:
                found = stored.get(s.id)
                if found is None:
                    if s.recurring:
                        created.append(new_subscription(s, self._zone, observed))
                    else:
                        skipped.append(s.id)
                    continue
                if found.customer_id != s.customer_id:
                    raise ValidationError(
                        f"services[{s.id}].customer_id",
                        s.customer_id,
                        f"the service belongs to customer {found.customer_id}",
                    )
                if not s.recurring:
                    raise ValidationError(
                        f"services[{s.id}].cycle",
                        str(s.cycle),
                        "a stored service cannot become one-time",
                    )
                read = _Reader(store, found)
                changes = changes_from_state(
                    found.state, found.last_change_at, read.record, s, self._zone, observed
                )
                last = found.last_change_at
                if changes and observed < last and not allow_backdating:
                    raise StaleStateError(s.id, observed, last)
                if not changes and found.details == s.details:
                    unchanged += 1
                    continue
                self._write_service(read.versioned(), changes, s.details)
                applied.extend(AppliedChange(subscription_id=s.id, change=c) for c in changes)
                changed += 1
            if created:
                store.subscriptions.upsert_many(created)
        return SyncReport(
            kind="services",
            created=len(created),
            changed=changed,
            unchanged=unchanged,
            skipped=tuple(skipped),
            changes=tuple(applied),
        )

    def _write_service(
        self,
        current: Versioned[Subscription],
        changes: Sequence[SubscriptionChange],
        details: tuple[tuple[str, str], ...],
    ) -> None:
        repo = self._store.subscriptions
        version, record = current.version, current.record
        for change in changes:
            written = repo.append(record.id, change, expected_version=version)
            version, record = written.version, written.record
        if record.details != details:
            repo.upsert(attrs.evolve(record, details=details), expected_version=version)

    # -- the other host tables ---------------------------------------------------------------

    def products(self, records: Iterable[Product]) -> SyncReport:
        """Upsert the host's products by id; equal ones write nothing."""
        items = _batch("products", records, Product)
        return SyncReport.of_import(
            "products", upsert(self._store, self._store.products, items, None)
        )

    def customers(self, records: Iterable[Customer]) -> SyncReport:
        """Upsert customers by id (the host's id as a string); equal ones write nothing."""
        items = _batch("customers", records, Customer)
        result = upsert(self._store, self._store.customers, items, None)
        return SyncReport.of_import("customers", result)

    def invoices(self, records: Iterable[Invoice]) -> SyncReport:
        """Upsert invoices by id; the status may move, moments already stored are kept
        (see :func:`revcrm.sync.check_invoice`)."""
        items = _batch("invoices", records, Invoice)
        result = upsert(self._store, self._store.invoices, items, check_invoice)
        return SyncReport.of_import("invoices", result)

    def transactions(self, records: Iterable[Transaction]) -> SyncReport:
        """Upsert payments and refunds by id; a pending one may settle, a settled one is
        immutable (:class:`ImmutableRecordError`)."""
        items = _batch("transactions", records, Transaction)
        result = upsert(self._store, self._store.transactions, items, check_transaction)
        return SyncReport.of_import("transactions", result)

    def credits(self, records: Iterable[CreditEntry]) -> SyncReport:
        """Write the host's credit entries into the store's ledger by id; entries are
        immutable once written."""
        items = _batch("credits", records, CreditEntry)
        result = upsert(self._store, self._store.credits, items, check_credit)
        return SyncReport.of_import("credits", result)
