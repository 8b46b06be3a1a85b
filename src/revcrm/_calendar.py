"""The business's reporting calendar: periods (day, week, month, quarter) in its time zone.

Every "month" revcrm reports is a month of the reporting time zone (``MetricsPolicy``'s
``timezone``, UTC by default), turned into UTC instants here and only here: the ledger,
the stores and the pages take these boundaries, never compute their own.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta

from revcrm._time import as_of_moment
from revcrm.errors import ValidationError

__all__ = [
    "MAX_PERIODS",
    "Frequency",
    "day_start",
    "local_moment",
    "month_label",
    "month_start",
    "months_back",
    "period_bounds",
    "reporting_zone",
    "shift",
    "zone_name",
]


class Frequency(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


#: The most periods one series (MRR, churn, cohorts) may hold.
MAX_PERIODS: Final = 100_000
_MIN_DAYS: Final = {Frequency.DAY: 1, Frequency.WEEK: 7, Frequency.MONTH: 28, Frequency.QUARTER: 89}


def _utc(local: datetime, zone: tzinfo) -> datetime:
    """A wall-clock time of ``zone`` as a UTC instant."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def reporting_zone(value: object, field: str = "timezone") -> ZoneInfo:
    """An IANA time zone (a name such as ``"Europe/Berlin"`` or a ``ZoneInfo``); anything
    else is a ValidationError naming ``field``."""
    if isinstance(value, ZoneInfo):
        return value
    if isinstance(value, str) and value and value == value.strip():
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValidationError(field, value, "expected an IANA time zone name such as 'Europe/Berlin'")


def zone_name(zone: tzinfo) -> str:
    """The zone's IANA name (``UTC`` for :data:`datetime.UTC`), as reports print it."""
    key = getattr(zone, "key", None)
    return key if isinstance(key, str) else (zone.tzname(None) or str(zone))


def month_start(t: datetime, zone: tzinfo = UTC) -> datetime:
    """The start (a UTC instant) of the reporting month that holds ``t``."""
    local = t.astimezone(zone).replace(tzinfo=None)
    return _utc(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0), zone)


def months_back(start: datetime, n: int, zone: tzinfo = UTC) -> datetime:
    """The start of the reporting month ``n`` months after (negative: before) the month
    starting at ``start``; a ValidationError when it leaves the calendar."""
    local = start.astimezone(zone).replace(tzinfo=None)
    try:
        return _utc(local + relativedelta(months=n), zone)
    except (ValueError, OverflowError):
        raise ValidationError("as_of", start, f"{n} months from it leave the calendar") from None


def shift(t: datetime, delta: timedelta, zone: tzinfo = UTC) -> datetime:
    """``t`` moved by ``delta`` on the reporting zone's wall clock: 30 days after 12:00
    is 12:00 thirty calendar days later, across a DST change too."""
    local = t.astimezone(zone).replace(tzinfo=None)
    try:
        return _utc(local + delta, zone)
    except (ValueError, OverflowError):
        raise ValidationError("as_of", t, f"{delta} from it leaves the calendar") from None


def day_start(d: date, zone: tzinfo = UTC) -> datetime:
    """Midnight starting the calendar day ``d`` of the reporting zone, as a UTC instant."""
    return _utc(datetime.combine(d, time(0)), zone)


def local_moment(value: date | datetime, zone: tzinfo = UTC) -> date | datetime:
    """A metric's bound read in the reporting zone: a ``date`` becomes the start of that
    day there (an aware datetime passes unchanged; the metric checks it)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return day_start(value, zone)
    return value


def month_label(t: datetime, zone: tzinfo = UTC) -> str:
    """``YYYY-MM`` of the reporting month holding ``t``."""
    return f"{t.astimezone(zone):%Y-%m}"


def period_bounds(
    freq: Frequency, start: datetime, end: datetime, zone: tzinfo = UTC
) -> list[tuple[datetime, datetime]]:
    """Consecutive calendar periods ``[a, b)`` covering ``[start, end)``, aligned to ``freq``
    in the reporting time zone ``zone``; the bounds are UTC instants.

    Both ends must lie in the supported date range and the series may hold at most
    :data:`MAX_PERIODS` periods (a ValidationError otherwise), so a series never runs
    off the calendar or out of memory.
    """
    as_of_moment(start, "start")
    as_of_moment(end, "end")
    if (end - start).days // _MIN_DAYS[freq] > MAX_PERIODS:
        raise ValidationError("end", end, f"a series holds at most {MAX_PERIODS} periods")
    first = start.astimezone(zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    match freq:
        case Frequency.DAY:
            step = relativedelta(days=1)
        case Frequency.WEEK:
            first -= timedelta(days=first.weekday())  # ISO weeks start on Monday
            step = relativedelta(weeks=1)
        case Frequency.MONTH:
            first = first.replace(day=1)
            step = relativedelta(months=1)
        case Frequency.QUARTER:
            first = first.replace(day=1, month=3 * ((first.month - 1) // 3) + 1)
            step = relativedelta(months=3)
    out: list[tuple[datetime, datetime]] = []
    i = 0
    a = _utc(first, zone)
    while a < end:
        b = _utc(first + step * (i + 1), zone)
        out.append((a, b))
        i += 1
        a = b
    return out
