"""The storage contract suite: abstract test classes any backend can run.

Subclass :class:`StoreContract` in a test module, name the subclass ``Test...`` and give
it a factory; pytest then runs every test below against that backend::

    class TestMyStore(StoreContract):
        def make_store(self) -> Store:
            return MyStore(...)  # empty, schema created

``reopen(store)`` returns a second handle on the same data (another connection) for the
concurrency tests; by default it returns the store itself. The classes are not collected
on their own (their names do not start with ``Test``). Requires pytest and hypothesis.

Example counts follow the active hypothesis profile: each property's count is written
for hypothesis' default of 100 examples and scaled by the profile's ``max_examples``
(``n * max_examples // 100``, at least one; see :mod:`revcrm.testing._examples`), so
``--hypothesis-profile=fast`` or a ``settings.load_profile`` in the host's conftest,
done before this module is imported, governs the suite as it governs the host's tests.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    Customer,
    FxRates,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm.crm import CustomerStatus, customer_status, is_active_service
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    MissingRateError,
    NotFoundError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.metrics import analyse, cash_revenue, mrr, subscription_mrr
from revcrm.segments import DEFAULT_CONFIG, Segment, SegmentConfig, segmentation
from revcrm.storage import CustomerRow, CustomerSort, Direction, Page, Period, Store
from revcrm.storage import _reference as ref
from revcrm.storage._protocols import CurrentState
from revcrm.testing import strategies
from revcrm.testing._contract_book import (
    _KINDS,
    AS_OF,
    INJECTION,
    T0,
    _eur,
    _usd,
    assert_same_book,
    sample_book,
)
from revcrm.testing._delete_contract import DeleteContract
from revcrm.testing._examples import examples
from revcrm.testing._reliability_contract import ReliabilityContract

__all__ = ["AS_OF", "INJECTION", "StoreContract", "assert_same_book", "sample_book"]

_T = TypeVar("_T")


def _pages(fetch: Callable[[str | None], Page[_T]]) -> list[_T]:
    out: list[_T] = []
    cursor: str | None = None
    for _ in range(10_000):
        page = fetch(cursor)
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out
    raise AssertionError("pagination does not end")


def _snapshot(store: Store) -> tuple[Book, dict[str, list[tuple[str, int]]]]:
    """The store's book and the version of every record: what "unchanged" compares."""
    book = store.book()
    versions: dict[str, list[tuple[str, int]]] = {}
    for kind in _KINDS:
        repo = getattr(store, kind)
        versions[kind] = [(r.id, repo.get_versioned(r.id).version) for r in getattr(book, kind)]
    return book, versions


def _assert_unchanged(store: Store, before: tuple[Book, dict[str, list[tuple[str, int]]]]) -> None:
    after = _snapshot(store)
    assert_same_book(before[0], after[0])
    assert before[1] == after[1]


