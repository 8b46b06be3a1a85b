"""The transition table and its load-time validation."""

from __future__ import annotations

from collections.abc import Mapping, Set

import pytest

from revcrm.errors import ValidationError
from revcrm.leads import (
    FINAL_STAGES,
    OPEN_STAGES,
    TRANSITIONS,
    LeadStage,
    validate_transition_table,
)

NEW, CONTACTED, QUALIFIED, CONVERTED, LOST = LeadStage


def _table(**changes: Set[LeadStage]) -> dict[LeadStage, Set[LeadStage]]:
    table: dict[LeadStage, Set[LeadStage]] = dict(TRANSITIONS)
    for name, targets in changes.items():
        table[LeadStage(name)] = targets
    return table


def test_the_documented_table() -> None:
    assert dict(TRANSITIONS) == {
        NEW: {CONTACTED, QUALIFIED, CONVERTED, LOST},
        CONTACTED: {QUALIFIED, CONVERTED, LOST},
        QUALIFIED: {CONVERTED, LOST},
        CONVERTED: set(),
        LOST: {NEW},
    }


def test_the_table_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[NEW] = frozenset()  # type: ignore[index]


def test_stage_flags() -> None:
    assert {s for s in LeadStage if s.is_open} == OPEN_STAGES == {NEW, CONTACTED, QUALIFIED}
    assert {s for s in LeadStage if s.is_final} == FINAL_STAGES == {CONVERTED}
    assert not LOST.is_open
    assert not LOST.is_final


def test_the_shipped_table_is_valid() -> None:
    validate_transition_table(TRANSITIONS)


def test_every_open_stage_can_be_lost_and_only_lost_reopens() -> None:
    assert all(LOST in TRANSITIONS[s] for s in OPEN_STAGES)
    assert [s for s in LeadStage if NEW in TRANSITIONS[s]] == [LOST]


@pytest.mark.parametrize(
    ("table", "field", "reason"),
    [
        pytest.param(
            _table(new={CONTACTED, LOST}, contacted={CONVERTED, LOST}),
            "transitions",
            "unreachable",
            id="qualified unreachable",
        ),
        pytest.param(
            _table(lost=frozenset()), "transitions[lost]", "trap", id="lost is a dead end"
        ),
        pytest.param(
            _table(
                new={CONTACTED, LOST},
                contacted={QUALIFIED},
                qualified={CONTACTED},
                lost={CONVERTED},
            ),
            "transitions[",
            "trap: no path",
            id="closed loop without a final stage",
        ),
        pytest.param(
            _table(converted={NEW}), "transitions[converted]", "final", id="final with a way out"
        ),
        pytest.param(
            _table(contacted={CONTACTED, LOST}), "transitions[contacted]", "itself", id="self loop"
        ),
        pytest.param(
            {k: v for k, v in TRANSITIONS.items() if k is not LOST},
            "transitions[lost]",
            "row",
            id="missing row",
        ),
    ],
)
def test_broken_tables_are_refused(
    table: Mapping[LeadStage, Set[LeadStage]], field: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        validate_transition_table(table)
    assert info.value.field.startswith(field)
    assert reason in info.value.reason


def test_a_target_that_is_not_a_stage_is_refused() -> None:
    table = _table(new={CONTACTED, "won"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a LeadStage"):
        validate_transition_table(table)


def test_a_row_for_something_else_is_refused() -> None:
    table: dict[object, object] = {"won": frozenset()}
    table.update(TRANSITIONS.items())
    with pytest.raises(ValidationError, match="not a LeadStage"):
        validate_transition_table(table)  # type: ignore[arg-type]


def test_a_machine_needs_a_final_stage() -> None:
    with pytest.raises(ValidationError, match="final stage"):
        validate_transition_table(TRANSITIONS, final=frozenset())


def test_another_initial_stage_changes_reachability() -> None:
    validate_transition_table(TRANSITIONS, initial=QUALIFIED)  # Lost reopens to New
    with pytest.raises(ValidationError, match="unreachable from converted"):
        validate_transition_table(TRANSITIONS, initial=CONVERTED)
