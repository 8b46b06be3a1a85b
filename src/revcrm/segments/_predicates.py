"""Typed, composable predicates over :class:`CustomerFacts` for custom segments.

A predicate is a small frozen value (so it can be compared, shown and translated by a
SQL store into a ``WHERE`` clause); ``&``, ``|`` and ``~`` combine them::

    big_google = mrr_at_least(Money("500", "USD")) & referral_source("google")
    at_risk_vip = in_segment(Segment.AT_RISK) & has_tag("VIP")

:func:`where` wraps any function of the facts for the rare rule the leaves cannot say;
it is evaluated in Python only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

import attrs

from revcrm._checks import as_enum
from revcrm._crm_records import attribute_type, tag_key
from revcrm._money import Money
from revcrm._records import AttributeValue
from revcrm._time import as_moment
from revcrm.errors import ValidationError
from revcrm.segments._config import Segment
from revcrm.segments._facts import CustomerFacts

__all__ = [
    "AllOf",
    "AnyOf",
    "AttributeEquals",
    "HasActiveService",
    "HasTag",
    "InSegment",
    "LtvAtLeast",
    "MrrAtLeast",
    "MrrBelow",
    "Not",
    "OwnedBy",
    "Predicate",
    "ReferralSourceIs",
    "RegisteredBefore",
    "RegisteredSince",
    "Where",
    "attribute_equals",
    "has_active_service",
    "has_tag",
    "in_segment",
    "ltv_at_least",
    "mrr_at_least",
    "mrr_below",
    "owned_by",
    "referral_source",
    "registered_before",
    "registered_since",
    "where",
]


class Predicate:
    """A yes/no question about one customer's facts."""

    __slots__ = ()

    def matches(self, facts: CustomerFacts) -> bool:
        raise NotImplementedError

    def __call__(self, facts: CustomerFacts) -> bool:
        return self.matches(facts)

    def describe(self) -> str:
        raise NotImplementedError

    def __and__(self, other: Predicate) -> Predicate:
        if not isinstance(other, Predicate):
            return NotImplemented
        return AllOf(parts=(*_flat(self, AllOf), *_flat(other, AllOf)))

    def __or__(self, other: Predicate) -> Predicate:
        if not isinstance(other, Predicate):
            return NotImplemented
        return AnyOf(parts=(*_flat(self, AnyOf), *_flat(other, AnyOf)))

    def __invert__(self) -> Predicate:
        return self.part if isinstance(self, Not) else Not(part=self)


def _flat(p: Predicate, kind: type[AllOf] | type[AnyOf]) -> tuple[Predicate, ...]:
    return p.parts if isinstance(p, kind) else (p,)


def _parts(value: Iterable[Predicate]) -> tuple[Predicate, ...]:
    parts = tuple(value)
    for i, p in enumerate(parts):
        if not isinstance(p, Predicate):
            raise ValidationError(f"parts[{i}]", p, "expected a Predicate")
    return parts


@attrs.frozen(kw_only=True)
class AllOf(Predicate):
    """Every part holds (true when there are no parts)."""

    parts: tuple[Predicate, ...] = attrs.field(converter=_parts)

    def matches(self, facts: CustomerFacts) -> bool:
        return all(p.matches(facts) for p in self.parts)

    def describe(self) -> str:
        return "(" + " and ".join(p.describe() for p in self.parts) + ")"


@attrs.frozen(kw_only=True)
class AnyOf(Predicate):
    """At least one part holds (false when there are no parts)."""

    parts: tuple[Predicate, ...] = attrs.field(converter=_parts)

    def matches(self, facts: CustomerFacts) -> bool:
        return any(p.matches(facts) for p in self.parts)

    def describe(self) -> str:
        return "(" + " or ".join(p.describe() for p in self.parts) + ")"


def _predicate(_i: object, _a: object, value: Any) -> None:
    if not isinstance(value, Predicate):
        raise ValidationError("part", value, "expected a Predicate")


@attrs.frozen(kw_only=True)
class Not(Predicate):
    part: Predicate = attrs.field(validator=_predicate)

    def matches(self, facts: CustomerFacts) -> bool:
        return not self.part.matches(facts)

    def describe(self) -> str:
        return f"not {self.part.describe()}"


def _money(field: str) -> Callable[[object, object, Any], None]:
    def check(_i: object, _a: object, value: Any) -> None:
        if not isinstance(value, Money):
            raise ValidationError(field, value, "expected Money")

    return check


@attrs.frozen(kw_only=True)
class HasTag(Predicate):
    """The customer carries the tag (names compare case-insensitively)."""

    key: str

    def matches(self, facts: CustomerFacts) -> bool:
        return self.key in facts.tags

    def describe(self) -> str:
        return f"tagged {self.key!r}"


@attrs.frozen(kw_only=True)
class MrrAtLeast(Predicate):
    """MRR >= amount (the amount must be in the reporting currency)."""

    amount: Money = attrs.field(validator=_money("amount"))

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.mrr >= self.amount

    def describe(self) -> str:
        return f"MRR >= {self.amount}"


@attrs.frozen(kw_only=True)
class MrrBelow(Predicate):
    """MRR < amount (the amount must be in the reporting currency)."""

    amount: Money = attrs.field(validator=_money("amount"))

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.mrr < self.amount

    def describe(self) -> str:
        return f"MRR < {self.amount}"


