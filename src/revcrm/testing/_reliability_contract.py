"""The store rules of issues 11 and 12, mixed into :class:`StoreContract`.

Only revcrm errors leave a store: text arguments of reads that no backend can encode,
unknown filter values, batches that are not collections of records and moments out of
range are ValidationErrors, and a payment or credit entry is in its invoice's currency;
the cursor, filter, lock and current-state rules come from
:class:`~revcrm.testing._cursor_contract.CursorLockContract`. The class a host runs is
still :class:`revcrm.testing.contract.StoreContract`.

Its example counts follow the active hypothesis profile, as in the suite that mixes it
in (see :mod:`revcrm.testing._examples`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import pytest

from revcrm import (
    Book,
    CreditEntry,
    Customer,
    Money,
    SubscriptionChange,
    Transaction,
)
from revcrm.errors import ValidationError
from revcrm.testing._cursor_contract import _AS_OF, _REPOS, CursorLockContract, _locked, _same

if TYPE_CHECKING:
    from revcrm.storage import Store


__all__ = ["ReliabilityContract"]

#: Text no backend can encode: a lone surrogate, a NUL.
UNSTORABLE: Final = ("c1\ud800", "c1\x00")


def _bound(fn: Callable[..., object], *args: object, **kwargs: object) -> Callable[[], object]:
    return lambda: fn(*args, **kwargs)


def _reads(store: Store, bad: str) -> list[tuple[str, Callable[[], object]]]:
    """Every read that takes a text argument, given ``bad`` in that argument."""
    calls: list[tuple[str, Callable[[], object]]] = []
    for name in (*_REPOS, "credits"):
        repo: Any = getattr(store, name)
        calls += [
            (f"{name}.get", _bound(repo.get, bad)),
            (f"{name}.find", _bound(repo.find, bad)),
            (f"{name}.get_versioned", _bound(repo.get_versioned, bad)),
            (f"{name}.find_by_external_id", _bound(repo.find_by_external_id, bad)),
        ]
    calls.append(
        ("subscriptions.current_states", _bound(store.subscriptions.current_states, ["s1", bad]))
    )
    for name in ("subscriptions", "invoices", "transactions", "credits"):
        repo = getattr(store, name)
        calls += [
            (f"{name}.for_customer", _bound(repo.for_customer, bad)),
            (f"{name}.page(customer_id)", _bound(repo.page, customer_id=bad)),
        ]
    for name in _REPOS[1:]:
        repo = getattr(store, name)
        calls.append((f"{name}.page(cursor)", _bound(repo.page, cursor=bad)))

    def page(**options: Any) -> object:
        return store.customers.page(as_of=_AS_OF, currency="USD", **options)

    calls += [
        ("customers.delete", lambda: store.customers.delete(bad)),
        ("customers.delete(cascade)", lambda: store.customers.delete(bad, cascade=True)),
        ("plans.for_product", lambda: store.plans.for_product(bad)),
        ("credits.balance", lambda: store.credits.balance(bad, "USD")),
        ("customer_summary", lambda: store.customer_summary(bad, as_of=_AS_OF, currency="USD")),
        ("mrr(customer_ids)", lambda: store.mrr(at=_AS_OF, currency="USD", customer_ids=[bad])),
        (
            "segments_of",
            lambda: store.segments_of(["c1", bad], as_of=_AS_OF, currency="USD"),
        ),
        (
            "subscriptions.append",
            lambda: store.subscriptions.append(
                bad, SubscriptionChange(kind="status_changed", at=_AS_OF, status="paused")
            ),
        ),
        ("search", lambda: page(search=bad)),
        ("owner_id", lambda: page(owner_id=bad)),
        ("referral_source", lambda: page(referral_source=bad)),
        ("customer_ids", lambda: page(customer_ids=["c2", bad])),
        ("product_id", lambda: page(product_id=bad)),
        ("cursor", lambda: page(cursor=bad)),
        (
            "customers.page(cursor, as_of=None)",
            lambda: store.customers.page(as_of=None, currency="USD", cursor=bad),
        ),
        ("transactions.page(status)", lambda: store.transactions.page(status=bad)),
        ("transactions.page(kind)", lambda: store.transactions.page(kind=bad)),
        ("invoices.page(status)", lambda: store.invoices.page(status=bad)),
        ("lock", lambda: _locked(store, [bad])),
    ]
    return calls


class ReliabilityContract(CursorLockContract):
    """Issue 11/12 rules of every store (see the module docstring)."""

    # -- only revcrm errors ------------------------------------------------------------------

    @pytest.mark.parametrize("bad", UNSTORABLE, ids=["surrogate", "nul"])
    def test_reads_refuse_text_no_backend_encodes(self, bad: str) -> None:
        store = self._fresh()
        try:
            before = store.book()
            for name, call in _reads(store, bad):
                with pytest.raises(ValidationError) as err:
                    call()
                assert err.value.value is not None or err.value.field, name
            _same(store.book(), before)
        finally:
            store.close()

    def test_unknown_filter_values_are_refused(self) -> None:
        store = self._fresh()
        try:
            for call in (
                lambda: store.transactions.page(status="bogus"),
                lambda: store.transactions.page(kind="bogus"),
                lambda: store.invoices.page(status="bogus"),
                lambda: store.transactions.page(status=3),  # type: ignore[arg-type]
            ):
                with pytest.raises(ValidationError):
                    call()
            ok = store.transactions.page(status="succeeded", kind="refund")
            assert [t.id for t in ok] == ["t3"]
            assert {i.id for i in store.invoices.page(status="open")} == {"i3"}
        finally:
            store.close()

    def test_batch_writes_need_a_collection_of_records(self) -> None:
        store = self._fresh()
        try:
            before = store.book()
            one = Customer(id="c-new", name="N", registered_at=_AS_OF)

            def boom() -> Any:
                yield one
                raise TypeError("the host's generator broke")

            for name in (*_REPOS, "credits"):
                repo: Any = getattr(store, name)
                for bad in (None, 3, one, "c1", b"c1", {"id": "c1"}, len):
                    with pytest.raises(ValidationError):
                        repo.upsert_many(bad)
            with pytest.raises(TypeError):  # the host's own error, but nothing written
                store.customers.upsert_many(boom())
            for period in ("2024-01", (_AS_OF, _AS_OF), len, 5):
                with pytest.raises(ValidationError):
                    store.book(period=period)  # type: ignore[arg-type]
            _same(store.book(), before)
            assert store.customers.upsert_many(iter([one])).inserted == 1
        finally:
            store.close()

    def test_dashboard_dates_out_of_range(self) -> None:
        store = self._fresh()
        try:
            for options in (
                {"as_of": _AS_OF, "trend_months": 10**6},
                {"as_of": datetime(1, 1, 15, tzinfo=UTC)},
                {"as_of": datetime(9999, 12, 20, tzinfo=UTC)},
            ):
                with pytest.raises(ValidationError):
                    store.dashboard(currency="USD", **options)
        finally:
            store.close()

    def test_analytics_moments_out_of_range(self) -> None:
        # Found by fuzzing SQLCRM/SQLStore on PostgreSQL: year 1 and datetime.max overflowed
        # the driver's date conversion in segments_of; every backend now refuses them alike.
        store = self._fresh()
        try:
            for moment in (datetime(1, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)):
                calls: list[Callable[[], object]] = [
                    partial(store.segments_of, ["c1"], as_of=moment, currency="USD"),
                    partial(store.segment_counts, as_of=moment, currency="USD"),
                    partial(store.ltv_baseline, as_of=moment, currency="USD"),
                    partial(store.customer_summary, "c1", as_of=moment, currency="USD"),
                    partial(store.mrr, at=moment, currency="USD"),
                    partial(store.paying_customers, at=moment),
                    partial(store.customer_flow, start=_AS_OF, end=moment),
                ]
                for call in calls:
                    with pytest.raises(ValidationError):
                        call()
        finally:
            store.close()

    def test_a_payment_is_in_its_invoices_currency(self) -> None:
        store = self._fresh()
        try:
            before = store.book()
            eur = Transaction(
                id="t-eur",
                customer_id="c1",
                kind="payment",
                status="succeeded",
                amount=Money("11.00", "EUR"),
                method="card",
                at=_AS_OF,
                invoice_id="i1",  # a USD invoice
            )
            for call in (
                lambda: store.transactions.upsert(eur),
                lambda: store.transactions.upsert_many([eur]),
            ):
                with pytest.raises(ValidationError) as err:
                    call()
                assert err.value.field == "invoice_id"
            with pytest.raises(ValidationError):  # the book itself may refuse it first
                store.import_book(
                    Book.of(
                        customers=before.customers,
                        products=before.products,
                        plans=before.plans,
                        subscriptions=before.subscriptions,
                        invoices=before.invoices,
                        transactions=[*before.transactions, eur],
                        credits=before.credits,
                        fx=before.fx,
                    )
                )
            _same(store.book(), before)
        finally:
            store.close()

    def test_a_credit_entry_is_in_its_invoices_currency(self) -> None:
        # Found by an acceptance probe: a EUR credit entry could name a USD invoice on
        # every store (payments were already refused).
        store = self._fresh()
        try:
            before = store.book()
            eur = CreditEntry(
                id="ce-eur",
                customer_id="c1",
                amount=Money("-1", "EUR"),
                reason="applied",
                at=_AS_OF,
                invoice_id="i1",  # a USD invoice
            )
            for call in (
                partial(store.credits.upsert, eur),
                partial(store.credits.upsert_many, [eur]),
            ):
                with pytest.raises(ValidationError) as err:
                    call()
                assert err.value.field == "invoice_id"
            _same(store.book(), before)
        finally:
            store.close()
