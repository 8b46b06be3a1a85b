"""The storage contract: one small Protocol per aggregate, a unit of work, and a Store.

A host panel either uses a backend revcrm ships (:class:`~revcrm.storage.InMemoryStore`,
:class:`~revcrm.storage.SQLStore`) or implements these protocols over its own tables and
checks itself with the contract suite in :mod:`revcrm.testing.contract`.

Rules every implementation follows (the contract suite checks each):

* Reads of a missing id raise :class:`~revcrm.errors.NotFoundError`; ``find`` returns None.
* ``upsert`` is idempotent: writing a record equal to the stored one changes nothing (not
  even its version). A changed record gets version + 1. With ``expected_version`` the
  write happens only if the stored version is that number (0: the record must not exist);
  otherwise :class:`~revcrm.errors.ConflictError`.
* A reference to a missing record raises :class:`~revcrm.errors.UnknownReferenceError`; an
  external id already used by another record raises :class:`~revcrm.errors.DuplicateError`.
  Invalid values raise :class:`~revcrm.errors.ValidationError`. Nothing is written then.
* Every write is atomic; ``with store.transaction():`` makes a group of writes atomic
  (nested blocks are savepoints). Any exception leaving the block rolls it back.
* Listings take keyword-only options and return a :class:`Page` with a keyset cursor;
  a cursor the store did not issue for that query is a ValidationError, and so is an
  unknown ``status`` or ``kind`` filter value.
* Text arguments of reads (ids, filters, cursors) that no backend can encode (a lone
  surrogate, a NUL) are ValidationErrors naming the argument, as on writes.

Room for the CRM and leads issues: notes, tags, referral sources, intake answers, leads
with their history, marketing spend and survey responses each get a Protocol here, an
attribute on :class:`Store`, a forward migration of the SQL schema and a test class in the
contract suite, following the billing repositories below.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, TypeVar, Unpack

import attrs

from revcrm._book import Book
from revcrm._money import FxRates, Money
from revcrm._records import CreditEntry, Customer, Invoice, Plan, Product, Transaction
from revcrm._subscription import Subscription, SubscriptionChange, SubscriptionState
from revcrm.metrics import MetricsPolicy, MrrPoint
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._segments import LtvBaseline, SegmentCounts
from revcrm.storage._query import (
    CashMonth,
    CustomerFlow,
    CustomerOptions,
    CustomerQuery,
    CustomerRow,
    CustomerSummary,
    Direction,
    ImportResult,
    Page,
    Period,
    StoreDashboard,
    Versioned,
)

__all__ = [
    "Analytics",
    "CreditLedger",
    "CurrentState",
    "CustomerRepository",
    "FxRateRepository",
    "InvoiceRepository",
    "PlanRepository",
    "ProductRepository",
    "Repository",
    "Store",
    "SubscriptionRepository",
    "TransactionRepository",
    "UnitOfWork",
]

_R = TypeVar("_R")


class Repository(Protocol[_R]):
    """What every repository of versioned records offers, keyed by the record's ``id``."""

    def get(self, id: str) -> _R:
        """The record, or :class:`~revcrm.errors.NotFoundError`."""
        ...

    def find(self, id: str) -> _R | None: ...

    def find_by_external_id(self, external_id: str | None) -> _R | None:
        """The record with this external id; None for None (a record without an external
        id is never found by one). An empty external id is a ValidationError."""
        ...

    def get_versioned(self, id: str) -> Versioned[_R]: ...

    def upsert(self, record: _R, *, expected_version: int | None = None) -> int:
        """Insert or replace ``record``; return the version it is stored at."""
        ...

    def upsert_many(self, records: Iterable[_R]) -> ImportResult:
        """Upsert a batch, all or nothing (no version checks: a sync from the host)."""
        ...

    def count(self) -> int: ...


