"""The in-memory store: plain dicts behind a lock, with the SQL store's semantics and errors.

Host applications use it in their tests. Every write runs as a unit of work with an undo
log: an error anywhere in a unit (or in a ``with store.transaction():`` block) restores
every dict it touched. One re-entrant lock serialises units, so a reader never sees a
half-applied transaction of another thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Generic, TypeVar

import attrs

from revcrm._book import Book
from revcrm._calendar import local_moment, shift
from revcrm._ledger._cash import CashColumns, cash_columns, moment_us
from revcrm._ledger._facts import LedgerRows
from revcrm._ledger._services import ServiceColumns, service_columns
from revcrm._money import FxRates, Money, check_currency, money_sum
from revcrm._records import CreditEntry, Customer, Invoice, Plan, Product, Transaction
from revcrm._subscription import Subscription, SubscriptionChange
from revcrm._time import as_moment, as_of_moment
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    MissingRateError,
    NotFoundError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.metrics import MetricsPolicy, MrrPoint, mrr, subscription_mrr
from revcrm.metrics._customer_value import ledger_rows
from revcrm.metrics._dashboard import (
    cash_of_entries,
    check_trend_months,
    compose_dashboard,
    dashboard_inputs,
)
from revcrm.metrics._engine import MrrAnalysis, analyse
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._segments import (
    LtvBaseline,
    Segmentation,
    SegmentCounts,
    segmentation_of_ledger,
)
from revcrm.storage._codec import KINDS, Prepared, external_id, prepare, references
from revcrm.storage._delete import OWNED, blocked, check_delete, refuse
from revcrm.storage._memory_list import list_from_ledger as _list_from_ledger
from revcrm.storage._protocols import CurrentState
from revcrm.storage._query import (
    CashMonth,
    CustomerFlow,
    CustomerPages,
    CustomerQuery,
    CustomerRow,
    CustomerSummary,
    Direction,
    ImportResult,
    Page,
    Period,
    RecordQuery,
    SortValue,
    StoreDashboard,
    Versioned,
    cursor_secret,
    read_ids,
    read_period,
    read_records,
    read_text,
    row_of,
)
from revcrm.storage._reads import (
    book_currencies,
    list_rates,
    month_bounds,
    page_of,
    reporting_range,
    summary_of,
)

__all__ = ["InMemoryStore", "list_from_ledger", "row_of", "summary_from_records"]

# The list from the ledger lives in its own module (this one would pass 1,200 lines).
list_from_ledger = _list_from_ledger

_R = TypeVar("_R")
_MISSING: Final = object()
_TICK: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _Entry(Generic[_R]):
    __slots__ = ("fingerprint", "record", "version")

    def __init__(self, record: _R, version: int, fingerprint: str) -> None:
        self.record = record
        self.version = version
        self.fingerprint = fingerprint


class _Table(Generic[_R]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows: dict[str, _Entry[_R]] = {}
        self.external: dict[str, str] = {}


class InMemoryStore:
    """A :class:`~revcrm.storage.Store` in memory, thread-safe; for tests and small tools.

    ``policy`` is the :class:`~revcrm.metrics.MetricsPolicy` its aggregates use (the
    SQL store materialises MRR under its policy, so both take it at construction).
    ``cursor_secret`` signs the listing cursors (random per store unless given).
    """

    def __init__(
        self, *, policy: MetricsPolicy | None = None, cursor_secret: bytes | str | None = None
    ) -> None:
        self._policy = policy if policy is not None else MetricsPolicy()
        self._secret = _cursor_secret(cursor_secret)
        self._lock = threading.RLock()
        self._owner: int | None = None  # the thread inside a transaction
        self._tables: dict[str, _Table[Any]] = {k: _Table(k) for k in KINDS}
        self._fx: dict[tuple[str, str, date], Decimal] = {}
        self._frames: list[list[Callable[[], None]]] = []
        self._book: Book | None = None
        self._segmented: Book | None = None
        self._segmentations: dict[
            tuple[datetime, str, SegmentConfig, LtvBaseline | None], Segmentation
        ] = {}
        self._ledgers: dict[tuple[datetime, str], LedgerRows] = {}
        self._analyses: dict[str, MrrAnalysis] = {}
        self._cash: dict[str, CashColumns] = {}
        self._cash_missing: set[str] = set()  # currencies some cash entry lacks a rate for
        self._analysis_failed: dict[str, MissingRateError] = {}
        self._services: ServiceColumns | None = None
        self.customers = _Customers(self, self._tables["customer"])
        self.products = _Products(self, self._tables["product"])
        self.plans = _Plans(self, self._tables["plan"])
        self.subscriptions = _Subscriptions(self, self._tables["subscription"])
        self.invoices = _Invoices(self, self._tables["invoice"])
        self.transactions = _Transactions(self, self._tables["transaction"])
        self.credits = _Credits(self, self._tables["credit"])
        self.fx = _Fx(self)

    @property
    def policy(self) -> MetricsPolicy:
        return self._policy

    def close(self) -> None:
        """Nothing to release; present so code can close any store."""

    # -- units of work -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = not self._frames
            if outer:
                self._owner = threading.get_ident()
            frame: list[Callable[[], None]] = []
            self._frames.append(frame)
            try:
                yield
            except BaseException:
                self._frames.pop()
                for undo in reversed(frame):
                    undo()
                self._book = None
                if outer:
                    self._owner = None
                raise
            self._frames.pop()
            if self._frames:
                self._frames[-1].extend(frame)  # the outer block can still undo it
            else:
                self._owner = None

    def lock(self, customer_ids: Iterable[str]) -> None:
        """Lock these customers until the outermost transaction ends. One lock serialises
        every unit of work of this store, which the transaction already holds."""
        ids = sorted(set(read_ids(customer_ids)))
        if self._owner != threading.get_ident():
            raise ValidationError("customer_ids", ids, "lock() only inside store.transaction()")

    def scrub(self) -> None:
        """Nothing to scrub: a deleted or overwritten value is gone with its last reference."""
        if self._owner == threading.get_ident():
            raise ValidationError("scrub", None, "not inside a transaction")

    def _set(self, mapping: dict[Any, Any], key: object, value: object) -> None:
        """Write ``mapping[key]`` (``_MISSING`` deletes), remembering how to undo it."""
        old = mapping.get(key, _MISSING)
        if value is _MISSING:
            mapping.pop(key, None)
        else:
            mapping[key] = value

        def undo() -> None:
            if old is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = old

        self._frames[-1].append(undo)
        self._book = None

    # -- writes ------------------------------------------------------------------------------

    def _exists(self, kind: str, key: str) -> bool:
        return key in self._tables[kind].rows

    def _upsert(
        self, p: Prepared, expected_version: int | None, counts: list[int] | None = None
    ) -> int:
        """One record, inside a unit already open: checks in the contract's order, then write."""
        kind, record = p.kind, p.record
        table = self._tables[kind]
        for field, value, target in p.refs:
            if not self._exists(target, value):
                raise UnknownReferenceError(field, value, target)
        if kind in ("transaction", "credit") and record.invoice_id is not None:
            invoice = self._tables["invoice"].rows[record.invoice_id].record
            _check_invoice_currency(record, invoice.currency)
        ext = p.external_id
        if ext is not None:
            owner = table.external.get(ext)
            if owner is not None and owner != record.id:
                raise DuplicateError(kind, ext)
        current = table.rows.get(record.id)
        actual = current.version if current is not None else None
        if expected_version is not None and (actual or 0) != expected_version:
            raise ConflictError(kind, record.id, expected_version, actual)
        if current is not None and current.fingerprint == p.digest:
            if counts is not None:
                counts[2] += 1
            return current.version
        version = 1 if current is None else current.version + 1
        if current is not None:
            old_ext = external_id(current.record)
            if old_ext is not None:
                self._set(table.external, old_ext, _MISSING)
        if ext is not None:
            self._set(table.external, ext, record.id)
        self._set(table.rows, record.id, _Entry(record, version, p.digest))
        if counts is not None:
            counts[0 if current is None else 1] += 1
        return version

    def upsert(self, kind: str, record: Any, expected_version: int | None) -> int:
        p = prepare(kind, record)
        _check_expected(expected_version)
        with self.transaction():
            return self._upsert(p, expected_version)

    def upsert_many(self, kind: str, records: Iterable[Any]) -> ImportResult:
        batch = [prepare(kind, r) for r in read_records(records)]
        counts = [0, 0, 0]
        with self.transaction():
            for p in batch:
                self._upsert(p, None, counts)
        return ImportResult(inserted=counts[0], updated=counts[1], unchanged=counts[2])

    def import_book(self, book: Book) -> ImportResult:
        if not isinstance(book, Book):
            raise ValidationError("book", book, "expected a revcrm.Book")
        groups = [[prepare(kind, r) for r in records] for kind, records in _book_groups(book)]
        total = ImportResult()
        with self.transaction():
            for batch in groups:
                counts = [0, 0, 0]
                for p in batch:
                    self._upsert(p, None, counts)
                total += ImportResult(inserted=counts[0], updated=counts[1], unchanged=counts[2])
            total += self.fx.put_many(book.fx)
        return total

    # -- reads -------------------------------------------------------------------------------

    def _get(self, kind: str, key: str) -> _Entry[Any]:
        read_text(key, "id")
        with self._lock:
            entry = self._tables[kind].rows.get(key)
        if entry is None:
            raise NotFoundError(kind, key)
        return entry

    def _find(self, kind: str, key: str) -> Any:
        read_text(key, "id")
        with self._lock:
            entry = self._tables[kind].rows.get(key)
        return None if entry is None else entry.record

    def _find_external(self, kind: str, ext: str | None) -> Any:
        wanted = external_lookup(ext)
        if wanted is None:
            return None
        with self._lock:
            table = self._tables[kind]
            key = table.external.get(wanted)
            return None if key is None else table.rows[key].record

    def _records(self, kind: str) -> list[Any]:
        with self._lock:
            return [e.record for e in self._tables[kind].rows.values()]

    def _current_book(self) -> Book:
        with self._lock:
            if self._book is None:
                self._book = Book.of(
                    customers=self._records("customer"),
                    products=self._records("product"),
                    plans=self._records("plan"),
                    subscriptions=self._records("subscription"),
                    invoices=self._records("invoice"),
                    transactions=self._records("transaction"),
                    credits=self._records("credit"),
                    fx=self.fx.rates(),
                )
            return self._book

    def book(
        self, *, customer_ids: Iterable[str] | None = None, period: Period | None = None
    ) -> Book:
        return restrict_book(self._current_book(), customer_ids=customer_ids, period=period)

    # -- aggregates --------------------------------------------------------------------------

    def mrr(
        self, *, at: date | datetime, currency: str, customer_ids: Iterable[str] | None = None
    ) -> Money:
        t = as_of_moment(at, "at")
        check_currency(currency)
        ids = None if customer_ids is None else sorted(set(read_ids(customer_ids)))
        try:
            analysis = self._analysis(t, currency)
        except MissingRateError:
            # The analysis converts the whole history; the pure function only what
            # is live at ``t`` (the SQL store falls back the same way).
            return mrr(
                self._current_book(), at=t, currency=currency, policy=self._policy, customer_ids=ids
            )
        return analysis.mrr(t, customer_ids=ids)

    def mrr_series(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[MrrPoint, ...]:
        a, b = reporting_range(start, end, self._policy.timezone)
        check_currency(currency)
        if b <= a:
            return ()
        try:
            analysis = self._analysis(b, currency)
        except MissingRateError:
            analysis = analyse(
                self._current_book(), currency=currency, policy=self._policy, horizon=b
            )
        return tuple(analysis.series(a, b))

    def cash_by_month(
        self, *, start: date | datetime, end: date | datetime, currency: str
    ) -> tuple[CashMonth, ...]:
        a, b = reporting_range(start, end, self._policy.timezone)
        check_currency(currency)
        months = month_bounds(a, b, self._policy.timezone)
        if not months:
            return ()
        edges = [months[0][0], *(m[1] for m in months)]
        with self._lock:
            cash = self._cash_between(edges[0], edges[-1], currency)
        return tuple(cash_of_entries(cash, edges))

    def paying_customers(self, *, at: date | datetime) -> int:
        t = as_of_moment(at, "at")
        return len(self._paying(t))

    def customer_flow(self, *, start: date | datetime, end: date | datetime) -> CustomerFlow:
        a, b = as_of_moment(start, "start"), as_of_moment(end, "end")
        if b < a:
            raise ValidationError("end", end, "is before start")
        with self._lock:
            at_a, at_b = self._paying(a), self._paying(b)
        return CustomerFlow.of_sets(a, b, at_a, at_b)

    def _paying(self, t: datetime) -> set[str]:
        """Customers with MRR above zero at ``t``: the analysis' (in any currency: a rate
        is positive), or, when it lacks a rate, by :func:`subscription_mrr` itself."""
        with self._lock:
            book = self._current_book()
            try:
                analysis = self._analysis(t, self._native_currency(book))
            except MissingRateError:
                return {
                    s.customer_id
                    for s in book.subscriptions
                    if subscription_mrr(s, t, policy=self._policy).amount > 0
                }
            return {c for c, m in analysis.customers_with_mrr(t).items() if m.amount > 0}

    def _native_currency(self, book: Book) -> str:
        """A currency to count paying customers in: one already analysed, else the
        subscriptions' most common one (fewest conversions)."""
        if self._segmented is book and self._analyses:
            return min(self._analyses)
        counts: dict[str, int] = {}
        for sub in book.subscriptions:
            counts[sub.currency] = counts.get(sub.currency, 0) + 1
        return min(counts, key=lambda c: (-counts[c], c)) if counts else "USD"

    def dashboard(
        self, *, as_of: date | datetime, currency: str, trend_months: int = 12
    ) -> StoreDashboard:
        zone = self._policy.timezone
        t = as_of_moment(local_moment(as_of, zone), "as_of")
        check_currency(currency)
        check_trend_months(trend_months)
        window = timedelta(days=30)  # the dashboard's default renewals window
        with self._lock:  # one consistent snapshot for every figure
            book = self._current_book()
            horizon = shift(t, window, zone)
            try:
                analysis = self._analysis(horizon, currency)
            except MissingRateError:
                analysis = analyse(book, currency=currency, policy=self._policy, horizon=horizon)
            cash = self._full_cash(currency)  # None: each range's entries alone
            return compose_dashboard(
                dashboard_inputs(book, analysis, cash=cash),
                as_of=t,
                currency=currency,
                zone=zone,
                renewals_window=window,
                trend_months=trend_months,
            )

    def customer_summary(
        self, customer_id: str, *, as_of: date | datetime, currency: str
    ) -> CustomerSummary:
        read_text(customer_id, "customer_id")
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        book = self._current_book()
        customer = book.customer(customer_id)

        def owned(records: Iterable[_R], key: Callable[[_R], datetime]) -> tuple[_R, ...]:
            return tuple(sorted(records, key=lambda r: (key(r), r.id)))  # type: ignore[attr-defined]

        return summary_from_records(
            customer,
            owned(book.subscriptions_by_customer.get(customer_id, ()), lambda s: s.started_at),
            owned(book.invoices_by_customer.get(customer_id, ()), lambda i: i.issued_at),
            owned(book.transactions_by_customer.get(customer_id, ()), lambda x: x.at),
            owned(book.credits_by_customer.get(customer_id, ()), lambda c: c.at),
            fx=book.fx,
            at=t,
            currency=currency,
            policy=self._policy,
        )

    def _analysis(self, at: datetime, currency: str) -> MrrAnalysis:
        """An MRR analysis of the current book in ``currency`` whose horizon lies past
        ``at`` (its MRR at ``at`` is then the same as with any later horizon), kept until
        the next write; the default horizon (a year past the last record) serves every
        ``as_of`` before it."""
        with self._lock:
            book = self._current_book()
            if self._segmented is not book:
                self._reset_caches(book)
            failed = self._analysis_failed.get(currency)
            if failed is not None:
                raise failed  # the history lacks a rate: known until the next write
            found = self._analyses.get(currency)
            if found is None or found.horizon <= at:
                try:
                    found = analyse(book, currency=currency, policy=self._policy)
                except MissingRateError as e:
                    self._analysis_failed[currency] = e
                    raise
                if found.horizon <= at:
                    found = analyse(
                        book, currency=currency, policy=self._policy, horizon=at + _TICK
                    )
                self._analyses[currency] = found
            return found

    def _ledger(self, at: datetime, currency: str) -> LedgerRows:
        """The ledger rows (cash, service states, customer facts) of the current book at
        ``at`` in ``currency``: what the list, the segments and the baseline read."""
        with self._lock:
            book = self._current_book()
            if self._segmented is not book:
                self._reset_caches(book)
            key = (at, currency)
            found = self._ledgers.get(key)
            if found is None:
                analysis = self._analysis(at, currency)
                found = ledger_rows(
                    book,
                    as_of=at,
                    currency=currency,
                    policy=self._policy,
                    analysis=analysis,
                    cash=self._cash_columns(book, at, currency),
                    services=self._service_columns(book, at, analysis.horizon),
                )
                if len(self._ledgers) >= 8:
                    self._ledgers.clear()
                self._ledgers[key] = found
            return found

    def _cash_columns(self, book: Book, at: datetime, currency: str) -> CashColumns:
        """The book's cash entries in ``currency``, all of them when every one has its
        rate (kept for every moment), else those up to ``at`` (the rates they need)."""
        found = self._full_cash(currency)
        if found is None:
            ids = tuple(c.id for c in book.customers)
            return cash_columns(book, currency, customer_ids=ids, through=moment_us(at))
        return found

    def _full_cash(self, currency: str) -> CashColumns | None:
        """Every cash entry of the current book in ``currency``, kept until the next
        write; None when some payment or refund lacks a rate on its day."""
        book = self._current_book()
        if self._segmented is not book:
            self._reset_caches(book)
        found = self._cash.get(currency)
        if found is None and currency not in self._cash_missing:
            ids = tuple(c.id for c in book.customers)
            try:
                found = self._cash[currency] = cash_columns(book, currency, customer_ids=ids)
            except MissingRateError:
                self._cash_missing.add(currency)
        return found

    def _cash_between(self, start: datetime, end: datetime, currency: str) -> CashColumns:
        """Cash entries covering ``[start, end)``: the kept columns when every entry has
        its rate, else those in the range alone (the rates they need)."""
        found = self._full_cash(currency)
        if found is not None:
            return found
        book = self._current_book()
        return cash_columns(
            book,
            currency,
            customer_ids=tuple(c.id for c in book.customers),
            since=moment_us(start),
            through=moment_us(end) - 1,
            credits=False,
        )

    def _service_columns(self, book: Book, at: datetime, horizon: datetime) -> ServiceColumns:
        """The service-state rows, cut up to the analysis' horizon (or ``at`` if later):
        exact at every moment a kept analysis answers for."""
        found = self._services
        if found is None or found.horizon < moment_us(at):
            ids = tuple(c.id for c in book.customers)
            found = self._services = service_columns(
                book, customer_ids=ids, horizon=max(horizon, at)
            )
        return found

    def _reset_caches(self, book: Book) -> None:
        self._segmented = book
        self._segmentations.clear()
        self._ledgers.clear()
        self._analyses.clear()
        self._cash.clear()
        self._cash_missing.clear()
        self._analysis_failed.clear()
        self._services = None

    def _segmentation(
        self,
        at: datetime,
        currency: str,
        config: SegmentConfig,
        baseline: LtvBaseline | None = None,
    ) -> Segmentation:
        """The pure segmentation of the current book, kept until the next write (a list
        walked page by page asks for the same one each time); with ``baseline`` as the
        High Value threshold instead of the book's own."""
        with self._lock:
            book = self._current_book()
            if self._segmented is not book:
                self._reset_caches(book)
            key = (at, currency, config, baseline)
            found = self._segmentations.get(key)
            if found is None:
                ledger = self._ledger(at, currency)
                found = segmentation_of_ledger(book, at, config, ledger, ltv_baseline=baseline)
                if len(self._segmentations) >= 8:
                    self._segmentations.clear()
                self._segmentations[key] = found
            return found

    def ltv_baseline(self, *, as_of: date | datetime, currency: str) -> LtvBaseline:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        return self._segmentation(t, currency, DEFAULT_CONFIG).ltv_baseline

    def segment_counts(
        self, *, as_of: date | datetime, currency: str, config: SegmentConfig = DEFAULT_CONFIG
    ) -> SegmentCounts:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)
        return self._segmentation(t, currency, config).counts()

    def segments_of(
        self,
        customer_ids: Iterable[str],
        *,
        as_of: date | datetime,
        currency: str,
        config: SegmentConfig = DEFAULT_CONFIG,
        ltv_baseline: LtvBaseline | None = None,
    ) -> dict[str, frozenset[Segment]]:
        ids = read_ids(customer_ids)
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)
        _check_baseline(ltv_baseline, currency)
        seg = self._segmentation(t, currency, config, ltv_baseline)
        return {cid: seg.segments_of(cid) for cid in ids}


