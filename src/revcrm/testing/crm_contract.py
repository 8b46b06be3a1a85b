"""The contract suite of CRM stores (notes, tags, leads, contacts, calls, intake):
abstract test classes.

Subclass :class:`CRMStoreContract`, name the subclass ``Test...`` and give it a factory::

    class TestMyCRMStore(CRMStoreContract):
        def make_crm_store(self) -> CRMStore:
            return MyCRMStore(...)  # empty, schema created

The class is not collected on its own (its name does not start with ``Test``).

Example counts follow the active hypothesis profile: each property's count is written
for hypothesis' default of 100 examples and scaled by the profile's ``max_examples``
(``n * max_examples // 100``, at least one; see :mod:`revcrm.testing._examples`), so
``--hypothesis-profile=fast`` or a ``settings.load_profile`` in the host's conftest,
done before this module is imported, governs the suite as it governs the host's tests.
"""

from __future__ import annotations

import abc
import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm._money import Money
from revcrm.crm import (
    Contact,
    IntakeAnswer,
    IntakeQuestion,
    IntakeScope,
    LoggedCall,
    Note,
    Tag,
    TagChange,
    current_answers,
    tag_key,
    tags_at,
)
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    TransitionNotAllowed,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.leads import Lead, LeadStage
from revcrm.storage._crm import ERASED_TEXT, CRMStore, InMemoryCRMStore
from revcrm.testing._examples import examples
from revcrm.testing.strategies import tag_change_logs

__all__ = ["CRMStoreContract"]

