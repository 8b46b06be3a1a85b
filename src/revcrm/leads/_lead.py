"""A lead: a prospect's profile and the append-only history of its stage moves."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Final, TypedDict

import attrs

from revcrm._checks import check_id, check_items, check_text, reads_record
from revcrm._money import Money
from revcrm._referral import ReferralSource
from revcrm._time import utc
from revcrm.errors import TransitionNotAllowed, ValidationError
from revcrm.leads._stages import INITIAL_STAGE, TRANSITIONS, LeadStage

__all__ = [
    "Lead",
    "LeadRecord",
    "LeadTransition",
    "LeadTransitionRecord",
    "Stay",
    "normalise_email",
]

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_NEW, _CONTACTED, _QUALIFIED, _CONVERTED, _LOST = LeadStage


def normalise_email(email: str) -> str:
    """The key two emails are compared by: trimmed and case-folded."""
    return check_text(email, "email").strip().casefold()


# -- converters and validators (named, so mypy sees each field's accepted type) -------------


def _stage_of(value: object, field: str) -> LeadStage:
    if isinstance(value, LeadStage):
        return value
    try:
        return LeadStage(value if isinstance(value, str) else "")
    except ValueError:
        raise ValidationError(field, value, "not a lead stage") from None


def _optional_text(value: object, field: str) -> str | None:
    if value is None:
        return None
    return check_text(value, field).strip() or None


def _text(value: object, field: str) -> str:
    return check_text(value, field)


def _from_stage(value: object) -> LeadStage:
    return _stage_of(value, "from_stage")


def _to_stage(value: object) -> LeadStage:
    return _stage_of(value, "to_stage")


def _transition_at(value: object) -> datetime:
    return utc(value, "at")


def _created_at(value: object) -> datetime:
    return utc(value, "created_at")


def _staff_id(value: object) -> str | None:
    return _optional_text(value, "staff_id")


def _lost_reason(value: object) -> str | None:
    return _optional_text(value, "lost_reason")


def _customer_id(value: object) -> str | None:
    return _optional_text(value, "customer_id")


def _company(value: object) -> str | None:
    return _optional_text(value, "company")


def _phone(value: object) -> str | None:
    return _optional_text(value, "phone")


def _owner_id(value: object) -> str | None:
    return _optional_text(value, "owner_id")


def _note(value: object) -> str:
    return _text(value, "note")


def _notes(value: object) -> str:
    return _text(value, "notes")


def _name(value: object) -> str:
    return _text(value, "name").strip()


def _lead_id(value: object) -> str:
    return check_id(value, "lead.id")


def _email(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise ValidationError("email", value, "not an email address")
    return check_text(value.strip(), "email")


def _source(value: object) -> ReferralSource | None:
    if value is None or isinstance(value, ReferralSource):
        return value
    if isinstance(value, str):
        return ReferralSource.parse(value)
    raise ValidationError("source", value, "expected a ReferralSource, its text form or None")


def _expected_value(value: object) -> Money | None:
    if value is None:
        return None
    if not isinstance(value, Money):
        raise ValidationError("expected_value", value, "expected Money (or None)")
    if value.amount < 0:
        raise ValidationError("expected_value", value, "cannot be negative")
    return value


def _history(value: Iterable[LeadTransition]) -> tuple[LeadTransition, ...]:
    # Each entry is checked (with the lead's id) in __attrs_post_init__.
    return check_items(value, "history")


@attrs.frozen(kw_only=True)
class LeadTransition:
    """One move of a lead, effective at ``at`` (aware, UTC), by staff member ``staff_id``.

    ``staff_id`` is None for a move the system made (a registration matched a lead).
    A move to Lost carries a ``lost_reason``; a move to Converted the ``customer_id`` the
    lead became. The table check needs the lead's stage, so :class:`Lead` makes it.
    """

    from_stage: LeadStage = attrs.field(converter=_from_stage)
    to_stage: LeadStage = attrs.field(converter=_to_stage)
    at: datetime = attrs.field(converter=_transition_at)
    staff_id: str | None = attrs.field(default=None, converter=_staff_id)
    note: str = attrs.field(default="", converter=_note)
    lost_reason: str | None = attrs.field(default=None, converter=_lost_reason)
    customer_id: str | None = attrs.field(default=None, converter=_customer_id)

    def __attrs_post_init__(self) -> None:
        if self.to_stage is _LOST:
            if self.lost_reason is None:
                raise ValidationError("lost_reason", None, "a move to lost needs a reason")
        elif self.lost_reason is not None:
            raise ValidationError("lost_reason", self.lost_reason, "only a move to lost has one")
        if self.to_stage is _CONVERTED:
            if self.customer_id is None:
                raise ValidationError("customer_id", None, "converting needs the customer id")
        elif self.customer_id is not None:
            raise ValidationError("customer_id", self.customer_id, "only a conversion has one")


@attrs.frozen(kw_only=True)
class Stay:
    """A span a lead spent in one stage; ``exited_at`` is None while it is still there."""

    stage: LeadStage
    entered_at: datetime
    exited_at: datetime | None


class LeadRecord(TypedDict):
    """A lead as plain column values (see :meth:`Lead.to_record`).

    ``stage``, ``customer_id`` and ``email_key`` are derived from the rest and stored for
    queries and unique indexes; :meth:`Lead.from_record` checks them against the replay.
    """

    id: str
    email: str
    email_key: str
    name: str
    company: str | None
    phone: str | None
    source: str | None
    owner_id: str | None
    expected_value_amount: Decimal | None
    expected_value_currency: str | None
    notes: str
    created_at: datetime
    stage: str
    customer_id: str | None


class LeadTransitionRecord(TypedDict):
    """One history row; ``seq`` numbers a lead's transitions from 0 in order."""

    lead_id: str
    seq: int
    from_stage: str
    to_stage: str
    at: datetime
    staff_id: str | None
    note: str
    lost_reason: str | None
    customer_id: str | None