def _check_config(config: object) -> None:
    if not isinstance(config, SegmentConfig):
        raise ValidationError("config", config, "expected a SegmentConfig")


def _check_baseline(baseline: object, currency: str) -> None:
    if baseline is not None and (
        not isinstance(baseline, LtvBaseline) or baseline.total.currency != currency
    ):
        raise ValidationError("ltv_baseline", baseline, f"expected an LtvBaseline in {currency}")


def _check_expected(expected: object) -> None:
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, int) or expected < 0
    ):
        raise ValidationError("expected_version", expected, "a version number >= 0 or None")


def _id_list(ids: Iterable[str]) -> list[str]:
    return read_ids(ids)


def _cursor_secret(value: object) -> bytes:
    return cursor_secret(value)


def external_lookup(value: object) -> str | None:
    """The external id a ``find_by_external_id`` looks for; None finds nothing (a record
    without an external id is never found by one)."""
    if value is None:
        return None
    text = read_text(value, "external_id")
    if not text:
        raise ValidationError("external_id", value, "an external id is never empty")
    return text


def _check_invoice_currency(record: Transaction | CreditEntry, currency: str) -> None:
    """A payment, refund or credit naming an invoice is in the invoice's currency (one rule
    for every store: the SQL store imports it). Another customer may pay an invoice (a
    parent company for its subsidiary); the delete rules of the contract count on that."""
    what = record.kind.value if isinstance(record, Transaction) else "credit entry"
    if record.amount.currency != currency:
        raise ValidationError(
            "invoice_id",
            record.invoice_id,
            f"invoice is in {currency}, the {what} in {record.amount.currency}",
        )


