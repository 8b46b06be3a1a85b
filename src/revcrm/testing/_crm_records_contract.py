"""Leads, contacts, calls and intake rules of the CRM store contract, mixed into
:class:`~revcrm.testing.crm_contract.CRMStoreContract` (the class a host runs); its
example counts follow the active hypothesis profile (see :mod:`revcrm.testing._examples`).
"""

from __future__ import annotations

import abc
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revcrm.crm import (
    Contact,
    IntakeAnswer,
    IntakeQuestion,
    IntakeScope,
    LoggedCall,
    Tag,
    current_answers,
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
from revcrm.storage._crm import ERASED_TEXT, CRMStore
from revcrm.testing._crm_contract_book import (
    _CUSTOMERS,
    _QUESTIONS,
    _SOURCE,
    _TOOLS,
    _WHY,
    T0,
    _intake_answers,
    _lead,
    _note,
    _t,
)
from revcrm.testing._examples import examples

__all__ = ["CRMRecordsContract"]


class CRMRecordsContract(abc.ABC):
    """Leads, contacts, calls and intake."""

    @abc.abstractmethod
    def make_crm_store(self) -> CRMStore: ...

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
