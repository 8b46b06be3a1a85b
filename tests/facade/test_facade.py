"""The CRM facade over the in-memory stores and over SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from revcrm import (
    Book,
    Customer,
    Money,
    PaymentMethod,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm._facade import CRM
from revcrm.crm import Contact, CustomerStatus, Note, NoteAction, TimelineKind
from revcrm.errors import (
    DuplicateError,
    NotFoundError,
    StorageError,
    TransitionNotAllowed,
    ValidationError,
)
from revcrm.leads import Lead, LeadStage
from revcrm.metrics import MetricsPolicy, mrr
from revcrm.segments import CustomSegment, LtvBaseline, Segment, mrr_at_least
from revcrm.storage import InMemoryStore, SQLStore, Store
from revcrm.storage._crm import ERASED_TEXT, CRMStore, InMemoryCRMStore
from revcrm.storage._crm_sql import SQLCRMStore

AS_OF = DEMO_AS_OF
BOOK = demo_book(30, months=18)


def _memory() -> tuple[Store, CRMStore]:
    return InMemoryStore(), InMemoryCRMStore()


def _sqlite() -> tuple[Store, CRMStore]:
    store = SQLStore("sqlite://")
    store.create_schema()
    # Its own engine: the two stores do not share a transaction (see docs/facade.md).
    crm_store = SQLCRMStore("sqlite://")
    crm_store.create_schema()
    return store, crm_store


def _sqlite_joint() -> tuple[Store, CRMStore]:
    store = SQLStore("sqlite://")
    store.create_schema()
    # One database and one unit of work: merge and erase are atomic across both.
    crm_store = SQLCRMStore.alongside(store)
    crm_store.create_schema()
    return store, crm_store


BACKENDS: dict[str, Callable[[], tuple[Store, CRMStore]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite_joint": _sqlite_joint,
}


class _Clock:
    def __init__(self) -> None:
        self.now = AS_OF
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=sorted(BACKENDS))
def crm(request: pytest.FixtureRequest) -> Iterator[CRM]:
    store, crm_store = BACKENDS[request.param]()
    store.import_book(BOOK)
    yield CRM(store, crm_store, reporting_currency="USD", clock=_Clock())
    store.close()


def _paying(crm: CRM) -> list[str]:
    return [
        c.id
        for c in BOOK.customers
        if crm.store.subscriptions.for_customer(c.id) and crm.store.invoices.for_customer(c.id)
    ]


def test_clock_is_only_read_to_stamp_and_default() -> None:
    clock = _Clock()
    store, crm_store = _memory()
    store.import_book(BOOK)
    crm = CRM(store, crm_store, reporting_currency="USD", clock=clock)
    crm.segments.counts(as_of=AS_OF)
    crm.customers.list(as_of=AS_OF, limit=5)
    assert clock.calls == 0
    crm.notes.add(BOOK.customers[0].id, "hi", author_id="s1")
    assert clock.calls == 1


def test_notes_keep_an_audit_trail_and_pinned_come_first(crm: CRM) -> None:
    cid = BOOK.customers[0].id
    a = crm.notes.add(cid, "first", author_id="s1", id="a")
    crm.notes.add(cid, "second", author_id="s1", id="b")
    crm.notes.pin("a", staff_id="s2")
    edited = crm.notes.edit("b", "second, edited", staff_id="s3")
    assert edited.edited_at is not None
    assert edited.created_at < edited.edited_at
    assert [n.id for n in crm.notes.list(cid)] == ["a", "b"]
    crm.notes.delete("a", staff_id="s2")
    assert [n.id for n in crm.notes.list(cid)] == ["b"]
    actions = [e.action for e in crm.crm.notes.history("a")]
    assert actions == [NoteAction.CREATED, NoteAction.PINNED, NoteAction.DELETED]
    assert crm.crm.notes.history("a")[0].body == a.body
    with pytest.raises(NotFoundError):
        crm.notes.add("no-such-customer", "x", author_id="s1")


def test_tags_assign_remove_count_and_filter(crm: CRM) -> None:
    c1, c2, c3 = (c.id for c in BOOK.customers[:3])
    crm.tags.create("VIP", "#00ff00")
    crm.tags.create("Trial")
    with pytest.raises(DuplicateError):
        crm.tags.create("vip")
    with pytest.raises(ValidationError, match="colour"):
        crm.tags.create("Bad", "green")
    for c in (c1, c2, c3):
        crm.tags.assign(c, "vip", staff_id="s1")
    crm.tags.assign(c1, "VIP", staff_id="s1")  # already there: no change
    crm.tags.remove(c3, "Vip", staff_id="s1")
    later = crm.now()
    assert crm.tags.counts(as_of=later) == {"VIP": 2, "Trial": 0}
    assert crm.tags.customers_with("vip", as_of=later) == {c1, c2}
    rows = crm.customers.list(as_of=later, tag="VIP")
    assert {r.id for r in rows} == {c1, c2}
    assert all(r.tags == {"VIP"} for r in rows)
    with pytest.raises(NotFoundError):
        crm.tags.remove(c3, "vip", staff_id="s1")


def test_customer_list_pages_cover_everyone_once(crm: CRM) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = crm.customers.list(as_of=AS_OF, sort="mrr", limit=7, cursor=cursor)
        seen += [r.id for r in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(c.id for c in BOOK.customers)
    assert len(seen) == len(set(seen))


def test_customer_list_search_and_segment_filter(crm: CRM) -> None:
    target = BOOK.customers[4]
    assert target.email is not None
    rows = crm.customers.list(as_of=AS_OF, search=target.email.upper())
    assert [r.id for r in rows] == [target.id]
    for segment in ("active", "churned"):
        members = set(crm.segments.members(segment, as_of=AS_OF))
        listed = {r.id for r in crm.customers.list(as_of=AS_OF, segment=segment, limit=500)}
        assert listed == members
        rows = crm.customers.list(as_of=AS_OF, segment=segment, limit=500)
        assert all(segment in {s.value for s in r.segments} for r in rows)


def test_list_segments_and_counts_agree_with_the_python_segmentation(crm: CRM) -> None:
    at = AS_OF - timedelta(days=45)
    seg = crm.segmentation(as_of=at)
    assert crm.segments.counts(as_of=at) == seg.counts()
    rows = crm.customers.list(as_of=at, limit=500)
    for r in rows:
        assert r.segments == seg.segments_of(r.id)
        assert r.primary_segment == seg.primary(r.id)
    crm.tags.create("VIP")
    tagged = sorted(c.id for c in BOOK.customers[::3])
    for cid in tagged:
        crm.tags.assign(cid, "VIP", staff_id="s1", at=at - timedelta(days=1))
    for segment in Segment:
        members = set(seg.customers_in(segment))
        listed = {r.id for r in crm.customers.list(as_of=at, segment=segment, limit=500)}
        assert listed == members, segment
        both = {r.id for r in crm.customers.list(as_of=at, segment=segment, tag="vip", limit=500)}
        assert both == members & set(tagged), segment
    assert {r.id for r in crm.customers.list(as_of=at, segment="High Value", limit=500)} == set(
        seg.customers_in(Segment.HIGH_VALUE)
    )


def test_custom_segments_and_another_policy_run_in_python(crm: CRM) -> None:
    big = CustomSegment(name="big", predicate=mrr_at_least(Money("50", "USD")))
    seg = crm.segmentation(as_of=AS_OF)
    listed = {r.id for r in crm.customers.list(as_of=AS_OF, segment=big, limit=500)}
    assert listed == set(seg.customers_in(big))
    assert crm.segments.counts(as_of=AS_OF, custom=[big]).custom["big"] == len(listed)
    other = CRM(
        crm.store,
        crm.crm,
        reporting_currency="USD",
        clock=_Clock(),
        policy=MetricsPolicy.stripe(),
    )
    theirs = other.segmentation(as_of=AS_OF)
    assert other.segments.counts(as_of=AS_OF) == theirs.counts()
    for segment in (Segment.ACTIVE, Segment.AT_RISK):
        rows = other.customers.list(as_of=AS_OF, segment=segment, limit=500)
        assert {r.id for r in rows} == set(theirs.customers_in(segment))
        assert all(r.segments == theirs.segments_of(r.id) for r in rows)


def test_profile_has_notes_tags_and_lead_status(crm: CRM) -> None:
    customer = BOOK.customers[0]
    crm.notes.add(customer.id, "called them", author_id="s1")
    crm.tags.create("VIP")
    crm.tags.assign(customer.id, "VIP", staff_id="s1")
    lead = Lead(id="l1", email="x@example.com", created_at=AS_OF - timedelta(days=400))
    crm.leads.add(lead)
    crm.leads.convert("l1", customer.id, staff_id="s1")
    profile = crm.customers.profile(customer.id, as_of=crm.now())
    assert profile.tags == ("VIP",)
    assert [n.body for n in profile.notes] == ["called them"]
    # A customer who has bought is not a lead: the profile shows no lead stage.
    assert profile.billing.lead_stage is None
    newcomer = Customer(id="new1", email="Lee@example.com", registered_at=AS_OF)
    crm.store.customers.upsert(newcomer)
    crm.leads.add(Lead(id="l2", email="lee@example.com", created_at=AS_OF))
    crm.leads.move("l2", "contacted", staff_id="s1")
    fresh = crm.customers.profile("new1", as_of=crm.now())
    assert fresh.billing.lead_stage is LeadStage.CONTACTED


def test_credits_cannot_go_negative_unless_allowed(crm: CRM) -> None:
    cid = BOOK.customers[0].id
    start = crm.credits.balance(cid, "USD")
    crm.credits.adjust(cid, Money("10", "USD"), reason="goodwill", staff_id="s1")
    assert crm.credits.balance(cid, "USD") == start + Money("10", "USD")
    too_much = -(start + Money("10.01", "USD"))
    with pytest.raises(ValidationError) as e:
        crm.credits.adjust(cid, too_much, reason="oops", staff_id="s1")
    assert e.value.field == "amount"
    assert crm.credits.balance(cid, "USD") == start + Money("10", "USD")
    crm.allow_negative_credit = True
    crm.credits.adjust(cid, too_much, reason="allowed", staff_id="s1")
    assert crm.credits.balance(cid, "USD") == Money("-0.01", "USD")


def test_credit_applied_to_an_invoice(crm: CRM) -> None:
    invoice = next(i for i in BOOK.invoices)
    cid, cur = invoice.customer_id, invoice.currency
    before = crm.credits.balance(cid, cur)
    crm.credits.adjust(cid, Money("5", cur), reason="promo", staff_id="s1")
    entry = crm.credits.apply_to_invoice(invoice.id, Money("5", cur), staff_id="s1")
    assert entry.invoice_id == invoice.id
    assert crm.credits.balance(cid, cur) == before
    with pytest.raises(ValidationError, match="amount"):
        crm.credits.apply_to_invoice(invoice.id, before + Money("1", cur), staff_id="s1")
    crm.credits.adjust(cid, invoice.total * 2, reason="big promo", staff_id="s1")
    with pytest.raises(ValidationError, match="already applied"):
        crm.credits.apply_to_invoice(invoice.id, invoice.total, staff_id="s1")
    crm.credits.apply_to_invoice(invoice.id, invoice.total - Money("5", cur), staff_id="s1")


def test_leads_move_match_and_convert_once(crm: CRM) -> None:
    t0 = AS_OF - timedelta(days=10)
    crm.leads.add(Lead(id="l1", email="New.Person@example.com", created_at=t0))
    crm.leads.move("l1", "contacted", staff_id="s1", at=t0 + timedelta(hours=1))
    crm.leads.move("l1", LeadStage.QUALIFIED, staff_id="s1", at=t0 + timedelta(hours=2))
    customer = Customer(id="new1", email="new.person@EXAMPLE.com", registered_at=AS_OF)
    crm.store.customers.upsert(customer)
    converted = crm.leads.match_registration(customer)
    assert converted is not None
    assert converted.customer_id == "new1"
    assert crm.leads.match_registration(customer) is None  # delivered twice: no change
    with pytest.raises(TransitionNotAllowed):
        crm.leads.convert("l1", "new1", staff_id="s1")
    assert crm.crm.leads.version("l1") == 3
    assert crm.crm.leads.count() == 1


def _totals(crm: CRM) -> tuple[object, ...]:
    book = crm.store.book()
    d = crm.store.dashboard(as_of=AS_OF, currency="USD")
    return (
        mrr(book, at=AS_OF, currency="USD"),
        d.mrr,
        d.arr,
        d.revenue_this_month,
        d.revenue_last_month,
        d.trend,
        crm.store.cash_by_month(start=AS_OF - timedelta(days=540), end=AS_OF, currency="USD"),
        len(book.subscriptions),
        len(book.invoices),
        len(book.transactions),
        len(book.credits),
    )


def test_merge_keeps_every_record_and_every_total(crm: CRM) -> None:
    paying = _paying(crm)
    primary, secondary = paying[0], paying[1]
    owned = {
        "subscriptions": {s.id for s in crm.store.subscriptions.for_customer(secondary)},
        "invoices": {i.id for i in crm.store.invoices.for_customer(secondary)},
        "transactions": {t.id for t in crm.store.transactions.for_customer(secondary)},
    }
    both_subs = len(crm.store.subscriptions.for_customer(primary)) + len(owned["subscriptions"])
    crm.notes.add(secondary, "note on secondary", author_id="s1", id="ns")
    crm.tags.create("VIP")
    crm.tags.assign(secondary, "VIP", staff_id="s1")
    before = _totals(crm)
    primary_email = crm.store.customers.get(primary).email
    result = crm.merge(primary, secondary, staff_id="s9")
    assert _totals(crm) == before
    assert result.subscriptions == len(owned["subscriptions"])
    assert len(crm.store.subscriptions.for_customer(primary)) == both_subs
    assert owned["invoices"] <= {i.id for i in crm.store.invoices.for_customer(primary)}
    assert owned["transactions"] <= {t.id for t in crm.store.transactions.for_customer(primary)}
    assert crm.store.subscriptions.for_customer(secondary) == ()
    merged = crm.store.customers.get(primary)
    assert merged.id == primary
    assert merged.email == primary_email
    # The emptied secondary is gone: it must not count as a customer who never bought.
    assert crm.store.customers.find(secondary) is None
    assert crm.crm.tags.changes(secondary) == ()
    assert crm.notes.list(secondary) == ()
    bodies = [n.body for n in crm.notes.list(primary)]
    assert "note on secondary" in bodies
    assert any("Merged customer" in b for b in bodies)
    assert crm.tags.customers_with("VIP", as_of=crm.now()) == {primary}


def test_merge_can_keep_the_secondary_as_a_marked_shell(crm: CRM) -> None:
    primary, secondary = _paying(crm)[:2]
    before = _totals(crm)
    crm.merge(primary, secondary, staff_id="s9", keep_secondary=True)
    assert _totals(crm) == before
    shell = crm.store.customers.get(secondary)
    assert shell.custom_attributes["merged_into"] == primary
    assert shell.email is None
    assert crm.store.subscriptions.for_customer(secondary) == ()
    with pytest.raises(ValidationError, match="keep_secondary"):
        crm.merge(primary, secondary, staff_id="s9", keep_secondary="yes")  # type: ignore[arg-type]


def test_merge_clears_the_lead_no_customer_owns_any_more(crm: CRM) -> None:
    primary, secondary = _paying(crm)[:2]
    for lead_id, email, cid in (
        ("l1", "a@example.com", primary),
        ("l2", "b@example.com", secondary),
    ):
        crm.leads.add(
            Lead(id=lead_id, email=email, name="Pat", created_at=AS_OF - timedelta(days=900))
        )
        crm.leads.convert(lead_id, cid, staff_id="s1")
    result = crm.merge(primary, secondary, staff_id="s9")
    assert result.leads == 0
    kept, orphan = crm.crm.leads.get("l1"), crm.crm.leads.get("l2")
    assert kept.email == "a@example.com"
    assert kept.customer_id == primary
    # Still a conversion in the funnel, but its contact details are gone with the account.
    assert orphan.stage is LeadStage.CONVERTED
    assert "b@example.com" not in orphan.email
    assert orphan.name == ""


def test_merge_never_makes_a_customer_refer_to_itself(crm: CRM) -> None:
    primary, secondary = _paying(crm)[:2]
    for cid, referrer in ((primary, None), (secondary, primary)):
        c = crm.store.customers.get(cid)
        crm.store.customers.upsert(attrs.evolve(c, referrer_id=referrer))
    crm.merge(primary, secondary, staff_id="s9")
    assert crm.store.customers.get(primary).referrer_id is None


def test_merge_with_itself_is_refused(crm: CRM) -> None:
    cid = BOOK.customers[0].id
    with pytest.raises(ValidationError, match="secondary_id"):
        crm.merge(cid, cid, staff_id="s1")


_PERSONAL = ("name", "email", "username", "phone", "company", "role", "website", "location")


def test_anonymise_keeps_every_metric_and_hides_personal_data(crm: CRM) -> None:
    target = _paying(crm)[0]
    crm.notes.add(target, "lives at 1 Main Street", author_id="s1", id="n1")
    crm.notes.edit("n1", "lives at 2 Main Street", staff_id="s1")
    lead = Lead(id="l1", email="p@example.com", name="Pat", created_at=AS_OF - timedelta(days=900))
    crm.leads.add(lead)
    crm.leads.convert("l1", target, staff_id="s1")
    before = _totals(crm)
    original = crm.store.customers.get(target)
    crm.erase(target, staff_id="dpo")
    assert _totals(crm) == before
    erased = crm.store.customers.get(target)
    for field in _PERSONAL:
        assert getattr(erased, field) in (None, "erased customer"), field
    assert original.email is not None
    assert len(crm.customers.list(as_of=AS_OF, search=original.email)) == 0
    assert original.email not in repr(crm.store.book(customer_ids=[target]))
    assert erased.email is None
    assert erased.custom_attributes == {}
    assert all(e.body == ERASED_TEXT for e in crm.crm.notes.history("n1"))
    assert [n.body for n in crm.notes.list(target)] == ["Personal data erased.", ERASED_TEXT]
    stored_lead = crm.crm.leads.get("l1")
    assert stored_lead.name == ""
    assert "p@example.com" not in stored_lead.email
    assert stored_lead.customer_id == target


def test_delete_removes_the_customer_everywhere(crm: CRM) -> None:
    target = _paying(crm)[0]
    crm.notes.add(target, "lives at 1 Main Street", author_id="s1", id="n1")
    crm.tags.create("VIP")
    crm.tags.assign(target, "VIP", staff_id="s1")
    crm.contacts.save(Contact(id="k1", customer_id=target, name="Bo"))
    crm.calls.log(target, "asked about pricing", staff_id="s1", id="call1")
    lead = Lead(id="l1", email="p@example.com", name="Pat", created_at=AS_OF - timedelta(days=900))
    crm.leads.add(lead)
    crm.leads.convert("l1", target, staff_id="s1")
    rest = BOOK.restricted_to(c.id for c in BOOK.customers if c.id != target)
    crm.erase(target, mode="delete")
    assert crm.store.customers.find(target) is None
    assert crm.store.book(customer_ids=[target]).customers == ()
    assert crm.crm.notes.find("n1") is None
    with pytest.raises(NotFoundError):
        crm.crm.notes.history("n1")
    assert crm.crm.tags.changes(target) == ()
    assert crm.tags.counts(as_of=crm.now()) == {"VIP": 0}
    assert crm.contacts.list(target) == ()
    assert crm.calls.list(target) == ()
    # The metrics are those of a book that never had the customer.
    assert crm.store.mrr(at=AS_OF, currency="USD") == mrr(rest, at=AS_OF, currency="USD")
    assert len(crm.store.book().transactions) == len(rest.transactions)
    # The funnel keeps the conversion, anonymised.
    kept = crm.crm.leads.get("l1")
    assert kept.stage is LeadStage.CONVERTED
    assert "p@example.com" not in kept.email
    assert kept.name == ""
    with pytest.raises(NotFoundError):
        crm.erase(target, mode="delete")
    with pytest.raises(ValidationError, match="mode"):
        crm.erase(_paying(crm)[0], mode="shred")  # type: ignore[arg-type]


def test_blocked_delete_changes_neither_store(crm: CRM) -> None:
    target, other = _paying(crm)[:2]
    invoice = crm.store.invoices.for_customer(target)[0]
    crm.store.transactions.upsert(
        Transaction(
            id="foreign",
            customer_id=other,
            kind=TransactionKind.PAYMENT,
            status=TransactionStatus.SUCCEEDED,
            amount=Money("1", invoice.currency),
            at=invoice.issued_at,
            method=PaymentMethod.STRIPE,
            invoice_id=invoice.id,
        )
    )
    crm.notes.add(target, "keep me", author_id="s1", id="n1")
    before = (_records(crm.store.book()), crm.crm.notes.for_customer(target))
    with pytest.raises(ValidationError, match="foreign"):
        crm.erase(target, mode="delete")
    assert (_records(crm.store.book()), crm.crm.notes.for_customer(target)) == before


def test_timeline_shows_notes_tags_and_the_merge(crm: CRM) -> None:
    paying = _paying(crm)
    primary, secondary = paying[0], paying[1]
    crm.tags.create("VIP")
    crm.tags.assign(secondary, "VIP", staff_id="s1")
    crm.merge(primary, secondary, staff_id="s9")
    entries = crm.customers.timeline(primary, as_of=crm.now())
    kinds = {e.kind for e in entries}
    assert {TimelineKind.REGISTERED, TimelineKind.NOTE, TimelineKind.TAG_CHANGE} <= kinds
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    invoices = {e.ref for e in entries if e.kind is TimelineKind.INVOICE}
    assert {i.id for i in BOOK.invoices if i.customer_id == secondary} <= invoices


@pytest.mark.parametrize("status", list(CustomerStatus))
def test_status_filter_agrees_with_the_profiles(crm: CRM, status: CustomerStatus) -> None:
    listed = {r.id for r in crm.customers.list(as_of=AS_OF, status=status, limit=500)}
    expected = {
        c.id
        for c in BOOK.customers
        if crm.customers.profile(c.id, as_of=AS_OF).billing.status is status
    }
    assert listed == expected


def test_product_filter_keeps_customers_with_an_active_service_of_it(crm: CRM) -> None:
    product_of = {p.id: p.product_id for p in BOOK.plans}
    seen: set[str] = set()
    for product in BOOK.products:
        listed = {r.id for r in crm.customers.list(as_of=AS_OF, product_id=product.id, limit=500)}
        for cid in listed:
            states = [s.state_at(AS_OF) for s in crm.store.subscriptions.for_customer(cid)]
            assert any(
                st is not None
                and st.status.value in ("active", "trialing", "past_due")
                and product_of.get(st.plan_id or "") == product.id
                for st in states
            )
        seen |= listed
    active = {r.id for r in crm.customers.list(as_of=AS_OF, has_active_services=True, limit=500)}
    assert seen
    assert seen == active


class _FailingNotes:
    """A CRM store whose note writes fail: a merge must then leave nothing changed."""

    def __init__(self, inner: CRMStore) -> None:
        self._inner = inner
        self.tags = inner.tags
        self.leads = inner.leads
        self.contacts = inner.contacts
        self.calls = inner.calls
        self.intake = inner.intake
        self.transaction = inner.transaction
        self.scrub = inner.scrub

    @property
    def notes(self) -> Any:
        return self

    def rehome(self, from_customer: str, to_customer: str) -> int:
        return self._inner.notes.rehome(from_customer, to_customer)

    def add(self, note: object) -> None:
        raise StorageError("disk full")

    def for_customer(self, customer_id: str, *, include_deleted: bool = False) -> Any:
        return self._inner.notes.for_customer(customer_id, include_deleted=include_deleted)


def _records(book: Book) -> tuple[object, ...]:
    # Book compares by identity: compare its records.
    return (
        book.customers,
        book.subscriptions,
        book.invoices,
        book.transactions,
        book.credits,
    )


def test_failed_merge_changes_nothing(crm: CRM) -> None:
    paying = _paying(crm)
    primary, secondary = paying[0], paying[1]
    inner = crm.crm
    inner.notes.add(Note.create(id="n", customer_id=secondary, author_id="s", body="b", at=AS_OF))
    before = (_records(crm.store.book()), inner.notes.for_customer(secondary))
    broken = CRM(crm.store, _FailingNotes(inner), reporting_currency="USD", clock=_Clock())
    with pytest.raises(StorageError, match="disk full"):
        broken.merge(primary, secondary, staff_id="s1")
    assert _records(crm.store.book()) == before[0]
    assert inner.notes.for_customer(secondary) == before[1]


def test_contacts_and_calls_follow_merge_and_erasure(crm: CRM) -> None:
    paying = _paying(crm)
    primary, secondary = paying[0], paying[1]
    crm.contacts.save(Contact(id="k1", customer_id=secondary, name="Bo", email="bo@example.com"))
    call = crm.calls.log(secondary, "asked about pricing", staff_id="s1", id="call1")
    crm.merge(primary, secondary, staff_id="s9")
    profile = crm.customers.profile(primary, as_of=crm.now())
    assert [c.id for c in profile.contacts] == ["k1"]
    entries = crm.customers.timeline(primary, as_of=crm.now())
    assert any(e.kind is TimelineKind.CALL for e in entries)
    assert crm.calls.list(primary)[0].at == call.at
    crm.erase(primary)
    assert crm.contacts.list(primary) == ()
    assert [c.summary for c in crm.calls.list(primary)] == [ERASED_TEXT]
    crm.contacts.save(Contact(id="k2", customer_id=primary, name="New"))
    crm.contacts.remove("k2")
    with pytest.raises(NotFoundError):
        crm.contacts.save(Contact(id="k3", customer_id="ghost", name="X"))


def test_metrics_over_the_store_agree(crm: CRM) -> None:
    dashboard = crm.metrics.dashboard(as_of=AS_OF, trend_months=3)
    assert dashboard == crm.store.dashboard(as_of=AS_OF, currency="USD", trend_months=3)
    analysis = crm.metrics.analysis()
    assert analysis.mrr(AS_OF) == dashboard.mrr
    values = crm.metrics.customer_values(as_of=AS_OF)
    assert [v.customer_id for v in values] == sorted(c.id for c in BOOK.customers)
    rows = {r.id: r.row for r in crm.customers.list(as_of=AS_OF, limit=500)}
    # The list converts at as_of's rate, customer values at each payment's date: they
    # agree exactly on customers who pay in the reporting currency.
    usd = {t.customer_id for t in BOOK.transactions if t.amount.currency == "USD"} - {
        t.customer_id for t in BOOK.transactions if t.amount.currency != "USD"
    }
    assert usd
    for v in values:
        if v.customer_id in usd:
            assert v.total_paid == rows[v.customer_id].total_paid


def test_a_given_ltv_baseline_changes_no_figure_of_the_list_or_profile(crm: CRM) -> None:
    at = AS_OF - timedelta(days=45)
    seg = crm.segmentation(as_of=at)
    baseline = crm.segments.ltv_baseline(as_of=at)
    assert baseline == seg.ltv_baseline
    for sort in ("name", "mrr", "ltv"):
        assert crm.customers.list(as_of=at, sort=sort, limit=500) == crm.customers.list(
            as_of=at, sort=sort, limit=500, ltv_baseline=baseline
        )
    for c in BOOK.customers[:6]:
        mine = crm.customers.profile(c.id, as_of=at, ltv_baseline=baseline)
        assert mine == crm.customers.profile(c.id, as_of=at)
        assert mine.segments == seg.segments_of(c.id)
    # The threshold given is the one the rows compare with (a caller's cached value).
    rows = crm.customers.list(as_of=at, limit=500)
    payers = [r for r in rows if r.row.active_services and r.row.ltv.amount > 0]
    assert payers
    low = LtvBaseline(total=Money("0.01", "USD"), paying_customers=1)
    above = crm.customers.list(as_of=at, limit=500, ltv_baseline=low)
    high = {r.id for r in above if Segment.HIGH_VALUE in r.segments}
    assert {r.id for r in payers} <= high
    with pytest.raises(ValidationError, match="ltv_baseline"):
        crm.customers.list(as_of=at, ltv_baseline=Money("1", "USD"))  # type: ignore[arg-type]


def test_the_crm_store_reads_the_pages_need_are_on_the_facade(crm: CRM) -> None:
    crm.tags.create("VIP")
    assert [t.name for t in crm.tags.all()] == ["VIP"]
    customer = BOOK.customers[0]
    note = crm.notes.add(customer.id, "called them", author_id="s1")
    assert crm.notes.get(note.id) == note
    with pytest.raises(NotFoundError):
        crm.notes.get("no-such-note")
    crm.leads.add(Lead(id="l1", email="x@example.com", created_at=AS_OF - timedelta(days=4)))
    assert crm.leads.open_lead_for("X@example.com") == crm.leads.get("l1")
    assert crm.leads.lead_for_customer(customer.id) is None
    crm.leads.convert("l1", customer.id, staff_id="s1")
    assert crm.leads.lead_for_customer(customer.id) == crm.leads.get("l1")
    assert crm.leads.open_lead_for("x@example.com") is None
    assert crm.leads.all() == (crm.leads.get("l1"),)
    with pytest.raises(ValidationError):
        crm.leads.lead_for_customer("")