class StoreContract(DeleteContract, ReliabilityContract):
    """Every behaviour a :class:`~revcrm.storage.Store` promises, as tests."""

    #: Examples per property test that builds a fresh store each time (kept small: a
    #: fresh PostgreSQL schema costs a tenth of a second).
    property_examples: ClassVar[int] = 10

    @abc.abstractmethod
    def make_store(self) -> Store:
        """A new, empty store, ready for use (schema created)."""

    def reopen(self, store: Store) -> Store:
        """A second handle on ``store``'s data, on another connection where possible."""
        return store

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = self.make_store()
        try:
            yield s
        finally:
            s.close()

    @pytest.fixture
    def loaded(self, store: Store) -> Store:
        store.import_book(sample_book())
        return store

    # -- round trips ------------------------------------------------------------------------

    def test_empty_store(self, store: Store) -> None:
        assert store.customers.count() == 0
        assert store.book().customers == ()
        assert store.mrr(at=AS_OF, currency="USD") == _usd("0")
        page = store.customers.page(as_of=AS_OF, currency="USD")
        assert page.items == ()
        assert page.next_cursor is None
        assert store.fx.rates() == FxRates()

    def test_round_trip_of_every_record_kind(self, loaded: Store) -> None:
        book = sample_book()
        assert_same_book(loaded.book(), book)
        for kind in _KINDS:
            repo = getattr(loaded, kind)
            assert repo.count() == len(getattr(book, kind))
            for record in getattr(book, kind):
                assert repo.get(record.id) == record
                assert repo.find(record.id) == record
                assert repo.get_versioned(record.id).version == 1
        s1 = loaded.subscriptions.get("s1")
        assert s1.details == (("server", "web-1"), ("domain", "ada.example"))
        assert [c.kind for c in s1.history] == ["started", "plan_changed", "discount_changed"]

    def test_custom_attributes_keep_their_types(self, loaded: Store) -> None:
        attrs_ = loaded.customers.get("c1").custom_attributes
        assert dict(attrs_) == {
            "tier": "gold",
            "seats": 3,
            "vip": True,
            "since": date(2020, 1, 1),
            "score": Decimal("1.50"),
        }
        assert type(attrs_["vip"]) is bool
        assert type(attrs_["seats"]) is int
        # Edges of the closed set: a Decimal comes back as written (exponent, sign of zero,
        # tiny scale), an int of 40 digits stays an int.
        edges: dict[str, Any] = {
            "sci": Decimal("5.10472031E+11"),
            "tiny": Decimal("1E-200"),
            "negzero": Decimal("-0.00"),
            "big": 10**39,
            "negbig": -(10**39),
        }
        loaded.customers.upsert(Customer(id="edges", registered_at=T0, custom_attributes=edges))
        back = loaded.customers.get("edges").custom_attributes
        assert set(back) == set(edges)
        for k, v in edges.items():
            assert type(back[k]) is type(v), k
            got = back[k]
            if isinstance(v, Decimal):
                assert isinstance(got, Decimal), k
                assert got.as_tuple() == v.as_tuple(), k
            else:
                assert back[k] == v, k
        assert loaded.customers.get_versioned("edges").version == 1
        again = loaded.customers.upsert_many([loaded.customers.get("edges")])
        assert again.unchanged == 1

    def test_any_text_round_trips_in_custom_attributes_and_details(self, store: Store) -> None:
        odd = "nul \x00, lone \ud800, emoji \U0001f600, quote ' and \\"
        c = Customer(id="x", registered_at=T0, custom_attributes={"k\x00\ud801": odd, "ü": "ß"})
        store.customers.upsert(c)
        assert store.customers.get("x") == c
        sub = Subscription.start(
            id="s",
            customer_id="x",
            at=T0,
            price=_usd("1"),
            cycle=BillingCycle.MONTHLY,
            details=((odd, odd),),
        )
        store.subscriptions.upsert(sub)
        assert store.subscriptions.get("s").details == ((odd, odd),)

    def test_moments_come_back_aware_in_utc(self, loaded: Store) -> None:
        c2 = loaded.customers.get("c2")
        assert c2.registered_at == datetime(2024, 2, 2, 23, 5, 6, 789, tzinfo=UTC)
        assert c2.registered_at.utcoffset() == timedelta(0)
        c1 = loaded.customers.get("c1")
        assert c1.last_login_at == T0 + timedelta(days=30, microseconds=1)

    def test_money_is_exact_to_every_digit(self, store: Store) -> None:
        store.customers.upsert(Customer(id="c", registered_at=T0))
        digits = "123456789012345678901234567.123456789012345678901234567890123"
        store.credits.upsert_many(
            [
                CreditEntry(id="a", customer_id="c", amount=_usd(digits), reason="x", at=T0),
                CreditEntry(
                    id="b",
                    customer_id="c",
                    amount=_usd("0.000000000000000000000000000001"),
                    reason="y",
                    at=T0,
                ),
                CreditEntry(id="n", customer_id="c", amount=_usd("-1E-40"), reason="z", at=T0),
            ]
        )
        assert str(store.credits.get("a").amount.amount) == digits
        assert store.credits.get("n").amount.amount == Decimal("-1E-40")
        # Money adds exactly (Decimal's default context would round to 28 digits).
        expected = (_usd(digits) + _usd("0.000000000000000000000000000001") + _usd("-1E-40")).amount
        assert store.credits.balance("c", "USD").amount == expected
        row = store.customers.page(as_of=AS_OF, currency="USD").items[0]
        assert row.credit_balance.amount == expected
        # An amount written with an exponent is canonical (Money's rule), on every backend,
        # and reading it back then writing it again is no change.
        sci = CreditEntry(
            id="e",
            customer_id="c",
            amount=Money(Decimal("5.10472031E+11"), "USD"),
            reason="e",
            at=T0,
        )
        store.credits.upsert(sci)
        back = store.credits.get("e")
        assert str(back.amount.amount) == "510472031000"
        assert back == sci
        assert store.credits.upsert_many([back]).unchanged == 1
        assert store.credits.get_versioned("e").version == 1

    @settings(
        max_examples=examples(10),
        deadline=None,
        # One base-class test runs once per backend subclass: each is its own executor.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(book=strategies.books())
    def test_generated_books_round_trip(self, book: Book) -> None:
        store = self.make_store()
        try:
            store.import_book(book)
            assert_same_book(store.book(), book)
            again = store.import_book(book)
            assert again.written == 0
            # The current states a store keeps (materialised) are the replayed ones.
            ids = [s.id for s in book.subscriptions]
            expected = {s.id: CurrentState.of(s, 1) for s in book.subscriptions}
            assert store.subscriptions.current_states(ids) == expected
        finally:
            store.close()

    # -- lookups and errors ---------------------------------------------------------------

    def test_missing_records(self, loaded: Store) -> None:
        for kind in _KINDS:
            repo = getattr(loaded, kind)
            with pytest.raises(NotFoundError) as err:
                repo.get("nope")
            assert err.value.key == "nope"
            assert repo.find("nope") is None
            with pytest.raises(NotFoundError):
                repo.get_versioned("nope")
        with pytest.raises(NotFoundError):
            loaded.customer_summary("nope", as_of=AS_OF, currency="USD")

    def test_find_by_external_id(self, loaded: Store) -> None:
        c1 = loaded.customers.find_by_external_id("ext-c1")
        assert c1 is not None
        assert c1.id == "c1"
        assert loaded.customers.find_by_external_id("nope") is None
        tx = loaded.transactions.find_by_external_id("ch_1")
        assert tx is not None
        assert tx.id == "t1"
        plan = loaded.plans.find_by_external_id("ext-pl2")
        assert plan is not None
        assert plan.id == "pl2"

    @pytest.mark.parametrize(
        ("kind", "make", "field"),
        [
            (
                "subscriptions",
                lambda: Subscription.start(
                    id="sx", customer_id="ghost", at=T0, price=_usd("1"), cycle=BillingCycle.MONTHLY
                ),
                "subscription[sx].customer_id",
            ),
            (
                "subscriptions",
                lambda: Subscription.start(
                    id="sx",
                    customer_id="c1",
                    at=T0,
                    price=_usd("1"),
                    cycle=BillingCycle.MONTHLY,
                    plan_id="ghost",
                ),
                "subscription[sx].history[0].plan_id",
            ),
            (
                "invoices",
                lambda: Invoice(
                    id="ix",
                    customer_id="ghost",
                    currency="USD",
                    issued_at=T0,
                    due_date=date(2024, 1, 2),
                    status="open",
                ),
                "invoice[ix].customer_id",
            ),
            (
                "invoices",
                lambda: Invoice(
                    id="ix",
                    customer_id="c1",
                    currency="USD",
                    issued_at=T0,
                    due_date=date(2024, 1, 2),
                    status="open",
                    lines=(
                        InvoiceLine(
                            kind="recurring",
                            amount=_usd("1"),
                            period_start=T0,
                            period_end=T0 + timedelta(days=30),
                            subscription_id="ghost",
                        ),
                    ),
                ),
                "invoice[ix].lines[0].subscription_id",
            ),
            (
                "transactions",
                lambda: Transaction(
                    id="tx",
                    customer_id="c1",
                    kind="payment",
                    status="succeeded",
                    amount=_usd("1"),
                    method="card",
                    at=T0,
                    invoice_id="ghost",
                ),
                "transaction[tx].invoice_id",
            ),
            (
                "transactions",
                lambda: Transaction(
                    id="tx",
                    customer_id="c1",
                    kind="payment",
                    status="succeeded",
                    amount=_usd("1"),
                    method="card",
                    at=T0,
                    subscription_id="ghost",
                ),
                "transaction[tx].subscription_id",
            ),
            (
                "credits",
                lambda: CreditEntry(
                    id="kx", customer_id="ghost", amount=_usd("1"), reason="r", at=T0
                ),
                "credit[kx].customer_id",
            ),
            (
                "credits",
                lambda: CreditEntry(
                    id="kx",
                    customer_id="c1",
                    amount=_usd("1"),
                    reason="r",
                    at=T0,
                    invoice_id="ghost",
                ),
                "credit[kx].invoice_id",
            ),
            (
                "plans",
                lambda: Plan(id="plx", product_id="ghost", name="x", price=_usd("1"), cycle=None),
                "plan[plx].product_id",
            ),
        ],
    )
    def test_unknown_references_raise_and_write_nothing(
        self, loaded: Store, kind: str, make: Callable[[], Any], field: str
    ) -> None:
        before = _snapshot(loaded)
        with pytest.raises(UnknownReferenceError) as err:
            getattr(loaded, kind).upsert(make())
        assert err.value.field == field
        assert err.value.value == "ghost"
        _assert_unchanged(loaded, before)

    def test_duplicate_external_id(self, loaded: Store) -> None:
        before = _snapshot(loaded)
        with pytest.raises(DuplicateError) as err:
            loaded.customers.upsert(Customer(id="c9", registered_at=T0, external_id="ext-c1"))
        assert err.value.key == "ext-c1"
        _assert_unchanged(loaded, before)
        # Moving an external id from one record to another in one batch is fine.
        c1 = loaded.customers.get("c1")
        loaded.customers.upsert_many(
            [
                attrs.evolve(c1, external_id="ext-moved"),
                Customer(id="c9", registered_at=T0, external_id="ext-c1"),
            ]
        )
        found = loaded.customers.find_by_external_id("ext-c1")
        assert found is not None
        assert found.id == "c9"

    # -- versions and idempotence ---------------------------------------------------------

    def test_versions_and_idempotent_upserts(self, store: Store) -> None:
        c = Customer(id="c", registered_at=T0, name="A")
        assert store.customers.upsert(c) == 1
        assert store.customers.upsert(c) == 1  # same content: nothing changes
        assert store.customers.upsert(attrs.evolve(c, name="B")) == 2
        assert store.customers.upsert(attrs.evolve(c, name="C"), expected_version=2) == 3
        with pytest.raises(ConflictError) as err:
            store.customers.upsert(attrs.evolve(c, name="D"), expected_version=2)
        assert (err.value.expected, err.value.actual) == (2, 3)
        with pytest.raises(ConflictError) as err:
            store.customers.upsert(attrs.evolve(c, name="E"), expected_version=0)
        assert (err.value.expected, err.value.actual) == (0, 3)
        with pytest.raises(ConflictError) as err:
            store.customers.upsert(Customer(id="new", registered_at=T0), expected_version=4)
        assert err.value.actual is None
        assert store.customers.upsert(Customer(id="new", registered_at=T0), expected_version=0) == 1
        assert store.customers.get("c").name == "C"
        # The same record built afresh is the same content: nothing changes.
        for _ in range(2):
            entry = CreditEntry(id="k", customer_id="c", amount=_usd("1.50"), reason="r", at=T0)
            assert store.credits.upsert(entry) == 1

    def test_lost_update_is_detected(self, loaded: Store) -> None:
        first = loaded.customers.get_versioned("c1")
        second = loaded.customers.get_versioned("c1")
        loaded.customers.upsert(
            attrs.evolve(first.record, name="First writer"), expected_version=first.version
        )
        with pytest.raises(ConflictError):
            loaded.customers.upsert(
                attrs.evolve(second.record, name="Second writer"), expected_version=second.version
            )
        assert loaded.customers.get("c1").name == "First writer"

    def test_importing_twice_changes_nothing(self, store: Store) -> None:
        book = sample_book()
        first = store.import_book(book)
        assert first.inserted == sum(len(getattr(book, k)) for k in _KINDS) + len(book.fx)
        before = _snapshot(store)
        second = store.import_book(book)
        assert second.written == 0
        assert second.unchanged == first.inserted
        _assert_unchanged(store, before)

    def test_upsert_many_counts(self, loaded: Store) -> None:
        c1 = loaded.customers.get("c1")
        result = loaded.customers.upsert_many(
            [
                c1,
                attrs.evolve(c1, name="Renamed"),
                Customer(id="c9", registered_at=T0),
                attrs.evolve(c1, name="Again"),
            ]
        )
        assert (result.inserted, result.updated, result.unchanged) == (1, 2, 1)
        assert loaded.customers.get_versioned("c1").version == 3

    # -- units of work ----------------------------------------------------------------------

    def test_transaction_commits(self, store: Store) -> None:
        with store.transaction():
            store.customers.upsert(Customer(id="a", registered_at=T0))
            store.customers.upsert(Customer(id="b", registered_at=T0))
            assert store.customers.count() == 2  # the block reads its own writes
        assert store.customers.count() == 2

    def test_transaction_is_all_or_nothing(self, loaded: Store) -> None:
        before = _snapshot(loaded)

        class Boom(Exception):
            pass

        def doomed() -> None:
            with loaded.transaction():
                loaded.customers.upsert(Customer(id="a", registered_at=T0))
                loaded.customers.upsert(attrs.evolve(loaded.customers.get("c1"), name="changed"))
                loaded.credits.upsert(
                    CreditEntry(id="kz", customer_id="a", amount=_usd("1"), reason="r", at=T0)
                )
                raise Boom

        with pytest.raises(Boom):
            doomed()
        _assert_unchanged(loaded, before)

    def test_nested_block_rolls_back_alone(self, store: Store) -> None:
        with store.transaction():
            store.customers.upsert(Customer(id="a", registered_at=T0))

            def inner() -> None:
                with store.transaction():
                    store.customers.upsert(Customer(id="b", registered_at=T0))
                    raise RuntimeError("inner")

            with pytest.raises(RuntimeError):
                inner()
            store.customers.upsert(Customer(id="c", registered_at=T0))
        assert store.customers.find("a") is not None
        assert store.customers.find("b") is None
        assert store.customers.find("c") is not None

    def test_failed_call_inside_a_block_leaves_it_usable(self, store: Store) -> None:
        with store.transaction():
            store.customers.upsert(Customer(id="a", registered_at=T0))
            with pytest.raises(UnknownReferenceError):
                store.credits.upsert_many(
                    [
                        CreditEntry(id="k1", customer_id="a", amount=_usd("1"), reason="r", at=T0),
                        CreditEntry(
                            id="k2", customer_id="ghost", amount=_usd("1"), reason="r", at=T0
                        ),
                    ]
                )
            store.customers.upsert(Customer(id="b", registered_at=T0))
        assert store.customers.count() == 2
        assert store.credits.count() == 0

    def test_failed_batch_leaves_the_store_as_before(self, loaded: Store) -> None:
        before = _snapshot(loaded)
        c1 = loaded.customers.get("c1")
        with pytest.raises(UnknownReferenceError):
            loaded.transactions.upsert_many(
                [
                    Transaction(
                        id="n1",
                        customer_id="c1",
                        kind="payment",
                        status="succeeded",
                        amount=_usd("1"),
                        method="card",
                        at=T0,
                    ),
                    attrs.evolve(loaded.transactions.get("t1"), method="paypal"),
                    Transaction(
                        id="n2",
                        customer_id="ghost",
                        kind="payment",
                        status="succeeded",
                        amount=_usd("1"),
                        method="card",
                        at=T0,
                    ),
                ]
            )
        _assert_unchanged(loaded, before)
        # An import failing on its last customer writes none of the others.
        late = Customer(id="zz", registered_at=T0, external_id="ext-c1")
        book = Book.of(
            customers=[attrs.evolve(c1, name="renamed"), Customer(id="c0", registered_at=T0), late]
        )
        with pytest.raises(DuplicateError):
            loaded.import_book(book)
        _assert_unchanged(loaded, before)

    # -- bad input --------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "bad",
        [
            lambda: Customer(id="x", registered_at=T0, name="nul\x00byte"),
            lambda: Customer(id="x", registered_at=T0, name="lone \ud800 surrogate"),
            lambda: Customer(id="x", registered_at=T0, email="a@b.c", username="\x00"),
            lambda: Product(id="x", name="not a customer"),
            lambda: Customer(id="x", registered_at=T0, phone=1),  # type: ignore[arg-type]
            lambda: Customer(id="x", registered_at=T0, external_id=1),  # type: ignore[arg-type]
            lambda: Customer(id="x", registered_at=T0, custom_attributes={1: "x"}),  # type: ignore[dict-item]
            lambda: Customer(id="x", registered_at=T0, custom_attributes={"x": Decimal("NaN")}),
            lambda: Customer(id="x", registered_at=T0, custom_attributes={"x": b"x"}),  # type: ignore[dict-item]
            lambda: Subscription.start(
                id="x",
                customer_id="c1",
                at=T0,
                price=_usd("1"),
                cycle=BillingCycle.MONTHLY,
                details=[("k", 1)],  # type: ignore[list-item]
            ),
        ],
    )
    def test_invalid_values_are_rejected_before_writing(
        self, loaded: Store, bad: Callable[[], Any]
    ) -> None:
        before = _snapshot(loaded)
        with pytest.raises(ValidationError):
            loaded.customers.upsert(bad())
        with pytest.raises(ValidationError):
            loaded.customers.upsert_many([Customer(id="ok", registered_at=T0), bad()])
        _assert_unchanged(loaded, before)

    def test_invalid_options(self, loaded: Store) -> None:
        with pytest.raises(ValidationError):
            loaded.customers.upsert(loaded.customers.get("c1"), expected_version=-1)
        for limit in (0, 1001, True):
            with pytest.raises(ValidationError):
                loaded.customers.page(as_of=AS_OF, currency="USD", limit=limit)
        with pytest.raises(ValidationError):
            loaded.customers.page(as_of=AS_OF, currency="USD", cursor="garbage!")
        with pytest.raises(ValidationError):
            loaded.customers.page(as_of=datetime(2024, 1, 1), currency="USD")  # naive
        with pytest.raises(ValidationError):
            loaded.customers.page(as_of=AS_OF, currency="XXY")
        with pytest.raises(ValidationError):
            loaded.customers.page(as_of=AS_OF, currency="USD", sort="height")
        first = loaded.customers.page(as_of=AS_OF, currency="USD", limit=1, sort="name")
        assert first.next_cursor is not None
        with pytest.raises(ValidationError):  # a cursor belongs to its query
            loaded.customers.page(
                as_of=AS_OF, currency="USD", limit=1, sort="email", cursor=first.next_cursor
            )
        with pytest.raises(ValidationError):
            loaded.transactions.page(cursor=first.next_cursor)
        with pytest.raises(ValidationError):
            loaded.mrr_series(start=AS_OF, end=T0, currency="USD")
        with pytest.raises(ValidationError):
            loaded.dashboard(as_of=AS_OF, currency="USD", trend_months=0)

    def test_injection_strings_are_data(self, loaded: Store) -> None:
        c3 = loaded.customers.get("c3")
        assert c3.name == INJECTION
        assert loaded.invoices.get("i3").lines[0].description == INJECTION
        hits = loaded.customers.page(as_of=AS_OF, currency="USD", search="DROP TABLE")
        assert [r.id for r in hits] == ["c3"]
        assert [
            r.id for r in loaded.customers.page(as_of=AS_OF, currency="USD", search="'); --")
        ] == ["c3"]
        # LIKE wildcards are plain characters too.
        assert [r.id for r in loaded.customers.page(as_of=AS_OF, currency="USD", search="%")] == [
            "c4"
        ]
        assert [
            r.id for r in loaded.customers.page(as_of=AS_OF, currency="USD", search="_under_")
        ] == ["c4"]
        loaded.customers.upsert(
            Customer(id=INJECTION, registered_at=T0, name=INJECTION, external_id=INJECTION)
        )
        assert loaded.customers.get(INJECTION).external_id == INJECTION
        assert loaded.customers.count() == 5

    # -- subscriptions, credit, fx ----------------------------------------------------------

    def test_subscription_history_grows_with_versions(self, loaded: Store) -> None:
        at = datetime(2024, 7, 1, tzinfo=UTC)
        v = loaded.subscriptions.get_versioned("s4")
        grown = loaded.subscriptions.append(
            "s4",
            SubscriptionChange(kind="plan_changed", at=at, quantity=3),
            expected_version=v.version,
        )
        assert grown.version == v.version + 1
        assert len(grown.record.history) == 2
        assert loaded.subscriptions.get("s4") == grown.record
        with pytest.raises(ConflictError):
            loaded.subscriptions.append(
                "s4", SubscriptionChange(kind="cancelled", at=at), expected_version=v.version
            )
        with pytest.raises(ValidationError):  # reactivating a live service is not a valid history
            loaded.subscriptions.append("s4", SubscriptionChange(kind="reactivated", at=at))
        with pytest.raises(NotFoundError):
            loaded.subscriptions.append("ghost", SubscriptionChange(kind="cancelled", at=at))
        assert loaded.subscriptions.get("s4") == grown.record
        assert loaded.mrr(at=at, currency="USD", customer_ids=["c1"]) == mrr(
            loaded.book(), at=at, currency="USD", policy=loaded.policy, customer_ids=["c1"]
        )

    def test_credit_balances(self, loaded: Store) -> None:
        assert loaded.credits.balance("c1", "USD") == _usd("10.00")
        assert loaded.credits.balance("c1", "USD", at=T0) == _usd("15.00")
        assert loaded.credits.balance("c1", "EUR") == _eur("0")
        assert loaded.credits.balance("c2", "EUR") == _eur("3.00")
        assert loaded.credits.balance("nobody", "USD") == _usd("0")

    def test_exchange_rates(self, store: Store) -> None:
        store.fx.put(date(2024, 1, 1), "EUR", "USD", "1.1")
        result = store.fx.put_many(
            FxRates.from_rates(
                [(date(2024, 1, 1), "EUR", "USD", "1.10"), (date(2024, 2, 1), "EUR", "USD", "1.2")]
            )
        )
        assert (result.inserted, result.updated, result.unchanged) == (1, 0, 1)
        store.fx.put(date(2024, 1, 1), "EUR", "USD", "1.05")
        rates = store.fx.rates()
        assert rates.rate("EUR", "USD", date(2024, 1, 15)) == Decimal("1.05")
        assert rates.rate("EUR", "USD", date(2024, 3, 1)) == Decimal("1.2")
        with pytest.raises(ValidationError):
            store.fx.put(date(2024, 1, 1), "EUR", "USD", "-1")

    # -- listings ---------------------------------------------------------------------------

    @pytest.mark.parametrize("direction", ["asc", "desc"])
    def test_record_listings_page_in_order(self, loaded: Store, direction: str) -> None:
        book = loaded.book()
        desc = direction == "desc"

        def check(
            repo: Any, items: tuple[Any, ...], key: Callable[[Any], Any], **options: Any
        ) -> None:
            got = _pages(lambda c: repo.page(direction=direction, limit=2, cursor=c, **options))
            expected = sorted(items, key=lambda r: (key(r), r.id), reverse=desc)
            assert got == expected

        check(loaded.products, book.products, lambda p: "")
        check(loaded.plans, book.plans, lambda p: "")
        check(loaded.subscriptions, book.subscriptions, lambda s: s.started_at)
        check(loaded.invoices, book.invoices, lambda i: i.issued_at)
        check(loaded.transactions, book.transactions, lambda t: t.at)
        check(loaded.credits, book.credits, lambda c: c.at)
        mid = datetime(2024, 2, 1, tzinfo=UTC)
        check(
            loaded.transactions,
            tuple(t for t in book.transactions if t.customer_id == "c2" and t.at >= mid),
            lambda t: t.at,
            customer_id="c2",
            since=mid,
        )
        check(
            loaded.transactions,
            tuple(
                t
                for t in book.transactions
                if t.kind is TransactionKind.PAYMENT and t.status is TransactionStatus.SUCCEEDED
            ),
            lambda t: t.at,
            kind="payment",
            status="succeeded",
        )
        check(
            loaded.invoices,
            tuple(i for i in book.invoices if i.issued_at < mid),
            lambda i: i.issued_at,
            until=mid,
        )
        check(
            loaded.invoices,
            tuple(i for i in book.invoices if i.status is InvoiceStatus.OPEN),
            lambda i: i.issued_at,
            status="open",
        )
        assert loaded.plans.for_product("p1") == tuple(
            p for p in book.plans if p.product_id == "p1"
        )
        assert loaded.transactions.for_customer("c2") == tuple(
            sorted(
                (t for t in book.transactions if t.customer_id == "c2"), key=lambda t: (t.at, t.id)
            )
        )

    @pytest.mark.parametrize("sort", list(CustomerSort))
    @pytest.mark.parametrize("direction", ["asc", "desc"])
    def test_customer_list_pages_through_every_sort(
        self, loaded: Store, sort: CustomerSort, direction: str
    ) -> None:
        book = loaded.book()
        expected = _reference_rows(loaded, book, sort, Direction(direction))
        got = _pages(
            lambda c: loaded.customers.page(
                as_of=AS_OF, currency="USD", sort=sort, direction=direction, limit=3, cursor=c
            )
        )
        assert got == expected
        one_page = loaded.customers.page(
            as_of=AS_OF, currency="USD", sort=sort, direction=direction, limit=1000
        )
        assert list(one_page.items) == expected
        assert one_page.next_cursor is None

    def test_customer_list_figures(self, loaded: Store) -> None:
        rows = {r.id: r for r in loaded.customers.page(as_of=AS_OF, currency="USD")}
        c1, c2, c3, c4 = rows["c1"], rows["c2"], rows["c3"], rows["c4"]
        # c1: $100/year with 10% off ($7.50) + $7 weekly (7 x 52 / 12 = $30.333...).
        assert c1.mrr == _usd("7.50") + _usd("7.00") * 52 / 12
        assert c1.total_paid == _usd("121.00")
        assert c1.ltv == _usd("121.00")
        assert c1.credit_balance == _usd("10.00")
        assert c1.active_services == 2
        assert c1.last_payment_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
        # c2: EUR 40 a quarter, cancelled, paid until the period ends; cash converted at
        # the rate on as_of (1.08): paid 20, refunded 5.
        assert c2.mrr == Money((_eur("40.00") / 3).amount, "USD") * Decimal("1.08")
        assert c2.total_paid == _usd("21.60")
        assert c2.ltv == _usd("16.20")
        assert c2.credit_balance == _usd("0")  # its credit is in EUR
        assert c2.active_services == 0
        # c3: past due, still counted (the default policy); its only payment failed.
        assert c3.mrr == _usd("5.00")
        assert c3.active_services == 1
        assert c3.last_payment_at is None
        assert c3.total_paid == _usd("0")
        assert c4.mrr == _usd("0")
        eur = {r.id: r for r in loaded.customers.page(as_of=AS_OF, currency="EUR")}
        assert eur["c2"].mrr == _eur("40.00") / 3
        assert eur["c2"].credit_balance == _eur("3.00")

    def test_customer_list_search_and_filters(self, loaded: Store) -> None:
        def ids(**options: Any) -> list[str]:
            return [
                r.id
                for r in _pages(
                    lambda c: loaded.customers.page(
                        as_of=AS_OF, currency="USD", limit=2, cursor=c, **options
                    )
                )
            ]

        assert ids(search="LOVELACE") == ["c1"]
        assert ids(search="zoË") == ["c2"]
        assert ids(search="STRASSE") == ["c2"]  # Unicode case folding: ß is ss
        assert ids(search="example") == ["c1", "c2"]
        assert ids(search="ROBERT") == ["c3"]  # username
        assert ids(search="   ") == ["c3", "c4", "c1", "c2"]  # blank: no search
        assert ids(owner_id="staff-1") == ["c3", "c1"]
        assert ids(referral_source="partner") == ["c2"]
        assert ids(
            registered_from=T0 + timedelta(days=31), registered_before=T0 + timedelta(days=90)
        ) == ["c3", "c2"]
        assert ids(paying=True) == ["c3", "c1", "c2"]
        assert ids(paying=False) == ["c4"]
        assert ids(has_active_services=True) == ["c3", "c1"]
        assert ids(has_active_services=False, sort="id") == ["c2", "c4"]
        assert ids(customer_ids=["c2", "c4", "ghost"], sort="id") == ["c2", "c4"]
        assert ids(search="ada", owner_id="staff-1", paying=True) == ["c1"]

    @pytest.mark.parametrize(
        "at",
        [
            T0,
            datetime(2024, 3, 1, tzinfo=UTC),
            datetime(2024, 5, 15, tzinfo=UTC),
            AS_OF,
            datetime(2025, 1, 1, tzinfo=UTC),
        ],
    )
    def test_status_product_and_segments_equal_the_pure_functions(
        self, loaded: Store, at: datetime
    ) -> None:
        _assert_segments_are_pure(loaded, at)

    def test_status_product_and_segments_follow_writes(self, loaded: Store) -> None:
        at = datetime(2024, 5, 15, tzinfo=UTC)
        active = loaded.customers.page(as_of=at, currency="USD", status="active", limit=100)
        assert "c1" in [r.id for r in active]
        # Cancel c1's services and leave an invoice of c2 open: both reach the filters.
        for sub in loaded.subscriptions.for_customer("c1"):
            if sub.state_at(at - timedelta(days=1)) is not None and not sub.current.status.is_ended:
                loaded.subscriptions.append(
                    sub.id,
                    SubscriptionChange(
                        kind="cancelled", at=at - timedelta(days=1), ends_at=at - timedelta(days=1)
                    ),
                )
        (i2,) = [i for i in loaded.invoices.for_customer("c2") if i.id == "i2"]
        loaded.invoices.upsert(attrs.evolve(i2, status=InvoiceStatus.OPEN, paid_at=None))
        _assert_segments_are_pure(loaded, at)
        statuses = {
            s: [r.id for r in loaded.customers.page(as_of=at, currency="USD", status=s, limit=9)]
            for s in ("active", "past_due", "cancelled")
        }
        assert "c1" not in statuses["active"]
        assert "c2" in statuses["past_due"]

    def test_customer_list_needs_rates_for_every_stored_currency(self, loaded: Store) -> None:
        with pytest.raises(MissingRateError):
            loaded.customers.page(as_of=AS_OF, currency="GBP")
        with pytest.raises(MissingRateError):
            loaded.customers.page(as_of=datetime(2022, 1, 1, tzinfo=UTC), currency="USD")

    # -- aggregates -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "at",
        [
            T0,
            datetime(2024, 3, 1, tzinfo=UTC),
            datetime(2024, 3, 10, tzinfo=UTC),
            datetime(2024, 5, 15, tzinfo=UTC),
            AS_OF,
            datetime(2024, 8, 10, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
        ],
    )
    def test_mrr_and_counts_equal_the_pure_functions(self, loaded: Store, at: datetime) -> None:
        book = loaded.book()
        policy = loaded.policy
        for currency in ("USD", "EUR"):
            assert loaded.mrr(at=at, currency=currency) == mrr(
                book, at=at, currency=currency, policy=policy
            )
            assert loaded.mrr(at=at, currency=currency, customer_ids=["c2", "c3", "c2"]) == mrr(
                book, at=at, currency=currency, policy=policy, customer_ids=["c2", "c3"]
            )
        paying = {
            s.customer_id
            for s in book.subscriptions
            if not subscription_mrr(s, at, policy=policy).is_zero()
        }
        assert loaded.paying_customers(at=at) == len(paying)

    def test_series_cash_and_flow_equal_the_pure_functions(self, loaded: Store) -> None:
        book = loaded.book()
        start, end = T0, datetime(2024, 9, 1, tzinfo=UTC)
        for currency in ("USD", "EUR"):
            expected = analyse(book, currency=currency, policy=loaded.policy, horizon=end).series(
                start, end
            )
            assert list(loaded.mrr_series(start=start, end=end, currency=currency)) == expected
            for month in loaded.cash_by_month(start=start, end=end, currency=currency):
                cash = cash_revenue(
                    book.transactions, month.start, month.end, currency=currency, book=book
                )
                assert (month.gross, month.refunds, month.payments) == (
                    cash.gross,
                    cash.refunds,
                    cash.payments,
                )
                assert month.net == month.gross - month.refunds
        flow = loaded.customer_flow(start=datetime(2024, 3, 10, tzinfo=UTC), end=AS_OF)
        assert (flow.at_start, flow.at_end, flow.retained, flow.gained, flow.lost) == (
            2,
            3,
            2,
            1,
            0,
        )

    def test_cash_follows_changed_transactions(self, loaded: Store) -> None:
        t5 = loaded.transactions.get("t5")
        t2 = loaded.transactions.get("t2")
        loaded.transactions.upsert(
            attrs.evolve(t5, amount=_usd("99.99"), at=datetime(2024, 4, 2, 23, 59, tzinfo=UTC))
        )
        loaded.transactions.upsert(attrs.evolve(t2, status="failed"))
        loaded.transactions.upsert_many(
            [
                Transaction(
                    id="t9",
                    customer_id="c2",
                    kind="refund",
                    status="succeeded",
                    amount=_eur("1.23"),
                    method="paypal",
                    at=datetime(2024, 4, 2, 7, tzinfo=UTC),
                ),
                attrs.evolve(loaded.transactions.get("t4"), status="succeeded"),
            ]
        )
        book = loaded.book()
        start, end = datetime(2023, 12, 31, 18, tzinfo=UTC), datetime(2024, 6, 2, 6, tzinfo=UTC)
        for currency in ("USD", "EUR"):
            months = loaded.cash_by_month(start=start, end=end, currency=currency)
            assert (months[0].start, months[-1].end) == (start, end)
            for month in months:
                cash = cash_revenue(
                    book.transactions, month.start, month.end, currency=currency, book=book
                )
                assert (month.gross, month.refunds, month.payments) == (
                    cash.gross,
                    cash.refunds,
                    cash.payments,
                )

    def test_dashboard(self, loaded: Store) -> None:
        d = loaded.dashboard(as_of=AS_OF, currency="USD", trend_months=6)
        assert d.mrr == loaded.mrr(at=AS_OF, currency="USD")
        assert d.arr == d.mrr * 12
        assert d.paying_customers == 3
        assert [m.start.month for m in d.trend] == [1, 2, 3, 4, 5, 6]
        assert d.trend[-1].mrr == d.mrr
        assert d.revenue_this_month == d.trend[-1].cash
        assert d.revenue_last_month == d.trend[-2].cash
        assert d.trend[2].cash.gross == _usd("110.00")  # March: t5 (the refund is EUR)
        assert d.trend[2].cash.refunds == _usd("5.40")  # EUR 5 at 1.08
        assert d.flow_this_month.at_end == 3

    def test_customer_summary(self, loaded: Store) -> None:
        summary = loaded.customer_summary("c1", as_of=AS_OF, currency="USD")
        book = loaded.book()
        (row,) = [
            r for r in _reference_rows(loaded, book, CustomerSort.ID, Direction.ASC) if r.id == "c1"
        ]
        assert summary.row == row
        assert [s.id for s in summary.subscriptions] == ["s1", "s4"]
        assert [i.id for i in summary.invoices] == ["i1"]
        assert [t.id for t in summary.transactions] == ["t1", "t5"]
        assert [c.id for c in summary.credits] == ["k1", "k2"]

    def test_books_for_customers_and_periods(self, loaded: Store) -> None:
        whole = loaded.book()
        some = loaded.book(customer_ids=["c2", "ghost"])
        assert [c.id for c in some.customers] == ["c2"]
        assert [s.id for s in some.subscriptions] == ["s2"]
        assert [t.id for t in some.transactions] == ["t2", "t3"]
        assert some.products == whole.products
        assert some.fx == whole.fx
        march = loaded.book(
            period=Period.of(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
        )
        assert [t.id for t in march.transactions] == ["t3", "t5"]
        assert [i.id for i in march.invoices] == ["i2"]  # referred to by t3
        assert march.customers == whole.customers
        assert march.subscriptions == whole.subscriptions
        both = loaded.book(
            customer_ids=["c1"], period=Period.of(T0, datetime(2024, 2, 1, tzinfo=UTC))
        )
        assert [c.id for c in both.credits] == ["k1"]
        assert [i.id for i in both.invoices] == ["i1"]

    # -- concurrency ------------------------------------------------------------------------

    def test_concurrent_writers_lose_nothing(self, store: Store) -> None:
        store.customers.upsert(
            Customer(id="shared", registered_at=T0, custom_attributes={"count": 0})
        )
        workers, per_worker = 4, 8
        handles = [self.reopen(store) for _ in range(workers)]
        errors: list[BaseException] = []

        def work(n: int, handle: Store) -> None:
            try:
                for i in range(per_worker):
                    handle.credits.upsert(
                        CreditEntry(
                            id=f"w{n}-{i}",
                            customer_id="shared",
                            amount=_usd("1.01"),
                            reason="r",
                            at=T0,
                        )
                    )
                    while True:  # optimistic increment: read, write with the version, retry
                        current = handle.customers.get_versioned("shared")
                        count = current.record.custom_attributes["count"]
                        assert isinstance(count, int)
                        bumped = attrs.evolve(
                            current.record, custom_attributes={"count": count + 1}
                        )
                        try:
                            handle.customers.upsert(bumped, expected_version=current.version)
                            break
                        except ConflictError:
                            continue
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n, h)) for n, h in enumerate(handles)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for h in handles:
            if h is not store:
                h.close()
        assert errors == []
        total = workers * per_worker
        assert store.credits.count() == total
        assert store.credits.balance("shared", "USD") == _usd("1.01") * total
        assert store.customers.get("shared").custom_attributes["count"] == total
        assert store.customers.get_versioned("shared").version == total + 1


