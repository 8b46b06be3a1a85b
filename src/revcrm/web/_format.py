"""Money, dates and rates as the staff member reads them: babel, in their locale, in the
business's reporting time zone (never the machine's)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import babel
import babel.dates
import babel.numbers

from revcrm._money import Money, format_money
from revcrm.errors import ValidationError

__all__ = ["Formatter", "check_locale", "check_timezone"]


def check_locale(value: object, field: str = "locale") -> str:
    if not isinstance(value, str):
        raise ValidationError(field, value, "expected a locale name such as 'en_US'")
    try:
        babel.Locale.parse(value)
    except (ValueError, TypeError, babel.UnknownLocaleError):
        raise ValidationError(field, value, "not a locale babel knows (e.g. 'en_US')") from None
    return value


def check_timezone(value: object, field: str = "timezone") -> ZoneInfo:
    if not isinstance(value, str):
        raise ValidationError(field, value, "expected an IANA time zone name such as 'UTC'")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(field, value, "not an IANA time zone name") from None


class Formatter:
    """The template filters of one request."""

    def __init__(self, locale: str, tz: ZoneInfo) -> None:
        self.locale = locale
        self.tz = tz

    def money(self, value: Money | None) -> str:
        return "–" if value is None else format_money(value, locale=self.locale)

    def moment(self, value: datetime | None) -> str:
        if value is None:
            return "–"
        return babel.dates.format_datetime(
            value.astimezone(self.tz), format="medium", locale=self.locale
        )

    def day(self, value: date | datetime | None) -> str:
        if value is None:
            return "–"
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        return babel.dates.format_date(value, format="medium", locale=self.locale)

    def month(self, value: datetime) -> str:
        # A reporting period's label: its own calendar month, not shifted by the zone.
        return babel.dates.format_date(value.date(), format="MMM y", locale=self.locale)

    def percent(self, value: Decimal | None) -> str:
        if value is None:
            return "–"
        return babel.numbers.format_percent(value, format="#,##0.0%", locale=self.locale)

    def number(self, value: int | Decimal | None) -> str:
        return "–" if value is None else babel.numbers.format_decimal(value, locale=self.locale)