class CustomerRepository(Repository[Customer], Protocol):
    def delete(self, id: str, *, cascade: bool = False) -> int:
        """Delete the customer; with ``cascade`` also every billing record it owns.

        Returns how many records were deleted. The rules (refusals, atomicity) are in
        :mod:`revcrm.storage._delete` and checked by the contract suite.
        """
        ...

    def query(self, q: CustomerQuery) -> Page[CustomerRow]:
        """The customer list of ``q`` (its cursor is checked with the store's own key).

        The page says which moment it used (``Page.as_of``: ``q.as_of``).
        """
        ...

    def page(self, **options: Unpack[CustomerOptions]) -> Page[CustomerRow]:
        """``query(CustomerQuery.of(**options))``: the customer list by keywords
        (:class:`~revcrm.storage.CustomerPages` implements it over :meth:`query`).

        ``as_of=None`` takes the moment from ``cursor`` (the page before's ``as_of``);
        without a cursor it is a ValidationError: a store never reads the clock.
        """
        ...


class ProductRepository(Repository[Product], Protocol):
    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Product]: ...


class PlanRepository(Repository[Plan], Protocol):
    def for_product(self, product_id: str) -> tuple[Plan, ...]: ...

    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Plan]: ...


@attrs.frozen(kw_only=True)
class CurrentState:
    """A stored subscription's current state, without its history.

    ``state`` is ``Subscription.current`` of the stored record (the SQL store keeps it
    materialised with every write), ``last_change_at`` the moment of its last change and
    ``version`` the record's version, for a write that follows.
    """

    id: str
    version: int
    customer_id: str
    details: tuple[tuple[str, str], ...]
    last_change_at: datetime
    state: SubscriptionState

    @classmethod
    def of(cls, sub: Subscription, version: int) -> CurrentState:
        return cls(
            id=sub.id,
            version=version,
            customer_id=sub.customer_id,
            details=sub.details,
            last_change_at=sub.history[-1].at,
            state=sub.current,
        )


class SubscriptionRepository(Repository[Subscription], Protocol):
    """Subscriptions with their whole change history."""

    def for_customer(self, customer_id: str) -> tuple[Subscription, ...]: ...

    def current_states(self, ids: Iterable[str]) -> dict[str, CurrentState]:
        """The current states of the stored subscriptions among ``ids`` (unknown ids are
        left out), read without replaying their histories."""
        ...

    def append(
        self, id: str, change: SubscriptionChange, *, expected_version: int | None = None
    ) -> Versioned[Subscription]:
        """Append one change to the stored history (validated by replaying it)."""
        ...

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Subscription]:
        """Ordered by start, then id; ``since``/``until`` bound the start."""
        ...


class InvoiceRepository(Repository[Invoice], Protocol):
    """Invoices with their lines."""

    def for_customer(self, customer_id: str) -> tuple[Invoice, ...]: ...

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        status: str | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Invoice]:
        """Ordered by issue moment, then id."""
        ...


class TransactionRepository(Repository[Transaction], Protocol):
    def for_customer(self, customer_id: str) -> tuple[Transaction, ...]: ...

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        status: str | None = None,
        kind: str | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Transaction]:
        """Ordered by moment, then id."""
        ...


class CreditLedger(Repository[CreditEntry], Protocol):
    """Credit entries; balances are derived, never stored."""

    def for_customer(self, customer_id: str) -> tuple[CreditEntry, ...]: ...

    def balance(
        self, customer_id: str, currency: str, *, at: date | datetime | None = None
    ) -> Money:
        """Sum of the customer's entries in ``currency`` (up to ``at`` when given)."""
        ...

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CreditEntry]: ...


