"""Validation of moments: aware datetimes normalised to UTC, or plain dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from revcrm.errors import ValidationError

Moment = date | datetime


def utc(value: object, field: str) -> datetime:
    """Return an aware datetime converted to UTC; reject naive datetimes and non-datetimes."""
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "expected an aware datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(field, value, "naive datetime: attach a timezone (UTC preferred)")
    return value.astimezone(UTC)


def optional_utc(value: object, field: str) -> datetime | None:
    return None if value is None else utc(value, field)


def as_moment(value: object, field: str) -> datetime:
    """Turn a metric's ``at``/``start``/``end`` into an instant.

    A ``date`` means 00:00 UTC at the start of that day, so ``mrr(at=date(2024, 6, 15))``
    already sees a cancellation effective at 2024-06-15T00:00Z.
    """
    if isinstance(value, datetime):
        return utc(value, field)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ValidationError(field, value, "expected a date or an aware datetime")


def check_date(value: object, field: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValidationError(field, value, "expected a date (not a datetime)")
    return value


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


ONE_DAY = timedelta(days=1)
