"""Facade holes of issues 11 and 12: one credit authority, conversion at registration,
lead listing, get-or-create tags, idempotent intake, list pages across a moving clock,
the product filter of the Python path, and named errors for hostile reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from revcrm import BillingCycle, Book, CreditEntry, Customer, Money, Subscription
from revcrm._facade import CRM
from revcrm.crm import IntakeQuestion
from revcrm.errors import NotFoundError, ValidationError
from revcrm.leads import Lead, LeadStage
from revcrm.segments import CustomSegment, where
from tests.facade.test_facade import AS_OF, BACKENDS, BOOK, _Clock, _paying


@pytest.fixture(params=sorted(BACKENDS))
def crm(request: pytest.FixtureRequest) -> Iterator[CRM]:
    store, crm_store = BACKENDS[request.param]()
    store.import_book(BOOK)
    yield CRM(store, crm_store, reporting_currency="USD", clock=_Clock())
    store.close()


# -- one source of truth for credits (11.5) -----------------------------------------------


def test_revcrm_ledger_is_the_default_authority(crm: CRM) -> None:
    assert crm.credit_authority == "revcrm"
    cid = BOOK.customers[0].id
    before = crm.credits.balance(cid, "USD")
    crm.credits.adjust(cid, Money("7", "USD"), reason="goodwill", staff_id="s1")
    assert crm.credits.balance(cid, "USD") == before + Money("7", "USD")
    with pytest.raises(ValidationError, match="adjust_credit"):
        CRM(
            crm.store,
            crm.crm,
            reporting_currency="USD",
            clock=_Clock(),
            adjust_credit=lambda *a: None,  # a second ledger next to revcrm's: refused
        )
    with pytest.raises(ValidationError, match="credit_authority"):
        CRM(crm.store, crm.crm, reporting_currency="USD", clock=_Clock(), credit_authority="x")  # type: ignore[arg-type]


def test_host_authority_without_a_callback_refuses_and_writes_nothing(crm: CRM) -> None:
    host = CRM(
        crm.store, crm.crm, reporting_currency="USD", clock=_Clock(), credit_authority="host"
    )
    cid = BOOK.customers[0].id
    before = crm.store.credits.for_customer(cid)
    with pytest.raises(ValidationError, match="credit_authority"):
        host.credits.adjust(cid, Money("5", "USD"), reason="goodwill", staff_id="s1")
    invoice = crm.store.invoices.for_customer(_paying(crm)[0])[0]
    with pytest.raises(ValidationError, match="credit_authority"):
        host.credits.apply_to_invoice(invoice.id, Money("1", invoice.currency), staff_id="s1")
    assert crm.store.credits.for_customer(cid) == before


def test_host_authority_goes_through_the_host_callback(crm: CRM) -> None:
    calls: list[tuple[str, Money, str, str, datetime]] = []

    def adjust_credit(
        customer_id: str, amount: Money, reason: str, staff_id: str, at: datetime
    ) -> CreditEntry | None:
        calls.append((customer_id, amount, reason, staff_id, at))
        if reason == "later":
            return None  # the host's nightly sync brings it in
        return CreditEntry(
            id=f"host-{len(calls)}",
            customer_id=customer_id,
            amount=amount,
            reason=reason,
            staff_id=staff_id,
            at=at,
        )

    host = CRM(
        crm.store,
        crm.crm,
        reporting_currency="USD",
        clock=_Clock(),
        credit_authority="host",
        adjust_credit=adjust_credit,
    )
    cid = BOOK.customers[0].id
    before = host.credits.balance(cid, "USD")
    entry = host.credits.adjust(cid, Money("-5", "USD"), reason="promo", staff_id="s1")
    assert entry.id == "host-1"
    # The host decides (its table is the truth): no revcrm balance check, a mirror entry.
    assert host.credits.balance(cid, "USD") == before - Money("5", "USD")
    host.credits.adjust(cid, Money("3", "USD"), reason="later", staff_id="s2")
    assert host.credits.balance(cid, "USD") == before - Money("5", "USD")
    assert [c[:4] for c in calls] == [
        (cid, Money("-5", "USD"), "promo", "s1"),
        (cid, Money("3", "USD"), "later", "s2"),
    ]


# -- conversion at registration (11.6c) ----------------------------------------------------


def test_registration_a_moment_before_the_last_staff_move_converts(crm: CRM) -> None:
    registered = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)  # the host's, to the second
    crm.leads.add(Lead(id="l1", email="new@example.com", created_at=registered - timedelta(days=2)))
    moved = registered + timedelta(microseconds=400_000)  # staff, the same second
    crm.leads.move("l1", "contacted", staff_id="s1", at=moved)
    customer = Customer(id="new-1", registered_at=registered, email="new@example.com")
    crm.store.customers.upsert(customer)
    converted = crm.leads.match_registration(customer)
    assert converted is not None
    assert converted.stage is LeadStage.CONVERTED
    assert converted.converted_at == moved
    assert crm.leads.get("l1") == converted


def test_registration_conversion_takes_an_explicit_moment(crm: CRM) -> None:
    registered = datetime(2024, 5, 1, 12, tzinfo=UTC)
    crm.leads.add(Lead(id="l2", email="two@example.com", created_at=registered))
    crm.leads.move("l2", "contacted", staff_id="s1", at=registered + timedelta(hours=2))
    customer = Customer(id="two-1", registered_at=registered, email="two@example.com")
    crm.store.customers.upsert(customer)
    with pytest.raises(ValidationError, match="time cannot go back"):
        crm.leads.match_registration(customer)  # worked on well after: not this registration
    with pytest.raises(ValidationError, match="at"):
        crm.leads.match_registration(customer, at=registered)
    assert crm.leads.get("l2").stage is LeadStage.CONTACTED
    at = registered + timedelta(hours=3)
    converted = crm.leads.match_registration(customer, at=at, staff_id="s1")
    assert converted is not None
    assert converted.converted_at == at


# -- listing leads, get-or-create tags, idempotent intake (11.6e) ----------------------------


def test_leads_list_pages_by_creation_then_id(crm: CRM) -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    ids = []
    for i in range(7):
        lead_id = f"L{6 - i}"  # ids against creation order: the moment sorts first
        crm.leads.add(
            Lead(id=lead_id, email=f"p{i}@example.com", created_at=t + timedelta(hours=i // 2))
        )
        ids.append(lead_id)
    expected = sorted(ids, key=lambda x: (crm.leads.get(x).created_at, x))
    crm.leads.move("L3", "contacted", staff_id="s1", at=t + timedelta(days=1))
    seen, cursor = [], None
    while True:
        page = crm.leads.list(limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [x.id for x in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert [x.id for x in crm.leads.list(stage="contacted").items] == ["L3"]
    assert "L3" not in [x.id for x in crm.leads.list(stage=LeadStage.NEW, limit=10).items]
    first = crm.leads.list(stage="new", limit=2)
    assert first.next_cursor is not None
    with pytest.raises(ValidationError, match="cursor"):
        crm.leads.list(stage="contacted", cursor=first.next_cursor)  # another query's
    for bad in ("garbage", "\ud800", "eyJ4Ijoi"):
        with pytest.raises(ValidationError, match="cursor"):
            crm.leads.list(cursor=bad)
    with pytest.raises(ValidationError, match="stage"):
        crm.leads.list(stage="bogus")
    with pytest.raises(ValidationError, match="limit"):
        crm.leads.list(limit=0)


def test_tags_get_or_create(crm: CRM) -> None:
    made = crm.tags.ensure("VIP", colour="#00ff00")
    again = crm.tags.ensure("vip", colour="#ff0000")
    assert again == made  # the stored tag, colour kept
    assert crm.tags.create("Vip", exist_ok=True) == made
    assert [t.name for t in crm.crm.tags.all()] == ["VIP"]


def test_intake_answers_can_be_recorded_idempotently(crm: CRM) -> None:
    crm.intake.define(
        IntakeQuestion.multiple_choice(
            id="tools", prompt="Tools?", options=("Excel", "Stripe", "Other")
        )
    )
    cid = BOOK.customers[0].id
    at = BOOK.customers[0].registered_at + timedelta(days=1)
    first = crm.intake.answer(cid, "tools", ["Excel", "Stripe"], at=at, idempotent=True)
    same = crm.intake.answer(
        cid, "tools", ["stripe", "excel"], at=at + timedelta(days=1), idempotent=True
    )
    assert same == first
    assert len(crm.crm.intake.answers_for(cid)) == 1  # the re-sync wrote nothing
    crm.intake.answer(cid, "tools", ["Other"], at=at + timedelta(days=2), idempotent=True)
    assert len(crm.crm.intake.answers_for(cid)) == 2
    crm.intake.answer(cid, "tools", ["Other"], at=at + timedelta(days=3))  # not idempotent
    assert len(crm.crm.intake.answers_for(cid)) == 3


# -- customer list pages and the Python path (11.6a, 11.6b) ---------------------------------


def test_page_two_works_when_the_clock_moved(crm: CRM) -> None:
    first = crm.customers.list(limit=5)
    assert first.next_cursor is not None
    as_of = getattr(first, "as_of", None)
    crm._clock.now += timedelta(days=40)  # type: ignore[attr-defined]
    second = crm.customers.list(limit=5, cursor=first.next_cursor)
    assert not {r.id for r in first.items} & {r.id for r in second.items}
    if as_of is not None:  # Page.as_of (with the store's cursor_as_of)
        assert getattr(second, "as_of", None) == as_of
    # The Python path (a custom segment) pages the same way.
    everyone = CustomSegment(name="everyone", predicate=where("everyone", lambda c: True))
    one = crm.customers.list(limit=4, segment=everyone)
    assert one.next_cursor is not None
    crm._clock.now += timedelta(days=40)  # type: ignore[attr-defined]
    two = crm.customers.list(limit=4, segment=everyone, cursor=one.next_cursor)
    assert not {r.id for r in one.items} & {r.id for r in two.items}


def test_product_filter_matches_a_service_without_a_plan(crm: CRM) -> None:
    cid = BOOK.customers[0].id
    product = BOOK.products[0].id
    crm.store.customers.upsert(Customer(id="np-1", registered_at=AS_OF - timedelta(days=30)))
    crm.store.subscriptions.upsert(
        Subscription.start(
            id="np-sub",
            customer_id="np-1",
            at=AS_OF - timedelta(days=20),
            price=Money("9", "USD"),
            cycle=BillingCycle.MONTHLY,
            product_id=product,  # no plan: the documented way for a host without plans
        )
    )
    everyone = CustomSegment(name="everyone", predicate=where("everyone", lambda c: True))
    for segment in (None, everyone):
        ids = [
            r.id
            for r in crm.customers.list(
                as_of=AS_OF, product_id=product, segment=segment, limit=1000
            ).items
        ]
        assert "np-1" in ids, segment
    assert cid  # the book's own customers are listed too (not asserted: book-dependent)


# -- hostile reads (12.4) ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["\ud800", "a\x00b", "", 7])
def test_reads_refuse_ids_no_database_can_hold(crm: CRM, bad: object) -> None:
    reads: list[Callable[[], object]] = [
        lambda: crm.customers.profile(bad),  # type: ignore[arg-type]
        lambda: crm.customers.timeline(bad),  # type: ignore[arg-type]
        lambda: crm.notes.list(bad),  # type: ignore[arg-type]
        lambda: crm.contacts.list(bad),  # type: ignore[arg-type]
        lambda: crm.calls.list(bad),  # type: ignore[arg-type]
        lambda: crm.intake.of(bad),  # type: ignore[arg-type]
        lambda: crm.credits.balance(bad),  # type: ignore[arg-type]
        lambda: crm.leads.get(bad),  # type: ignore[arg-type]
        lambda: crm.tags.customers_with(bad),  # type: ignore[arg-type]
        lambda: crm.erase(bad),  # type: ignore[arg-type]
    ]
    for read in reads:
        with pytest.raises(ValidationError):
            read()


def test_dashboard_refuses_out_of_range_moments(crm: CRM) -> None:
    with pytest.raises(ValidationError, match="trend_months"):
        crm.metrics.dashboard(as_of=AS_OF, trend_months=10**6)
    with pytest.raises(ValidationError, match="trend_months"):
        crm.metrics.dashboard(as_of=AS_OF, trend_months=0)
    with pytest.raises(ValidationError, match="as_of"):
        crm.metrics.dashboard(as_of=datetime(1, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="as_of"):
        crm.customers.list(as_of=datetime(9999, 12, 31, tzinfo=UTC))
    with pytest.raises(NotFoundError):
        crm.customers.profile("no-such-customer")


# -- the profile's segments; hostile arguments found by the fuzz suite (issue 12) ----------


def test_profile_shows_the_segments_and_the_other_reason(crm: CRM) -> None:
    # The facade did not pass the book's LTV baseline, so every profile had no segments.
    from revcrm.crm import customer_profile
    from revcrm.segments import Segment

    segmentation = crm.segmentation()
    book = crm.store.book()
    baseline = crm.store.ltv_baseline(as_of=AS_OF, currency="USD")
    for c in BOOK.customers:
        profile = crm.customers.profile(c.id)
        expected = segmentation.segments_of(c.id)
        assert profile.segments == expected
        assert profile.segments  # every registered customer is in some segment
        if Segment.OTHER in expected:
            assert profile.other_reason
        pure = customer_profile(book, c.id, as_of=AS_OF, currency="USD", ltv_baseline=baseline)
        assert pure.segments == profile.segments


_HOSTILE_IDS: list[object] = [None, 7, [], bytearray(b"x"), "", "a\x00b", "\ud800"]


@pytest.mark.parametrize("bad", _HOSTILE_IDS, ids=repr)
def test_hostile_ids_of_writes_are_validation_errors(crm: CRM, bad: object) -> None:
    # merge(primary_id=None) sorted None with a str (TypeError); tags.remove, intake.retire
    # and intake.answer looked an unhashable id up in a dict (TypeError).
    cid = BOOK.customers[0].id
    other = BOOK.customers[1].id
    crm.tags.create("vip")
    crm.tags.assign(cid, "vip", staff_id="s1")
    crm.intake.define(
        IntakeQuestion.choice(id="q1", prompt="How did you find us?", options=("Search", "Web"))
    )
    calls: list[tuple[str, Callable[[], object]]] = [
        ("primary_id", lambda: crm.merge(bad, other, staff_id="s1")),  # type: ignore[arg-type]
        ("secondary_id", lambda: crm.merge(cid, bad, staff_id="s1")),  # type: ignore[arg-type]
        ("customer_id", lambda: crm.tags.remove(bad, "vip", staff_id="s1")),  # type: ignore[arg-type]
        ("tag", lambda: crm.tags.remove(cid, bad, staff_id="s1")),  # type: ignore[arg-type]
        ("tag", lambda: crm.tags.assign(cid, bad, staff_id="s1")),  # type: ignore[arg-type]
        ("question_id", lambda: crm.intake.retire(bad)),  # type: ignore[arg-type]
        ("question_id", lambda: crm.intake.answer(cid, bad, "Search")),  # type: ignore[arg-type]
    ]
    before = _written(crm)
    for field, call in calls:
        with pytest.raises(ValidationError) as caught:
            call()
        assert caught.value.field == field
    assert _written(crm) == before


def _written(crm: CRM) -> object:
    book = crm.store.book()  # a Book compares by identity: compare its collections
    billing = tuple(getattr(book, f.name) for f in attrs.fields(Book))
    return (billing, crm.crm.tags.changes(), crm.intake.questions(include_retired=True))


@pytest.mark.parametrize(
    "bad",
    [None, " ", 1 + 1j, ["x"], [CustomSegment(name="c", predicate=where("c", lambda c: True)), 3]],
)
def test_collections_of_records_are_checked(crm: CRM, bad: object) -> None:
    # profile(tickets=' ') was an AttributeError, tickets=1+1j and segments.counts(custom=
    # None) a TypeError, custom=' ' an AttributeError; contacts.save('') an AttributeError.
    cid = BOOK.customers[0].id
    with pytest.raises(ValidationError, match="tickets"):
        crm.customers.profile(cid, tickets=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="custom"):
        crm.segments.counts(custom=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="contact"):
        crm.contacts.save(bad)  # type: ignore[arg-type]
