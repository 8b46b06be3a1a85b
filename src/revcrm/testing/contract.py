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
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Final

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
    Money,
    Plan,
    Subscription,
    Transaction,
)
from revcrm.errors import (
    DuplicateError,
    NotFoundError,
    UnknownReferenceError,
)
from revcrm.storage import Store
from revcrm.storage._protocols import CurrentState
from revcrm.testing import strategies
from revcrm.testing._contract_book import (
    _KINDS,
    AS_OF,
    INJECTION,
    T0,
    _assert_unchanged,
    _snapshot,
    _usd,
    assert_same_book,
    sample_book,
)
from revcrm.testing._delete_contract import DeleteContract
from revcrm.testing._examples import examples
from revcrm.testing._query_contract import QueryContract
from revcrm.testing._reliability_contract import ReliabilityContract
from revcrm.testing._write_contract import WriteContract

__all__ = ["AS_OF", "INJECTION", "StoreContract", "assert_same_book", "sample_book"]


#: Writes naming a record that does not exist: (repository, record, the field named).
_UNKNOWN_REFERENCES: Final[tuple[tuple[str, Callable[[], Any], str], ...]] = (
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
        lambda: CreditEntry(id="kx", customer_id="ghost", amount=_usd("1"), reason="r", at=T0),
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
)


class StoreContract(WriteContract, QueryContract, DeleteContract, ReliabilityContract):
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

    def test_unknown_references_raise_and_write_nothing(self, loaded: Store) -> None:
        # One store for every case: each must leave it exactly as it was.
        before = _snapshot(loaded)
        for kind, make, field in _UNKNOWN_REFERENCES:
            with pytest.raises(UnknownReferenceError) as err:
                getattr(loaded, kind).upsert(make())
            assert err.value.field == field
            assert err.value.value == "ghost", field
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