def _range(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    a, b = as_of_moment(start, "start"), as_of_moment(end, "end")
    if b < a:
        raise ValidationError("end", end, "is before start")
    return a, b


def _book_groups(book: Book) -> list[tuple[str, tuple[Any, ...]]]:
    return [
        ("customer", book.customers),
        ("product", book.products),
        ("plan", book.plans),
        ("subscription", book.subscriptions),
        ("invoice", book.invoices),
        ("transaction", book.transactions),
        ("credit", book.credits),
    ]


def restrict_book(book: Book, *, customer_ids: Iterable[str] | None, period: Period | None) -> Book:
    """The sub-book a store hands out for some customers and/or a period (see Store.book)."""
    period = read_period(period)
    if customer_ids is not None:
        book = book.restricted_to(_id_list(customer_ids))
    if period is None:
        return book

    def inside(t: datetime) -> bool:
        return t in period

    transactions = tuple(t for t in book.transactions if inside(t.at))
    credits = tuple(c for c in book.credits if inside(c.at))
    wanted = {t.invoice_id for t in transactions} | {c.invoice_id for c in credits}
    invoices = tuple(i for i in book.invoices if inside(i.issued_at) or i.id in wanted)
    return Book(
        customers=book.customers,
        products=book.products,
        plans=book.plans,
        subscriptions=book.subscriptions,
        invoices=invoices,
        transactions=transactions,
        credits=credits,
        fx=book.fx,
    )


# -- the customer list and summary from the ledger -------------------------------------------


#: One customer's summary from its records (every backend loads them, then this): its row
#: is the ledger's facts of its own sub-book, equal to its list row; it needs a rate on
#: ``at``'s day for each currency of its subscriptions and transactions.
summary_from_records = summary_of


# -- repositories ----------------------------------------------------------------------------


class _Repo(Generic[_R]):
    kind: str
    order: Callable[[Any], SortValue] | None = None  # None: by id only

    def __init__(self, store: InMemoryStore, table: _Table[_R]) -> None:
        self._store = store
        self._table = table

    def get(self, id: str) -> _R:
        record: _R = self._store._get(self.kind, id).record
        return record

    def find(self, id: str) -> _R | None:
        record: _R | None = self._store._find(self.kind, id)
        return record

    def find_by_external_id(self, external_id: str | None) -> _R | None:
        record: _R | None = self._store._find_external(self.kind, external_id)
        return record

    def get_versioned(self, id: str) -> Versioned[_R]:
        entry = self._store._get(self.kind, id)
        return Versioned(record=entry.record, version=entry.version)

    def upsert(self, record: _R, *, expected_version: int | None = None) -> int:
        return self._store.upsert(self.kind, record, expected_version)

    def upsert_many(self, records: Iterable[_R]) -> ImportResult:
        return self._store.upsert_many(self.kind, records)

    def count(self) -> int:
        with self._store._lock:
            return len(self._table.rows)

    def _all(self) -> list[_R]:
        return self._store._records(self.kind)

    def _query(self, **options: Any) -> RecordQuery:
        return RecordQuery(kind_name=self.kind, secret=self._store._secret, **options)

    def _page(self, q: RecordQuery, keep: Callable[[_R], bool]) -> Page[_R]:
        order = type(self).order
        after = q.after()
        items: list[Any] = [r for r in self._all() if keep(r)]
        key: Callable[[Any], SortValue] = order if order is not None else (lambda r: r.id)
        page: Page[_R] = page_of(
            items,
            key=key,
            direction=q.direction,
            after=after,
            limit=q.limit,
            cursor_of=q.next_cursor,
        )
        return page

    def _for_customer(self, customer_id: str) -> tuple[_R, ...]:
        read_text(customer_id, "customer_id")
        order = type(self).order
        items = [r for r in self._all() if getattr(r, "customer_id", None) == customer_id]
        if order is not None:
            return tuple(sorted(items, key=lambda r: (order(r), r.id)))  # type: ignore[attr-defined]
        return tuple(sorted(items, key=lambda r: r.id))  # type: ignore[attr-defined]


def _dated_filter(q: RecordQuery, when: Callable[[Any], datetime]) -> Callable[[Any], bool]:
    def keep(r: Any) -> bool:
        if q.customer_id is not None and r.customer_id != q.customer_id:
            return False
        t = when(r)
        if q.since is not None and t < q.since:
            return False
        if q.until is not None and t >= q.until:
            return False
        if q.status is not None and r.status.value != q.status:
            return False
        return q.kind is None or r.kind.value == q.kind

    return keep


class _Customers(_Repo[Customer], CustomerPages):
    kind = "customer"

    def delete(self, id: str, *, cascade: bool = False) -> int:
        read_text(id, "id")
        return _delete_customer(self._store, id, cascade=cascade)

    def query(self, q: CustomerQuery) -> Page[CustomerRow]:
        q = attrs.evolve(q, secret=self._store._secret)  # cursors carry this store's key
        store = self._store
        with store._lock:
            book = store._current_book()
            # The list needs a rate on as_of's day for every stored currency (documented).
            list_rates(book_currencies(book), book.fx, q.currency, q.as_of.date())
            ledger = store._ledger(q.as_of, q.currency)
            return list_from_ledger(book, q, ledger, store._segmentation)


class _Products(_Repo[Product]):
    kind = "product"

    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Product]:
        q = self._query(direction=direction, limit=limit, cursor=cursor)
        return self._page(q, lambda _r: True)


