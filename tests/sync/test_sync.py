"""HostSync on the in-memory store and SQLite: worked examples and properties."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings

from revcrm import (
    BillingCycle,
    ChangeKind,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceStatus,
    Money,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    Transaction,
)
from revcrm.errors import ConflictError, ValidationError
from revcrm.storage import InMemoryStore, SQLStore, Store, Versioned
from revcrm.sync import (
    HostSync,
    ImmutableRecordError,
    NonRecurring,
    ServiceState,
    StaleStateError,
    host_cycle,
    host_id,
    invoice_status,
    service_status,
)
from revcrm.testing.strategies._sync import Observation, service_observations
from tests._builders import usd

USD = "USD"
NY = "America/New_York"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    s = SQLStore("sqlite://")
    s.create_schema()
    yield s
    s.close()


def customer(sync: HostSync, cid: str = "1") -> None:
    sync.customers([Customer(id=cid, registered_at=datetime(2024, 1, 1, tzinfo=UTC))])


def service(**changes: object) -> ServiceState:
    base = ServiceState(
        id=7,
        customer_id=1,
        product_id=3,
        price=usd("10"),
        cycle="Monthly",
        status="Active",
        started_at=date(2024, 1, 1),
    )
    return base.replace(**changes)


# -- vocabularies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "cycle"),
    [
        ("Monthly", BillingCycle.MONTHLY),
        ("quarterly", BillingCycle.QUARTERLY),
        ("Semi-Annually", BillingCycle.SEMIANNUAL),
        ("semi_annually", BillingCycle.SEMIANNUAL),
        ("ANNUALLY", BillingCycle.ANNUAL),
        ("Biennially", BillingCycle.BIENNIAL),
        ("Triennially", BillingCycle.TRIENNIAL),
        ("12 months", BillingCycle.ANNUAL),
        ("24 Months", BillingCycle.BIENNIAL),
    ],
)
def test_panel_cycle_words(word: str, cycle: BillingCycle) -> None:
    assert BillingCycle.parse(word) == cycle
    assert host_cycle(word) == cycle


def test_twelve_months_is_annual() -> None:
    assert BillingCycle.months(12) == BillingCycle.ANNUAL
    assert BillingCycle.months(12).length_in_months == 12


@pytest.mark.parametrize(
    ("word", "kind"), [("One Time", NonRecurring.ONE_TIME), ("Free Account", NonRecurring.FREE)]
)
def test_non_recurring_words(word: str, kind: NonRecurring) -> None:
    assert host_cycle(word) is kind
    with pytest.raises(ValidationError, match="not a recurring cycle"):
        BillingCycle.parse(word)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Pending", SubscriptionStatus.PENDING),
        ("Active", SubscriptionStatus.ACTIVE),
        ("Suspended", SubscriptionStatus.SUSPENDED),
        ("Terminated", SubscriptionStatus.TERMINATED),
        ("Cancelled", SubscriptionStatus.CANCELLED),
        ("Fraud", SubscriptionStatus.TERMINATED),
    ],
)
def test_service_statuses(word: str, status: SubscriptionStatus) -> None:
    assert service_status(word) is status


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Unpaid", InvoiceStatus.OPEN),
        ("Paid", InvoiceStatus.PAID),
        ("Cancelled", InvoiceStatus.VOID),
        ("Refunded", InvoiceStatus.PAID),
        ("Collections", InvoiceStatus.UNCOLLECTIBLE),
        ("Draft", InvoiceStatus.DRAFT),
        ("Payment Pending", InvoiceStatus.OPEN),
    ],
)
def test_invoice_statuses(word: str, status: InvoiceStatus) -> None:
    assert invoice_status(word) is status


@pytest.mark.parametrize("bad", ["Frozen", 3, None])
def test_unknown_words_name_the_field(bad: object) -> None:
    with pytest.raises(ValidationError) as e:
        service_status(bad)
    assert e.value.field == "status"


def test_host_ids() -> None:
    assert host_id(42) == "42"
    assert host_id(" a7 ") == "a7"
    for bad in (True, 4.0, "", None):
        with pytest.raises(ValidationError):
            host_id(bad)
    assert service(id=42).id == "42"


# -- time zones ------------------------------------------------------------------------------


def test_naive_moments_are_read_in_the_host_zone() -> None:
    sync = HostSync(InMemoryStore(), timezone=NY)
    assert sync.moment(datetime(2024, 7, 1, 12)) == datetime(2024, 7, 1, 16, tzinfo=UTC)
    assert sync.moment(date(2024, 1, 2)) == datetime(2024, 1, 2, 5, tzinfo=UTC)
    aware = datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert sync.moment(aware) == datetime(2024, 7, 1, 3, tzinfo=UTC)
    with pytest.raises(ValidationError):
        sync.moment("2024-07-01")
    with pytest.raises(ValidationError):
        HostSync(InMemoryStore(), timezone="Mars/Olympus")


def test_a_service_state_is_validated() -> None:
    with pytest.raises(ValidationError, match="product"):
        service(product_id=None)
    with pytest.raises(ValidationError):
        service(price="10")
    with pytest.raises(ValidationError):
        service(started_at="2024-01-01")
    with pytest.raises(ValidationError):
        service(quantity=0)


# -- services ------------------------------------------------------------------------------


def test_suspension_in_march_stays_in_march(store: Store) -> None:
    """The trial of issue 11: re-syncing must not change March's MRR after an unsuspend."""
    sync = HostSync(store, timezone=NY)
    customer(sync)
    sync.services([service()], observed_at=datetime(2024, 1, 5))
    sync.services([service(status="Suspended")], observed_at=datetime(2024, 3, 5))
    march = store.mrr(at=date(2024, 3, 31), currency=USD)
    assert march == usd("0")
    sync.services([service()], observed_at=datetime(2024, 4, 5))
    again = sync.services([service()], observed_at=datetime(2024, 4, 6))
    assert (again.created, again.changed, again.unchanged) == (0, 0, 1)
    assert store.mrr(at=date(2024, 3, 31), currency=USD) == march
    assert store.mrr(at=date(2024, 4, 30), currency=USD) == usd("10")
    kinds = [c.kind for c in store.subscriptions.get("7").history]
    assert kinds == [ChangeKind.STARTED, ChangeKind.STATUS_CHANGED, ChangeKind.STATUS_CHANGED]