class FxRateRepository(Protocol):
    """Dated exchange rates, keyed by (day, source, target); writing one again replaces it."""

    def put(self, day: date, source: str, target: str, rate: str | int | Decimal) -> None: ...

    def put_many(self, rates: FxRates) -> ImportResult: ...

    def rates(self) -> FxRates: ...


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing block; nested blocks are savepoints."""
        ...

    def lock(self, customer_ids: Iterable[str]) -> None:
        """Lock these customers exclusively until the outermost transaction ends.

        Only inside :meth:`transaction` (else ValidationError). Locks are taken in id
        order, the one documented lock order: a unit that locks every customer it will
        write before writing cannot deadlock with another that does the same. A lost race
        the database breaks anyway is a :class:`~revcrm.errors.TransientError` raised from
        the outermost block, with everything rolled back.
        """
        ...


class Analytics(Protocol):
    """Aggregates a store computes where the data lives, equal to the pure functions."""

    @property
    def policy(self) -> MetricsPolicy: ...

    def mrr(
        self, *, at: date | datetime, currency: str, customer_ids: Iterable[str] | None = None
    ) -> Money:
        """Equal to :func:`revcrm.metrics.mrr` on the stored book under the store's policy."""
        ...

    def mrr_series(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[MrrPoint, ...]:
        """MRR at the close of each calendar month, as :meth:`MrrAnalysis.series`."""
        ...

    def cash_by_month(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[CashMonth, ...]: ...

    def paying_customers(self, *, at: date | datetime) -> int: ...

    def customer_flow(self, *, start: date | datetime, end: date | datetime) -> CustomerFlow: ...

    def dashboard(
        self, *, as_of: date | datetime, currency: str, trend_months: int = 12
    ) -> StoreDashboard: ...

    def customer_summary(
        self, customer_id: str, *, as_of: date | datetime, currency: str
    ) -> CustomerSummary: ...

    def ltv_baseline(self, *, as_of: date | datetime, currency: str) -> LtvBaseline:
        """Equal to ``segmentation(...).ltv_baseline`` on the stored book (the High Value
        threshold: net payments of the customers registered and paying by ``as_of``)."""
        ...

    def segment_counts(
        self, *, as_of: date | datetime, currency: str, config: SegmentConfig = DEFAULT_CONFIG
    ) -> SegmentCounts:
        """Equal to :func:`revcrm.segments.segment_counts` on the stored book under the
        store's policy (built-in segments only: ``custom`` is empty)."""
        ...

    def segments_of(
        self,
        customer_ids: Iterable[str],
        *,
        as_of: date | datetime,
        currency: str,
        config: SegmentConfig = DEFAULT_CONFIG,
        ltv_baseline: LtvBaseline | None = None,
    ) -> dict[str, frozenset[Segment]]:
        """Per id, :meth:`revcrm.segments.Segmentation.segments_of` on the stored book
        (empty before the customer registered; an unknown id is a NotFoundError).

        ``ltv_baseline`` is the High Value threshold to use instead of reading
        :meth:`ltv_baseline` again (a whole-book read): a caller showing many pages of
        the list reads it once (see ``CRM.segments.ltv_baseline``) and passes it on. It
        must be an :class:`~revcrm.segments.LtvBaseline` in ``currency``."""
        ...


class Store(UnitOfWork, Analytics, Protocol):
    """Every repository, a unit of work, the aggregates, and books for the pure functions."""

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def products(self) -> ProductRepository: ...

    @property
    def plans(self) -> PlanRepository: ...

    @property
    def subscriptions(self) -> SubscriptionRepository: ...

    @property
    def invoices(self) -> InvoiceRepository: ...

    @property
    def transactions(self) -> TransactionRepository: ...

    @property
    def credits(self) -> CreditLedger: ...

    @property
    def fx(self) -> FxRateRepository: ...

    def import_book(self, book: Book) -> ImportResult:
        """Upsert every record of ``book``, all or nothing; importing twice changes nothing."""
        ...

    def book(
        self, *, customer_ids: Iterable[str] | None = None, period: Period | None = None
    ) -> Book:
        """The stored records as a :class:`~revcrm.Book` for the pure metric functions.

        ``customer_ids`` keeps those customers and what they own. ``period`` keeps the
        invoices, transactions and credit entries dated in it (plus invoices they refer
        to); customers, catalogue and whole subscription histories are always kept.
        """
        ...

    def scrub(self) -> None:
        """Make values deleted or overwritten so far unreadable from the store's files
        (see docs/storage.md for what each backend does). Not inside a transaction."""
        ...

    def close(self) -> None: ...
