"""Intake questions and answers: validation, current answers, the breakdown.

The hypothesis strategies of answers live here (not in revcrm.testing.strategies, which
another module owns): ``_answer_logs`` draws answers to three fixed questions.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import BillingCycle, Book, Money
from revcrm._money import money_sum
from revcrm.crm import (
    MAX_ANSWER_LENGTH,
    IntakeAnswer,
    IntakeQuestion,
    IntakeScope,
    QuestionKind,
    current_answers,
    customer_intake,
    intake_breakdown,
)
from revcrm.errors import ValidationError
from revcrm.metrics import mrr
from revcrm.testing.strategies import books
from tests._builders import customer, payment, service, t, usd

SOURCE: Final = IntakeQuestion.choice(
    id="source",
    prompt="How did you hear about us?",
    options=("Search", "Friend", "Podcast"),
    position=1,
)
TOOLS: Final = IntakeQuestion.multiple_choice(
    id="tools",
    prompt="What do you use today?",
    options=("Excel", "Stripe", "Other"),
    scope="purchase",
    position=2,
)
WHY: Final = IntakeQuestion.free_text(id="why", prompt="Why did you sign up?", position=0)
QUESTIONS: Final = (SOURCE, TOOLS, WHY)


# -- questions --------------------------------------------------------------------------------


def test_named_constructors() -> None:
    assert SOURCE.kind is QuestionKind.SINGLE_CHOICE
    assert SOURCE.scope is IntakeScope.REGISTRATION
    assert TOOLS.kind is QuestionKind.MULTIPLE_CHOICE
    assert TOOLS.scope is IntakeScope.PURCHASE
    assert WHY.options == ()
    assert WHY.kind is QuestionKind.FREE_TEXT
    assert IntakeQuestion.from_record(TOOLS.to_record()) == TOOLS
    q = IntakeQuestion.choice(id=" q ", prompt=" Which? ", options=[" a ", "B"], required=True)
    assert (q.id, q.prompt, q.options, q.required) == ("q", "Which?", ("a", "B"), True)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"options": ("Only",)}, "options"),
        ({"options": ()}, "options"),
        ({"options": ("Yes", " yes ")}, "options"),
        ({"options": ("Yes", "")}, "options"),
        ({"options": ("Yes", "No\x07")}, "options"),
        ({"options": "Yes"}, "options"),
        ({"options": 3}, "options"),
        ({"id": " "}, "id"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 501}, "prompt"),
        ({"kind": "poll"}, "kind"),
        ({"scope": "checkout"}, "scope"),
        ({"required": "yes"}, "required"),
        ({"position": 1.5}, "position"),
        ({"position": True}, "position"),
        ({"retired_at": datetime(2024, 1, 1)}, "retired_at"),
    ],
)
def test_bad_questions_name_their_field(fields: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {
        "id": "q",
        "prompt": "Which?",
        "kind": QuestionKind.SINGLE_CHOICE,
        "options": ("Yes", "No"),
    }
    with pytest.raises(ValidationError) as caught:
        IntakeQuestion(**{**base, **fields})
    assert caught.value.field == field
    assert field in str(caught.value)


def test_free_text_takes_no_options() -> None:
    with pytest.raises(ValidationError, match="options"):
        IntakeQuestion(id="q", prompt="Why?", kind="free_text", options=("a", "b"))


# -- answers ----------------------------------------------------------------------------------


def test_options_match_case_insensitively_and_keep_the_question_spelling() -> None:
    a = SOURCE.answer(customer_id="c1", value=" friend ", at=t(2024, 1, 1))
    assert a.choices == ("Friend",)
    assert a.text is None
    assert a.subscription_id is None
    b = TOOLS.answer(
        customer_id="c1", value=["stripe", "EXCEL"], at=t(2024, 1, 1), subscription_id="s1"
    )
    assert b.choices == ("Stripe", "Excel")
    assert TOOLS.answer(
        customer_id="c1", value="other", at=t(2024, 1, 1), subscription_id="s1"
    ).choices == ("Other",)
    w = WHY.answer(customer_id="c1", value="  to bill  ", at=t(2024, 1, 1), staff_id="s9")
    assert (w.text, w.choices, w.staff_id) == ("to bill", (), "s9")
    assert IntakeAnswer.from_record(b.to_record()) == b


_BAD_ANSWERS: Final[list[tuple[IntakeQuestion, dict[str, Any], str]]] = [
    (SOURCE, {"value": "Radio"}, "value"),
    (SOURCE, {"value": ["Search", "Friend"]}, "value"),
    (SOURCE, {"value": []}, "value"),
    (SOURCE, {"value": ""}, "value"),
    (SOURCE, {"value": 7}, "value"),
    (SOURCE, {"value": {"Search"}}, "value"),
    (TOOLS, {"value": [], "subscription_id": "s1"}, "value"),
    (TOOLS, {"value": ["Excel", "excel"], "subscription_id": "s1"}, "value"),
    (TOOLS, {"value": ["Excel", "Abacus"], "subscription_id": "s1"}, "value"),
    (WHY, {"value": "   "}, "value"),
    (WHY, {"value": "x" * (MAX_ANSWER_LENGTH + 1)}, "value"),
    (WHY, {"value": ["a"]}, "value"),
    (SOURCE, {"value": "Search", "customer_id": ""}, "customer_id"),
    (SOURCE, {"value": "Search", "at": datetime(2024, 1, 1)}, "at"),
    (SOURCE, {"value": "Search", "at": "2024-01-01"}, "at"),
    (SOURCE, {"value": "Search", "subscription_id": "s1"}, "subscription_id"),
    (TOOLS, {"value": ["Excel"]}, "subscription_id"),
    (TOOLS, {"value": ["Excel"], "subscription_id": "  "}, "subscription_id"),
    (SOURCE, {"value": "Search", "staff_id": 5}, "staff_id"),
]


@pytest.mark.parametrize(("question", "fields", "field"), _BAD_ANSWERS)
def test_bad_answers_name_their_field(
    question: IntakeQuestion, fields: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"customer_id": "c1", "at": t(2024, 1, 1), **fields}
    with pytest.raises(ValidationError) as caught:
        question.answer(**args)
    assert caught.value.field == field
    # The message shows the value through a bounded repr: a long value by its first 100
    # characters (and its length), a short one whole.
    assert str(caught.value).startswith(f"{field}=")
    assert repr(caught.value.value)[:100] in str(caught.value)


def test_free_text_at_the_limit_is_accepted() -> None:
    text = "x" * MAX_ANSWER_LENGTH
    assert WHY.answer(customer_id="c1", value=f" {text} ", at=t(2024, 1, 1)).text == text


def test_a_retired_question_is_not_asked_any_more() -> None:
    retired = SOURCE.retire(at=t(2024, 6, 1))
    assert retired.asked_at(t(2024, 5, 31))
    assert not retired.asked_at(t(2024, 6, 1))
    assert retired.answer(customer_id="c1", value="Search", at=t(2024, 5, 1)).choices == ("Search",)
    with pytest.raises(ValidationError, match="retired") as caught:
        retired.answer(customer_id="c1", value="Search", at=t(2024, 6, 1))
    assert caught.value.field == "at"


def test_answer_values_are_checked_on_their_own() -> None:
    with pytest.raises(ValidationError, match="either"):
        IntakeAnswer(customer_id="c1", question_id="q", answered_at=t(2024, 1, 1))
    with pytest.raises(ValidationError, match="either"):
        IntakeAnswer(
            customer_id="c1", question_id="q", answered_at=t(2024, 1, 1), choices=("a",), text="b"
        )
    with pytest.raises(ValidationError, match="twice"):
        IntakeAnswer(
            customer_id="c1", question_id="q", answered_at=t(2024, 1, 1), choices=("a", "A")
        )


def test_check_against_the_question_as_it_stands_now() -> None:
    old = SOURCE.answer(customer_id="c1", value="Podcast", at=t(2024, 1, 1))
    without = IntakeQuestion.choice(id="source", prompt="How?", options=("Search", "Friend"))
    with pytest.raises(ValidationError, match="Podcast"):
        without.check(old)
    renamed = IntakeQuestion.choice(id="source", prompt="How?", options=("search", "PODCAST"))
    assert renamed.check(old).choices == ("PODCAST",)
    assert SOURCE.check(old) is old
    with pytest.raises(ValidationError, match="question_id"):
        TOOLS.check(old)
    as_text = IntakeQuestion.free_text(id="source", prompt="How?")
    with pytest.raises(ValidationError, match="takes text"):
        as_text.check(old)


# -- current answers --------------------------------------------------------------------------


def test_latest_answer_wins_and_ties_go_to_the_later_recorded() -> None:
    first = SOURCE.answer(customer_id="c1", value="Search", at=t(2024, 1, 1))
    tie = SOURCE.answer(customer_id="c1", value="Friend", at=t(2024, 1, 1))
    later = SOURCE.answer(customer_id="c1", value="Podcast", at=t(2024, 2, 1))
    s1 = TOOLS.answer(customer_id="c1", value="Excel", at=t(2024, 1, 5), subscription_id="s1")
    s2 = TOOLS.answer(customer_id="c1", value="Other", at=t(2024, 1, 5), subscription_id="s2")
    log = [later, first, tie, s1, s2]
    assert current_answers(log, as_of=t(2024, 1, 15)) == {
        ("c1", "source", None): tie,
        ("c1", "tools", "s1"): s1,
        ("c1", "tools", "s2"): s2,
    }
    assert current_answers(log, as_of=t(2024, 3, 1))[("c1", "source", None)] == later
    assert current_answers(log, as_of=t(2023, 12, 31)) == {}


def test_customer_intake_for_the_profile() -> None:
    retired = IntakeQuestion.choice(id="old", prompt="Old?", options=("a", "b"), position=9)
    retired = retired.retire(at=t(2024, 1, 1))
    answers = [
        SOURCE.answer(customer_id="c1", value="search", at=t(2024, 1, 2)),
        TOOLS.answer(customer_id="c1", value="Excel", at=t(2024, 1, 2), subscription_id="s2"),
        TOOLS.answer(customer_id="c1", value="Other", at=t(2024, 1, 3), subscription_id="s1"),
        SOURCE.answer(customer_id="c2", value="Friend", at=t(2024, 1, 2)),
    ]
    items = customer_intake([*QUESTIONS, retired], answers, "c1", as_of=t(2024, 2, 1))
    shown = [
        (i.question.id, i.subscription_id, None if i.answer is None else i.answer.choices)
        for i in items
    ]
    assert shown == [
        ("why", None, None),
        ("source", None, ("Search",)),
        ("tools", "s1", ("Other",)),
        ("tools", "s2", ("Excel",)),
    ]


# -- breakdown: worked example ----------------------------------------------------------------


def _example_book() -> Book:
    return Book.of(
        customers=[
            customer("c1", t(2024, 1, 1), referral_source="search:google"),
            customer("c2", t(2024, 1, 1), referral_source="search:google"),
            customer("c3", t(2024, 1, 1)),
            customer("c4", t(2024, 5, 1)),  # registers after the breakdown's moment
        ],
        subscriptions=[
            service("s1", "c1", usd("30.00"), at=t(2024, 1, 1)),
            service("s2", "c2", usd("10.00"), at=t(2024, 1, 1)),
            service("s3", "c3", usd(12), at=t(2024, 1, 1), cycle=BillingCycle.ANNUAL),
        ],
        transactions=[
            payment("p1", "c1", usd("30.00"), t(2024, 1, 1)),
            payment("p2", "c1", usd("30.00"), t(2024, 2, 1)),
            payment("r1", "c1", usd("5.00"), t(2024, 2, 2), kind="refund"),
            payment("p3", "c3", usd(12), t(2024, 1, 1)),
            payment("p4", "c3", usd(12), t(2024, 1, 2), status="failed"),
            payment("p5", "c2", usd("10.00"), t(2024, 3, 5)),  # after the moment
        ],
    )


def _example_answers() -> list[IntakeAnswer]:
    return [
        SOURCE.answer(customer_id="c1", value="Search", at=t(2024, 1, 1)),
        SOURCE.answer(customer_id="c2", value="Search", at=t(2024, 1, 1)),
        SOURCE.answer(customer_id="c3", value="Podcast", at=t(2024, 1, 1)),
        SOURCE.answer(customer_id="c3", value="Friend", at=t(2024, 4, 1)),  # after the moment
        SOURCE.answer(customer_id="c4", value="Friend", at=t(2024, 1, 1)),  # not registered
        TOOLS.answer(
            customer_id="c1", value=["Excel", "Stripe"], at=t(2024, 1, 1), subscription_id="s1"
        ),
        TOOLS.answer(customer_id="c3", value=["Excel"], at=t(2024, 1, 1), subscription_id="s3"),
        WHY.answer(customer_id="c2", value="cheap", at=t(2024, 1, 1)),
        WHY.answer(customer_id="c2", value="really cheap", at=t(2024, 1, 2)),
        WHY.answer(customer_id="c3", value="fast", at=t(2024, 1, 1)),
    ]


def test_breakdown_worked_example() -> None:
    b = intake_breakdown(
        _example_book(), QUESTIONS, _example_answers(), at=t(2024, 3, 1), currency="USD"
    )
    keys = [(r.question_id, r.option) for r in b.rows]
    assert keys == [
        ("why", None),
        ("source", "Search"),
        ("source", "Friend"),
        ("source", "Podcast"),
        ("tools", "Excel"),
        ("tools", "Stripe"),
        ("tools", "Other"),
    ]
    why = b.row("why", None)
    assert why is not None
    assert why.customers == 2
    assert (why.mrr, why.paying_customers, why.net_payments) == (None, None, None)

    search = b.row("source", "Search")
    assert search is not None
    assert (search.customers, search.paying_customers) == (2, 2)
    assert search.mrr == usd("40.00")
    assert search.arpa == usd("20.00")
    assert search.conversion_rate == Decimal(1)
    assert search.net_payments == usd("55.00")  # c2 paid after the moment

    friend = b.row("source", "Friend")
    assert friend is not None
    assert (friend.customers, friend.paying_customers, friend.mrr) == (0, 0, usd(0))
    assert (friend.arpa, friend.conversion_rate) == (None, None)

    podcast = b.row("source", "Podcast")
    assert podcast is not None
    assert podcast.mrr == usd(1)  # 12 a year
    assert podcast.net_payments == usd(12)  # the failed payment does not count

    excel = b.row("tools", "Excel")
    assert excel is not None
    assert (excel.customers, excel.mrr) == (2, usd(31))
    other = b.row("tools", "Other")
    assert other is not None
    assert other.customers == 0


def test_breakdown_split_by_referral_source() -> None:
    b = intake_breakdown(
        _example_book(),
        [SOURCE],
        _example_answers(),
        at=t(2024, 3, 1),
        currency="USD",
        by_referral_source=True,
    )
    assert b.by_referral_source
    assert [(r.option, r.referral_source, r.customers) for r in b.rows] == [
        ("Search", "search:google", 2),
        ("Search", None, 0),
        ("Friend", "search:google", 0),
        ("Friend", None, 0),
        ("Podcast", "search:google", 0),
        ("Podcast", None, 1),
    ]
    empty = intake_breakdown(
        Book.of(), [SOURCE], [], at=t(2024, 3, 1), currency="USD", by_referral_source=True
    )
    assert [(r.option, r.referral_source, r.customers) for r in empty.rows] == [
        ("Search", None, 0),
        ("Friend", None, 0),
        ("Podcast", None, 0),
    ]


def test_breakdown_ignores_answers_that_no_longer_fit() -> None:
    narrowed = IntakeQuestion.choice(
        id="source", prompt="How?", options=("search", "Friend"), position=1
    )
    b = intake_breakdown(
        _example_book(), [narrowed], _example_answers(), at=t(2024, 3, 1), currency="USD"
    )
    assert [(r.option, r.customers) for r in b.rows] == [("search", 2), ("Friend", 0)]


def test_breakdown_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="currency"):
        intake_breakdown(Book.of(), QUESTIONS, [], at=t(2024, 1, 1), currency="usd!")
    with pytest.raises(ValidationError, match="at"):
        intake_breakdown(Book.of(), QUESTIONS, [], at=datetime(2024, 1, 1), currency="USD")
    with pytest.raises(ValidationError, match="twice"):
        intake_breakdown(Book.of(), [SOURCE, SOURCE], [], at=t(2024, 1, 1), currency="USD")
    with pytest.raises(ValidationError, match="by_referral_source"):
        intake_breakdown(
            Book.of(),
            QUESTIONS,
            [],
            at=t(2024, 1, 1),
            currency="USD",
            by_referral_source="yes",  # type: ignore[arg-type]
        )


# -- properties -------------------------------------------------------------------------------

_START: Final = datetime(2022, 1, 1, tzinfo=UTC)
_CUSTOMER_IDS: Final = ("cus_0", "cus_1", "cus_2", "cus_3", "ghost")


@st.composite
def _answers(draw: st.DrawFn) -> IntakeAnswer:
    question = draw(st.sampled_from(QUESTIONS))
    customer_id = draw(st.sampled_from(_CUSTOMER_IDS))
    # Few distinct moments, so ties between answers of one customer are common.
    at = _START + timedelta(days=draw(st.integers(0, 8)) * 200)
    sub = draw(st.sampled_from(("s1", "s2"))) if question.scope is IntakeScope.PURCHASE else None
    value: str | list[str]
    if question.kind is QuestionKind.FREE_TEXT:
        value = draw(st.sampled_from(("cheap", "fast", " a friend ")))
    elif question.kind is QuestionKind.SINGLE_CHOICE:
        value = draw(st.sampled_from(question.options)).upper()
    else:
        value = draw(st.lists(st.sampled_from(question.options), min_size=1, unique=True))
    return question.answer(customer_id=customer_id, value=value, at=at, subscription_id=sub)


def _answer_logs() -> st.SearchStrategy[list[IntakeAnswer]]:
    return st.lists(_answers(), max_size=25)


def _reordered(log: list[IntakeAnswer], seed: int) -> list[IntakeAnswer]:
    """A permutation of ``log`` that keeps answers tied on (key, moment) in their order."""
    shuffled = list(range(len(log)))
    random.Random(seed).shuffle(shuffled)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in range(len(log)):
        groups.setdefault((*log[i].key, log[i].answered_at), []).append(i)
    # Each group's slots in the shuffled order get the group's members in recorded order.
    queues = {k: iter(v) for k, v in groups.items()}
    return [log[next(queues[(*log[i].key, log[i].answered_at)])] for i in shuffled]


@given(log=_answer_logs(), seed=st.integers(0, 2**16), days=st.integers(0, 2000))
def test_current_answers_do_not_depend_on_order(
    log: list[IntakeAnswer], seed: int, days: int
) -> None:
    at = _START + timedelta(days=days)
    expected = current_answers(log, as_of=at)
    assert current_answers(_reordered(log, seed), as_of=at) == expected
    for key, answer in expected.items():
        mine = [a for a in log if a.key == key and a.answered_at <= at]
        assert answer.answered_at == max(a.answered_at for a in mine)
        assert answer is [a for a in mine if a.answered_at == answer.answered_at][-1]


_BOOKS: Final = books(
    currencies=("USD", "EUR"),
    max_customers=4,
    max_invoices=1,
    earliest=datetime(2022, 1, 1, tzinfo=UTC),
    latest=datetime(2025, 1, 1, tzinfo=UTC),
)


@given(book=_BOOKS, log=_answer_logs(), days=st.integers(0, 1600))
def test_breakdown_counts_and_mrr_match_brute_force(
    book: Book, log: list[IntakeAnswer], days: int
) -> None:
    at = _START + timedelta(days=days)
    b = intake_breakdown(book, QUESTIONS, log, at=at, currency="USD")
    registered = {c.id for c in book.customers if c.registered_at <= at}
    for q in QUESTIONS:
        for option in q.options or (None,):
            chosen = set()
            for a in log:
                if a.question_id != q.id or a.customer_id not in registered:
                    continue
                latest = [x for x in log if x.key == a.key and x.answered_at <= at]
                if not latest:
                    continue
                newest = max(x.answered_at for x in latest)
                current = [x for x in latest if x.answered_at == newest][-1]
                if option is None or option in current.choices:
                    chosen.add(a.customer_id)
            row = b.row(q.id, option)
            assert row is not None
            assert row.customers == len(chosen)
            if option is None:
                continue
            each = [mrr(book, at=at, currency="USD", customer_ids=[c]) for c in sorted(chosen)]
            assert row.mrr == money_sum(each, "USD")
            assert row.paying_customers == sum(1 for m in each if not m.is_zero())
            assert row.mrr == mrr(book, at=at, currency="USD", customer_ids=chosen)


@given(book=_BOOKS, log=_answer_logs())
def test_split_rows_add_up_to_the_whole(book: Book, log: list[IntakeAnswer]) -> None:
    at = datetime(2024, 6, 1, tzinfo=UTC)
    whole = intake_breakdown(book, QUESTIONS, log, at=at, currency="EUR")
    split = intake_breakdown(book, QUESTIONS, log, at=at, currency="EUR", by_referral_source=True)
    for r in whole.rows:
        parts = [x for x in split.rows if x.question_id == r.question_id and x.option == r.option]
        assert sum(x.customers for x in parts) == r.customers
        if r.mrr is not None:
            assert money_sum((x.mrr for x in parts if x.mrr is not None), "EUR") == r.mrr
            assert (
                money_sum((x.net_payments for x in parts if x.net_payments is not None), "EUR")
                == r.net_payments
            )


def test_money_stays_exact() -> None:
    book = Book.of(
        customers=[customer("c1", t(2024, 1, 1)), customer("c2", t(2024, 1, 1))],
        subscriptions=[
            service("s1", "c1", usd("10.00"), at=t(2024, 1, 1)),
            service("s2", "c2", usd("10.01"), at=t(2024, 1, 1)),
        ],
    )
    answers = [SOURCE.answer(customer_id=c, value="Search", at=t(2024, 1, 1)) for c in ("c1", "c2")]
    row = intake_breakdown(book, [SOURCE], answers, at=t(2024, 2, 1), currency="USD").row(
        "source", "Search"
    )
    assert row is not None
    assert row.arpa == Money("10.005", "USD")