T0: Final = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def _t(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def _note(id: str = "n1", customer_id: str = "c1", *, hours: int = 0) -> Note:
    return Note.create(id=id, customer_id=customer_id, author_id="s1", body="hello", at=_t(hours))


_CUSTOMERS: Final = ("c1", "c2", "c3")
#: Ids no store can look up: text no record can hold, unhashable and wrong types.
_HOSTILE_IDS: Final = ("\ud800", "a\x00b", ["c1"], bytearray(b"c1"), None, 7)
_HOSTILE_MOMENTS: Final = ("2024-01-01", datetime(2024, 1, 1), 7, [T0])
_TAG_NAMES: Final = ("VIP", "Trial")


_SOURCE: Final = IntakeQuestion.choice(
    id="source", prompt="How did you hear about us?", options=("Search", "Friend"), position=2
)
_TOOLS: Final = IntakeQuestion.multiple_choice(
    id="tools",
    prompt="What do you use?",
    options=("Excel", "Stripe", "Other"),
    scope=IntakeScope.PURCHASE,
    position=1,
)
_WHY: Final = IntakeQuestion.free_text(id="why", prompt="Why us?", position=2)
_QUESTIONS: Final = (_SOURCE, _TOOLS, _WHY)


@st.composite
def _intake_answers(draw: st.DrawFn) -> IntakeAnswer:
    # Kept here rather than in revcrm.testing.strategies: only this suite needs it.
    q = draw(st.sampled_from(_QUESTIONS))
    at = _t(draw(st.integers(0, 4)))  # few moments: ties are common
    customer_id = draw(st.sampled_from(_CUSTOMERS))
    if q is _WHY:
        return q.answer(customer_id=customer_id, value=draw(st.sampled_from(("a", "b"))), at=at)
    if q is _SOURCE:
        return q.answer(customer_id=customer_id, value=draw(st.sampled_from(q.options)), at=at)
    value = draw(st.lists(st.sampled_from(q.options), min_size=1, max_size=3, unique=True))
    sub = draw(st.sampled_from(("s1", "s2")))
    return q.answer(customer_id=customer_id, value=value, at=at, subscription_id=sub)


def _lead(id: str = "l1", email: str = "ann@example.com") -> Lead:
    return Lead(
        id=id,
        email=email,
        created_at=T0,
        name="Ann",
        expected_value=Money("49.90", "EUR"),
        source="search:google",
    )


def _refused(label: str, call: Callable[[Any], object], value: object) -> None:
    try:
        call(value)
    except ValidationError:
        return
    pytest.fail(f"{label}({value!r}) was accepted")


class CRMStoreContract(abc.ABC):
    @abc.abstractmethod
    def make_crm_store(self) -> CRMStore: ...

    # -- notes -------------------------------------------------------------------------------

    def test_note_round_trip_and_creation_entry(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        assert s.notes.get("n1") == note
        assert s.notes.find("missing") is None
        with pytest.raises(NotFoundError):
            s.notes.get("missing")
        (entry,) = s.notes.history("n1")
        assert entry == note.created()

    def test_note_id_is_unique(self) -> None:
        s = self.make_crm_store()
        s.notes.add(_note())
        with pytest.raises(DuplicateError):
            s.notes.add(_note(customer_id="c2"))
        assert s.notes.for_customer("c2") == ()

    def test_note_changes_keep_an_audit_trail(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        edited, e1 = note.edit("changed", at=_t(1), staff_id="s2")
        s.notes.save(edited, e1)
        deleted, e2 = edited.delete(at=_t(2), staff_id="s3")
        s.notes.save(deleted, e2)
        stored = s.notes.get("n1")
        assert stored == deleted
        assert stored.body == "changed"
        assert stored.deleted
        assert [e.action.value for e in s.notes.history("n1")] == ["created", "edited", "deleted"]
        assert [e.body for e in s.notes.history("n1")] == ["hello", "changed", "changed"]
        assert s.notes.for_customer("c1") == ()
        assert s.notes.for_customer("c1", include_deleted=True) == (deleted,)

    def test_lost_update_is_a_conflict_and_writes_nothing(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        a, ea = note.edit("first", at=_t(1), staff_id="s1")
        b, eb = note.edit("second", at=_t(1), staff_id="s2")
        s.notes.save(a, ea)
        with pytest.raises(ConflictError):
            s.notes.save(b, eb)
        assert s.notes.get("n1").body == "first"
        assert len(s.notes.history("n1")) == 2

    def test_concurrent_edits_of_one_revision_one_wins(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        outcomes: list[str] = []
        lock = threading.Lock()

        def edit(i: int) -> None:
            changed, entry = note.edit(f"edit {i}", at=_t(1), staff_id=f"s{i}")
            try:
                s.notes.save(changed, entry)
                result = "saved"
            except ConflictError:
                result = "conflict"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=edit, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 5 + ["saved"]
        assert len(s.notes.history("n1")) == 2

    def test_mismatched_entry_is_refused(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        a, _ = note.edit("first", at=_t(1), staff_id="s1")
        with pytest.raises(ValidationError):
            s.notes.save(a, note.created())
        assert s.notes.get("n1") == note

    def test_pinned_first_then_newest(self) -> None:
        s = self.make_crm_store()
        for i in range(3):
            s.notes.add(_note(f"n{i}", hours=i))
        pinned, entry = s.notes.get("n0").pin(at=_t(5), staff_id="s1")
        s.notes.save(pinned, entry)
        assert [n.id for n in s.notes.for_customer("c1")] == ["n0", "n2", "n1"]

    def test_rehome_moves_notes_and_their_log(self) -> None:
        s = self.make_crm_store()
        s.notes.add(_note("n1", "c1"))
        s.notes.add(_note("n2", "c2"))
        assert s.notes.rehome("c2", "c1") == 1
        assert {n.id for n in s.notes.for_customer("c1")} == {"n1", "n2"}
        assert s.notes.for_customer("c2") == ()
        assert all(e.customer_id == "c1" for e in s.notes.history("n2"))

    def test_bad_note_writes_are_refused(self) -> None:
        s = self.make_crm_store()
        note = _note()
        edited, entry = note.edit("x", at=_t(1), staff_id="s1")
        with pytest.raises(ValidationError, match="revision"):
            s.notes.add(edited)
        with pytest.raises(NotFoundError):
            s.notes.save(edited, entry)
        with pytest.raises(NotFoundError):
            s.notes.history("n1")
        with pytest.raises(ValidationError):
            s.notes.add("not a note")  # type: ignore[arg-type]
        assert s.notes.for_customer("c1", include_deleted=True) == ()

    def test_erase_customer_replaces_note_text_everywhere(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        s.notes.save(*note.edit("secret", at=_t(1), staff_id="s1"))
        s.notes.add(_note("other", "c2"))
        assert s.notes.erase_customer("c1") == 1
        assert s.notes.get("n1").body == ERASED_TEXT
        assert {e.body for e in s.notes.history("n1")} == {ERASED_TEXT}
        assert s.notes.get("other").body == "hello"

    def test_nested_transaction_is_a_savepoint(self) -> None:
        s = self.make_crm_store()

        def inner_fails() -> None:
            with s.transaction():
                s.tags.create(Tag.of("Inner"))
                raise RuntimeError("inner")

        with s.transaction():
            s.tags.create(Tag.of("Outer"))
            with pytest.raises(RuntimeError):
                inner_fails()
        assert [t.name for t in s.tags.all()] == ["Outer"]

    # -- tags --------------------------------------------------------------------------------

    def test_tag_names_unique_case_insensitively(self) -> None:
        s = self.make_crm_store()
        s.tags.create(Tag.of("VIP", "#ff0000"))
        with pytest.raises(DuplicateError):
            s.tags.create(Tag.of("vip"))
        assert s.tags.all() == (Tag.of("VIP", "#FF0000"),)
        assert s.tags.get("vIp").colour == "#FF0000"
        with pytest.raises(NotFoundError):
            s.tags.get("other")

    def test_assign_remove_counts_and_members(self) -> None:
        s = self.make_crm_store()
        s.tags.create(Tag.of("VIP"))
        s.tags.create(Tag.of("Trial"))
        s.tags.record(TagChange.added(customer_id="c1", tag="vip", at=_t(0)))
        s.tags.record(TagChange.added(customer_id="c2", tag="VIP", at=_t(1)))
        s.tags.record(TagChange.removed(customer_id="c1", tag="Vip", at=_t(2)))
        assert s.tags.tags_of("c2", as_of=_t(3)) == {"VIP"}
        assert s.tags.tags_of("c1", as_of=_t(1)) == {"vip"}
        assert s.tags.tags_of("c1", as_of=_t(3)) == frozenset()
        assert s.tags.customers_with("vip", as_of=_t(1)) == {"c1", "c2"}
        assert s.tags.customers_with("vip", as_of=_t(3)) == {"c2"}
        assert s.tags.counts(as_of=_t(3)) == {"VIP": 1, "Trial": 0}
        assert len(s.tags.changes()) == 3
        assert len(s.tags.changes("c1")) == 2

    def test_assigning_an_unknown_tag_writes_nothing(self) -> None:
        s = self.make_crm_store()
        with pytest.raises(UnknownReferenceError):
            s.tags.record(TagChange.added(customer_id="c1", tag="ghost", at=T0))
        assert s.tags.changes() == ()

    @settings(
        max_examples=examples(15),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(changes=tag_change_logs(_CUSTOMERS, (*_TAG_NAMES, "vip", "TRIAL", "ViP"), T0))
    def test_current_tags_replay_the_log(self, changes: list[TagChange]) -> None:
        s = self.make_crm_store()
        for name in _TAG_NAMES:
            s.tags.create(Tag.of(name))
        for c in changes:
            s.tags.record(c)
        assert s.tags.changes() == tuple(sorted(changes, key=lambda c: c.at))
        for hours in (0, 3, 6, 12):
            at = _t(hours)
            expected = tags_at(changes, as_of=at)
            for customer in _CUSTOMERS:
                assert s.tags.tags_of(customer, as_of=at) == expected.get(customer, frozenset())
            for name in _TAG_NAMES:
                members = {c for c, tags in expected.items() if tag_key(name) in map(tag_key, tags)}
                assert s.tags.customers_with(name, as_of=at) == members
                assert s.tags.counts(as_of=at)[name] == len(members)

    # -- leads -------------------------------------------------------------------------------

    def test_lead_round_trip_with_history(self) -> None:
        s = self.make_crm_store()
        lead = _lead()
        assert s.leads.add(lead) == 0
        moved = lead.contact(at=_t(1), staff_id="s1", note="called").lose("price", at=_t(2))
        assert s.leads.save(moved, expected_version=0) == 2
        assert s.leads.get("l1") == moved
        assert s.leads.version("l1") == 2
        assert s.leads.get("l1").stage is LeadStage.LOST
        assert s.leads.count() == 1
        with pytest.raises(NotFoundError):
            s.leads.get("nope")

    def test_stale_lead_version_is_a_conflict(self) -> None:
        s = self.make_crm_store()
        lead = _lead()
        s.leads.add(lead)
        s.leads.save(lead.contact(at=_t(1)), expected_version=0)
        with pytest.raises(ConflictError):
            s.leads.save(lead.lose("x", at=_t(1)), expected_version=0)
        assert s.leads.get("l1").stage is LeadStage.CONTACTED

    def test_one_open_lead_per_email(self) -> None:
        s = self.make_crm_store()
        s.leads.add(_lead("l1", "ann@example.com"))
        with pytest.raises(DuplicateError):
            s.leads.add(_lead("l2", " ANN@example.com"))
        assert s.leads.count() == 1
        found = s.leads.open_lead_for("Ann@Example.com")
        assert found is not None
        assert found.id == "l1"

    def test_one_lead_per_customer_and_convert_once(self) -> None:
        s = self.make_crm_store()
        a, b = _lead("l1", "a@example.com"), _lead("l2", "b@example.com")
        s.leads.add(a)
        s.leads.add(b)
        s.leads.save(a.convert("c1", at=_t(1)), expected_version=0)
        with pytest.raises(DuplicateError):
            s.leads.save(b.convert("c1", at=_t(1)), expected_version=0)
        with pytest.raises(TransitionNotAllowed):
            s.leads.get("l1").convert("c2", at=_t(2))
        converted = s.leads.lead_for_customer("c1")
        assert converted is not None
        assert converted.id == "l1"
        assert s.leads.get("l2").stage is LeadStage.NEW

    def test_history_must_be_extended_not_rewritten(self) -> None:
        s = self.make_crm_store()
        lead = _lead()
        s.leads.add(lead.contact(at=_t(1)))
        with pytest.raises(ValidationError, match="append-only"):
            s.leads.save(lead.lose("x", at=_t(1)).reopen(at=_t(2)), expected_version=1)
        with pytest.raises(NotFoundError):
            s.leads.save(_lead("ghost", "g@example.com"), expected_version=0)
        with pytest.raises(ValidationError):
            s.leads.add("not a lead")  # type: ignore[arg-type]
        with pytest.raises(DuplicateError):
            s.leads.add(_lead("l1", "other@example.com"))
        assert s.leads.version("l1") == 1

    def test_relink_moves_the_conversion(self) -> None:
        s = self.make_crm_store()
        a, b = _lead("l1", "a@example.com"), _lead("l2", "b@example.com")
        s.leads.add(a.convert("c1", at=_t(1)))
        s.leads.add(b.convert("c2", at=_t(1)))
        assert s.leads.relink("c9", "c1") == 0
        with pytest.raises(DuplicateError):
            s.leads.relink("c2", "c1")
        assert s.leads.relink("c2", "c3") == 1
        moved = s.leads.get("l2")
        assert moved.customer_id == "c3"
        assert s.leads.lead_for_customer("c2") is None
        assert [x.id for x in s.leads.all()] == ["l1", "l2"]

    def test_lead_pages_by_creation_then_id(self) -> None:
        s = self.make_crm_store()
        # Ids against creation order, ties of moment, and ids in code-point order ("B" <
        # "a" < "é"), which a database collation could otherwise reorder.
        specs = [("z", 0), ("é", 1), ("a", 1), ("B", 1), ("m", 2), ("c", 3)]
        for lead_id, hours in specs:
            s.leads.add(
                Lead(id=lead_id, email=f"{ord(lead_id[0])}@example.com", created_at=_t(hours))
            )
        s.leads.save(s.leads.get("m").contact(at=_t(4)), expected_version=0)
        expected = [lead_id for _, lead_id in sorted((h, i) for i, h in specs)]
        seen: list[str] = []
        cursor = None
        for _ in range(len(specs)):
            page = s.leads.page(limit=2, cursor=cursor)
            assert len(page.items) <= 2
            seen += [x.id for x in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected
        new = s.leads.page(stage=LeadStage.NEW, limit=10)
        assert [x.id for x in new.items] == [i for i in expected if i != "m"]
        assert new.next_cursor is None
        assert [x.id for x in s.leads.page(stage="contacted").items] == ["m"]
        assert s.leads.page(stage=LeadStage.LOST).items == ()
        other = s.leads.page(stage=LeadStage.NEW, limit=1).next_cursor
        assert other is not None
        for bad in (other, "x", "\ud800", "W10"):
            with pytest.raises(ValidationError, match="cursor"):
                s.leads.page(cursor=bad)
        for limit in (0, 10**6, True):
            with pytest.raises(ValidationError, match="limit"):
                s.leads.page(limit=limit)

    def test_erase_history_replaces_move_notes_only(self) -> None:
        s = self.make_crm_store()
        lead = _lead()
        moved = (
            lead.contact(at=_t(1), staff_id="s1", note="emailed ann@example.com")
            .lose("Ann chose a rival", at=_t(2))
            .reopen(at=_t(3))
        )
        s.leads.add(moved)
        assert s.leads.erase_history("l1") == 2
        erased = s.leads.get("l1")
        assert [(t.note, t.lost_reason) for t in erased.history] == [
            (ERASED_TEXT, None),
            ("", ERASED_TEXT),
            ("", None),
        ]
        assert [(t.to_stage, t.at, t.staff_id) for t in erased.history] == [
            (t.to_stage, t.at, t.staff_id) for t in moved.history
        ]
        assert s.leads.erase_history("l1") == 0  # nothing left to erase
        # The erased history is the stored one: the lead moves on from it.
        assert s.leads.save(erased.contact(at=_t(4)), expected_version=3) == 4
        with pytest.raises(NotFoundError):
            s.leads.erase_history("nope")
        s.scrub()  # outside a transaction: nothing to report

    # -- contacts and calls ------------------------------------------------------------------

    def test_contacts_upsert_list_remove_and_erase(self) -> None:
        s = self.make_crm_store()
        bob = Contact(id="k2", customer_id="c1", name="Bob", email="bob@example.com")
        s.contacts.upsert(bob)
        s.contacts.upsert(Contact(id="k1", customer_id="c1", name="Ann", phone="+1 555"))
        s.contacts.upsert(Contact(id="k3", customer_id="c2", name="Cy"))
        assert [c.id for c in s.contacts.for_customer("c1")] == ["k1", "k2"]
        changed = Contact(id="k2", customer_id="c1", name="Bob", title="CTO")
        s.contacts.upsert(changed)
        assert s.contacts.get("k2") == changed
        s.contacts.remove("k1")
        with pytest.raises(NotFoundError):
            s.contacts.remove("k1")
        assert s.contacts.find("k1") is None
        assert s.contacts.rehome("c2", "c1") == 1
        assert s.contacts.erase_customer("c1") == 2
        assert s.contacts.for_customer("c1") == ()
        with pytest.raises(NotFoundError):
            s.contacts.get("k2")

    def test_calls_are_written_once_and_listed_in_time_order(self) -> None:
        s = self.make_crm_store()
        late = LoggedCall(id="a", customer_id="c1", at=_t(2), summary="renewal", staff_id="s1")
        early = LoggedCall(
            id="b", customer_id="c1", at=_t(1), summary="intro", duration=timedelta(minutes=5)
        )
        s.calls.add(late)
        s.calls.add(early)
        with pytest.raises(DuplicateError):
            s.calls.add(late)
        assert s.calls.for_customer("c1") == (early, late)
        assert s.calls.get("b").duration == timedelta(minutes=5)
        assert s.calls.rehome("c1", "c2") == 2
        assert s.calls.erase_customer("c2") == 2
        assert {c.summary for c in s.calls.for_customer("c2")} == {ERASED_TEXT}
        with pytest.raises(NotFoundError):
            s.calls.get("zz")

    def test_transaction_rolls_back_every_repository(self) -> None:
        s = self.make_crm_store()

        def write_then_fail() -> None:
            with s.transaction():
                s.notes.add(_note())
                s.tags.create(Tag.of("VIP"))
                s.leads.add(_lead())
                s.intake.save_question(_SOURCE)
                s.intake.record(_SOURCE.answer(customer_id="c1", value="Search", at=T0))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            write_then_fail()
        assert s.notes.find("n1") is None
        assert s.tags.all() == ()
        assert s.leads.count() == 0
        assert s.intake.questions(include_retired=True) == ()
        assert s.intake.answers() == ()

    # -- intake ------------------------------------------------------------------------------

    def test_questions_round_trip_replace_and_order(self) -> None:
        s = self.make_crm_store()
        for q in _QUESTIONS:
            s.intake.save_question(q)
        assert s.intake.question("tools") == _TOOLS
        assert [q.id for q in s.intake.questions()] == ["tools", "source", "why"]
        assert [q.id for q in s.intake.questions(scope="purchase")] == ["tools"]
        assert [q.id for q in s.intake.questions(scope=IntakeScope.REGISTRATION)] == [
            "source",
            "why",
        ]
        retired = _SOURCE.retire(at=_t(5))
        s.intake.save_question(retired)
        assert [q.id for q in s.intake.questions()] == ["tools", "why"]
        assert [q.id for q in s.intake.questions(include_retired=True)] == [
            "tools",
            "source",
            "why",
        ]
        assert s.intake.question("source") == retired
        with pytest.raises(NotFoundError):
            s.intake.question("nope")
        with pytest.raises(ValidationError, match="scope"):
            s.intake.questions(scope="checkout")
        with pytest.raises(ValidationError):
            s.intake.save_question("not a question")  # type: ignore[arg-type]

    def test_answers_are_an_append_only_log(self) -> None:
        s = self.make_crm_store()
        for q in _QUESTIONS:
            s.intake.save_question(q)
        first = _SOURCE.answer(customer_id="c1", value="search", at=_t(2))
        tie = _SOURCE.answer(customer_id="c1", value="Friend", at=_t(2))
        early = _WHY.answer(customer_id="c1", value="a friend told me", at=_t(1))
        bought = _TOOLS.answer(
            customer_id="c2", value=["Stripe", "excel"], at=_t(3), subscription_id="s9"
        )
        for a in (first, tie, early, bought):
            assert s.intake.record(a) == a
        assert s.intake.answers_for("c1") == (early, first, tie)
        assert s.intake.answers_for("c2") == (bought,)
        assert s.intake.answers_for("c3") == ()
        assert s.intake.answers() == (early, first, tie, bought)
        assert s.intake.answers(as_of=_t(2)) == (early, first, tie)
        current = current_answers(s.intake.answers(), as_of=_t(9))
        assert current[("c1", "source", None)] == tie
        assert s.intake.answers_for("c2")[0].choices == ("Stripe", "Excel")

    def test_answers_must_fit_the_stored_question(self) -> None:
        s = self.make_crm_store()
        with pytest.raises(UnknownReferenceError):
            s.intake.record(_SOURCE.answer(customer_id="c1", value="Search", at=T0))
        s.intake.save_question(_SOURCE)
        old = _SOURCE.answer(customer_id="c1", value="Friend", at=T0)
        s.intake.save_question(
            IntakeQuestion.choice(id="source", prompt="How?", options=("SEARCH", "Podcast"))
        )
        with pytest.raises(ValidationError, match="Friend"):
            s.intake.record(old)
        assert s.intake.answers() == ()
        stored = s.intake.record(_SOURCE.answer(customer_id="c1", value="Search", at=T0))
        assert stored.choices == ("SEARCH",)  # the stored question's spelling
        assert s.intake.answers() == (stored,)
        s.intake.save_question(IntakeQuestion.free_text(id="source", prompt="How?"))
        with pytest.raises(ValidationError):
            s.intake.record(old)
        s.intake.save_question(_SOURCE.retire(at=T0))
        with pytest.raises(ValidationError, match="retired"):
            s.intake.record(old)
        with pytest.raises(ValidationError):
            s.intake.record("not an answer")  # type: ignore[arg-type]
        assert len(s.intake.answers()) == 1

    def test_intake_rehome_erase_and_delete(self) -> None:
        s = self.make_crm_store()
        for q in _QUESTIONS:
            s.intake.save_question(q)
        s.intake.record(_SOURCE.answer(customer_id="c1", value="Search", at=_t(1)))
        s.intake.record(_WHY.answer(customer_id="c2", value="my own words", at=_t(1)))
        s.intake.record(
            _TOOLS.answer(customer_id="c2", value="Other", at=_t(2), subscription_id="s1")
        )
        s.intake.record(_WHY.answer(customer_id="c3", value="kept", at=_t(1)))
        assert s.intake.rehome("c2", "c1") == 2
        assert s.intake.answers_for("c2") == ()
        assert len(s.intake.answers_for("c1")) == 3
        assert s.intake.erase_customer("c1") == 1
        mine = s.intake.answers_for("c1")
        assert [a.text for a in mine if a.text is not None] == [ERASED_TEXT]
        assert [a.choices for a in mine if a.choices] == [("Search",), ("Other",)]
        assert s.intake.delete_customer("c1") == 3
        assert s.intake.answers_for("c1") == ()
        assert [a.text for a in s.intake.answers()] == ["kept"]
        assert s.intake.delete_customer("c1") == 0

    @settings(
        max_examples=examples(15),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(log=st.lists(_intake_answers(), max_size=12))
    def test_stored_answers_replay_like_the_log(self, log: list[IntakeAnswer]) -> None:
        s = self.make_crm_store()
        for q in _QUESTIONS:
            s.intake.save_question(q)
        for a in log:
            s.intake.record(a)
        assert s.intake.answers() == tuple(sorted(log, key=lambda a: a.answered_at))
        for hours in (0, 2, 5):
            at = _t(hours)
            assert current_answers(s.intake.answers(as_of=at), as_of=at) == current_answers(
                log, as_of=at
            )
        for customer in _CUSTOMERS:
            mine = [a for a in log if a.customer_id == customer]
            assert s.intake.answers_for(customer) == tuple(
                sorted(mine, key=lambda a: a.answered_at)
            )

    # -- delete ------------------------------------------------------------------------------

    def test_delete_customer_removes_every_crm_record(self) -> None:
        s = self.make_crm_store()
        for cid in ("c1", "c2"):
            note = _note(f"n-{cid}", cid)
            s.notes.add(note)
            s.notes.save(*note.edit("edited", at=_t(1), staff_id="s1"))
            s.contacts.upsert(Contact(id=f"k-{cid}", customer_id=cid, name="Ann"))
            s.calls.add(LoggedCall(id=f"call-{cid}", customer_id=cid, at=_t(1), summary="hi"))
        s.tags.create(Tag.of("VIP"))
        s.tags.record(TagChange.added(customer_id="c1", tag="VIP", at=_t(1)))
        s.tags.record(TagChange.removed(customer_id="c1", tag="VIP", at=_t(2)))
        s.tags.record(TagChange.added(customer_id="c2", tag="VIP", at=_t(1)))
        s.intake.save_question(_SOURCE)
        s.intake.record(_SOURCE.answer(customer_id="c1", value="Search", at=_t(1)))
        with s.transaction():
            assert s.notes.delete_customer("c1") == 1
            assert s.tags.delete_customer("c1") == 2
            assert s.contacts.delete_customer("c1") == 1
            assert s.calls.delete_customer("c1") == 1
            assert s.intake.delete_customer("c1") == 1
        assert s.notes.find("n-c1") is None
        with pytest.raises(NotFoundError):
            s.notes.history("n-c1")
        assert s.notes.for_customer("c1", include_deleted=True) == ()
        assert s.tags.changes("c1") == ()
        assert s.contacts.for_customer("c1") == ()
        assert s.calls.for_customer("c1") == ()
        with pytest.raises(NotFoundError):
            s.calls.get("call-c1")
        assert s.intake.answers_for("c1") == ()
        # The other customer and the tag itself are untouched.
        assert len(s.notes.history("n-c2")) == 2
        assert s.tags.tags_of("c2", as_of=_t(3)) == {"VIP"}
        assert [t.name for t in s.tags.all()] == ["VIP"]
        assert len(s.contacts.for_customer("c2")) == 1
        assert len(s.calls.for_customer("c2")) == 1
        for repo in (s.notes, s.tags, s.contacts, s.calls, s.intake):
            assert repo.delete_customer("c1") == 0

    def test_failed_delete_leaves_everything(self) -> None:
        s = self.make_crm_store()
        s.notes.add(_note())
        s.intake.save_question(_WHY)
        s.intake.record(_WHY.answer(customer_id="c1", value="words", at=_t(1)))

        def delete_then_fail() -> None:
            with s.transaction():
                s.notes.delete_customer("c1")
                s.intake.delete_customer("c1")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            delete_then_fail()
        assert s.notes.get("n1") == _note()
        assert len(s.notes.history("n1")) == 1
        assert [a.text for a in s.intake.answers_for("c1")] == ["words"]

    # -- hostile arguments -------------------------------------------------------------------

    def _seeded(self) -> CRMStore:
        """A store holding one record of each kind (note n1, tag VIP, lead l1 open and l2
        converted into c2, contact k1, call call1, question why answered by c1)."""
        s = self.make_crm_store()
        s.notes.add(_note())
        s.tags.create(Tag.of("VIP"))
        s.tags.record(TagChange.added(customer_id="c1", tag="VIP", at=_t(1)))
        s.contacts.upsert(Contact(id="k1", customer_id="c1", name="Ann"))
        s.calls.add(LoggedCall(id="call1", customer_id="c1", at=_t(1), summary="hi"))
        s.intake.save_question(_WHY)
        s.intake.record(_WHY.answer(customer_id="c1", value="words", at=_t(1)))
        s.leads.add(_lead())
        s.leads.add(_lead("l2", "bo@example.com").convert(customer_id="c2", at=_t(2)))
        return s

    @staticmethod
    def _state(s: CRMStore) -> object:
        per = [
            (
                s.notes.for_customer(c, include_deleted=True),
                s.contacts.for_customer(c),
                s.calls.for_customer(c),
                s.intake.answers_for(c),
            )
            for c in _CUSTOMERS
        ]
        return per, s.notes.history("n1"), s.tags.changes(), s.tags.all(), s.leads.all()

    def test_reads_refuse_hostile_arguments(self) -> None:
        s = self._seeded()
        reads: dict[str, Callable[[Any], object]] = {
            "notes.get": lambda v: s.notes.get(v),
            "notes.find": lambda v: s.notes.find(v),
            "notes.for_customer": lambda v: s.notes.for_customer(v),
            "notes.history": lambda v: s.notes.history(v),
            "tags.get": lambda v: s.tags.get(v),
            "tags.changes": lambda v: s.tags.changes(v),
            "tags.tags_of": lambda v: s.tags.tags_of(v, as_of=_t(2)),
            "tags.customers_with": lambda v: s.tags.customers_with(v, as_of=_t(2)),
            "leads.get": lambda v: s.leads.get(v),
            "leads.find": lambda v: s.leads.find(v),
            "leads.version": lambda v: s.leads.version(v),
            "leads.open_lead_for": lambda v: s.leads.open_lead_for(v),
            "leads.lead_for_customer": lambda v: s.leads.lead_for_customer(v),
            "leads.page(cursor)": lambda v: s.leads.page(cursor=v),
            "leads.page(stage)": lambda v: s.leads.page(stage=v),
            "contacts.get": lambda v: s.contacts.get(v),
            "contacts.find": lambda v: s.contacts.find(v),
            "contacts.for_customer": lambda v: s.contacts.for_customer(v),
            "calls.get": lambda v: s.calls.get(v),
            "calls.for_customer": lambda v: s.calls.for_customer(v),
            "intake.question": lambda v: s.intake.question(v),
            "intake.questions(scope)": lambda v: s.intake.questions(scope=v),
            "intake.answers_for": lambda v: s.intake.answers_for(v),
        }
        optional = {"tags.changes", "leads.page(cursor)", "leads.page(stage)"}
        optional |= {"intake.questions(scope)"}
        for label, read in reads.items():
            for bad in _HOSTILE_IDS:
                if bad is None and label in optional:
                    continue
                _refused(label, read, bad)
        moments: dict[str, Callable[[Any], object]] = {
            "tags.tags_of": lambda v: s.tags.tags_of("c1", as_of=v),
            "tags.customers_with": lambda v: s.tags.customers_with("VIP", as_of=v),
            "tags.counts": lambda v: s.tags.counts(as_of=v),
            "intake.answers": lambda v: s.intake.answers(as_of=v),
        }
        for label, read in moments.items():
            for moment in _HOSTILE_MOMENTS:
                _refused(label, read, moment)
        for flag in ("yes", 1, None):
            with pytest.raises(ValidationError):
                s.notes.for_customer("c1", include_deleted=flag)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                s.intake.questions(include_retired=flag)  # type: ignore[arg-type]

    def test_writes_refuse_hostile_ids_and_write_nothing(self) -> None:
        s = self._seeded()
        before = self._state(s)
        writes: dict[str, Callable[[Any], object]] = {
            "notes.rehome(from)": lambda v: s.notes.rehome(v, "c3"),
            "notes.rehome(to)": lambda v: s.notes.rehome("c1", v),
            "notes.erase_customer": lambda v: s.notes.erase_customer(v),
            "notes.delete_customer": lambda v: s.notes.delete_customer(v),
            "tags.delete_customer": lambda v: s.tags.delete_customer(v),
            "leads.relink(from)": lambda v: s.leads.relink(v, "c3"),
            "leads.relink(to)": lambda v: s.leads.relink("c2", v),
            "leads.erase_history": lambda v: s.leads.erase_history(v),
            "leads.save(expected_version)": lambda v: s.leads.save(
                s.leads.get("l1").contact(at=_t(3)),
                expected_version=v,
            ),
            "contacts.remove": lambda v: s.contacts.remove(v),
            "contacts.rehome(to)": lambda v: s.contacts.rehome("c1", v),
            "contacts.erase_customer": lambda v: s.contacts.erase_customer(v),
            "calls.rehome(to)": lambda v: s.calls.rehome("c1", v),
            "calls.erase_customer": lambda v: s.calls.erase_customer(v),
            "calls.delete_customer": lambda v: s.calls.delete_customer(v),
            "intake.rehome(to)": lambda v: s.intake.rehome("c1", v),
            "intake.erase_customer": lambda v: s.intake.erase_customer(v),
            "intake.delete_customer": lambda v: s.intake.delete_customer(v),
        }
        versions = ("1", None, True, -1, 1.0)
        for label, write in writes.items():
            for bad in _HOSTILE_IDS if "version" not in label else versions:
                _refused(label, write, bad)
        records: dict[str, Callable[[Any], object]] = {
            "notes.add": lambda v: s.notes.add(v),
            "notes.save(entry)": lambda v: s.notes.save(s.notes.get("n1"), v),
            "tags.create": lambda v: s.tags.create(v),
            "tags.record": lambda v: s.tags.record(v),
            "leads.add": lambda v: s.leads.add(v),
            "leads.save": lambda v: s.leads.save(v, expected_version=0),
            "contacts.upsert": lambda v: s.contacts.upsert(v),
            "calls.add": lambda v: s.calls.add(v),
            "intake.save_question": lambda v: s.intake.save_question(v),
            "intake.record": lambda v: s.intake.record(v),
        }
        for label, record in records.items():
            for wrong in (None, "x", {"id": "x"}, _note("n9")):
                if label == "notes.add" and isinstance(wrong, Note):
                    continue
                _refused(label, record, wrong)
        assert self._state(s) == before

    def test_forged_lead_cursors_are_refused(self) -> None:
        s = self._seeded()
        real = s.leads.page(limit=1).next_cursor
        assert real is not None
        # A well-formed position the store did not issue (the format of an unsigned cursor).
        raw = json.dumps(["leads:*", 0, "l1"], separators=(",", ":")).encode()
        forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        edited = [real[:-1], real + "A", real[:5] + ("B" if real[5] != "B" else "C") + real[6:]]
        for bad in (forged, *edited, f"{forged}.{forged}", "", ".", "\x00", "é" * 10):
            with pytest.raises(ValidationError, match="cursor"):
                s.leads.page(limit=1, cursor=bad)
        assert [x.id for x in s.leads.page(limit=1, cursor=real).items] == ["l2"]

    def test_scrub_inside_a_transaction_is_refused(self) -> None:
        s = self.make_crm_store()
        if isinstance(s, InMemoryCRMStore):
            return  # nothing to scrub: allowed anywhere
        with pytest.raises(ValidationError), s.transaction():
            s.scrub()
