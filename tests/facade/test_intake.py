"""Intake through the facade: questions, answers on the profile, the breakdown, and
intake answers following merge and erasure, on every backend of tests/facade."""

from __future__ import annotations

from datetime import timedelta

import pytest

from revcrm import Money
from revcrm._facade import CRM
from revcrm.crm import IntakeQuestion, IntakeScope, format_profile
from revcrm.errors import NotFoundError, UnknownReferenceError, ValidationError
from revcrm.metrics import mrr
from revcrm.storage._crm import ERASED_TEXT
from tests.facade.test_facade import _paying, crm

__all__ = ["crm"]  # the backend-parametrised fixture

SOURCE = IntakeQuestion.choice(
    id="source", prompt="How did you hear about us?", options=("Search", "Friend"), position=1
)
WHY = IntakeQuestion.free_text(id="why", prompt="Why did you sign up?", position=2)
TOOLS = IntakeQuestion.multiple_choice(
    id="tools",
    prompt="What do you use today?",
    options=("Sheets", "Stripe"),
    scope=IntakeScope.PURCHASE,
    position=3,
)


def _setup(crm: CRM) -> list[str]:
    for q in (SOURCE, WHY, TOOLS):
        crm.intake.define(q)
    return _paying(crm)


def test_answers_show_on_the_profile(crm: CRM) -> None:
    cid = _setup(crm)[0]
    sub = crm.store.subscriptions.for_customer(cid)[0]
    crm.intake.answer(cid, "source", "search", staff_id="s1")
    crm.intake.answer(cid, "why", "Cheaper than the old host")
    crm.intake.answer(cid, "tools", ["stripe"], subscription_id=sub.id)
    crm.intake.answer(cid, "source", "Friend")  # a later answer replaces the first
    profile = crm.customers.profile(cid, as_of=crm.now())
    shown = {(i.question.id, i.subscription_id): i.answer for i in profile.intake}
    source, why, tools = shown[("source", None)], shown[("why", None)], shown[("tools", sub.id)]
    assert source is not None
    assert source.choices == ("Friend",)
    assert why is not None
    assert why.text == "Cheaper than the old host"
    assert tools is not None
    assert tools.choices == ("Stripe",)
    text = format_profile(profile, locale="en_US")
    assert "How did you hear about us?: Friend" in text
    assert f"[service {sub.id}]: Stripe" in text


def test_answers_are_checked(crm: CRM) -> None:
    paying = _setup(crm)
    cid, other = paying[0], paying[1]
    with pytest.raises(ValidationError) as err:
        crm.intake.answer(cid, "source", "Radio")
    assert err.value.field == "value"
    with pytest.raises(ValidationError) as err:
        crm.intake.answer(cid, "tools", ["Sheets"])
    assert err.value.field == "subscription_id"
    foreign = crm.store.subscriptions.for_customer(other)[0].id
    with pytest.raises(ValidationError, match="belongs to customer"):
        crm.intake.answer(cid, "tools", ["Sheets"], subscription_id=foreign)
    with pytest.raises(NotFoundError):
        crm.intake.answer("ghost", "source", "Search")
    with pytest.raises((NotFoundError, UnknownReferenceError)):
        crm.intake.answer(cid, "nope", "Search")
    assert crm.crm.intake.answers_for(cid) == ()


def test_retired_questions_keep_their_answers(crm: CRM) -> None:
    cid = _setup(crm)[0]
    crm.intake.answer(cid, "source", "Search")
    crm.intake.retire("source")
    assert [q.id for q in crm.intake.questions()] == ["why", "tools"]
    assert [q.id for q in crm.intake.questions(scope="purchase")] == ["tools"]
    assert "source" in {q.id for q in crm.intake.questions(include_retired=True)}
    with pytest.raises(ValidationError) as err:
        crm.intake.answer(cid, "source", "Friend", at=crm.now() + timedelta(days=1))
    assert err.value.field == "at"
    assert [i.question.id for i in crm.intake.of(cid) if i.answer is not None] == ["source"]


def test_breakdown_sums_the_chosen_customers(crm: CRM) -> None:
    paying = _setup(crm)
    searchers, friends = paying[:3], paying[3:5]
    for cid in searchers:
        crm.intake.answer(cid, "source", "Search")
    for cid in friends:
        crm.intake.answer(cid, "source", "Friend")
    crm.intake.answer(paying[0], "why", "price")
    at = crm.now()
    breakdown = crm.intake.breakdown(as_of=at)
    book = crm.store.book()
    for option, ids in (("Search", searchers), ("Friend", friends)):
        row = breakdown.row("source", option)
        assert row is not None
        assert row.customers == len(ids)
        assert row.mrr == mrr(book.restricted_to(ids), at=at, currency="USD")
    free = breakdown.row("why", None)
    assert free is not None
    assert free.customers == 1
    assert free.mrr is None
    split = crm.intake.breakdown(as_of=at, by_referral_source=True)
    per_source = [r for r in split.rows if r.question_id == "source" and r.option == "Search"]
    assert sum(r.customers for r in per_source) == len(searchers)
    assert sum((r.mrr for r in per_source if r.mrr is not None), Money.zero("USD")) == (
        breakdown.row("source", "Search").mrr  # type: ignore[union-attr]
    )


def test_intake_follows_merge_and_erasure(crm: CRM) -> None:
    paying = _setup(crm)
    primary, secondary, third = paying[:3]
    crm.intake.answer(secondary, "why", "my old host went down")
    crm.intake.answer(secondary, "source", "Friend")
    crm.merge(primary, secondary, staff_id="s9")
    answers = crm.crm.intake.answers_for(primary)
    assert {a.question_id for a in answers} == {"why", "source"}
    crm.erase(primary)
    texts = {a.text for a in crm.crm.intake.answers_for(primary) if a.question_id == "why"}
    assert texts == {ERASED_TEXT}
    # Choices are kept: they are not personal and the breakdown still counts them.
    row = crm.intake.breakdown(as_of=crm.now()).row("source", "Friend")
    assert row is not None
    assert row.customers == 1
    crm.intake.answer(third, "source", "Search")
    crm.erase(third, mode="delete")
    assert crm.crm.intake.answers_for(third) == ()


def test_merged_answers_the_latest_is_current(crm: CRM) -> None:
    primary, secondary = _setup(crm)[:2]
    now = crm.now()
    crm.intake.answer(primary, "source", "Search", at=now - timedelta(days=10))
    crm.intake.answer(secondary, "source", "Friend", at=now - timedelta(days=5))
    crm.merge(primary, secondary, staff_id="s9")
    items = {i.question.id: i.answer for i in crm.intake.of(primary)}
    answer = items["source"]
    assert answer is not None
    assert answer.choices == ("Friend",)  # documented: the latest answer wins
    assert len(crm.crm.intake.answers_for(primary)) == 2  # both kept in the history


def test_intake_refusals_name_their_field(crm: CRM) -> None:
    cid = _setup(crm)[0]
    registered = crm.store.customers.get(cid).registered_at
    with pytest.raises(ValidationError) as err:
        crm.intake.answer(cid, "source", "Search", at=registered - timedelta(seconds=1))
    assert err.value.field == "at"
    crm.intake.retire("source")
    with pytest.raises(ValidationError) as err:
        crm.intake.retire("source")
    assert err.value.field == "question_id"
    with pytest.raises(NotFoundError):
        crm.intake.of("ghost")