@attrs.frozen(kw_only=True)
class LtvAtLeast(Predicate):
    """LTV (net payments) >= amount, in the reporting currency."""

    amount: Money = attrs.field(validator=_money("amount"))

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.ltv >= self.amount

    def describe(self) -> str:
        return f"LTV >= {self.amount}"


def _at(value: object) -> datetime:
    return as_moment(value, "at")


@attrs.frozen(kw_only=True)
class RegisteredBefore(Predicate):
    """Registered strictly before ``at``."""

    at: datetime = attrs.field(converter=_at)

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.registered_at < self.at

    def describe(self) -> str:
        return f"registered before {self.at.isoformat()}"


@attrs.frozen(kw_only=True)
class RegisteredSince(Predicate):
    """Registered at or after ``at``."""

    at: datetime = attrs.field(converter=_at)

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.registered_at >= self.at

    def describe(self) -> str:
        return f"registered since {self.at.isoformat()}"


def _segment(value: object) -> Segment:
    return as_enum(Segment, value, "segment")


@attrs.frozen(kw_only=True)
class InSegment(Predicate):
    """A member of a built-in segment (not necessarily its primary one)."""

    segment: Segment = attrs.field(converter=_segment)

    def matches(self, facts: CustomerFacts) -> bool:
        return self.segment in facts.segments

    def describe(self) -> str:
        return f"in {self.segment.label}"


@attrs.frozen(kw_only=True)
class ReferralSourceIs(Predicate):
    """``Customer.referral_source`` equals ``source`` (case-insensitively; a
    :class:`~revcrm.leads.ReferralSource` compares by its text form)."""

    source: str

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.referral_source is not None and (
            facts.referral_source.strip().casefold() == self.source
        )

    def describe(self) -> str:
        return f"referred by {self.source!r}"


@attrs.frozen(kw_only=True)
class HasActiveService(Predicate):
    def matches(self, facts: CustomerFacts) -> bool:
        return facts.active_services > 0

    def describe(self) -> str:
        return "has an active service"


@attrs.frozen(kw_only=True)
class OwnedBy(Predicate):
    owner_id: str

    def matches(self, facts: CustomerFacts) -> bool:
        return facts.owner_id == self.owner_id

    def describe(self) -> str:
        return f"owned by {self.owner_id!r}"


@attrs.frozen(kw_only=True)
class AttributeEquals(Predicate):
    """The custom attribute ``key`` has this value and type (``1`` is not ``True``; the
    numbers ``2`` and ``Decimal("2.0")`` are equal)."""

    key: str
    value: AttributeValue

    def matches(self, facts: CustomerFacts) -> bool:
        if self.key not in facts.custom_attributes:
            return False
        actual = facts.custom_attributes[self.key]
        try:
            same_type = attribute_type(actual) is attribute_type(self.value)
        except ValidationError:  # a value no attribute type describes never matches
            return False
        return same_type and actual == self.value

    def describe(self) -> str:
        return f"{self.key} = {self.value!r}"


@attrs.frozen(kw_only=True)
class Where(Predicate):
    """Any function of the facts, named for display. Evaluated in Python only: a SQL
    store cannot push it down."""

    name: str
    function: Callable[[CustomerFacts], bool] = attrs.field(eq=False)

    def matches(self, facts: CustomerFacts) -> bool:
        return bool(self.function(facts))

    def describe(self) -> str:
        return self.name


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, value, "must be a non-empty string")
    return value.strip()


def has_tag(name: str) -> HasTag:
    return HasTag(key=tag_key(name))


def mrr_at_least(amount: Money) -> MrrAtLeast:
    return MrrAtLeast(amount=amount)


def mrr_below(amount: Money) -> MrrBelow:
    return MrrBelow(amount=amount)


def ltv_at_least(amount: Money) -> LtvAtLeast:
    return LtvAtLeast(amount=amount)


def registered_before(at: date | datetime) -> RegisteredBefore:
    return RegisteredBefore(at=at)


def registered_since(at: date | datetime) -> RegisteredSince:
    return RegisteredSince(at=at)


def in_segment(segment: Segment | str) -> InSegment:
    return InSegment(segment=segment)


def referral_source(source: object) -> ReferralSourceIs:
    """``source`` is a string or anything whose ``str()`` is the canonical text (such as
    :class:`~revcrm.leads.ReferralSource`)."""
    text = source if isinstance(source, str) else str(source) if source is not None else None
    return ReferralSourceIs(source=_text("source", text).casefold())


def has_active_service() -> HasActiveService:
    return HasActiveService()


def owned_by(owner_id: str) -> OwnedBy:
    return OwnedBy(owner_id=_text("owner_id", owner_id))


def attribute_equals(key: str, value: AttributeValue) -> AttributeEquals:
    attribute_type(value, f"custom_attributes[{key}]")
    return AttributeEquals(key=_text("key", key), value=value)


def where(name: str, function: Callable[[CustomerFacts], bool]) -> Where:
    if not callable(function):
        raise ValidationError("function", function, "expected a callable")
    return Where(name=_text("name", name), function=function)