def _assert_segments_are_pure(store: Store, at: datetime) -> None:
    """Status, product and segment filters, counts, segments and the LTV baseline of
    ``store`` at ``at`` equal the pure functions on its book, in USD and in EUR."""
    book = store.book()
    subs, invoices = book.subscriptions_by_customer, book.invoices_by_customer
    product_of = {p.id: p.product_id for p in book.plans}

    def ids(currency: str, **options: Any) -> list[str]:
        rows = _pages(
            lambda c: store.customers.page(
                as_of=at, currency=currency, sort="id", limit=2, cursor=c, **options
            )
        )
        return [r.id for r in rows]

    for status in CustomerStatus:
        assert ids("USD", status=status) == [
            c.id
            for c in book.customers
            if customer_status(subs.get(c.id, ()), invoices.get(c.id, ()), at) is status
        ], status
    for product in book.products:
        holders = set()
        for sub in book.subscriptions:
            state = sub.state_at(at)
            if (
                is_active_service(state, at)
                and state is not None
                and product_of.get(state.plan_id or "") == product.id
            ):
                holders.add(sub.customer_id)
        assert ids("USD", product_id=product.id) == sorted(holders), product.id
    ids_ = [c.id for c in book.customers]
    config = SegmentConfig(at_risk_cancellation_days=60, new_customer_days=90)
    for currency in ("USD", "EUR"):
        for cfg in (DEFAULT_CONFIG, config):
            seg = segmentation(book, as_of=at, currency=currency, config=cfg, policy=store.policy)
            assert store.segment_counts(as_of=at, currency=currency, config=cfg) == seg.counts()
            assert store.segments_of(ids_, as_of=at, currency=currency, config=cfg) == {
                cid: seg.segments_of(cid) for cid in ids_
            }
            for segment in Segment:
                assert ids(currency, segment=segment, segment_config=cfg) == list(
                    seg.customers_in(segment)
                ), segment
        assert store.ltv_baseline(as_of=at, currency=currency) == seg.ltv_baseline


def _reference_rows(
    store: Store, book: Book, sort: CustomerSort, direction: Direction
) -> list[CustomerRow]:
    """The whole customer list as the pure definitions compute it from the book."""
    rates = ref.list_rates(ref.book_currencies(book), book.fx, "USD", AS_OF.date())
    rows = ref.customer_rows(
        book, book.customers, at=AS_OF, currency="USD", rates=rates, policy=store.policy
    )
    return sorted(
        rows, key=lambda r: (ref.sort_value(r, sort), r.id), reverse=direction is Direction.DESC
    )
