"""Intake questions ("How did you hear about us?") and the answers customers give.

A question has predefined options (one or several chosen) or takes free text, and is asked
at registration or at each purchase. Answers are append-only: a customer answering again
adds an answer, and the current one is the latest (:func:`current_answers`). A question
that is retired keeps its answers (the analytics still read them) but is not asked any more.

:func:`intake_breakdown` aggregates the current answers like
:func:`revcrm.metrics._revenue.referral_sources` aggregates referral sources: customers,
paying customers, MRR, ARPA, conversion and net payments per option.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypedDict

import attrs

from revcrm._book import Book
from revcrm._checks import MAX_COUNT, as_enum, check_bool, check_count, reads_record
from revcrm._crm_records import required_text as _required
from revcrm._money import Money, check_currency, money_sum
from revcrm._time import as_moment, optional_utc, utc
from revcrm.crm._records import _customer_id, _optional, _staff_id
from revcrm.errors import ValidationError
from revcrm.metrics._economics import customer_mrrs, ratio
from revcrm.metrics._mrr import DEFAULT_POLICY
from revcrm.metrics._policy import MetricsPolicy
from revcrm.metrics._revenue import _money, _net_payments

__all__ = [
    "MAX_ANSWER_LENGTH",
    "MAX_OPTION_LENGTH",
    "MAX_PROMPT_LENGTH",
    "IntakeAnswer",
    "IntakeAnswerRecord",
    "IntakeBreakdown",
    "IntakeBreakdownRow",
    "IntakeItem",
    "IntakeQuestion",
    "IntakeQuestionRecord",
    "IntakeScope",
    "QuestionKind",
    "current_answers",
    "customer_intake",
    "intake_breakdown",
]

#: Longest free-text answer accepted (characters, after stripping).
MAX_ANSWER_LENGTH: Final = 2000
#: Longest question prompt accepted (characters).
MAX_PROMPT_LENGTH: Final = 500
#: Longest option text accepted (characters).
MAX_OPTION_LENGTH: Final = 200

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class IntakeScope(enum.StrEnum):
    """When a question is asked: once at registration, or at each purchase (the answer is
    then about the service bought and carries its subscription id)."""

    REGISTRATION = "registration"
    PURCHASE = "purchase"


class QuestionKind(enum.StrEnum):
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    FREE_TEXT = "free_text"


_CHOICE_KINDS: Final = frozenset({QuestionKind.SINGLE_CHOICE, QuestionKind.MULTIPLE_CHOICE})


# -- field checks -----------------------------------------------------------------------------


def _question_id(v: object) -> str:
    return _required("id", v)


def _answer_question_id(v: object) -> str:
    return _required("question_id", v)


def _subscription_id(v: object) -> str | None:
    return _optional("subscription_id", v)


def _prompt(v: object) -> str:
    return _required("prompt", v, max_length=MAX_PROMPT_LENGTH)


def _kind(v: object) -> QuestionKind:
    return as_enum(QuestionKind, v, "kind")


def _scope(v: object) -> IntakeScope:
    return as_enum(IntakeScope, v, "scope")


def _flag(v: object) -> bool:
    return check_bool(v, "required")


def _position(v: object) -> int:
    return check_count(v, "position", minimum=-MAX_COUNT)


def _retired_at(v: object) -> datetime | None:
    return optional_utc(v, "retired_at")


def _answered_at(v: object) -> datetime:
    return utc(v, "answered_at")


def _option(field: str, value: object) -> str:
    text = _required(field, value, max_length=MAX_OPTION_LENGTH)
    if _CONTROL.search(text):
        raise ValidationError(field, value, "control characters are not allowed")
    return text


def _strings(field: str, value: object) -> tuple[str, ...]:
    # A lone string is one item, not a sequence of characters.
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise ValidationError(field, value, "expected a string or a list of strings")
    return tuple(value)


def _options(v: object) -> tuple[str, ...]:
    items = _strings("options", v)
    return tuple(_option("options", o) for o in items)


def _choices(v: object) -> tuple[str, ...]:
    items = _strings("choices", v)
    return tuple(_option("choices", o) for o in items)


def _text(v: object) -> str | None:
    if v is None:
        return None
    return _required("text", v, max_length=MAX_ANSWER_LENGTH)


def _fold(text: str) -> str:
    return text.casefold()


# -- answers ----------------------------------------------------------------------------------


class IntakeAnswerRecord(TypedDict):
    customer_id: str
    question_id: str
    answered_at: datetime
    choices: tuple[str, ...]
    text: str | None
    subscription_id: str | None
    staff_id: str | None


@attrs.frozen(kw_only=True)
class IntakeAnswer:
    """One answer of a customer to an intake question: chosen options or free text.

    Build it with :meth:`IntakeQuestion.answer`, which checks the value against the
    question and stores options in the question's spelling. ``subscription_id`` is the
    service bought, for a purchase-scope question (else None); ``staff_id`` is set when a
    staff member recorded the answer for the customer.
    """

    customer_id: str = attrs.field(converter=_customer_id)
    question_id: str = attrs.field(converter=_answer_question_id)
    answered_at: datetime = attrs.field(converter=_answered_at)
    choices: tuple[str, ...] = attrs.field(default=(), converter=_choices)
    text: str | None = attrs.field(default=None, converter=_text)
    subscription_id: str | None = attrs.field(default=None, converter=_subscription_id)
    staff_id: str | None = attrs.field(default=None, converter=_staff_id)

    def __attrs_post_init__(self) -> None:
        if bool(self.choices) == (self.text is not None):
            raise ValidationError(
                "choices", self.choices, "an answer holds either chosen options or text"
            )
        if len({_fold(c) for c in self.choices}) != len(self.choices):
            raise ValidationError("choices", self.choices, "an option is chosen twice")

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What a later answer replaces: the customer's answer to the question (for one
        subscription, at purchase scope)."""
        return (self.customer_id, self.question_id, self.subscription_id)

    def to_record(self) -> IntakeAnswerRecord:
        return IntakeAnswerRecord(
            customer_id=self.customer_id,
            question_id=self.question_id,
            answered_at=self.answered_at,
            choices=self.choices,
            text=self.text,
            subscription_id=self.subscription_id,
            staff_id=self.staff_id,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> IntakeAnswer:
        return cls(**{k: record[k] for k in IntakeAnswerRecord.__annotations__})


# -- questions --------------------------------------------------------------------------------


class IntakeQuestionRecord(TypedDict):
    id: str
    prompt: str
    kind: str
    options: tuple[str, ...]
    scope: str
    required: bool
    position: int
    retired_at: datetime | None


@attrs.frozen(kw_only=True)
class IntakeQuestion:
    """A question asked at registration or purchase.

    Choice questions have at least two options, unique case-insensitively; a free-text
    question has none. ``position`` orders questions for display (ties by id). A question
    with ``retired_at`` is no longer asked from that moment; its answers stay.
    """

    id: str = attrs.field(converter=_question_id)
    prompt: str = attrs.field(converter=_prompt)
    kind: QuestionKind = attrs.field(converter=_kind)
    options: tuple[str, ...] = attrs.field(default=(), converter=_options)
    scope: IntakeScope = attrs.field(default=IntakeScope.REGISTRATION, converter=_scope)
    required: bool = attrs.field(default=False, converter=_flag)
    position: int = attrs.field(default=0, converter=_position)
    retired_at: datetime | None = attrs.field(default=None, converter=_retired_at)

    def __attrs_post_init__(self) -> None:
        if self.kind is QuestionKind.FREE_TEXT:
            if self.options:
                raise ValidationError("options", self.options, "a free-text question has none")
            return
        if len(self.options) < 2:
            raise ValidationError("options", self.options, f"a {self.kind} needs two or more")
        if len({_fold(o) for o in self.options}) != len(self.options):
            raise ValidationError("options", self.options, "options must differ case-insensitively")

    # -- named constructors ------------------------------------------------------------------

    @classmethod
    def choice(
        cls,
        *,
        id: str,
        prompt: str,
        options: Sequence[str],
        scope: IntakeScope | str = IntakeScope.REGISTRATION,
        required: bool = False,
        position: int = 0,
    ) -> IntakeQuestion:
        """A question answered by exactly one of ``options``."""
        return cls(
            id=id,
            prompt=prompt,
            kind=QuestionKind.SINGLE_CHOICE,
            options=options,
            scope=scope,
            required=required,
            position=position,
        )

    @classmethod
    def multiple_choice(
        cls,
        *,
        id: str,
        prompt: str,
        options: Sequence[str],
        scope: IntakeScope | str = IntakeScope.REGISTRATION,
        required: bool = False,
        position: int = 0,
    ) -> IntakeQuestion:
        """A question answered by one or more of ``options``."""
        return cls(
            id=id,
            prompt=prompt,
            kind=QuestionKind.MULTIPLE_CHOICE,
            options=options,
            scope=scope,
            required=required,
            position=position,
        )

    @classmethod
    def free_text(
        cls,
        *,
        id: str,
        prompt: str,
        scope: IntakeScope | str = IntakeScope.REGISTRATION,
        required: bool = False,
        position: int = 0,
    ) -> IntakeQuestion:
        """A question answered in the customer's own words."""
        return cls(
            id=id,
            prompt=prompt,
            kind=QuestionKind.FREE_TEXT,
            scope=scope,
            required=required,
            position=position,
        )

    # -- reading -----------------------------------------------------------------------------

    @property
    def is_choice(self) -> bool:
        return self.kind in _CHOICE_KINDS

    def asked_at(self, at: datetime) -> bool:
        """Whether the question is still asked at ``at`` (not retired by then)."""
        moment = utc(at, "at")
        return self.retired_at is None or moment < self.retired_at

    def retire(self, *, at: datetime) -> IntakeQuestion:
        """The question no longer asked from ``at``; its answers are kept."""
        return attrs.evolve(self, retired_at=utc(at, "at"))

    def option(self, value: object, field: str = "value") -> str:
        """The option matching ``value`` case-insensitively, in the question's spelling."""
        if not self.is_choice:
            raise ValidationError(field, value, f"question {self.id!r} takes free text")
        text = _option(field, value)
        for o in self.options:
            if _fold(o) == _fold(text):
                return o
        listed = ", ".join(repr(o) for o in self.options)
        raise ValidationError(field, value, f"not an option of {self.id!r} ({listed})")

    # -- answering ---------------------------------------------------------------------------

    def answer(
        self,
        *,
        customer_id: str,
        value: str | Sequence[str],
        at: datetime,
        subscription_id: str | None = None,
        staff_id: str | None = None,
    ) -> IntakeAnswer:
        """The customer's answer, checked against this question.

        ``value`` is one option (single choice), one or more options (multiple choice,
        a sequence; a lone string is one option) or text (free text: stripped, at most
        :data:`MAX_ANSWER_LENGTH` characters). Options match case-insensitively and are
        stored in the question's spelling. A purchase-scope answer needs the
        ``subscription_id`` of the service bought; a registration answer takes none.
        """
        moment = utc(at, "at")
        sub = _subscription_id(subscription_id)
        self._check_scope(sub)
        if not self.asked_at(moment):
            raise ValidationError(
                "at", at, f"question {self.id!r} was retired at {self.retired_at}"
            )
        choices: tuple[str, ...] = ()
        text: str | None = None
        if self.kind is QuestionKind.FREE_TEXT:
            if not isinstance(value, str):
                raise ValidationError("value", value, f"question {self.id!r} takes text")
            text = _required("value", value, max_length=MAX_ANSWER_LENGTH)
        else:
            choices = self._choices(value)
        return IntakeAnswer(
            customer_id=customer_id,
            question_id=self.id,
            answered_at=moment,
            choices=choices,
            text=text,
            subscription_id=sub,
            staff_id=staff_id,
        )

    def _check_scope(self, subscription_id: str | None) -> None:
        if self.scope is IntakeScope.PURCHASE and subscription_id is None:
            raise ValidationError(
                "subscription_id", subscription_id, f"{self.id!r} is asked at purchase: required"
            )
        if self.scope is IntakeScope.REGISTRATION and subscription_id is not None:
            raise ValidationError(
                "subscription_id", subscription_id, f"{self.id!r} is asked at registration: none"
            )

    def _choices(self, value: object) -> tuple[str, ...]:
        items = _strings("value", value)
        if self.kind is QuestionKind.SINGLE_CHOICE and len(items) != 1:
            raise ValidationError("value", value, f"question {self.id!r} takes exactly one option")
        if not items:
            raise ValidationError("value", value, f"question {self.id!r} takes one or more options")
        chosen = tuple(self.option(v) for v in items)
        if len(set(chosen)) != len(chosen):
            raise ValidationError("value", value, "an option is chosen twice")
        return chosen

    def check(self, answer: IntakeAnswer) -> IntakeAnswer:
        """``answer`` (options in this question's spelling) if it fits the question as it
        stands now (a store checks an answer against the stored question before writing
        it), else a
        :class:`~revcrm.errors.ValidationError`: an option removed since, another kind of
        value, the wrong scope, or an answer given after the question was retired."""
        if not isinstance(answer, IntakeAnswer):
            raise ValidationError("answer", answer, "expected an IntakeAnswer")
        if answer.question_id != self.id:
            raise ValidationError("question_id", answer.question_id, f"expected {self.id!r}")
        value: str | tuple[str, ...] = answer.choices if answer.text is None else answer.text
        again = self.answer(
            customer_id=answer.customer_id,
            value=value,
            at=answer.answered_at,
            subscription_id=answer.subscription_id,
            staff_id=answer.staff_id,
        )
        # Options renamed since only in case are fine: the stored answer takes the
        # question's current spelling.
        return (
            answer
            if again.choices == answer.choices
            else attrs.evolve(answer, choices=again.choices)
        )

    # -- records -----------------------------------------------------------------------------

    def to_record(self) -> IntakeQuestionRecord:
        return IntakeQuestionRecord(
            id=self.id,
            prompt=self.prompt,
            kind=self.kind.value,
            options=self.options,
            scope=self.scope.value,
            required=self.required,
            position=self.position,
            retired_at=self.retired_at,
        )

    @classmethod
    @reads_record
    def from_record(cls, record: Mapping[str, Any]) -> IntakeQuestion:
        return cls(**{k: record[k] for k in IntakeQuestionRecord.__annotations__})


def question_order(questions: Iterable[IntakeQuestion]) -> tuple[IntakeQuestion, ...]:
    """By position, then id (the display order)."""
    return tuple(sorted(questions, key=lambda q: (q.position, q.id)))


# -- current answers --------------------------------------------------------------------------


def current_answers(
    answers: Iterable[IntakeAnswer], *, as_of: date | datetime
) -> dict[tuple[str, str, str | None], IntakeAnswer]:
    """The current answer per :attr:`IntakeAnswer.key` at ``as_of``: the latest given at or
    before it. Answers given at the same moment resolve in the order given (a store lists
    them in the order it recorded them), so the later recorded one wins."""
    moment = as_moment(as_of, "as_of")
    current: dict[tuple[str, str, str | None], IntakeAnswer] = {}
    for a in answers:
        if a.answered_at > moment:
            continue
        known = current.get(a.key)
        if known is None or a.answered_at >= known.answered_at:
            current[a.key] = a
    return current


@attrs.frozen(kw_only=True)
class IntakeItem:
    """A question as the profile shows it: the customer's current answer (None when not
    answered) and, for a purchase question, the subscription it is about."""

    question: IntakeQuestion
    answer: IntakeAnswer | None
    subscription_id: str | None = None


def customer_intake(
    questions: Iterable[IntakeQuestion],
    answers: Iterable[IntakeAnswer],
    customer_id: str,
    *,
    as_of: date | datetime,
) -> tuple[IntakeItem, ...]:
    """One customer's intake for the profile, in question order.

    Registration questions appear once (answered or not, retired ones only when
    answered); purchase questions once per subscription the customer answered them for.
    """
    current = current_answers((a for a in answers if a.customer_id == customer_id), as_of=as_of)
    moment = as_moment(as_of, "as_of")
    items: list[IntakeItem] = []
    for q in question_order(questions):
        mine = sorted(
            (a for (_, qid, _), a in current.items() if qid == q.id),
            key=lambda a: a.subscription_id or "",
        )
        if q.scope is IntakeScope.PURCHASE:
            items.extend(
                IntakeItem(question=q, answer=a, subscription_id=a.subscription_id) for a in mine
            )
        elif mine:
            items.append(IntakeItem(question=q, answer=mine[0]))
        elif q.asked_at(moment):
            items.append(IntakeItem(question=q, answer=None))
    return tuple(items)


# -- analytics --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class IntakeBreakdownRow:
    """Customers whose current answer to a question chose ``option`` (or, for a free-text
    question, ``option`` None: who answered it), registered by the breakdown's moment.

    * ``paying_customers``: with MRR > 0; ``conversion_rate`` = paying / customers.
    * ``arpa`` = ``mrr / paying_customers``; ``net_payments``: successful payments minus
      refunds of these customers up to the moment.
    * ``referral_source``: the customers' ``Customer.referral_source`` when the breakdown
      is split by source (None: customers without one), else None.

    Free-text rows only count customers: their money fields are None.
    """

    question_id: str
    prompt: str
    option: str | None
    referral_source: str | None
    customers: int
    paying_customers: int | None
    mrr: Money | None
    arpa: Money | None
    conversion_rate: Decimal | None
    net_payments: Money | None


@attrs.frozen(kw_only=True)
class IntakeBreakdown:
    """Rows in question order (position, then id), then option order, then referral source
    (by name, None last) when ``by_referral_source``."""

    at: datetime
    currency: str
    by_referral_source: bool
    rows: tuple[IntakeBreakdownRow, ...]

    def rows_for(self, question_id: str) -> tuple[IntakeBreakdownRow, ...]:
        return tuple(r for r in self.rows if r.question_id == question_id)

    def row(
        self, question_id: str, option: str | None, referral_source: str | None = None
    ) -> IntakeBreakdownRow | None:
        return next(
            (
                r
                for r in self.rows
                if r.question_id == question_id
                and r.option == option
                and r.referral_source == referral_source
            ),
            None,
        )


def _check_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("by_referral_source", value, "expected True or False")
    return value


def intake_breakdown(
    book: Book,
    questions: Iterable[IntakeQuestion],
    answers: Iterable[IntakeAnswer],
    *,
    at: date | datetime,
    currency: str,
    policy: MetricsPolicy = DEFAULT_POLICY,
    by_referral_source: bool = False,
) -> IntakeBreakdown:
    """Per option of each choice question: customers who chose it, paying customers, MRR,
    ARPA, conversion rate and net payments at ``at``; per free-text question, the number of
    customers who answered.

    Counted: the current answers at ``at`` (:func:`current_answers`) of customers of the
    book registered by ``at``. A customer counts once per option, whichever of their
    purchases they chose it for; a multiple-choice answer counts for each option chosen.
    An answer that no longer fits its question (an option removed since) counts for no
    option. MRR is converted like :func:`revcrm.metrics.mrr` and payments at their
    transaction date, as in :func:`~revcrm.metrics.referral_sources`.

    With ``by_referral_source``, each option's row is split over every referral source of
    the customers registered by ``at`` (zero rows included, so every option has the same
    sources); an empty book still gives one row per option, under source None.
    """
    check_currency(currency)
    t = as_moment(at, "at")
    split = _check_flag(by_referral_source)
    ordered = question_order(questions)
    question_ids = [q.id for q in ordered]
    if len(set(question_ids)) != len(question_ids):
        raise ValidationError("questions", question_ids, "a question id is listed twice")
    registered = {c.id: c for c in book.customers if c.registered_at <= t}
    current = current_answers((a for a in answers if a.customer_id in registered), as_of=t)
    chosen: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    by_question = {q.id: q for q in ordered}
    for (customer_id, question_id, _), a in current.items():
        q = by_question.get(question_id)
        if q is None:
            continue
        if q.is_choice:
            spelled = {_fold(o): o for o in q.options}
            for c in a.choices:
                option = spelled.get(_fold(c))
                if option is not None:
                    chosen[(q.id, option)].add(customer_id)
        elif a.text is not None:
            chosen[(q.id, None)].add(customer_id)
    everyone = {cid for ids in chosen.values() for cid in ids}
    mrrs = customer_mrrs(book, t, currency, policy, sorted(everyone))
    # The ledger's cash entries up to ``t``, each converted at its own date.
    units, digits = _net_payments(book, t, currency)
    net = {c: _money(u, digits, currency) for c, u in units.items() if c in everyone}
    sources: list[str | None] = sorted(
        {c.referral_source for c in registered.values()}, key=lambda s: (s is None, s or "")
    )
    if not sources:
        sources = [None]

    rows: list[IntakeBreakdownRow] = []
    for q in ordered:
        for option in q.options if q.is_choice else (None,):
            ids = chosen.get((q.id, option), set())
            if not split:
                rows.append(_row(q, option, None, ids, q.is_choice, mrrs, net, currency))
                continue
            for source in sources:
                mine = {c for c in ids if registered[c].referral_source == source}
                rows.append(_row(q, option, source, mine, q.is_choice, mrrs, net, currency))
    return IntakeBreakdown(at=t, currency=currency, by_referral_source=split, rows=tuple(rows))


def _row(
    question: IntakeQuestion,
    option: str | None,
    source: str | None,
    ids: set[str],
    money: bool,
    mrrs: Mapping[str, Money],
    net: Mapping[str, Money],
    currency: str,
) -> IntakeBreakdownRow:
    if not money:
        return IntakeBreakdownRow(
            question_id=question.id,
            prompt=question.prompt,
            option=None,
            referral_source=source,
            customers=len(ids),
            paying_customers=None,
            mrr=None,
            arpa=None,
            conversion_rate=None,
            net_payments=None,
        )
    paying = [mrrs[c] for c in sorted(ids) if not mrrs[c].is_zero()]
    total = money_sum(paying, currency)
    return IntakeBreakdownRow(
        question_id=question.id,
        prompt=question.prompt,
        option=option,
        referral_source=source,
        customers=len(ids),
        paying_customers=len(paying),
        mrr=total,
        arpa=total / len(paying) if paying else None,
        conversion_rate=ratio(len(paying), len(ids)),
        net_payments=money_sum((net[c] for c in sorted(ids) if c in net), currency),
    )
