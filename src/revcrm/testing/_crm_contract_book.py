"""Shared pieces of the CRM store contract (:mod:`revcrm.testing.crm_contract`): its
moments, sample notes, leads and intake questions, and the hostile ids and moments."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest
from hypothesis import strategies as st

from revcrm._money import Money
from revcrm.crm import (
    IntakeAnswer,
    IntakeQuestion,
    IntakeScope,
    Note,
)
from revcrm.errors import (
    ValidationError,
)
from revcrm.leads import Lead

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
