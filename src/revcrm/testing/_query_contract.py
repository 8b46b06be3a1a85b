"""The read rules of the storage contract, mixed into :class:`StoreContract`: record and
customer listings (pages, sorts, search, filters, segments) and aggregates (MRR, series,
cash, flow, dashboard, customer summary), each equal to the pure functions on the
store's book. The suite a host runs is still
:class:`revcrm.testing.contract.StoreContract`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar

import attrs
import pytest

from revcrm import (
    Book,
    InvoiceStatus,
    Money,
    SubscriptionChange,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm.crm import CustomerStatus, customer_status, is_active_service
from revcrm.errors import (
    MissingRateError,
)
from revcrm.metrics import analyse, cash_revenue, mrr, subscription_mrr
from revcrm.segments import DEFAULT_CONFIG, Segment, SegmentConfig, segmentation
from revcrm.storage import CustomerRow, CustomerSort, Direction, Page, Period, Store
from revcrm.storage import _reference as ref
from revcrm.testing._contract_book import (
    AS_OF,
    T0,
    _eur,
    _usd,
)

__all__ = ["QueryContract"]

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


#: Moments the status, product and segment filters are compared at.
_SEGMENT_MOMENTS: Final = (
    T0,
    datetime(2024, 3, 1, tzinfo=UTC),
    datetime(2024, 5, 15, tzinfo=UTC),
    AS_OF,
    datetime(2025, 1, 1, tzinfo=UTC),
)
#: Moments MRR and the paying count are compared at.
_MRR_MOMENTS: Final = (
    T0,
    datetime(2024, 3, 1, tzinfo=UTC),
    datetime(2024, 3, 10, tzinfo=UTC),
    datetime(2024, 5, 15, tzinfo=UTC),
    AS_OF,
    datetime(2024, 8, 10, tzinfo=UTC),
    datetime(2025, 1, 1, tzinfo=UTC),
)


class QueryContract(abc.ABC):
    """Reads: listings and aggregates, equal to the pure functions."""

    @abc.abstractmethod
    def make_store(self) -> Store: ...

    @abc.abstractmethod
    def reopen(self, store: Store) -> Store: ...

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

    def test_customer_list_pages_through_every_sort(self, loaded: Store) -> None:
        book = loaded.book()
        for sort in CustomerSort:
            for direction in Direction:
                expected = _reference_rows(loaded, book, sort, direction)
                def page(
                    cursor: str | None, s: CustomerSort = sort, d: Direction = direction
                ) -> Page[CustomerRow]:
                    return loaded.customers.page(
                        as_of=AS_OF, currency="USD", sort=s, direction=d, limit=3, cursor=cursor
                    )

                got = _pages(page)
                assert got == expected, (sort, direction)
                one_page = loaded.customers.page(
                    as_of=AS_OF, currency="USD", sort=sort, direction=direction, limit=1000
                )
                assert list(one_page.items) == expected, (sort, direction)
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
        # c2: EUR 40 a quarter, cancelled, paid until the period ends (so still an active
        # service, as the segments count it); cash converted at each transaction's own
        # date: paid EUR 20 on 2024-02-10 (1.10), refunded EUR 5 on 2024-03-01 (1.08).
        assert c2.mrr == Money((_eur("40.00") / 3).amount, "USD") * Decimal("1.08")
        assert c2.total_paid == _usd("22.00")
        assert c2.ltv == _usd("16.60")
        assert c2.credit_balance == _usd("0")  # its credit is in EUR
        assert c2.active_services == 1
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
        assert ids(has_active_services=True) == ["c3", "c1", "c2"]
        assert ids(has_active_services=False, sort="id") == ["c4"]
        assert ids(customer_ids=["c2", "c4", "ghost"], sort="id") == ["c2", "c4"]
        assert ids(search="ada", owner_id="staff-1", paying=True) == ["c1"]

    def test_status_product_and_segments_equal_the_pure_functions(self, loaded: Store) -> None:
        for at in _SEGMENT_MOMENTS:
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

    def test_mrr_and_counts_equal_the_pure_functions(self, loaded: Store) -> None:
        for at in _MRR_MOMENTS:
            self._check_mrr_and_counts(loaded, at)

    def _check_mrr_and_counts(self, loaded: Store, at: datetime) -> None:
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
        assert d.customers == 3
        assert d.timezone == "UTC"

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
