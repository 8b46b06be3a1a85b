"""Differential tests: the status, product and segment filters of the customer list, the
segment counts, per-customer segments and the LTV baseline of every store equal the pure
functions (:mod:`revcrm.segments`, :func:`revcrm.crm.customer_status`,
:func:`revcrm.crm.is_active_service`) on the stored book, exactly.

Books are :func:`revcrm.testing.strategies.books` (one to three currencies, so payments
convert at their own dates) and :func:`~revcrm.testing.strategies.busy_books` (every
segment met); moments sit on and around the book's own edges (``moments_near``); the
thresholds are the defaults or drawn; each store runs under one of the policy presets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm import BillingCycle, Book, FxRates, Money
from revcrm.crm import CustomerStatus, customer_status, is_active_service
from revcrm.errors import MissingRateError, NotFoundError, ValidationError
from revcrm.metrics import MetricsPolicy
from revcrm.segments import (
    DEFAULT_CONFIG,
    PRECEDENCE,
    LtvBaseline,
    Segment,
    Segmentation,
    SegmentConfig,
    segment_counts,
    segmentation,
)
from revcrm.storage import CustomerSort, Direction, InMemoryStore, Page, SQLStore
from revcrm.storage._reference import book_currencies, list_rates
from revcrm.testing import strategies

from ..crm._build import customer, payment, service, t, usd
from ..segments._reference import cycle_edges
from .test_pushdown import POLICIES, SHARED_SECRET, wipe

_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
BOOKS = st.one_of(strategies.books(max_customers=5), strategies.busy_books())
Store = InMemoryStore | SQLStore


@st.composite
def configs(draw: st.DrawFn) -> SegmentConfig:
    if draw(st.booleans()):
        return DEFAULT_CONFIG
    return SegmentConfig(
        active_payment_days=draw(st.sampled_from([None, None, 0, 1, 35, 366])),
        active_grace_days=draw(st.sampled_from([0, 7, 30])),
        at_risk_cancellation_days=draw(st.sampled_from([0, 1, 14, 90])),
        new_customer_days=draw(st.sampled_from([0, 1, 30, 400])),
        precedence=draw(st.permutations(PRECEDENCE)),
    )


def moments_for(book: Book) -> st.SearchStrategy[datetime]:
    """A moment on or around the book's own edges, or a few weeks after a registration,
    a change of a service or a payment (so New, High Value and the product filter are
    met often)."""
    starts = [c.registered_at for c in book.customers]
    starts += [c.at for s in book.subscriptions for c in s.history]
    starts += [t.at for t in book.transactions]
    into = st.builds(
        lambda a, days: a + timedelta(days=days), st.sampled_from(starts), st.integers(0, 45)
    )
    return st.one_of(strategies.moments_near(book), into)


@st.composite
def flips(draw: st.DrawFn, book: Book, config: SegmentConfig) -> list[datetime]:
    """A microsecond before, at and after a few moments where one rule flips for these
    thresholds (an invoice becoming overdue, a cancellation entering the At Risk window,
    a payment leaving the Active window, a registration leaving New, a service ending)."""
    window = config.active_payment_days
    by_rule = strategies.edges(
        book,
        active_days=35 if window is None else window,
        cancellation_days=config.at_risk_cancellation_days,
        new_days=config.new_customer_days,
    )
    if window is None:
        by_rule["active"] = cycle_edges(book, config.active_grace_days)
    edges = by_rule[draw(st.sampled_from(sorted(by_rule)))]
    if not edges:
        return []
    chosen = draw(st.lists(st.sampled_from(sorted(set(edges))), max_size=2, unique=True))
    return [m for e in chosen for m in strategies.around(e)]


def pure_status(book: Book, at: datetime) -> dict[str, CustomerStatus]:
    subs, invoices = book.subscriptions_by_customer, book.invoices_by_customer
    return {
        c.id: customer_status(subs.get(c.id, ()), invoices.get(c.id, ()), at)
        for c in book.customers
    }


def pure_product(book: Book, product_id: str, at: datetime) -> set[str]:
    product_of = {p.id: p.product_id for p in book.plans}
    out = set()
    for s in book.subscriptions:
        state = s.state_at(at)
        if (
            is_active_service(state, at)
            and state is not None
            and product_of.get(state.plan_id or "") == product_id
        ):
            out.add(s.customer_id)
    return out


def ids_of(store: Store, at: datetime, currency: str, **filters: Any) -> list[str]:
    """Every id the filtered list returns, walking the pages (by id, a few per page)."""
    out: list[str] = []
    cursor: str | None = None
    while True:
        page = store.customers.page(
            as_of=at, currency=currency, sort=CustomerSort.ID, limit=3, cursor=cursor, **filters
        )
        out += [r.id for r in page]
        cursor = page.next_cursor
        if cursor is None:
            return out


def _pages(store: Store, **options: Any) -> list[Page[Any]]:
    out: list[Page[Any]] = []
    cursor: str | None = None
    while True:
        page = store.customers.page(cursor=cursor, **options)
        out.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return out


def check_filters_equal_the_pure_functions(
    store: Store, book: Book, policy: MetricsPolicy, data: st.DataObject
) -> None:
    store.import_book(book)
    currencies = sorted({s.currency for s in book.subscriptions} | {"USD"})
    currency = data.draw(st.sampled_from(currencies), label="currency")
    config = data.draw(configs(), label="config")
    moments = data.draw(st.lists(moments_for(book), min_size=1, max_size=2), label="moments")
    moments += data.draw(flips(book, config), label="flips")
    ids = [c.id for c in book.customers]
    for at in moments:
        try:
            # The list converts its money columns at as_of's date.
            list_rates(book_currencies(book), book.fx, currency, at.date())
        except MissingRateError:
            with pytest.raises(MissingRateError):
                ids_of(store, at, currency, status=CustomerStatus.ACTIVE)
            continue
        statuses = pure_status(book, at)
        for status in CustomerStatus:
            wanted = sorted(cid for cid, s in statuses.items() if s is status)
            assert ids_of(store, at, currency, status=status) == wanted, status
        for product_id in [p.id for p in book.products] + ["no-such-product"]:
            wanted = sorted(pure_product(book, product_id, at))
            assert ids_of(store, at, currency, product_id=product_id) == wanted, product_id

        try:
            seg: Segmentation = segmentation(
                book, as_of=at, currency=currency, config=config, policy=policy
            )
        except MissingRateError:
            # The pure function converts all MRR history too; a store needs only the
            # rates of the payments, so it may answer where the pure function cannot.
            continue
        assert store.ltv_baseline(as_of=at, currency=currency) == seg.ltv_baseline
        counts = store.segment_counts(as_of=at, currency=currency, config=config)
        assert counts == seg.counts()
        assert counts == segment_counts(
            book, as_of=at, currency=currency, config=config, policy=policy
        )
        got = store.segments_of(ids, as_of=at, currency=currency, config=config)
        assert got == {cid: seg.segments_of(cid) for cid in ids}
        # The baseline given (as a caller that keeps it does), for one page of ids too.
        for some in (ids, ids[::2]):
            given = store.segments_of(
                some, as_of=at, currency=currency, config=config, ltv_baseline=seg.ltv_baseline
            )
            assert given == {cid: seg.segments_of(cid) for cid in some}
        for segment in Segment:
            wanted = list(seg.customers_in(segment))
            found = ids_of(store, at, currency, segment=segment, segment_config=config)
            assert found == wanted, segment

    # Filters combined, any sort and page size: the same pages and cursors as the
    # in-memory store (every figure computed in Python from the book).
    at = moments[-1]
    options = {
        "as_of": at,
        "currency": currency,
        "segment": data.draw(st.none() | st.sampled_from(list(Segment)), label="segment"),
        "status": data.draw(st.none() | st.sampled_from(list(CustomerStatus)), label="status"),
        "product_id": data.draw(
            st.none() | st.sampled_from([p.id for p in book.products] or ["no-such-product"]),
            label="product",
        ),
        "segment_config": config,
        "sort": data.draw(st.sampled_from(list(CustomerSort)), label="sort"),
        "direction": data.draw(st.sampled_from(list(Direction)), label="direction"),
        "limit": data.draw(st.integers(1, 4), label="limit"),
    }
    memory = InMemoryStore(policy=policy, cursor_secret=SHARED_SECRET)
    memory.import_book(book)

    def outcome(s: Store) -> object:
        try:
            return _pages(s, **options)
        except MissingRateError:
            return MissingRateError

    expected = outcome(memory)
    if expected is not MissingRateError:
        assert outcome(store) == expected


@settings(_SETTINGS, max_examples=min(25, settings().max_examples))
@given(book=BOOKS, policy=st.sampled_from(POLICIES), data=st.data())
def test_in_memory_filters_equal_the_pure_functions(
    book: Book, policy: MetricsPolicy, data: st.DataObject
) -> None:
    check_filters_equal_the_pure_functions(
        InMemoryStore(policy=policy, cursor_secret=SHARED_SECRET), book, policy, data
    )


@settings(_SETTINGS, max_examples=min(15, settings().max_examples))
@given(book=BOOKS, policy=st.sampled_from(POLICIES), data=st.data())
def test_sqlite_filters_equal_the_pure_functions(
    book: Book, policy: MetricsPolicy, data: st.DataObject
) -> None:
    store = SQLStore("sqlite://", policy=policy, cursor_secret=SHARED_SECRET)
    store.create_schema()
    try:
        check_filters_equal_the_pure_functions(store, book, policy, data)
    finally:
        store.close()


@pytest.fixture(scope="module")
def pg_stores(postgres_url: str) -> Iterator[list[SQLStore]]:
    stores = [
        SQLStore(
            postgres_url, prefix=f"g{uuid.uuid4().hex[:10]}_", policy=p, cursor_secret=SHARED_SECRET
        )
        for p in POLICIES
    ]
    for s in stores:
        s.create_schema()
    yield stores
    for s in stores:
        s.drop_schema()
        s.close()


@pytest.mark.postgres
@settings(_SETTINGS, max_examples=min(25, settings().max_examples))
@given(book=BOOKS, which=st.integers(0, len(POLICIES) - 1), data=st.data())
def test_postgres_filters_equal_the_pure_functions(
    pg_stores: list[SQLStore], book: Book, which: int, data: st.DataObject
) -> None:
    store = pg_stores[which]
    wipe(store)
    check_filters_equal_the_pure_functions(store, book, store.policy, data)


# -- worked examples ----------------------------------------------------------------------


def fx_book() -> Book:
    """Two paying customers with active services. ``a`` paid 100 EUR when a euro bought
    2 dollars (200 USD); ``b`` paid 150 USD. By ``AS_OF`` a euro buys 1 dollar."""
    return Book.of(
        customers=[customer("a"), customer("b")],
        subscriptions=[
            service("sa", "a", Money("100", "EUR"), at=t(2024, 1, 1)),
            service("sb", "b", usd(150), at=t(2024, 1, 1)),
        ],
        transactions=[
            payment("pa", "a", Money("100", "EUR"), t(2024, 1, 1)),
            payment("pb", "b", usd(150), t(2024, 1, 1)),
        ],
        fx=FxRates.from_rates(
            [(t(2023, 1, 1).date(), "EUR", "USD", "2"), (t(2024, 1, 2).date(), "EUR", "USD", "1")]
        ),
    )


AS_OF = datetime(2024, 1, 20, tzinfo=UTC)


@pytest.mark.parametrize("make", [InMemoryStore, lambda: _sqlite()], ids=["memory", "sqlite"])
def test_high_value_converts_each_payment_at_its_own_date(make: Any) -> None:
    # The list's LTV column and High Value share one definition: each payment converted
    # at its own date (a = 200 USD where as_of's rate would give 100, b = 150 USD;
    # baseline 350 over 2): only a is above the average.
    store = make()
    store.import_book(fx_book())
    rows = {r.id: r for r in store.customers.page(as_of=AS_OF, currency="USD")}
    assert rows["a"].ltv == usd(200)
    assert rows["b"].ltv == usd(150)
    baseline = store.ltv_baseline(as_of=AS_OF, currency="USD")
    assert (baseline.total, baseline.paying_customers) == (usd(350), 2)
    assert ids_of(store, AS_OF, "USD", segment=Segment.HIGH_VALUE) == ["a"]
    segs = store.segments_of(["b", "a"], as_of=AS_OF, currency="USD")
    assert list(segs) == ["b", "a"]
    assert Segment.HIGH_VALUE in segs["a"]
    assert Segment.HIGH_VALUE not in segs["b"]
    counts = store.segment_counts(as_of=AS_OF, currency="USD")
    assert counts.members[Segment.HIGH_VALUE] == 1
    assert counts.primary[Segment.AT_RISK] == 0
    assert counts.customers == 2


def _sqlite() -> SQLStore:
    store = SQLStore("sqlite://", cursor_secret=SHARED_SECRET)
    store.create_schema()
    return store


@pytest.mark.parametrize("make", [InMemoryStore, lambda: _sqlite()], ids=["memory", "sqlite"])
def test_a_payment_without_a_rate_at_its_date_is_an_error(make: Any) -> None:
    store = make()
    book = fx_book()
    # The only rate starts after a's payment.
    late = FxRates.from_rates([(t(2024, 1, 2).date(), "EUR", "USD", "1")])
    store.import_book(
        Book.of(
            customers=book.customers,
            subscriptions=book.subscriptions,
            transactions=book.transactions,
            fx=late,
        )
    )
    with pytest.raises(MissingRateError):
        store.segment_counts(as_of=AS_OF, currency="USD")
    with pytest.raises(MissingRateError):
        store.ltv_baseline(as_of=AS_OF, currency="USD")
    with pytest.raises(MissingRateError):
        store.customers.page(as_of=AS_OF, currency="USD", segment="high_value")


@pytest.mark.parametrize("make", [InMemoryStore, lambda: _sqlite()], ids=["memory", "sqlite"])
def test_bad_options_are_validation_errors(make: Any) -> None:
    store = make()
    store.import_book(fx_book())
    with pytest.raises(NotFoundError):
        store.segments_of(["a", "nobody"], as_of=AS_OF, currency="USD")
    with pytest.raises(ValidationError, match="customer_ids"):
        store.segments_of("a", as_of=AS_OF, currency="USD")
    with pytest.raises(ValidationError, match="segment"):
        store.customers.page(as_of=AS_OF, currency="USD", segment="vip")
    with pytest.raises(ValidationError, match="status"):
        store.customers.page(as_of=AS_OF, currency="USD", status="gone")
    with pytest.raises(ValidationError, match="product_id"):
        store.customers.page(as_of=AS_OF, currency="USD", product_id=7)
    with pytest.raises(ValidationError, match="segment_config"):
        store.customers.page(as_of=AS_OF, currency="USD", segment_config="strict")
    with pytest.raises(ValidationError, match="config"):
        store.segment_counts(as_of=AS_OF, currency="USD", config={})
    # Before registration a customer has no segment.
    assert store.segments_of(["a"], as_of=t(2022, 1, 1), currency="USD") == {"a": frozenset()}


@pytest.mark.parametrize("make", [InMemoryStore, lambda: _sqlite()], ids=["memory", "sqlite"])
def test_a_negative_baseline_puts_customers_without_cash_above_it(make: Any) -> None:
    # b paid 50 and was refunded 80: the baseline is -30 over one paying customer, so a
    # (with an active service and no cash at all, LTV 0) is above the average.
    store = make()
    store.import_book(
        Book.of(
            customers=[customer("a"), customer("b")],
            subscriptions=[service("sa", "a", usd(10)), service("sb", "b", usd(10))],
            transactions=[
                payment("p", "b", usd(50), t(2024, 1, 1)),
                payment("r", "b", usd(80), t(2024, 1, 2), kind="refund"),
            ],
        )
    )
    baseline = store.ltv_baseline(as_of=AS_OF, currency="USD")
    assert (baseline.total, baseline.paying_customers) == (usd(-30), 1)
    assert ids_of(store, AS_OF, "USD", segment=Segment.HIGH_VALUE) == ["a"]
    segs = store.segments_of(["a", "b"], as_of=AS_OF, currency="USD")
    assert Segment.HIGH_VALUE in segs["a"]
    assert Segment.HIGH_VALUE not in segs["b"]
    assert store.segment_counts(as_of=AS_OF, currency="USD").members[Segment.HIGH_VALUE] == 1


@pytest.mark.parametrize("make", [InMemoryStore, lambda: _sqlite()], ids=["memory", "sqlite"])
def test_segments_of_uses_the_baseline_it_is_given(make: Any) -> None:
    # fx_book: a's LTV is 200 USD, b's 150 USD, the book's baseline 350 over 2.
    store = make()
    store.import_book(fx_book())
    own = store.ltv_baseline(as_of=AS_OF, currency="USD")

    def high(baseline: LtvBaseline | None) -> set[str]:
        segs = store.segments_of(["a", "b"], as_of=AS_OF, currency="USD", ltv_baseline=baseline)
        return {cid for cid, s in segs.items() if Segment.HIGH_VALUE in s}

    assert high(None) == high(own) == {"a"}
    # A threshold the caller kept from another moment is the one compared with.
    assert high(LtvBaseline(total=usd(300), paying_customers=1)) == set()
    assert high(LtvBaseline(total=usd(100), paying_customers=1)) == {"a", "b"}
    assert high(LtvBaseline(total=usd(0), paying_customers=0)) == set()
    for bad in (
        Money("350", "EUR"),
        "350",
        LtvBaseline(total=Money("1", "EUR"), paying_customers=1),
    ):
        with pytest.raises(ValidationError, match="ltv_baseline"):
            store.segments_of(["a"], as_of=AS_OF, currency="USD", ltv_baseline=bad)


def test_a_cursor_belongs_to_its_filters() -> None:
    store = InMemoryStore()
    store.import_book(fx_book())
    page = store.customers.page(as_of=AS_OF, currency="USD", status="active", limit=1)
    assert page.next_cursor is not None
    with pytest.raises(ValidationError, match="different query"):
        store.customers.page(
            as_of=AS_OF, currency="USD", status="past_due", limit=1, cursor=page.next_cursor
        )
    with pytest.raises(ValidationError, match="different query"):
        store.customers.page(
            as_of=AS_OF,
            currency="USD",
            status="active",
            segment="active",
            limit=1,
            cursor=page.next_cursor,
        )


# -- the cycle-aware Active rule on every backend ------------------------------------------


def check_segments_equal_the_definition(store: Store, book: Book, data: st.DataObject) -> None:
    """Counts, segments_of and the Active and Other filters of ``store`` equal the pure
    segmentation under the default (cycle-aware) rule, at moments where it flips."""
    store.import_book(book)
    grace = data.draw(st.sampled_from([0, 7]), label="grace")
    config = SegmentConfig(active_grace_days=grace)
    edges = sorted(set(cycle_edges(book, grace)))
    moments = data.draw(st.lists(moments_for(book), min_size=1, max_size=2), label="moments")
    if edges:
        moments += list(strategies.around(data.draw(st.sampled_from(edges), label="edge")))
    ids = [c.id for c in book.customers]
    for at in moments:
        try:
            seg = segmentation(book, as_of=at, currency="USD", config=config, policy=store.policy)
        except MissingRateError:
            continue
        assert store.segment_counts(as_of=at, currency="USD", config=config) == seg.counts()
        got = store.segments_of(ids, as_of=at, currency="USD", config=config)
        assert got == {cid: seg.segments_of(cid) for cid in ids}
        for segment in (Segment.ACTIVE, Segment.OTHER):
            found = ids_of(store, at, "USD", segment=segment, segment_config=config)
            assert found == list(seg.customers_in(segment)), segment


def with_rates_into_usd(book: Book) -> Book:
    """``book`` with a rate into USD for each of its currencies that has none. The customer
    list converts every row's MRR and LTV (it sorts and filters on them), so it needs a rate
    for every stored currency; the segmentation it is compared with converts only what its
    rules reach. books() gives rates between the book's own currencies only, so a EUR-only
    book had no EUR->USD rate and the list (rightly) raised MissingRateError."""
    fx = book.fx
    for code in sorted(book_currencies(book) | {p.price.currency for p in book.plans}):
        if code == "USD":
            continue
        try:
            fx.rate(code, "USD", datetime(9000, 1, 1).date())
        except MissingRateError:
            fx = fx.with_rate(datetime(1990, 1, 1).date(), code, "USD", "1.25")
    return book if fx is book.fx else attrs.evolve(book, fx=fx)


_CYCLE_BOOKS = st.one_of(strategies.books(max_customers=4), strategies.busy_books()).map(
    with_rates_into_usd
)


@settings(_SETTINGS, max_examples=min(15, settings().max_examples))
@given(book=_CYCLE_BOOKS, data=st.data())
def test_memory_and_sqlite_segments_equal_the_cycle_aware_definition(
    book: Book, data: st.DataObject
) -> None:
    check_segments_equal_the_definition(InMemoryStore(cursor_secret=SHARED_SECRET), book, data)
    store = _sqlite()
    try:
        check_segments_equal_the_definition(store, book, data)
    finally:
        store.close()


@pytest.mark.postgres
@settings(_SETTINGS, max_examples=min(15, settings().max_examples))
@given(book=_CYCLE_BOOKS, data=st.data())
def test_postgres_segments_equal_the_cycle_aware_definition(
    pg_stores: list[SQLStore], book: Book, data: st.DataObject
) -> None:
    store = pg_stores[0]
    wipe(store)
    check_segments_equal_the_definition(store, book, data)


@pytest.mark.parametrize("make", [InMemoryStore, lambda: _sqlite()], ids=["memory", "sqlite"])
def test_an_annual_payer_who_paid_in_january_is_active_in_september(make: Any) -> None:
    store = make()
    store.import_book(
        Book.of(
            customers=[customer("a"), customer("m")],
            subscriptions=[
                service("sa", "a", usd(120), at=t(2024, 1, 10), cycle=BillingCycle.ANNUAL),
                service("sm", "m", usd(10), at=t(2024, 1, 10)),
            ],
            transactions=[
                payment("pa", "a", usd(120), t(2024, 1, 10)),
                payment("pm", "m", usd(10), t(2024, 1, 10)),
            ],
        )
    )
    september = t(2024, 9, 15)
    segs = store.segments_of(["a", "m"], as_of=september, currency="USD")
    assert Segment.ACTIVE in segs["a"]
    assert segs["m"] == {Segment.OTHER}  # monthly, last paid in January
    fixed = SegmentConfig(active_payment_days=35)
    old = store.segments_of(["a"], as_of=september, currency="USD", config=fixed)["a"]
    assert old == {Segment.HIGH_VALUE}  # the 35-day window: not Active
    assert ids_of(store, september, "USD", segment=Segment.ACTIVE) == ["a"]
