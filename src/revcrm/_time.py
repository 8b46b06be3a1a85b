"""Validation of moments: aware datetimes normalised to UTC, or plain dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from revcrm.errors import ValidationError

Moment = date | datetime

#: The supported calendar range (inclusive): every moment and date revcrm accepts lies in
#: it, so date arithmetic on it (a trend of months back, a billing cycle forward, a
#: store's column) can never leave Python's or a database's range.
MIN_DATE: Final = date(1900, 1, 1)
MAX_DATE: Final = date(9000, 12, 31)
_MIN_MOMENT: Final = datetime.combine(MIN_DATE, time(0), tzinfo=UTC)
_MAX_MOMENT: Final = datetime.combine(MAX_DATE + timedelta(days=1), time(0), tzinfo=UTC)
_RANGE_REASON: Final = f"outside the supported range {MIN_DATE} to {MAX_DATE}"


def _in_range(value: datetime, shown: object, field: str) -> datetime:
    if not _MIN_MOMENT <= value < _MAX_MOMENT:
        raise ValidationError(field, shown, _RANGE_REASON)
    return value


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(field, value, "naive datetime: attach a timezone (UTC preferred)")
    return value


def utc(value: object, field: str) -> datetime:
    """Return an aware datetime in the supported range converted to UTC; reject naive
    datetimes, non-datetimes and moments out of range."""
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "expected an aware datetime")
    _aware(value, field)
    if not MIN_DATE.year < value.year < MAX_DATE.year:
        # Near the ends a conversion to UTC can overflow: compare before converting.
        try:
            converted = value.astimezone(UTC)
        except OverflowError:
            raise ValidationError(field, value, _RANGE_REASON) from None
        return _in_range(converted, value, field)
    return value.astimezone(UTC)


def optional_utc(value: object, field: str) -> datetime | None:
    return None if value is None else utc(value, field)


def as_moment(value: object, field: str) -> datetime:
    """Turn a metric's ``at``/``start``/``end`` into an instant.

    A ``date`` means 00:00 UTC at the start of that day, so ``mrr(at=date(2024, 6, 15))``
    already sees a cancellation effective at 2024-06-15T00:00Z. Metrics that know the
    business's reporting time zone read a date as midnight there first
    (:func:`revcrm._calendar.local_moment`), then call this. Any moment is accepted
    (``datetime.min`` as an open start): a query bound need not be in the supported range;
    use :func:`as_of_moment` for the moment a report is made at.
    """
    if isinstance(value, datetime):
        try:
            return _aware(value, field).astimezone(UTC)
        except OverflowError:
            raise ValidationError(field, value, _RANGE_REASON) from None
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ValidationError(field, value, "expected a date or an aware datetime")


def as_of_moment(value: object, field: str) -> datetime:
    """:func:`as_moment` within the supported range: the moment a report is made at, from
    which it counts months or windows back and forth."""
    moment = as_moment(value, field)
    return _in_range(moment, value, field)


def check_date(value: object, field: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValidationError(field, value, "expected a date (not a datetime)")
    if not MIN_DATE <= value <= MAX_DATE:
        raise ValidationError(field, value, _RANGE_REASON)
    return value


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


ONE_DAY = timedelta(days=1)
