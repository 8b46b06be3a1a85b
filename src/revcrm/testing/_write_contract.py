"""The write rules of the storage contract, mixed into :class:`StoreContract`: versions
and idempotent upserts, units of work, bad input, subscription history, credit, exchange
rates and concurrent writers. The suite a host runs is still
:class:`revcrm.testing.contract.StoreContract`; its example counts follow the active
hypothesis profile (see :mod:`revcrm.testing._examples`).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

import attrs
import pytest

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    Customer,
    FxRates,
    Product,
    Subscription,
    SubscriptionChange,
    Transaction,
)
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.metrics import mrr
from revcrm.storage import Store
from revcrm.testing._contract_book import (
    _KINDS,
    AS_OF,
    INJECTION,
    T0,
    _assert_unchanged,
    _eur,
    _snapshot,
    _usd,
    sample_book,
)

__all__ = ["WriteContract"]


#: Records no store may write (each a ValidationError before anything is written).
_BAD_VALUES: Final[tuple[Callable[[], Any], ...]] = (
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
)


class WriteContract(abc.ABC):
    """Writes: versions, units of work, bad input, history, concurrency."""

    @abc.abstractmethod
    def make_store(self) -> Store: ...

    @abc.abstractmethod
    def reopen(self, store: Store) -> Store: ...

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

    def test_invalid_values_are_rejected_before_writing(self, loaded: Store) -> None:
        # One store for every value: each must leave it exactly as it was.
        before = _snapshot(loaded)
        for n, bad in enumerate(_BAD_VALUES):
            with pytest.raises(ValidationError):
                loaded.customers.upsert(bad())
            with pytest.raises(ValidationError):
                loaded.customers.upsert_many([Customer(id="ok", registered_at=T0), bad()])
            assert loaded.customers.find("ok") is None, n
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
