"""Cursor, filter, lock and current-state rules of every store (issues 11 and 12), the
base of :class:`~revcrm.testing._reliability_contract.ReliabilityContract`: forged cursors
are ValidationErrors; a customer-list page says which ``as_of`` it used and its cursor
carries it; the product filter matches a service's own product;
``find_by_external_id(None)`` finds nothing; ``lock`` and ``scrub`` keep to their
transaction rules; current states follow every subscription write. The class a host runs
is still :class:`revcrm.testing.contract.StoreContract`; example counts follow the active
hypothesis profile (see :mod:`revcrm.testing._examples`).
"""

from __future__ import annotations

import abc
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    Customer,
    Money,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
)
from revcrm.errors import ConflictError, ValidationError
from revcrm.storage._protocols import CurrentState
from revcrm.storage._query import cursor_as_of
from revcrm.testing._contract_book import assert_same_book, sample_book
from revcrm.testing._examples import examples

if TYPE_CHECKING:
    from revcrm.storage import Store


__all__ = ["CursorLockContract"]

_AS_OF: Final = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
_REPOS: Final = ("customers", "products", "plans", "subscriptions", "invoices", "transactions")


def _sample() -> Book:
    return sample_book()


def _same(a: Book, b: Book) -> None:
    assert_same_book(a, b)


def _locked(store: Store, ids: list[str]) -> None:
    with store.transaction():
        store.lock(ids)


def _tampered(cursor: str, data: st.DataObject) -> str:
    """A cursor a client might send back: edited, cut, re-encoded or made up."""
    body, _, mac = cursor.partition(".")
    choice = data.draw(st.integers(0, 6), label="how")
    if choice == 0:  # one character changed
        i = data.draw(st.integers(0, len(cursor) - 1), label="at")
        c = data.draw(st.characters(codec="ascii", exclude_characters=cursor[i]), label="char")
        return cursor[:i] + c + cursor[i + 1 :]
    if choice == 1:  # cut
        return cursor[: data.draw(st.integers(0, len(cursor) - 1), label="cut")]
    if choice == 2:  # the payload re-encoded with an edited value, the MAC kept
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        i = data.draw(st.integers(0, len(payload) - 1), label="field")
        payload[i] = data.draw(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.floats(),
                st.text(max_size=30),
                st.sampled_from(["9" * 5000, "1e999999", "NaN", "-Infinity", "x" * 200]),
                st.lists(st.integers(), max_size=3),
            ),
            label="value",
        )
        raw = json.dumps(payload).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac
    if choice == 3:  # unsigned, as cursors were before they were signed
        return body
    if choice == 4:  # random bytes in base64
        raw = data.draw(st.binary(max_size=200), label="bytes")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac
    if choice == 5:  # any text at all
        return data.draw(st.text(max_size=300), label="text")
    return cursor + data.draw(st.text(min_size=1, max_size=5), label="tail")


