"""Lead: construction, moves, replay and plain records."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import Money
from revcrm.errors import TransitionNotAllowed, ValidationError
from revcrm.leads import (
    TRANSITIONS,
    Lead,
    LeadRecord,
    LeadStage,
    LeadTransition,
    LeadTransitionRecord,
    ReferralSource,
    Stay,
)
from revcrm.testing.strategies import LEAD_LOST_REASONS, lead_gaps, leads

NEW, CONTACTED, QUALIFIED, CONVERTED, LOST = LeadStage
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def make(**overrides: object) -> Lead:
    fields: dict[str, object] = {"id": "L1", "email": "ann@example.com", "created_at": T0}
    fields.update(overrides)
    return Lead(**fields)  # type: ignore[arg-type]


def worked() -> Lead:
    return make().contact(at=T0 + DAY, staff_id="s1").qualify(at=T0 + 2 * DAY, staff_id="s1")


def _move_args(lead: Lead, to: LeadStage) -> dict[str, object]:
    """Arguments that make a move to ``to`` valid apart from the table."""
    return {
        "at": lead.last_moved_at + DAY,
        "lost_reason": "price" if to is LOST else None,
        "customer_id": "cus-1" if to is CONVERTED else None,
    }


# -- construction ---------------------------------------------------------------------------


def test_a_new_lead_is_new_with_no_history() -> None:
    lead = make(
        email="  Ann@Example.COM ",
        name=" Ann Lee ",
        company="Acme",
        phone="+44 20 7946 0000",
        source=ReferralSource.referral("cus-9"),
        owner_id="staff-1",
        expected_value=Money("49.90", "EUR"),
        notes="met at a fair",
    )
    assert lead.stage is NEW
    assert lead.is_open
    assert lead.history == ()
    assert lead.email == "Ann@Example.COM"
    assert lead.email_key == "ann@example.com"
    assert lead.name == "Ann Lee"
    assert lead.last_moved_at == T0
    assert lead.customer_id is None
    assert lead.converted_at is None
    assert lead.lost_reason is None
    assert lead.source is not None
    assert lead.source.referrer_id == "cus-9"


def test_created_at_is_normalised_to_utc() -> None:
    lead = make(created_at=datetime(2024, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2))))
    assert lead.created_at == T0
    assert lead.created_at.tzinfo is UTC


def test_source_accepts_its_text_form() -> None:
    assert make(source="campaign:spring").source == ReferralSource.campaign("spring")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": " "}, "lead.id"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"created_at": datetime(2024, 3, 1)}, "created_at"),
        ({"expected_value": Money("-1", "EUR")}, "expected_value"),
        ({"expected_value": Decimal(10)}, "expected_value"),
        ({"source": 42}, "source"),
        ({"source": "word of mouth"}, "source.kind"),
        ({"name": None}, "name"),
        ({"notes": 3}, "notes"),
        ({"owner_id": 7}, "owner_id"),
    ],
)
def test_bad_fields_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**overrides)
    assert info.value.field == field


# -- moves ----------------------------------------------------------------------------------


def test_forward_moves_record_who_when_and_why() -> None:
    lead = worked().convert("cus-7", at=T0 + 3 * DAY, staff_id="s2", note="signed up")
    assert lead.stage is CONVERTED
    assert not lead.is_open
    assert lead.customer_id == "cus-7"
    assert lead.converted_at == T0 + 3 * DAY
    assert [(t.from_stage, t.to_stage) for t in lead.history] == [
        (NEW, CONTACTED),
        (CONTACTED, QUALIFIED),
        (QUALIFIED, CONVERTED),
    ]
    last = lead.history[-1]
    assert (last.staff_id, last.note, last.customer_id, last.lost_reason) == (
        "s2",
        "signed up",
        "cus-7",
        None,
    )


def test_a_move_leaves_the_original_unchanged() -> None:
    lead = make()
    moved = lead.contact(at=T0)
    assert lead.stage is NEW
    assert lead.history == ()
    assert moved.stage is CONTACTED


def test_lost_needs_a_reason_and_reopening_is_recorded() -> None:
    with pytest.raises(ValidationError) as info:
        make().move(LOST, at=T0 + DAY)
    assert info.value.field == "lost_reason"
    with pytest.raises(ValidationError):
        make().lose("   ", at=T0 + DAY)
    lost = worked().lose(" no budget ", at=T0 + 3 * DAY, staff_id="s1")
    assert lost.stage is LOST
    assert lost.lost_reason == "no budget"
    reopened = lost.reopen(at=T0 + 30 * DAY, staff_id="s2", note="budget approved")
    assert reopened.stage is NEW
    assert reopened.lost_reason is None
    assert reopened.history[-1] == LeadTransition(
        from_stage=LOST, to_stage=NEW, at=T0 + 30 * DAY, staff_id="s2", note="budget approved"
    )


def test_converting_needs_a_customer_id() -> None:
    with pytest.raises(ValidationError) as info:
        worked().move(CONVERTED, at=T0 + 3 * DAY)
    assert info.value.field == "customer_id"
    with pytest.raises(ValidationError):
        worked().convert("  ", at=T0 + 3 * DAY)


def test_reason_and_customer_only_on_their_own_moves() -> None:
    with pytest.raises(ValidationError, match="lost_reason"):
        make().move(CONTACTED, at=T0, lost_reason="price")
    with pytest.raises(ValidationError, match="customer_id"):
        make().move(LOST, at=T0, lost_reason="price", customer_id="cus-1")


def test_time_cannot_go_backwards() -> None:
    lead = worked()
    with pytest.raises(ValidationError) as info:
        lead.convert("cus-1", at=T0 + DAY)
    assert info.value.field == "at"
    assert "'L1'" in str(info.value)
    with pytest.raises(ValidationError):
        make().contact(at=T0 - timedelta(seconds=1))
    # the same instant is not going back
    assert lead.lose("price", at=T0 + 2 * DAY).stage is LOST


def test_moves_need_aware_times() -> None:
    with pytest.raises(ValidationError) as info:
        make().contact(at=datetime(2024, 3, 2))
    assert info.value.field == "at"


def test_illegal_move_names_the_lead_the_stage_and_the_move() -> None:
    converted = worked().convert("cus-1", at=T0 + 3 * DAY)
    with pytest.raises(TransitionNotAllowed) as info:
        converted.convert("cus-2", at=T0 + 4 * DAY)
    assert info.value.record == "lead 'L1'"
    assert info.value.stage is CONVERTED
    assert info.value.move is CONVERTED
    assert str(info.value) == "lead 'L1': cannot move from converted to converted"


def test_backward_moves_are_refused() -> None:
    with pytest.raises(TransitionNotAllowed):
        worked().contact(at=T0 + 3 * DAY)
    with pytest.raises(TransitionNotAllowed):
        make().lose("price", at=T0).contact(at=T0)
    with pytest.raises(TransitionNotAllowed):
        make().reopen(at=T0)


@given(lead=leads(), to=st.sampled_from(LeadStage))
def test_every_forbidden_move_raises_and_changes_nothing(lead: Lead, to: LeadStage) -> None:
    before = attrs.asdict(lead, recurse=False)
    if to in TRANSITIONS[lead.stage]:
        assert lead.move(to, **_move_args(lead, to)).stage is to  # type: ignore[arg-type]
        return
    with pytest.raises(TransitionNotAllowed) as info:
        lead.move(to, **_move_args(lead, to))  # type: ignore[arg-type]
    assert (info.value.stage, info.value.move) == (lead.stage, to)
    assert attrs.asdict(lead, recurse=False) == before


@pytest.mark.parametrize("stage", list(LeadStage))
def test_from_every_stage_every_forbidden_move_raises(stage: LeadStage) -> None:
    paths = {
        NEW: [],
        CONTACTED: [CONTACTED],
        QUALIFIED: [QUALIFIED],
        CONVERTED: [CONVERTED],
        LOST: [LOST],
    }
    lead = make()
    for to in paths[stage]:
        lead = lead.move(to, **_move_args(lead, to))  # type: ignore[arg-type]
    assert lead.stage is stage
    forbidden = set(LeadStage) - TRANSITIONS[stage]
    assert forbidden  # no stage may move everywhere, itself included
    for to in forbidden:
        with pytest.raises(TransitionNotAllowed):
            lead.move(to, **_move_args(lead, to))  # type: ignore[arg-type]
        assert lead.stage is stage


# -- replay ---------------------------------------------------------------------------------


@given(
    start=leads(max_moves=0),
    attempts=st.lists(
        st.tuples(st.sampled_from(LeadStage), lead_gaps(), st.sampled_from(LEAD_LOST_REASONS)),
        max_size=12,
    ),
)
def test_replaying_the_history_reproduces_the_stage(
    start: Lead, attempts: list[tuple[LeadStage, timedelta, str]]
) -> None:
    """Moves tried at random against a model that only follows the table."""
    lead, model = start, NEW
    for i, (to, gap, reason) in enumerate(attempts):
        args = {
            "at": lead.last_moved_at + gap,
            "lost_reason": reason if to is LOST else None,
            "customer_id": f"cus-{i}" if to is CONVERTED else None,
        }
        try:
            lead = lead.move(to, **args)  # type: ignore[arg-type]
        except TransitionNotAllowed:
            assert to not in TRANSITIONS[model]
        else:
            assert to in TRANSITIONS[model]
            model = to
    assert lead.stage is model
    assert lead.replay() is model
    # The move path skips __init__; the validating constructor must agree with it.
    assert Lead(**attrs.asdict(lead, recurse=False)) == lead


@given(lead=leads())
def test_stays_tile_the_history(lead: Lead) -> None:
    stays = list(lead.stays())
    assert len(stays) == len(lead.history) + 1
    assert stays[0].entered_at == lead.created_at
    assert stays[-1] == Stay(stage=lead.stage, entered_at=lead.last_moved_at, exited_at=None)
    for a, b in itertools.pairwise(stays):
        assert a.exited_at == b.entered_at
        assert b.stage in TRANSITIONS[a.stage]


@given(lead=leads(), offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_stage_at_follows_the_history(lead: Lead, offset: timedelta) -> None:
    assert lead.stage_at(lead.created_at - timedelta(microseconds=1)) is None
    assert lead.stage_at(lead.last_moved_at) is lead.stage
    moment = lead.created_at + offset
    expected = NEW
    for t in lead.history:
        if t.at <= moment:
            expected = t.to_stage
    assert lead.stage_at(moment) is expected


def test_stage_at_example() -> None:
    lead = worked().lose("price", at=T0 + 5 * DAY)
    assert lead.stage_at(T0) is NEW
    assert lead.stage_at(T0 + DAY - timedelta(microseconds=1)) is NEW
    assert lead.stage_at(T0 + DAY) is CONTACTED
    assert lead.stage_at(T0 + 3 * DAY) is QUALIFIED
    assert lead.stage_at(T0 + 9 * DAY) is LOST


# -- records --------------------------------------------------------------------------------


@given(lead=leads())
def test_records_round_trip(lead: Lead) -> None:
    record = lead.to_record()
    rows = lead.transition_records()
    assert record["stage"] == lead.stage.value
    assert [r["seq"] for r in rows] == list(range(len(lead.history)))
    assert Lead.from_record(record, reversed(rows)) == lead


def test_record_example() -> None:
    lead = make(
        source=ReferralSource.campaign("spring"), expected_value=Money("49.90", "EUR")
    ).convert("cus-7", at=T0 + DAY, staff_id="s1")
    assert lead.to_record() == LeadRecord(
        id="L1",
        email="ann@example.com",
        email_key="ann@example.com",
        name="",
        company=None,
        phone=None,
        source="campaign:spring",
        owner_id=None,
        expected_value_amount=Decimal("49.90"),
        expected_value_currency="EUR",
        notes="",
        created_at=T0,
        stage="converted",
        customer_id="cus-7",
    )
    assert lead.transition_records() == (
        LeadTransitionRecord(
            lead_id="L1",
            seq=0,
            from_stage="new",
            to_stage="converted",
            at=T0 + DAY,
            staff_id="s1",
            note="",
            lost_reason=None,
            customer_id="cus-7",
        ),
    )


def _records() -> tuple[LeadRecord, list[LeadTransitionRecord]]:
    lead = worked()
    return lead.to_record(), list(lead.transition_records())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r, h: r.update(stage="new"), "stage"),
        (lambda r, h: r.update(customer_id="cus-1"), "customer_id"),
        (lambda r, h: r.update(email_key="bob@example.com"), "email_key"),
        (lambda r, h: r.update(expected_value_amount=Decimal(5)), "expected_value_currency"),
        (lambda r, h: h[1].update(seq=2), "transition.seq"),
        (lambda r, h: h[1].update(lead_id="L2"), "transition.lead_id"),
        (lambda r, h: h[1].update(from_stage="new"), "lead[L1].history[1].from_stage"),
        (lambda r, h: h[1].update(to_stage="won"), "to_stage"),
        (lambda r, h: h[1].update(at=T0), "lead[L1].history[1].at"),
        (lambda r, h: r.update(created_at=T0 + 10 * DAY), "lead[L1].history[0].at"),
    ],
)
def test_inconsistent_records_are_refused(change: object, field: str) -> None:
    record, rows = _records()
    change(record, rows)  # type: ignore[operator]
    with pytest.raises(ValidationError) as info:
        Lead.from_record(record, rows)
    assert info.value.field == field


def test_a_history_the_table_forbids_is_refused() -> None:
    record, rows = _records()
    rows[1]["to_stage"] = "new"
    with pytest.raises(TransitionNotAllowed):
        Lead.from_record(record, rows)


def test_history_entries_must_be_transitions() -> None:
    with pytest.raises(ValidationError, match="not a LeadTransition"):
        make(history=["contacted"])


@pytest.mark.parametrize("email", [None, 7, len, b"a@b.c"])
def test_normalise_email_refuses_a_non_string(email: object) -> None:
    # Was a raw AttributeError (no attribute 'strip').
    from revcrm.leads import normalise_email

    with pytest.raises(ValidationError) as caught:
        normalise_email(email)  # type: ignore[arg-type]
    assert caught.value.field == "email"
    assert normalise_email("  Dave@Example.COM ") == "dave@example.com"
