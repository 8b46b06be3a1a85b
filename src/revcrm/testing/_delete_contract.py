"""The contract of ``store.customers.delete``, mixed into :class:`StoreContract`.

Kept in its own module so the rules of one operation read in one place; the suite a host
runs is still :class:`revcrm.testing.contract.StoreContract`.

Its example counts follow the active hypothesis profile, as in the suite that mixes it
in (see :mod:`revcrm.testing._examples`).
"""

from __future__ import annotations

import abc
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import (
    Book,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    PaymentMethod,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm.errors import NotFoundError, ValidationError
from revcrm.testing import strategies
from revcrm.testing._contract_book import sample_book
from revcrm.testing._examples import examples

if TYPE_CHECKING:
    from revcrm.storage import Store

__all__ = ["DeleteContract"]

_AS_OF: Final = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
_KINDS: Final = ("subscriptions", "invoices", "transactions", "credits")


def _sample() -> Book:
    return sample_book()


def _owned(store: Store, customer_id: str) -> dict[str, tuple[str, ...]]:
    return {
        kind: tuple(r.id for r in getattr(store, kind).for_customer(customer_id)) for kind in _KINDS
    }


def _figures(store: Store, book: Book) -> tuple[object, ...]:
    """Every aggregate a delete must keep consistent (derived rows included)."""
    currencies = sorted({s.currency for s in book.subscriptions} | {"USD"})
    moments = [c.registered_at for c in book.customers] or [_AS_OF]
    start = min(moments).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = max([*moments, _AS_OF]) + timedelta(days=400)
    out: list[object] = [store.customers.count()]
    for kind in _KINDS:
        out.append(getattr(store, kind).count())
    for cur in currencies:
        try:
            out.append(store.mrr_series(start=start, end=end, currency=cur))
            out.append(store.cash_by_month(start=start, end=end, currency=cur))
        except Exception as e:  # a missing FX rate must fail the same way on both
            out.append(type(e).__name__)
    out.append(store.customer_flow(start=start, end=end))
    for moment in (start, _AS_OF, end):
        try:
            out.append(store.segment_counts(as_of=moment, currency="USD"))
        except Exception as e:
            out.append(type(e).__name__)
    return tuple(out)


class DeleteContract(abc.ABC):
    """``customers.delete(id, cascade=)``: see :mod:`revcrm.storage._delete` for the rules."""

    @abc.abstractmethod
    def make_store(self) -> Store: ...

    def _loaded(self) -> Store:
        store = self.make_store()
        store.import_book(_sample())
        return store

    def test_delete_missing_customer(self) -> None:
        store = self._loaded()
        try:
            with pytest.raises(NotFoundError) as err:
                store.customers.delete("nope")
            assert err.value.key == "nope"
        finally:
            store.close()

    def test_delete_refuses_owned_records_without_cascade(self) -> None:
        store = self._loaded()
        try:
            before = _owned(store, "c1")
            assert any(before.values())
            with pytest.raises(ValidationError) as err:
                store.customers.delete("c1")
            assert err.value.field == "cascade"
            assert store.customers.get("c1").id == "c1"
            assert _owned(store, "c1") == before
            with pytest.raises(ValidationError) as bad:
                store.customers.delete("c1", cascade="yes")  # type: ignore[arg-type]
            assert bad.value.field == "cascade"
        finally:
            store.close()

    def test_delete_customer_without_records(self) -> None:
        store = self.make_store()
        try:
            t0 = datetime(2024, 1, 1, tzinfo=UTC)
            store.customers.upsert(Customer(id="lone", registered_at=t0, external_id="x-1"))
            assert store.customers.delete("lone") == 1
            assert store.customers.find("lone") is None
            assert store.customers.find_by_external_id("x-1") is None
            # The external id is free again.
            store.customers.upsert(Customer(id="other", registered_at=t0, external_id="x-1"))
            assert store.customers.get("other").external_id == "x-1"
        finally:
            store.close()

    def test_cascade_deletes_everything_owned_and_nothing_else(self) -> None:
        store = self._loaded()
        try:
            book = store.book()
            owned = _owned(store, "c1")
            others = {c.id: _owned(store, c.id) for c in book.customers if c.id != "c1"}
            deleted = store.customers.delete("c1", cascade=True)
            assert deleted == 1 + sum(len(ids) for ids in owned.values())
            assert store.customers.find("c1") is None
            for kind, ids in owned.items():
                for i in ids:
                    assert getattr(store, kind).find(i) is None
            for cid, records in others.items():
                assert _owned(store, cid) == records
            # c2 was referred by c1: its referrer_id stays (stores never check it).
            assert store.customers.get("c2").referrer_id == "c1"
            assert store.credits.balance("c1", "USD") == Money.zero("USD")
        finally:
            store.close()

    def test_delete_refuses_to_orphan_another_customers_record(self) -> None:
        store = self._loaded()
        try:
            invoice = store.invoices.for_customer("c1")[0]
            store.transactions.upsert(
                Transaction(
                    id="foreign-payment",
                    customer_id="c2",
                    kind=TransactionKind.PAYMENT,
                    status=TransactionStatus.SUCCEEDED,
                    amount=Money("1", invoice.currency),
                    at=invoice.issued_at,
                    method=PaymentMethod.STRIPE,
                    invoice_id=invoice.id,
                )
            )
            before = _owned(store, "c1")
            with pytest.raises(ValidationError) as err:
                store.customers.delete("c1", cascade=True)
            assert err.value.field == "customer_id"
            assert "foreign-payment" in str(err.value)
            assert _owned(store, "c1") == before
        finally:
            store.close()

    def test_every_kind_of_foreign_reference_blocks_the_delete(self) -> None:
        at = datetime(2024, 3, 1, tzinfo=UTC)
        for name in ("line", "payment", "credit"):
            store = self._loaded()
            try:
                sub = store.subscriptions.for_customer("c1")[0]
                invoice = store.invoices.for_customer("c1")[0]
                if name == "line":
                    store.invoices.upsert(
                        Invoice(
                            id="foreign",
                            customer_id="c2",
                            currency=sub.currency,
                            issued_at=at,
                            due_date=at.date(),
                            status=InvoiceStatus.OPEN,
                            lines=(
                                InvoiceLine(
                                    kind=LineKind.ONE_OFF,
                                    amount=Money("1", sub.currency),
                                    subscription_id=sub.id,
                                ),
                            ),
                        )
                    )
                elif name == "payment":
                    store.transactions.upsert(
                        Transaction(
                            id="foreign",
                            customer_id="c2",
                            kind=TransactionKind.PAYMENT,
                            status=TransactionStatus.SUCCEEDED,
                            amount=Money("1", sub.currency),
                            at=at,
                            method=PaymentMethod.STRIPE,
                            subscription_id=sub.id,
                        )
                    )
                else:
                    store.credits.upsert(
                        CreditEntry(
                            id="foreign",
                            customer_id="c2",
                            amount=Money("-1", invoice.currency),
                            reason="applied",
                            at=at,
                            invoice_id=invoice.id,
                        )
                    )
                before = _owned(store, "c1")
                with pytest.raises(ValidationError) as err:
                    store.customers.delete("c1", cascade=True)
                assert err.value.field == "customer_id", name
                assert "foreign" in str(err.value), name
                assert _owned(store, "c1") == before, name
            finally:
                store.close()

    def test_delete_rolls_back_with_the_transaction(self) -> None:
        store = self._loaded()
        try:
            before = _figures(store, store.book())
            owned = _owned(store, "c1")

            def doomed() -> None:
                with store.transaction():
                    store.customers.delete("c1", cascade=True)
                    assert store.customers.find("c1") is None
                    raise RuntimeError("abort")

            with pytest.raises(RuntimeError):
                doomed()
            assert store.customers.get("c1").id == "c1"
            assert _owned(store, "c1") == owned
            assert _figures(store, store.book()) == before
        finally:
            store.close()

    @settings(
        max_examples=examples(8),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(book=strategies.books(), pick=st.integers(min_value=0))
    def test_aggregates_after_delete_equal_a_store_without_the_customer(
        self, book: Book, pick: int
    ) -> None:
        if not book.customers:
            return
        victim = book.customers[pick % len(book.customers)].id
        rest = book.restricted_to(c.id for c in book.customers if c.id != victim)
        store, fresh = self.make_store(), self.make_store()
        try:
            store.import_book(book)
            store.customers.delete(victim, cascade=True)
            fresh.import_book(attrs.evolve(rest))
            assert _figures(store, rest) == _figures(fresh, rest)
            assert store.book().customers == rest.customers
        finally:
            store.close()
            fresh.close()
