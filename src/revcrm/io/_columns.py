"""Columns of tabular exports: the fields of each kind and how a cell becomes a value.

Cells are text (from a CSV file) or typed values (from a data frame: ``datetime``,
``date``, ``Decimal``, ``int``, ``str``, ``None``). Money is never read from a float: a
float cell is refused with a hint (read the column as text, or as Decimal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from revcrm._money import Money, to_decimal
from revcrm.errors import ValidationError

__all__ = [
    "FIELDS",
    "REQUIRED",
    "Kind",
    "RowError",
    "Zone",
    "check_zone",
]

Kind = Literal["invoice_lines", "payments", "customers"]
Zone = str | tzinfo | None

#: The revcrm fields each kind of export reads; ``columns=`` maps them to the export's
#: own column names (by default a column is named as its field).
FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "invoice_lines": (
        "invoice_id", "customer_id", "amount", "currency", "issued_at", "status",
        "due_date", "paid_at", "number", "description", "quantity", "discount", "tax",
        "period_start", "period_end", "kind", "subscription_id", "product_id",
    ),
    "payments": (
        "id", "customer_id", "amount", "currency", "at", "kind", "status", "method",
        "invoice_id",
    ),
    "customers": (
        "id", "registered_at", "email", "name", "company", "phone", "external_id",
    ),
}  # fmt: skip
REQUIRED: Final[Mapping[str, frozenset[str]]] = {
    "invoice_lines": frozenset(
        {"invoice_id", "customer_id", "amount", "currency", "issued_at", "status"}
    ),
    "payments": frozenset({"id", "customer_id", "amount", "currency", "at"}),
    "customers": frozenset({"id", "registered_at"}),
}


class RowError(ValidationError):
    """A bad cell: names the row (as a spreadsheet numbers it, the header being row 1;
    for a data frame, the row's position) and the export's column."""

    def __init__(self, row: int, column: str, value: Any, reason: str) -> None:
        self.row = row
        self.column = column
        super().__init__(f"row {row}, column {column!r}", value, reason)


def check_zone(zone: Zone) -> tzinfo | None:
    if zone is None or isinstance(zone, tzinfo):
        return zone
    if not isinstance(zone, str):
        raise ValidationError("timezone", zone, "expected an IANA time zone name")
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", zone, "unknown IANA time zone") from None


class Cells:
    """Typed reading of one row's cells; every error names the row and column."""

    __slots__ = ("columns", "inclusive", "minor", "row", "values", "zone")

    def __init__(
        self,
        row: int,
        values: Mapping[str, Any],
        columns: Mapping[str, str],
        zone: tzinfo | None,
        *,
        minor: bool,
        inclusive: bool,
    ) -> None:
        self.row = row
        self.values = values
        self.columns = columns
        self.zone = zone
        self.minor = minor
        self.inclusive = inclusive

    def error(self, field: str, value: Any, reason: str) -> RowError:
        return RowError(self.row, self.columns.get(field, field), value, reason)

    def raw(self, field: str) -> Any:
        value = self.values.get(self.columns.get(field, field))
        if value is None:
            return None
        if isinstance(value, str):
            value = value.strip()
            return value or None
        if isinstance(value, float) and math.isnan(value):
            return None  # a data frame's missing cell
        return value

    def text(self, field: str) -> str | None:
        value = self.raw(field)
        if value is None:
            return None
        if not isinstance(value, str):
            return str(value) if isinstance(value, int | Decimal) else self._bad_type(field, value)
        return value

    def _bad_type(self, field: str, value: Any) -> str:
        raise self.error(field, value, "expected text")

    def required_text(self, field: str) -> str:
        value = self.text(field)
        if value is None:
            raise self.error(field, value, "required")
        return value

    def currency(self, field: str = "currency") -> str:
        value = self.required_text(field).upper()
        try:
            Money.zero(value)
        except ValidationError:
            raise self.error(field, value, "not an ISO 4217 currency code") from None
        return value

    def decimal(self, field: str, currency: str, *, required: bool = False) -> Decimal | None:
        value = self.raw(field)
        if value is None:
            if required:
                raise self.error(field, value, "required")
            return None
        if isinstance(value, float):
            raise self.error(
                field,
                value,
                "a float cannot hold money exactly: read the column as text or Decimal",
            )
        try:
            d = to_decimal(value, field)
        except ValidationError as e:
            raise self.error(field, value, e.reason) from None
        if self.minor:
            if d != d.to_integral_value():
                raise self.error(field, value, "minor units must be whole")
            d = d.scaleb(-Money.zero(currency).minor_units)
        return d

    def count(self, field: str, default: int) -> int:
        value = self.raw(field)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise self.error(field, value, "expected a whole number") from None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise self.error(field, value, "expected a whole number")
        if value != int(value) or value < 1:
            raise self.error(field, value, "expected a whole number of at least 1")
        return int(value)

    def _parse(self, field: str, value: Any) -> date | datetime:
        if isinstance(value, datetime | date):
            return value
        if not isinstance(value, str):
            raise self.error(field, value, "expected a date or a datetime")
        try:
            if len(value) <= 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value.replace(" ", "T", 1))
        except ValueError:
            raise self.error(field, value, "not an ISO 8601 date or datetime") from None

    def _local(self, field: str, value: Any) -> datetime:
        if self.zone is None:
            raise self.error(
                field, value, "a date or naive datetime needs timezone= (the export's time zone)"
            )
        return value.replace(tzinfo=self.zone) if isinstance(value, datetime) else value

    def moment(self, field: str, *, required: bool = False, end: bool = False) -> datetime | None:
        value = self.raw(field)
        if value is None:
            if required:
                raise self.error(field, value, "required")
            return None
        parsed = self._parse(field, value)
        if isinstance(parsed, datetime):
            if parsed.tzinfo is None or parsed.utcoffset() is None:
                parsed = self._local(field, parsed)
            if end and self.inclusive:
                # The export names the last day of service: it ends when the next day starts.
                local = parsed.astimezone(self.zone or parsed.tzinfo)
                parsed = datetime.combine(local.date() + timedelta(days=1), time(0), local.tzinfo)
        else:
            self._local(field, parsed)
            assert self.zone is not None
            day = parsed + timedelta(days=1) if end and self.inclusive else parsed
            parsed = datetime.combine(day, time(0), self.zone)
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise self.error(field, value, "out of range") from None

    def day(self, field: str) -> date | None:
        value = self.raw(field)
        if value is None:
            return None
        parsed = self._parse(field, value)
        if isinstance(parsed, datetime):
            if parsed.tzinfo is not None and self.zone is not None:
                parsed = parsed.astimezone(self.zone)
            return parsed.date()
        return parsed
