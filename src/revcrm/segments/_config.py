"""The built-in segments, their precedence, and the thresholds that define them."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Final

import attrs

from revcrm._checks import as_enum
from revcrm.errors import ValidationError

__all__ = ["DEFAULT_CONFIG", "PRECEDENCE", "Segment", "SegmentConfig"]


class Segment(enum.StrEnum):
    """The built-in segments (definitions in ``docs/segments.md``).

    ``OTHER`` holds the customers in none of the six named segments, so every registered
    customer has at least one segment and exactly one primary segment.
    """

    AT_RISK = "at_risk"
    HIGH_VALUE = "high_value"
    NEW = "new"
    ACTIVE = "active"
    CHURNED = "churned"
    NEVER_PURCHASED = "never_purchased"
    OTHER = "other"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").title()


#: Which segment is a customer's primary one when it is in several: the first of these.
#: Ordered by how soon staff should act: revenue at risk first (an overdue invoice or a
#: service about to end needs action today), then the most valuable accounts, then new
#: accounts still onboarding, then the healthy paying base, then lost customers, then
#: accounts that never bought. ``OTHER`` only ever appears alone.
PRECEDENCE: Final[tuple[Segment, ...]] = (
    Segment.AT_RISK,
    Segment.HIGH_VALUE,
    Segment.NEW,
    Segment.ACTIVE,
    Segment.CHURNED,
    Segment.NEVER_PURCHASED,
    Segment.OTHER,
)


#: Longest window a threshold accepts (about 270 years): beyond it dates overflow.
_MAX_DAYS: Final = 100_000


def _days(field: str, *, optional: bool = False) -> Any:
    def check(_i: object, _a: object, value: object) -> None:
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_DAYS:
            raise ValidationError(field, value, f"a whole number of days, 0 to {_MAX_DAYS}")

    return check


def _precedence(value: Iterable[Segment | str]) -> tuple[Segment, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError("precedence", value, "a sequence of segments")
    order = tuple(as_enum(Segment, s, "precedence") for s in value)
    if sorted(order) != sorted(Segment) or len(set(order)) != len(order):
        raise ValidationError("precedence", order, "must list every segment exactly once")
    return order


@attrs.frozen(kw_only=True)
class SegmentConfig:
    """The thresholds of the built-in segments, in one place.

    * ``active_grace_days`` (7): Active is cycle-aware by default: a customer is Active
      when an active service's current period is paid. With an invoice for the service,
      its invoice is paid (the previous period's paid invoice still counts for this many
      days after a renewal, while the new one is being collected); without one, a
      successful payment falls within one billing cycle of that service plus this many
      days back from ``as_of`` (the cycle by the calendar rule, anchor + n months clamped
      to month end). A monthly payer is then
      Active for 35 to 38 days after paying (28 to 31 days + 7): never less than the
      fixed 35-day window of earlier versions; an annual payer for a year and a week.
    * ``active_payment_days`` (None): set it to use a fixed window instead: Active then
      means an active service and a successful payment in the last N days, whatever the
      cycle and the invoices (35 was the earlier default).
    * ``at_risk_cancellation_days`` (14): At Risk includes a cancellation taking effect
      within N days.
    * ``new_customer_days`` (30): New means registered in the last N days.
    * ``precedence``: the primary-segment order (default :data:`PRECEDENCE`); it must list
      every :class:`Segment` once.

    "In the last N days" means ``as_of - N days <= moment <= as_of``; "within N days" means
    ``as_of < moment <= as_of + N days``.
    """

    active_payment_days: int | None = attrs.field(
        default=None, validator=_days("active_payment_days", optional=True)
    )
    active_grace_days: int = attrs.field(default=7, validator=_days("active_grace_days"))
    at_risk_cancellation_days: int = attrs.field(
        default=14, validator=_days("at_risk_cancellation_days")
    )
    new_customer_days: int = attrs.field(default=30, validator=_days("new_customer_days"))
    precedence: tuple[Segment, ...] = attrs.field(default=PRECEDENCE, converter=_precedence)


DEFAULT_CONFIG: Final = SegmentConfig()