class _Plans(_Repo[Plan]):
    kind = "plan"

    def for_product(self, product_id: str) -> tuple[Plan, ...]:
        read_text(product_id, "product_id")
        return tuple(
            sorted((p for p in self._all() if p.product_id == product_id), key=lambda p: p.id)
        )

    def page(
        self,
        *,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Plan]:
        q = self._query(direction=direction, limit=limit, cursor=cursor)
        return self._page(q, lambda _r: True)


def _started(s: Subscription) -> SortValue:
    return s.started_at


def _issued(i: Invoice) -> SortValue:
    return i.issued_at


def _at(r: Transaction | CreditEntry) -> SortValue:
    return r.at


class _Subscriptions(_Repo[Subscription]):
    kind = "subscription"
    order = staticmethod(_started)

    def for_customer(self, customer_id: str) -> tuple[Subscription, ...]:
        return self._for_customer(customer_id)

    def current_states(self, ids: Iterable[str]) -> dict[str, CurrentState]:
        wanted = _id_list(ids)
        with self._store._lock:
            rows = self._store._tables[self.kind].rows
            found = [(key, rows.get(key)) for key in wanted]
        return {
            key: CurrentState.of(entry.record, entry.version)
            for key, entry in found
            if entry is not None
        }

    def append(
        self, id: str, change: SubscriptionChange, *, expected_version: int | None = None
    ) -> Versioned[Subscription]:
        _check_expected(expected_version)
        if not isinstance(change, SubscriptionChange):
            raise ValidationError("change", change, "expected a SubscriptionChange")
        read_text(id, "id")
        with self._store.transaction():
            entry = self._store._get(self.kind, id)
            if expected_version is not None and entry.version != expected_version:
                raise ConflictError(self.kind, id, expected_version, entry.version)
            updated = entry.record.append(change)
            version = self._store._upsert(prepare(self.kind, updated), entry.version)
        return Versioned(record=updated, version=version)

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
        q = self._query(
            customer_id=customer_id,
            since=since,
            until=until,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        return self._page(q, _dated_filter(q, lambda s: s.started_at))


class _Invoices(_Repo[Invoice]):
    kind = "invoice"
    order = staticmethod(_issued)

    def for_customer(self, customer_id: str) -> tuple[Invoice, ...]:
        return self._for_customer(customer_id)

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
        q = self._query(
            customer_id=customer_id,
            since=since,
            until=until,
            status=status,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        return self._page(q, _dated_filter(q, lambda i: i.issued_at))


class _Transactions(_Repo[Transaction]):
    kind = "transaction"
    order = staticmethod(_at)

    def for_customer(self, customer_id: str) -> tuple[Transaction, ...]:
        return self._for_customer(customer_id)

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
        q = self._query(
            customer_id=customer_id,
            since=since,
            until=until,
            status=status,
            kind=kind,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        return self._page(q, _dated_filter(q, lambda t: t.at))


class _Credits(_Repo[CreditEntry]):
    kind = "credit"
    order = staticmethod(_at)

    def for_customer(self, customer_id: str) -> tuple[CreditEntry, ...]:
        return self._for_customer(customer_id)

    def balance(
        self, customer_id: str, currency: str, *, at: date | datetime | None = None
    ) -> Money:
        check_currency(currency)
        read_text(customer_id, "customer_id")
        t = None if at is None else as_moment(at, "at")
        return money_sum(
            (
                c.amount
                for c in self._for_customer(customer_id)
                if c.amount.currency == currency and (t is None or c.at <= t)
            ),
            currency,
        )

    def page(
        self,
        *,
        customer_id: str | None = None,
        since: date | datetime | None = None,
        until: date | datetime | None = None,
        direction: Direction | str = Direction.ASC,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[CreditEntry]:
        q = self._query(
            customer_id=customer_id,
            since=since,
            until=until,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        return self._page(q, _dated_filter(q, lambda c: c.at))


class _Fx:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    def put(self, day: date, source: str, target: str, rate: str | int | Decimal) -> None:
        self.put_many(FxRates.from_rates([(day, source, target, rate)]))

    def put_many(self, rates: FxRates) -> ImportResult:
        if not isinstance(rates, FxRates):
            raise ValidationError("rates", rates, "expected FxRates")
        counts = [0, 0, 0]
        store = self._store
        with store.transaction():
            for day, source, target, rate in rates.items():
                key = (source, target, day)
                old = store._fx.get(key)
                if old is not None and old == rate:
                    counts[2] += 1
                    continue
                store._set(store._fx, key, rate)
                counts[0 if old is None else 1] += 1
        return ImportResult(inserted=counts[0], updated=counts[1], unchanged=counts[2])

    def rates(self) -> FxRates:
        with self._store._lock:
            items = [(d, s, t, r) for (s, t, d), r in self._store._fx.items()]
        return FxRates.from_rates(items)


def _delete_customer(store: InMemoryStore, customer_id: str, *, cascade: bool) -> int:
    """Delete from an :class:`~revcrm.storage.InMemoryStore`; returns records deleted."""
    cid = check_delete(customer_id, cascade)
    with store.transaction():  # holds the store's lock for the whole unit
        tables = store._tables
        if cid not in tables["customer"].rows:
            raise NotFoundError("customer", cid)
        owned = {
            kind: sorted(k for k, e in tables[kind].rows.items() if e.record.customer_id == cid)
            for kind in OWNED
        }
        refuse(cid, cascade, owned)
        doomed = {(kind, k) for kind, ids in owned.items() for k in ids}
        for kind in ("subscription", "invoice", "transaction", "credit"):
            for entry in tables[kind].rows.values():
                if entry.record.customer_id == cid:
                    continue
                for field, value, target in references(kind, entry.record):
                    if (target, value) in doomed:
                        raise blocked(cid, field, f"{target} {value}")
        deleted = 0
        for kind in (*OWNED, "customer"):
            table = tables[kind]
            for key in owned.get(kind, [cid]):
                ext = getattr(table.rows[key].record, "external_id", None)
                if ext is not None:
                    store._set(table.external, ext, _MISSING)
                store._set(table.rows, key, _MISSING)
                deleted += 1
        return deleted
