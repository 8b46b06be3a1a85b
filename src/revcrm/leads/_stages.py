"""Lead stages and the transition table, validated when the module loads.

The table is plain data: a lookup in a frozenset costs well under a microsecond, where a
state-machine library builds a machine per object (hundreds of microseconds per lead).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping, Set
from types import MappingProxyType
from typing import Final

from revcrm.errors import ValidationError

__all__ = [
    "FINAL_STAGES",
    "INITIAL_STAGE",
    "OPEN_STAGES",
    "TRANSITIONS",
    "LeadStage",
    "validate_transition_table",
]


class LeadStage(enum.StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    LOST = "lost"

    @property
    def is_open(self) -> bool:
        """Still being worked: New, Contacted or Qualified."""
        return self in OPEN_STAGES

    @property
    def is_final(self) -> bool:
        return self in FINAL_STAGES


_NEW, _CONTACTED, _QUALIFIED, _CONVERTED, _LOST = LeadStage

INITIAL_STAGE: Final = LeadStage.NEW
FINAL_STAGES: Final[frozenset[LeadStage]] = frozenset({_CONVERTED})
OPEN_STAGES: Final[frozenset[LeadStage]] = frozenset({_NEW, _CONTACTED, _QUALIFIED})

#: Allowed moves. Forward only, so time-in-stage and the funnel stay meaningful; to go
#: back, lose the lead and reopen it (both recorded). Skips, and why:
#:
#: * New -> Qualified: an inbound lead can arrive qualified (a sales form that states the
#:   need and budget); a separate "contacted" step would be invented data.
#: * New/Contacted -> Converted: a prospect may register on their own at any point, and
#:   registration converts the open lead; refusing would leave a customer behind an open
#:   lead and drop the conversion from the funnel.
#:
#: Lost only reopens to New: a reopened lead is worked again from the start rather than
#: keeping a qualification that was already given up on. Converted is final.
TRANSITIONS: Final[Mapping[LeadStage, frozenset[LeadStage]]] = MappingProxyType(
    {
        _NEW: frozenset({_CONTACTED, _QUALIFIED, _CONVERTED, _LOST}),
        _CONTACTED: frozenset({_QUALIFIED, _CONVERTED, _LOST}),
        _QUALIFIED: frozenset({_CONVERTED, _LOST}),
        _CONVERTED: frozenset(),
        _LOST: frozenset({_NEW}),
    }
)


def _reachable(table: Mapping[LeadStage, Set[LeadStage]], start: LeadStage) -> set[LeadStage]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in table.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def validate_transition_table(
    table: Mapping[LeadStage, Set[LeadStage]],
    *,
    initial: LeadStage = INITIAL_STAGE,
    final: Set[LeadStage] = FINAL_STAGES,
) -> None:
    """Raise :class:`~revcrm.errors.ValidationError` unless ``table`` is a sound machine.

    Sound means: every stage has a row and only stages as targets; no stage moves to
    itself; every stage is reachable from ``initial``; final stages have no way out; and
    every other stage has a way out that eventually reaches a final stage (no trap, not
    even a closed loop of open stages).
    """
    stages = frozenset(LeadStage)
    if not final:
        raise ValidationError("final", final, "at least one final stage is needed")
    for stage in stages:
        if stage not in table:
            raise ValidationError(f"transitions[{stage}]", None, "every stage needs a row")
    for stage, targets in table.items():
        if stage not in stages:
            raise ValidationError("transitions", stage, "not a LeadStage")
        for target in targets:
            if target not in stages:
                raise ValidationError(f"transitions[{stage}]", target, "not a LeadStage")
        if stage in targets:
            raise ValidationError(f"transitions[{stage}]", stage, "a stage cannot move to itself")
        if stage in final and targets:
            raise ValidationError(
                f"transitions[{stage}]", set(targets), "a final stage has no moves"
            )
        if stage not in final and not targets:
            raise ValidationError(
                f"transitions[{stage}]", set(), "trap: a non-final stage needs a move"
            )
    unreachable = stages - _reachable(table, initial)
    if unreachable:
        raise ValidationError("transitions", sorted(unreachable), f"unreachable from {initial}")
    for stage in stages - set(final):
        if not _reachable(table, stage) & set(final):
            raise ValidationError(
                f"transitions[{stage}]", stage, "trap: no path from this stage to a final stage"
            )


validate_transition_table(TRANSITIONS)
