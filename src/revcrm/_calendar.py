"""The business's reporting calendar: periods (day, week, month, quarter) in its time zone.

Every "month" revcrm reports is a month of the reporting time zone (``MetricsPolicy``'s
``timezone``, UTC by default), turned into UTC instants here and only here: the ledger,
the stores and the pages take these boundaries, never compute their own.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from dateutil.relativedelta import relativedelta

from revcrm._time import as_of_moment
from revcrm.errors import ValidationError

__all__ = ["MAX_PERIODS", "Frequency", "month_start", "period_bounds"]


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


def month_start(t: datetime, zone: tzinfo = UTC) -> datetime:
    """The start (a UTC instant) of the reporting month that holds ``t``."""
    local = t.astimezone(zone).replace(tzinfo=None)
    return _utc(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0), zone)


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
