"""Pipeline: duplicates, conversion and registration matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import Customer
from revcrm.errors import DuplicateError, NotFoundError, TransitionNotAllowed, ValidationError
from revcrm.leads import Lead, LeadStage, Pipeline
from revcrm.testing.strategies import lead_lists, leads

NEW, CONTACTED, QUALIFIED, CONVERTED, LOST = LeadStage
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def lead(lead_id: str, email: str, created_at: datetime = T0) -> Lead:
    return Lead(id=lead_id, email=email, created_at=created_at)


def customer(customer_id: str, email: str | None, registered_at: datetime) -> Customer:
    return Customer(id=customer_id, email=email, registered_at=registered_at)


def test_of_add_get_and_iteration_order() -> None:
    pipeline = Pipeline.of([lead("b", "b@example.com"), lead("a", "a@example.com")])
    assert len(pipeline) == 2
    assert [x.id for x in pipeline] == ["a", "b"]
    assert "a" in pipeline
    assert "z" not in pipeline
    assert pipeline.get("a").email == "a@example.com"
    with pytest.raises(NotFoundError):
        pipeline.get("z")
    assert Pipeline() == Pipeline.of([])
    assert pipeline == Pipeline.of(reversed(list(pipeline)))
    assert hash(pipeline) == hash(Pipeline.of(reversed(list(pipeline))))
    assert pipeline != Pipeline()


def test_duplicate_ids_are_refused() -> None:
    pipeline = Pipeline.of([lead("a", "a@example.com")])
    with pytest.raises(DuplicateError) as info:
        pipeline.add(lead("a", "other@example.com"))
    assert (info.value.kind, info.value.key) == ("lead", "a")
    with pytest.raises(ValidationError):
        pipeline.add("a")  # type: ignore[arg-type]


def test_a_second_open_lead_with_the_same_email_is_detected_at_creation() -> None:
    pipeline = Pipeline.of([lead("a", "Ann@Example.com")])
    with pytest.raises(DuplicateError) as info:
        pipeline.add(lead("b", "  ann@EXAMPLE.com "))
    assert (info.value.kind, info.value.key) == ("open lead", "ann@example.com")
    with pytest.raises(DuplicateError):
        Pipeline.of([lead("a", "ann@example.com"), lead("b", "ANN@example.com")])


def test_a_closed_lead_does_not_block_a_new_one() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")]).move(
        "a", LOST, at=T0 + DAY, lost_reason="no budget"
    )
    pipeline = pipeline.add(lead("b", "ann@example.com", T0 + 2 * DAY))
    open_lead = pipeline.open_lead_for("ANN@example.com")
    assert open_lead is not None
    assert open_lead.id == "b"
    # reopening the lost one would make two open leads for one email
    with pytest.raises(DuplicateError):
        pipeline.move("a", NEW, at=T0 + 3 * DAY)
    assert pipeline.get("a").stage is LOST


def test_convert_links_the_customer_and_keeps_the_history() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")])
    pipeline = pipeline.move("a", CONTACTED, at=T0 + DAY, staff_id="s1")
    pipeline = pipeline.convert("a", "cus-1", at=T0 + 2 * DAY, staff_id="s1")
    converted = pipeline.get("a")
    assert converted.stage is CONVERTED
    assert converted.customer_id == "cus-1"
    assert [t.to_stage for t in converted.history] == [CONTACTED, CONVERTED]
    assert pipeline.lead_for_customer("cus-1") == converted
    assert pipeline.lead_for_customer("cus-2") is None
    assert pipeline.open_lead_for("ann@example.com") is None


def test_converting_twice_raises_and_changes_nothing() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")]).convert("a", "cus-1", at=T0 + DAY)
    with pytest.raises(TransitionNotAllowed) as info:
        pipeline.convert("a", "cus-2", at=T0 + 2 * DAY)
    assert info.value.record == "lead 'a'"
    assert pipeline.get("a").customer_id == "cus-1"
    assert pipeline.lead_for_customer("cus-2") is None


def test_a_customer_is_linked_to_one_lead_only() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com"), lead("b", "ann@work.example.com")])
    pipeline = pipeline.convert("a", "cus-1", at=T0 + DAY)
    with pytest.raises(DuplicateError) as info:
        pipeline.convert("b", "cus-1", at=T0 + DAY)
    assert (info.value.kind, info.value.key) == ("converted lead for customer", "cus-1")
    assert pipeline.get("b").stage is NEW


def test_update_accepts_appended_history_and_profile_edits() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")])
    contacted = pipeline.get("a").contact(at=T0 + DAY)
    pipeline = pipeline.update(contacted)
    assert pipeline.get("a").stage is CONTACTED
    renamed = attrs.evolve(contacted, name="Ann Lee")
    assert pipeline.update(renamed).get("a").name == "Ann Lee"


def test_editing_a_converted_lead_keeps_its_customer_link() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")]).convert("a", "cus-1", at=T0 + DAY)
    edited = attrs.evolve(pipeline.get("a"), notes="renewed in May")
    pipeline = pipeline.update(edited)
    assert pipeline.lead_for_customer("cus-1") == edited
    with pytest.raises(DuplicateError):
        pipeline.add(lead("b", "bob@example.com").convert("cus-1", at=T0 + DAY))


def test_update_refuses_a_rewritten_or_stale_history() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")])
    base = pipeline.get("a")
    pipeline = pipeline.update(base.contact(at=T0 + DAY, staff_id="s1"))
    stale = base.lose("price", at=T0 + 2 * DAY, staff_id="s2")  # moved from the old version
    with pytest.raises(ValidationError, match="append-only"):
        pipeline.update(stale)
    with pytest.raises(NotFoundError):
        pipeline.update(lead("z", "z@example.com"))
    with pytest.raises(ValidationError):
        pipeline.update("a")  # type: ignore[arg-type]


def test_update_checks_the_email_of_an_edited_lead() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com"), lead("b", "bob@example.com")])
    with pytest.raises(DuplicateError):
        pipeline.update(attrs.evolve(pipeline.get("b"), email="ANN@example.com"))


# -- registration -----------------------------------------------------------------------------


def test_registration_converts_the_open_lead_with_the_same_email() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com"), lead("b", "bob@example.com")])
    pipeline = pipeline.move("a", QUALIFIED, at=T0 + DAY, staff_id="s1")
    ann = customer("cus-1", "  ANN@example.com", T0 + 5 * DAY)
    after, converted = pipeline.match_registration(ann)
    assert converted is not None
    assert converted.id == "a"
    assert converted.customer_id == "cus-1"
    assert converted.converted_at == T0 + 5 * DAY
    assert converted.history[-1].staff_id is None  # the system, not a staff member
    assert after.get("a") == converted
    assert after.get("b") == pipeline.get("b")
    assert pipeline.get("a").stage is QUALIFIED  # the old pipeline is untouched


def test_registration_delivered_twice_changes_nothing() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")])
    ann = customer("cus-1", "ann@example.com", T0 + DAY)
    once, first = pipeline.match_registration(ann, staff_id="s1")
    # a new lead for the same email, then the same event again
    once = once.add(lead("b", "ann@example.com", T0 + 2 * DAY))
    twice, second = once.match_registration(ann, at=T0 + 3 * DAY)
    assert first is not None
    assert second is None
    assert twice is once


def test_registration_without_a_matching_open_lead() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com")]).move(
        "a", LOST, at=T0 + DAY, lost_reason="price"
    )
    for who in (
        customer("cus-1", "ann@example.com", T0 + 2 * DAY),  # lost leads are not open
        customer("cus-2", "bob@example.com", T0 + 2 * DAY),
        customer("cus-3", None, T0 + 2 * DAY),
    ):
        after, converted = pipeline.match_registration(who)
        assert converted is None
        assert after is pipeline


def test_registration_before_the_last_move_raises_and_changes_nothing() -> None:
    pipeline = Pipeline.of([lead("a", "ann@example.com", T0 + 3 * DAY)])
    with pytest.raises(ValidationError):
        pipeline.match_registration(customer("cus-1", "ann@example.com", T0))
    assert pipeline.get("a").stage is NEW


@given(items=lead_lists(), data=st.data())
def test_pipeline_invariants_hold_for_any_accepted_leads(
    items: list[Lead], data: st.DataObject
) -> None:
    pipeline = Pipeline()
    for item in items:
        try:
            pipeline = pipeline.add(item)
        except DuplicateError:
            continue
    kept = list(pipeline)
    open_keys = [x.email_key for x in kept if x.is_open]
    customers = [x.customer_id for x in kept if x.customer_id is not None]
    assert len(open_keys) == len(set(open_keys))
    assert len(customers) == len(set(customers))
    for x in kept:
        if x.is_open:
            assert pipeline.open_lead_for(x.email) == x
    if kept:
        target = data.draw(st.sampled_from(kept))
        if target.stage is not CONVERTED:
            return
        before = list(pipeline)
        with pytest.raises(TransitionNotAllowed):
            pipeline.convert(target.id, "cus-new", at=target.last_moved_at + DAY)
        assert list(pipeline) == before


@given(start=leads(lead_id="a"), gap=st.timedeltas(min_value=timedelta(0), max_value=DAY * 90))
def test_a_second_conversion_attempt_changes_nothing(start: Lead, gap: timedelta) -> None:
    pipeline = Pipeline.of([start])
    who = customer("cus-x", start.email, start.last_moved_at + gap)
    once, converted = pipeline.match_registration(who)
    assert (converted is not None) == start.is_open
    twice, again = once.match_registration(who)
    assert again is None
    assert twice == once
    if converted is not None:
        with pytest.raises(TransitionNotAllowed):
            once.convert("a", "cus-y", at=who.registered_at + gap)
        assert once.get("a") == converted