# Bound once: the hot path builds a Lead without re-running every field validator.
_new_object = object.__new__
_set = object.__setattr__


@attrs.frozen(kw_only=True)
class Lead:
    """A prospect without an account, and every stage move it went through.

    Immutable: moves return a new ``Lead`` with one more :class:`LeadTransition`. The
    stage is not stored: it is where the history leads (New when the history is empty),
    and constructing a ``Lead`` replays the history against the transition table.
    """

    id: str = attrs.field(converter=_lead_id)
    email: str = attrs.field(converter=_email)
    created_at: datetime = attrs.field(converter=_created_at)
    name: str = attrs.field(default="", converter=_name)
    company: str | None = attrs.field(default=None, converter=_company)
    phone: str | None = attrs.field(default=None, converter=_phone)
    source: ReferralSource | None = attrs.field(default=None, converter=_source)
    owner_id: str | None = attrs.field(default=None, converter=_owner_id)  # staff id
    expected_value: Money | None = attrs.field(default=None, converter=_expected_value)  # monthly
    notes: str = attrs.field(default="", converter=_notes)
    history: tuple[LeadTransition, ...] = attrs.field(default=(), converter=_history)

    def __attrs_post_init__(self) -> None:
        self.replay()

    # -- replay ------------------------------------------------------------------------------

    def replay(self) -> LeadStage:
        """Walk the history from New through the table and return the stage it ends in.

        Raises :class:`~revcrm.errors.TransitionNotAllowed` for a move the table forbids and
        :class:`~revcrm.errors.ValidationError` for a broken chain or time going backwards.
        """
        stage = INITIAL_STAGE
        previous = self.created_at
        for i, t in enumerate(self.history):
            if not isinstance(t, LeadTransition):
                raise ValidationError(f"lead[{self.id}].history[{i}]", t, "not a LeadTransition")
            if t.from_stage is not stage:
                raise ValidationError(
                    f"lead[{self.id}].history[{i}].from_stage",
                    t.from_stage,
                    f"the lead was {stage}",
                )
            if t.to_stage not in TRANSITIONS[stage]:
                raise TransitionNotAllowed(self._label, stage, t.to_stage)
            if t.at < previous:
                raise ValidationError(
                    f"lead[{self.id}].history[{i}].at",
                    t.at,
                    f"before the previous moment {previous}",
                )
            stage = t.to_stage
            previous = t.at
        return stage

    # -- moves -------------------------------------------------------------------------------

    def move(
        self,
        to: LeadStage,
        *,
        at: datetime,
        staff_id: str | None = None,
        note: str = "",
        lost_reason: str | None = None,
        customer_id: str | None = None,
    ) -> Lead:
        """Return this lead moved to stage ``to`` at ``at``; ``self`` is unchanged.

        Raises :class:`~revcrm.errors.TransitionNotAllowed` when the table forbids the move,
        and :class:`~revcrm.errors.ValidationError` when ``at`` is before the lead's last
        moment, a move to Lost has no reason or a conversion no customer id.
        """
        to = _stage_of(to, "to")
        stage = self.stage
        if to not in TRANSITIONS[stage]:
            raise TransitionNotAllowed(self._label, stage, to)
        t = LeadTransition(
            from_stage=stage,
            to_stage=to,
            at=at,
            staff_id=staff_id,
            note=note,
            lost_reason=lost_reason,
            customer_id=customer_id,
        )
        last = self.last_moved_at
        if t.at < last:
            raise ValidationError(
                "at", at, f"lead {self.id!r} last moved at {last}: time cannot go back"
            )
        return self._appended(t)

    def _appended(self, t: LeadTransition) -> Lead:
        # The profile fields are already validated and the new move was checked against the
        # current stage, so a full replay through __init__ would only repeat work: copying the
        # slots keeps a move at a few microseconds whatever the history length.
        new = _new_object(Lead)
        for name in _PROFILE:
            _set(new, name, getattr(self, name))
        _set(new, "history", (*self.history, t))
        return new

    def contact(self, *, at: datetime, staff_id: str | None = None, note: str = "") -> Lead:
        return self.move(_CONTACTED, at=at, staff_id=staff_id, note=note)

    def qualify(self, *, at: datetime, staff_id: str | None = None, note: str = "") -> Lead:
        return self.move(_QUALIFIED, at=at, staff_id=staff_id, note=note)

    def convert(
        self, customer_id: str, *, at: datetime, staff_id: str | None = None, note: str = ""
    ) -> Lead:
        """Link the lead to the customer it became; a converted lead cannot convert again."""
        return self.move(_CONVERTED, at=at, staff_id=staff_id, note=note, customer_id=customer_id)

    def lose(
        self, reason: str, *, at: datetime, staff_id: str | None = None, note: str = ""
    ) -> Lead:
        return self.move(_LOST, at=at, staff_id=staff_id, note=note, lost_reason=reason)

    def reopen(self, *, at: datetime, staff_id: str | None = None, note: str = "") -> Lead:
        """Move a lost lead back to New (recorded like any other move)."""
        return self.move(_NEW, at=at, staff_id=staff_id, note=note)

    # -- reading -----------------------------------------------------------------------------

    @property
    def _label(self) -> str:
        return f"lead {self.id!r}"

    @property
    def stage(self) -> LeadStage:
        return self.history[-1].to_stage if self.history else INITIAL_STAGE

    @property
    def is_open(self) -> bool:
        return self.stage.is_open

    @property
    def email_key(self) -> str:
        return normalise_email(self.email)

    @property
    def last_moved_at(self) -> datetime:
        """When the lead entered its current stage (its creation while still New)."""
        return self.history[-1].at if self.history else self.created_at

    @property
    def customer_id(self) -> str | None:
        """The customer the lead became, once converted (Converted is final, so last)."""
        return self.history[-1].customer_id if self.history else None

    @property
    def converted_at(self) -> datetime | None:
        if self.history and self.history[-1].to_stage is _CONVERTED:
            return self.history[-1].at
        return None

    @property
    def lost_reason(self) -> str | None:
        """Why the lead was lost, while it is Lost."""
        return self.history[-1].lost_reason if self.history else None

    def stage_at(self, at: datetime) -> LeadStage | None:
        """The stage at moment ``at`` (moves effective at or before it); None before creation."""
        moment = utc(at, "at")
        if moment < self.created_at:
            return None
        for t in reversed(self.history):
            if t.at <= moment:
                return t.to_stage
        return INITIAL_STAGE

    def stays(self) -> Iterator[Stay]:
        """Each span spent in a stage, in order; the last one has no exit."""
        stage, entered = INITIAL_STAGE, self.created_at
        for t in self.history:
            yield Stay(stage=stage, entered_at=entered, exited_at=t.at)
            stage, entered = t.to_stage, t.at
        yield Stay(stage=stage, entered_at=entered, exited_at=None)

    # -- records -----------------------------------------------------------------------------

    def to_record(self) -> LeadRecord:
        value = self.expected_value
        return LeadRecord(
            id=self.id,
            email=self.email,
            email_key=self.email_key,
            name=self.name,
            company=self.company,
            phone=self.phone,
            source=None if self.source is None else str(self.source),
            owner_id=self.owner_id,
            expected_value_amount=None if value is None else value.amount,
            expected_value_currency=None if value is None else value.currency,
            notes=self.notes,
            created_at=self.created_at,
            stage=self.stage.value,
            customer_id=self.customer_id,
        )

    def transition_records(self) -> tuple[LeadTransitionRecord, ...]:
        return tuple(
            LeadTransitionRecord(
                lead_id=self.id,
                seq=i,
                from_stage=t.from_stage.value,
                to_stage=t.to_stage.value,
                at=t.at,
                staff_id=t.staff_id,
                note=t.note,
                lost_reason=t.lost_reason,
                customer_id=t.customer_id,
            )
            for i, t in enumerate(self.history)
        )

    @classmethod
    @reads_record
    def from_record(
        cls, record: LeadRecord, transitions: Iterable[LeadTransitionRecord] = ()
    ) -> Lead:
        """Rebuild a lead from its row and history rows (any order; sorted by ``seq``).

        The stored ``stage``, ``customer_id`` and ``email_key`` must equal what the
        history and email give, else :class:`~revcrm.errors.ValidationError`.
        """
        rows = sorted(transitions, key=lambda r: r["seq"])
        for expected, row in enumerate(rows):
            if row["lead_id"] != record["id"]:
                raise ValidationError("transition.lead_id", row["lead_id"], f"not {record['id']!r}")
            if row["seq"] != expected:
                raise ValidationError("transition.seq", row["seq"], f"expected {expected}: a gap")
        amount, currency = record["expected_value_amount"], record["expected_value_currency"]
        if (amount is None) != (currency is None):
            raise ValidationError(
                "expected_value_currency", currency, "give the amount and currency or neither"
            )
        lead = cls(
            id=record["id"],
            email=record["email"],
            created_at=record["created_at"],
            name=record["name"],
            company=record["company"],
            phone=record["phone"],
            source=record["source"],
            owner_id=record["owner_id"],
            expected_value=None if amount is None or currency is None else Money(amount, currency),
            notes=record["notes"],
            history=tuple(
                LeadTransition(
                    from_stage=row["from_stage"],
                    to_stage=row["to_stage"],
                    at=row["at"],
                    staff_id=row["staff_id"],
                    note=row["note"],
                    lost_reason=row["lost_reason"],
                    customer_id=row["customer_id"],
                )
                for row in rows
            ),
        )
        derived_record = lead.to_record()
        for field in ("stage", "customer_id", "email_key"):
            stored, derived = record[field], derived_record[field]
            if stored != derived:
                raise ValidationError(field, stored, f"the history and email give {derived!r}")
        return lead


_PROFILE: Final = tuple(a.name for a in attrs.fields(Lead) if a.name != "history")
