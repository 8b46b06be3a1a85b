"""The intake questions and answers of :class:`~revcrm.storage.SQLCRMStore` (schema
version 2)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._time import utc
from revcrm.crm._intake import (
    IntakeAnswer,
    IntakeAnswerRecord,
    IntakeQuestion,
    IntakeScope,
    question_order,
)
from revcrm.errors import NotFoundError, UnknownReferenceError, ValidationError
from revcrm.storage._codec import moment_from_value, moment_value
from revcrm.storage._crm_checks import (
    check_question,
    check_scope,
    read_flag,
    read_id,
)
from revcrm.storage._crm_sql_tables import CRMUnits, PerCustomer

__all__ = ["SQLIntake"]


def _m(value: datetime | None) -> int | None:
    return None if value is None else moment_value(value)


def _d(value: int | None) -> datetime | None:
    return None if value is None else moment_from_value(value)


def _question_row(q: IntakeQuestion) -> dict[str, Any]:
    r = q.to_record()
    return {
        **r,
        "options": json.dumps(list(r["options"]), ensure_ascii=False),
        "retired_at": _m(r["retired_at"]),
    }


def _question(r: Mapping[Any, Any]) -> IntakeQuestion:
    values = dict(r)
    values["options"] = tuple(json.loads(values["options"]))
    values["retired_at"] = _d(values["retired_at"])
    values["required"] = bool(values["required"])
    return IntakeQuestion.from_record(values)


def _answer_row(a: IntakeAnswer) -> dict[str, Any]:
    r = a.to_record()
    return {
        **r,
        "choices": json.dumps(list(r["choices"]), ensure_ascii=False),
        "answered_at": _m(r["answered_at"]),
    }


def _answer(r: Mapping[Any, Any]) -> IntakeAnswer:
    values = {k: r[k] for k in IntakeAnswerRecord.__annotations__}
    values["choices"] = tuple(json.loads(values["choices"]))
    values["answered_at"] = _d(values["answered_at"])
    return IntakeAnswer.from_record(values)


class SQLIntake(PerCustomer):
    _group = "intake"

    def __init__(self, store: CRMUnits) -> None:
        self._s = store
        self._q = store._t["intake_questions"]
        self._a = store._t["intake_answers"]

    def save_question(self, question: IntakeQuestion) -> None:
        check_question(question)

        def run(conn: Connection) -> None:
            conn.execute(sa.delete(self._q).where(self._q.c.id == question.id))
            conn.execute(sa.insert(self._q), [_question_row(question)])

        self._s._run(run, unique=("intake question", question.id))

    def _find(self, conn: Connection, id: str) -> IntakeQuestion | None:
        row = conn.execute(sa.select(self._q).where(self._q.c.id == id)).mappings().first()
        return None if row is None else _question(row)

    def question(self, id: str) -> IntakeQuestion:
        read_id(id)

        def run(conn: Connection) -> IntakeQuestion:
            found = self._find(conn, id)
            if found is None:
                raise NotFoundError("intake question", id)
            return found

        return self._s._read(run)

    def questions(
        self, *, scope: IntakeScope | str | None = None, include_retired: bool = False
    ) -> tuple[IntakeQuestion, ...]:
        wanted = check_scope(scope)
        read_flag(include_retired, "include_retired")

        def run(conn: Connection) -> tuple[IntakeQuestion, ...]:
            q = sa.select(self._q)
            if wanted is not None:
                q = q.where(self._q.c.scope == wanted.value)
            if not include_retired:
                q = q.where(self._q.c.retired_at.is_(None))
            return question_order(_question(r) for r in conn.execute(q).mappings())

        return self._s._read(run)

    def record(self, answer: IntakeAnswer) -> IntakeAnswer:
        if not isinstance(answer, IntakeAnswer):
            raise ValidationError("answer", answer, "expected an IntakeAnswer")

        def run(conn: Connection) -> IntakeAnswer:
            question = self._find(conn, answer.question_id)
            if question is None:
                raise UnknownReferenceError("question_id", answer.question_id, "intake question")
            stored = question.check(answer)
            conn.execute(sa.insert(self._a), [_answer_row(stored)])
            return stored

        return self._s._run(run)

    def _select(self, *conds: Any) -> tuple[IntakeAnswer, ...]:
        def run(conn: Connection) -> tuple[IntakeAnswer, ...]:
            q = sa.select(self._a).where(*conds).order_by(self._a.c.answered_at, self._a.c.seq)
            return tuple(_answer(r) for r in conn.execute(q).mappings())

        return self._s._read(run)

    def answers_for(self, customer_id: str) -> tuple[IntakeAnswer, ...]:
        read_id(customer_id, "customer_id")
        return self._select(self._a.c.customer_id == customer_id)

    def answers(self, *, as_of: datetime | None = None) -> tuple[IntakeAnswer, ...]:
        if as_of is None:
            return self._select()
        return self._select(self._a.c.answered_at <= moment_value(utc(as_of, "as_of")))