def test_an_unchanged_state_writes_nothing(store: Store) -> None:
    sync = HostSync(store, timezone=NY)
    customer(sync)
    sync.services([service(details={"domain": "a.example"})], observed_at=datetime(2024, 1, 5))
    v = store.subscriptions.get_versioned("7").version
    report = sync.services(
        [service(details={"domain": "a.example"})], observed_at=datetime(2024, 2, 5)
    )
    assert (report.written, report.unchanged, report.changes) == (0, 1, ())
    assert store.subscriptions.get_versioned("7").version == v


def test_plan_discount_and_cancellation_changes_are_appended(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    sync.services([service()], observed_at=datetime(2024, 1, 5))
    up = service(price=usd("20"), quantity=2, cycle="Quarterly")
    r = sync.services([up], observed_at=datetime(2024, 2, 1))
    assert [c.change.kind for c in r.changes] == [ChangeKind.PLAN_CHANGED]
    asked = up.replace(cancellation_requested=True, cancellation_requested_at=date(2024, 2, 10))
    r = sync.services([asked], observed_at=datetime(2024, 2, 11))
    assert r.changes[0].change.kind is ChangeKind.CANCELLATION_SCHEDULED
    assert r.changes[0].change.at == datetime(2024, 2, 10, tzinfo=UTC)
    r = sync.services([up], observed_at=datetime(2024, 2, 12))
    assert r.changes[0].change.kind is ChangeKind.CANCELLATION_UNSCHEDULED
    gone = up.replace(status="Cancelled", cancelled_at=date(2024, 3, 1), ended_at=date(2024, 4, 1))
    r = sync.services([gone], observed_at=datetime(2024, 3, 2))
    (c,) = r.changes
    assert (c.change.kind, c.change.at) == (ChangeKind.CANCELLED, datetime(2024, 3, 1, tzinfo=UTC))
    assert c.change.ends_at == datetime(2024, 4, 1, tzinfo=UTC)
    back = sync.services([up], observed_at=datetime(2024, 5, 1))
    assert [c.change.kind for c in back.changes] == [ChangeKind.REACTIVATED]
    assert store.subscriptions.get("7").current.status is SubscriptionStatus.ACTIVE
    assert sync.services([up], observed_at=datetime(2024, 5, 2)).unchanged == 1


def test_a_stale_state_is_refused_and_nothing_is_written(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    sync.services([service()], observed_at=datetime(2024, 3, 1))
    sync.services([service(status="Suspended")], observed_at=datetime(2024, 3, 10))
    v = store.subscriptions.get_versioned("7").version
    newer = service(id=8)
    with pytest.raises(StaleStateError) as e:
        sync.services([newer, service()], observed_at=datetime(2024, 3, 5))
    assert isinstance(e.value, ValidationError)
    assert store.subscriptions.find("8") is None  # the whole batch was rolled back
    assert store.subscriptions.get_versioned("7").version == v
    late = sync.services([service()], observed_at=datetime(2024, 3, 5), allow_backdating=True)
    assert late.changes[0].change.at == datetime(2024, 3, 10, tzinfo=UTC)


def test_new_services_take_the_hosts_state(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    states = [
        service(id=1, status="Pending"),
        service(id=2, status="Terminated", ended_at=date(2024, 2, 1)),
        service(id=3, cycle="Free Account", price=usd("9")),
        service(id=4, cycle="One Time"),
    ]
    r = sync.services(states, observed_at=datetime(2024, 3, 1))
    assert (r.created, r.skipped) == (3, ("4",))
    assert store.subscriptions.get("1").current.status is SubscriptionStatus.PENDING
    ended = store.subscriptions.get("2").current
    assert ended.ended_at == datetime(2024, 2, 1, tzinfo=UTC)
    free = store.subscriptions.get("3").current
    assert (free.price, free.cycle) == (usd("0"), BillingCycle.MONTHLY)
    assert sync.services(states, observed_at=datetime(2024, 3, 2)).written == 0


def test_a_paid_service_becoming_a_free_account_has_mrr_zero(store: Store) -> None:
    # Was refused with a ValidationError: a history replay read the change to price zero
    # as "unchanged" (`c.price or prev.price`), so it could not be recorded.
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    sync.services([service()], observed_at=datetime(2024, 1, 5))
    r = sync.services([service(cycle="Free Account")], observed_at=datetime(2024, 3, 5))
    assert [c.change.kind for c in r.changes] == [ChangeKind.PLAN_CHANGED]
    assert store.subscriptions.get("7").current.price == usd("0")
    assert store.mrr(at=date(2024, 2, 1), currency=USD) == usd("10")
    assert store.mrr(at=date(2024, 3, 6), currency=USD) == usd("0")
    again = sync.services([service(cycle="Free Account")], observed_at=datetime(2024, 3, 6))
    assert again.written == 0
    sync.services([service()], observed_at=datetime(2024, 4, 5))
    assert store.mrr(at=date(2024, 4, 6), currency=USD) == usd("10")


def test_a_service_cannot_move_customer_or_repeat(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    customer(sync, "2")
    sync.services([service()], observed_at=datetime(2024, 3, 1))
    with pytest.raises(ValidationError, match="belongs to customer"):
        sync.services([service(customer_id=2)], observed_at=datetime(2024, 3, 2))
    with pytest.raises(ValidationError, match="twice"):
        sync.services([service(), service()], observed_at=datetime(2024, 3, 2))
    with pytest.raises(ValidationError, match="pending"):
        sync.services([service(status="Pending")], observed_at=datetime(2024, 3, 2))


# -- records -------------------------------------------------------------------------------


def payment(status: str, amount: str = "10") -> Transaction:
    return Transaction(
        id="t1",
        customer_id="1",
        kind="payment",
        status=status,
        amount=usd(amount),
        method="stripe",
        at=datetime(2024, 1, 2, tzinfo=UTC),
    )


def test_a_pending_payment_settles_and_then_is_immutable(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    assert sync.transactions([payment("pending")]).created == 1
    assert sync.transactions([payment("succeeded")]).changed == 1
    assert sync.transactions([payment("succeeded")]).unchanged == 1
    with pytest.raises(ImmutableRecordError) as e:
        sync.transactions([payment("succeeded", "12")])
    assert e.value.field == "transactions[t1].amount"
    assert store.transactions.get("t1").amount == usd("10")


def invoice(status: str, paid_at: datetime | None = None) -> Invoice:
    return Invoice(
        id="i1",
        customer_id="1",
        currency=USD,
        issued_at=datetime(2024, 1, 1, tzinfo=UTC),
        due_date=date(2024, 1, 8),
        status=invoice_status(status),
        paid_at=paid_at,
    )


def test_invoice_status_moves_and_keeps_its_moments(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    paid_at = datetime(2024, 1, 3, tzinfo=UTC)
    sync.invoices([invoice("Unpaid")])
    assert sync.invoices([invoice("Paid", paid_at)]).changed == 1
    assert sync.invoices([invoice("Refunded")]).unchanged == 1  # paid_at kept
    assert store.invoices.get("i1").paid_at == paid_at
    assert sync.invoices([invoice("Cancelled")]).changed == 1
    assert store.invoices.get("i1").paid_at == paid_at
    with pytest.raises(ImmutableRecordError):
        sync.invoices([invoice("Draft")])


def test_credits_are_idempotent_and_immutable(store: Store) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    entry = CreditEntry(
        id="k1",
        customer_id="1",
        amount=usd("5"),
        reason="goodwill",
        at=sync.moment(date(2024, 1, 2)),
    )
    assert sync.credits([entry]).created == 1
    assert sync.credits([entry]).unchanged == 1
    with pytest.raises(ImmutableRecordError):
        sync.credits(
            [CreditEntry(id="k1", customer_id="1", amount=usd("6"), reason="x", at=entry.at)]
        )


# -- properties ----------------------------------------------------------------------------


def _replay(observations: list[Observation]) -> tuple[InMemoryStore, HostSync]:
    store = InMemoryStore()
    sync = HostSync(store, timezone="UTC")
    customer(sync, "c1")
    return store, sync


@settings(max_examples=40)
@given(service_observations())
def test_resyncing_the_last_observation_writes_nothing(observations: list[Observation]) -> None:
    store, sync = _replay(observations)
    for at, state in observations:
        sync.services([state], observed_at=at)
    version = store.subscriptions.get_versioned("s1").version
    last_at, last = observations[-1]
    report = sync.services([last], observed_at=last_at + timedelta(days=1))
    assert (report.written, report.unchanged) == (0, 1)
    assert store.subscriptions.get_versioned("s1").version == version


@settings(max_examples=40)
@given(service_observations())
def test_mrr_before_an_observation_never_changes(observations: list[Observation]) -> None:
    store, sync = _replay(observations)
    seen: dict[datetime, Money] = {}
    for at, state in observations:
        sync.services([state], observed_at=at)
        for t, _ in observations:
            for moment in (t - timedelta(seconds=1), t):
                if moment <= at and moment not in seen:
                    seen[moment] = store.mrr(at=moment, currency=USD)
    for moment, mrr in seen.items():
        assert store.mrr(at=moment, currency=USD) == mrr, moment


def test_an_unchanged_service_reads_no_history(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    states = [service(id=n) for n in range(1, 6)]
    assert sync.services(states, observed_at=datetime(2024, 2, 1)).created == 5
    repo = store.subscriptions
    read: list[str] = []
    whole = repo.get_versioned

    def counted(key: str) -> Versioned[Subscription]:
        read.append(key)
        return whole(key)

    def refused(*_a: object, **_k: object) -> None:
        raise AssertionError("a sync compares current states, never whole histories")

    monkeypatch.setattr(repo, "get_versioned", counted)
    for name in ("get", "find", "page", "for_customer"):
        monkeypatch.setattr(repo, name, refused)
    states[2] = states[2].replace(status="Suspended")
    r = sync.services(states, observed_at=datetime(2024, 3, 1))
    assert (r.changed, r.unchanged, [c.subscription_id for c in r.changes]) == (1, 4, ["3"])
    assert read == ["3"]  # the changed service only
    assert sync.services(states, observed_at=datetime(2024, 3, 2)).written == 0
    assert read == ["3"]


def test_a_service_written_since_its_state_was_read_is_a_conflict(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = HostSync(store, timezone="UTC")
    customer(sync)
    assert sync.services([service()], observed_at=datetime(2024, 2, 1)).created == 1
    repo = store.subscriptions
    stale = repo.current_states(["7"])
    repo.append(
        "7",
        SubscriptionChange(kind="plan_changed", at=datetime(2024, 2, 2, tzinfo=UTC), quantity=2),
    )
    after = repo.get_versioned("7")
    monkeypatch.setattr(repo, "current_states", lambda _ids: stale)
    with pytest.raises(ConflictError):
        sync.services([service(status="Suspended")], observed_at=datetime(2024, 3, 1))
    assert repo.get_versioned("7") == after  # nothing written


def test_bad_arguments_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        HostSync("sqlite://", timezone="UTC")  # type: ignore[arg-type]
    sync = HostSync(InMemoryStore(), timezone="UTC")
    with pytest.raises(ValidationError):
        sync.services(service(), observed_at=datetime(2024, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        sync.customers([service()])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        sync.services([service()], observed_at="2024-01-01")  # type: ignore[arg-type]