class CursorLockContract(abc.ABC):
    """Issue 11/12 rules of every store about cursors, filters, locks and current states."""

    @abc.abstractmethod
    def make_store(self) -> Store: ...

    def _fresh(self) -> Store:
        store = self.make_store()
        store.import_book(_sample())
        return store

    # -- cursors -----------------------------------------------------------------------------

    def test_forged_cursors_are_validation_errors(self) -> None:
        store = self._fresh()
        try:
            first = store.customers.page(as_of=_AS_OF, currency="USD", limit=1, sort="mrr")
            txns = store.transactions.page(limit=1)
            assert first.next_cursor is not None
            assert txns.next_cursor is not None
            real = {"customers": first.next_cursor, "transactions": txns.next_cursor}

            def use(which: str, cursor: str) -> object:
                if which == "customers":
                    return store.customers.page(
                        as_of=_AS_OF, currency="USD", limit=1, sort="mrr", cursor=cursor
                    )
                return store.transactions.page(limit=1, cursor=cursor)

            @settings(
                max_examples=examples(60),
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(st.data())
            def forged(data: st.DataObject) -> None:
                which = data.draw(st.sampled_from(sorted(real)), label="listing")
                cursor = _tampered(real[which], data)
                if cursor == real[which]:
                    return
                with pytest.raises(ValidationError) as err:
                    use(which, cursor)
                assert err.value.field in ("cursor", "as_of")

            forged()
            # A cursor of another listing, or of another query of the same listing:
            with pytest.raises(ValidationError):
                use("transactions", real["customers"])
            with pytest.raises(ValidationError):
                store.customers.page(as_of=_AS_OF, currency="USD", cursor=real["customers"])
            # ... and of another store (each signs with its own key).
            other = self._fresh()
            try:
                with pytest.raises(ValidationError):
                    other.transactions.page(limit=1, cursor=real["transactions"])
            finally:
                other.close()
        finally:
            store.close()

    def test_pages_say_their_as_of_and_cursors_carry_it(self) -> None:
        store = self._fresh()
        try:
            first = store.customers.page(as_of=_AS_OF, currency="USD", limit=2)
            assert first.as_of == _AS_OF
            assert first.next_cursor is not None
            assert cursor_as_of(first.next_cursor) == _AS_OF
            implied = store.customers.page(
                as_of=None, currency="USD", limit=2, cursor=first.next_cursor
            )
            explicit = store.customers.page(
                as_of=_AS_OF, currency="USD", limit=2, cursor=first.next_cursor
            )
            assert implied == explicit
            assert implied.as_of == _AS_OF
            assert [r.id for r in implied] == ["c1", "c2"]  # by name, after c3 and c4
            with pytest.raises(ValidationError):  # another moment: another query
                store.customers.page(
                    as_of=_AS_OF + timedelta(seconds=1),
                    currency="USD",
                    limit=2,
                    cursor=first.next_cursor,
                )
            with pytest.raises(ValidationError) as err:  # a store never reads the clock
                store.customers.page(as_of=None, currency="USD")
            assert err.value.field == "as_of"
            records = store.transactions.page(limit=1)
            assert records.as_of is None
            assert records.next_cursor is not None
            assert cursor_as_of(records.next_cursor) is None
            with pytest.raises(ValidationError):  # a record cursor carries no as_of
                store.customers.page(as_of=None, currency="USD", cursor=records.next_cursor)
        finally:
            store.close()

    # -- issue 11 defects --------------------------------------------------------------------

    def test_product_filter_matches_the_services_own_product(self) -> None:
        store = self.make_store()
        try:
            t0 = datetime(2024, 1, 1, tzinfo=UTC)
            store.import_book(
                Book.of(
                    customers=[
                        Customer(id="a", registered_at=t0, name="Own product"),
                        Customer(id="b", registered_at=t0, name="Other product"),
                    ],
                    products=[Product(id="p1", name="Hosting"), Product(id="p2", name="VPS")],
                    subscriptions=[
                        Subscription.start(
                            id="sa",
                            customer_id="a",
                            at=t0,
                            price=Money("5", "USD"),
                            cycle=BillingCycle.MONTHLY,
                            product_id="p1",
                        ),
                        Subscription.start(
                            id="sb",
                            customer_id="b",
                            at=t0,
                            price=Money("5", "USD"),
                            cycle=BillingCycle.MONTHLY,
                            product_id="p2",
                        ),
                    ],
                )
            )
            rows = store.customers.page(as_of=_AS_OF, currency="USD", sort="id", product_id="p1")
            assert [r.id for r in rows] == ["a"]
            # After a change of product the service belongs to the new one.
            store.subscriptions.append(
                "sb",
                SubscriptionChange(
                    kind="plan_changed", at=_AS_OF - timedelta(days=1), product_id="p1"
                ),
            )
            rows = store.customers.page(as_of=_AS_OF, currency="USD", sort="id", product_id="p1")
            assert [r.id for r in rows] == ["a", "b"]
            rows = store.customers.page(as_of=_AS_OF, currency="USD", sort="id", product_id="p2")
            assert [r.id for r in rows] == []
            # Plan-only services still match through the plan's product; a service's own
            # product wins over its plan's.
            store.plans.upsert(
                Plan(
                    id="pl",
                    product_id="p2",
                    name="VPS",
                    price=Money("5", "USD"),
                    cycle=BillingCycle.MONTHLY,
                )
            )
            store.subscriptions.upsert(
                Subscription.start(
                    id="sc",
                    customer_id="a",
                    at=t0,
                    price=Money("5", "USD"),
                    cycle=BillingCycle.MONTHLY,
                    plan_id="pl",
                )
            )
            rows = store.customers.page(as_of=_AS_OF, currency="USD", sort="id", product_id="p2")
            assert [r.id for r in rows] == ["a"]
            store.subscriptions.upsert(
                Subscription.start(
                    id="sd",
                    customer_id="b",
                    at=t0,
                    price=Money("5", "USD"),
                    cycle=BillingCycle.MONTHLY,
                    plan_id="pl",
                    product_id="p1",
                )
            )
            rows = store.customers.page(as_of=_AS_OF, currency="USD", sort="id", product_id="p2")
            assert [r.id for r in rows] == ["a"]
        finally:
            store.close()

    def test_find_by_external_id_of_nothing_finds_nothing(self) -> None:
        store = self._fresh()  # c2, c3 and c4 have no external id
        try:
            for name in (*_REPOS, "credits"):
                repo: Any = getattr(store, name)
                assert repo.find_by_external_id(None) is None, name
                with pytest.raises(ValidationError):
                    repo.find_by_external_id("")
                with pytest.raises(ValidationError):
                    repo.find_by_external_id(7)
            assert store.customers.find_by_external_id("ext-c1").id == "c1"  # type: ignore[union-attr]
        finally:
            store.close()

    # -- locks and scrubbing -----------------------------------------------------------------

    def test_lock_only_inside_a_transaction(self) -> None:
        store = self._fresh()
        try:
            with pytest.raises(ValidationError):
                store.lock(["c1"])
            with pytest.raises(ValidationError):
                _locked(store, "c1")  # type: ignore[arg-type]
            with store.transaction():
                store.lock(["c2", "c1", "c1", "unknown"])  # any ids, in any order
                store.lock([])
                with store.transaction():
                    store.lock(["c1"])  # again, in a nested block
                store.customers.upsert(
                    Customer(id="c9", registered_at=_AS_OF, name="Locked writer")
                )
            assert store.customers.get("c9").name == "Locked writer"
        finally:
            store.close()

    def test_scrub_keeps_the_data_and_refuses_a_transaction(self) -> None:
        store = self._fresh()
        try:
            before = store.book()
            store.customers.delete("c4")
            store.scrub()
            with pytest.raises(ValidationError), store.transaction():
                store.scrub()
            assert store.customers.find("c4") is None
            _same(store.book(), before.restricted_to(["c1", "c2", "c3"]))
        finally:
            store.close()

    # -- current states without the history ---------------------------------------------------

    def test_current_states_follow_every_subscription_write(self) -> None:
        store = self._fresh()
        try:
            subs = store.subscriptions

            def expected(*ids: str) -> dict[str, CurrentState]:
                out = {}
                for key in ids:
                    v = subs.get_versioned(key)
                    out[key] = CurrentState.of(v.record, v.version)
                return out

            every = [s.id for s in store.book().subscriptions]
            assert len(every) >= 3
            assert subs.current_states([*every, "ghost"]) == expected(*every)
            assert subs.current_states([]) == {}
            at = datetime(2024, 7, 1, tzinfo=UTC)
            grown = subs.append("s4", SubscriptionChange(kind="plan_changed", at=at, quantity=3))
            now = subs.current_states(["s4"])["s4"]
            assert now == CurrentState.of(grown.record, grown.version)
            assert (now.state.quantity, now.last_change_at) == (3, at)
            renamed = attrs.evolve(grown.record, details=(("domain", "s4.example"),))
            subs.upsert(renamed, expected_version=grown.version)
            assert subs.current_states(["s4"]) == expected("s4")
            assert subs.current_states(["s4"])["s4"].details == (("domain", "s4.example"),)
            before = subs.current_states(every)

            def cancel_then_fail() -> None:
                with store.transaction():
                    subs.append("s4", SubscriptionChange(kind="cancelled", at=at))
                    assert subs.current_states(["s4"])["s4"].state.cancelled_at == at
                    raise ConflictError("subscription", "s4", 0, None)

            with pytest.raises(ConflictError):
                cancel_then_fail()
            assert subs.current_states(every) == before  # rolled back with the history
            store.customers.delete("c1", cascade=True)
            gone = {s.id for s in store.book().subscriptions}
            assert set(subs.current_states(every)) == gone
            for bad in ("s1", None, 3):
                with pytest.raises(ValidationError):
                    subs.current_states(bad)  # type: ignore[arg-type]
        finally:
            store.close()
