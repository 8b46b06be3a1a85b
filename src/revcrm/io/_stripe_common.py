"""Reading Stripe API objects: plain data, typed fields with errors naming object and field.

Stripe objects arrive as dicts (API responses, webhook ``data.object``, JSON exports) or as
stripe-python objects; both become plain ``dict``/``list`` trees here, so the importer never
depends on the stripe package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from revcrm._cycles import BillingCycle
from revcrm._money import Money, check_decimal
from revcrm.errors import ValidationError

__all__ = [
    "STRIPE_API_VERSION",
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "StripeObject",
    "flatten",
    "minor_exponent",
    "plain",
]

#: The Stripe API version whose object shapes the importer reads (and its fixtures follow).
STRIPE_API_VERSION: Final = "2024-06-20"

#: Stripe's zero-decimal currencies as docs.stripe.com/currencies lists them: an amount of
#: 500 is 500 JPY, not 5.00. (ISO 4217 gives some of these minor units Stripe does not use.)
ZERO_DECIMAL: Final = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
#: Stripe's three-decimal currencies: 12345 is 12.345 KWD.
THREE_DECIMAL: Final = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def minor_exponent(currency: str) -> int:
    """Decimal places of Stripe's integer amounts in ``currency`` (upper case)."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2  # every other currency, ISK and HUF included, as Stripe documents


def plain(value: Any) -> Any:
    """A stripe-python object (``to_dict()``), any mapping or list as plain dicts and lists."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, dict):
        value = to_dict()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def flatten(objects: Any) -> Iterator[dict[str, Any]]:
    """Every Stripe object in ``objects``: one object, a list, or list/search results."""
    value = plain(objects)
    yield from _walk(value, "objects")


def _walk(value: Any, where: str) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("object") in ("list", "search_result") and isinstance(value.get("data"), list):
            for i, item in enumerate(value["data"]):
                yield from _walk(item, f"{where}.data[{i}]")
            return
        if "object" not in value and isinstance(value.get("data"), list):
            # A JSON export wrapping its objects: {"data": [...]}.
            for i, item in enumerate(value["data"]):
                yield from _walk(item, f"{where}.data[{i}]")
            return
        yield value
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")
        return
    raise ValidationError(where, value, "expected a Stripe object (a mapping with 'object')")


class StripeObject:
    """Typed access to one Stripe object's fields; errors name ``kind[id].field``."""

    __slots__ = ("data", "id", "kind")

    def __init__(self, data: Mapping[str, Any], kind: str | None = None) -> None:
        if not isinstance(data, Mapping):
            raise ValidationError(kind or "object", data, "expected a Stripe object")
        self.data = data
        self.kind = kind or str(data.get("object", "object"))
        raw_id = data.get("id")
        if not isinstance(raw_id, str) or not raw_id.strip():
            raise ValidationError(f"{self.kind}.id", raw_id, "a Stripe object needs its id")
        self.id = raw_id

    def where(self, field: str) -> str:
        return f"{self.kind}[{self.id}].{field}"

    def error(self, field: str, value: object, reason: str) -> ValidationError:
        return ValidationError(self.where(field), value, reason)

    def get(self, field: str) -> Any:
        return self.data.get(field)

    def has(self, field: str) -> bool:
        return self.data.get(field) is not None

    def required(self, field: str) -> Any:
        value = self.data.get(field)
        if value is None:
            raise self.error(field, value, "required")
        return value

    def text(self, field: str) -> str | None:
        value = self.data.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(field, value, "expected a string")
        return value

    def flag(self, field: str) -> bool:
        value = self.data.get(field)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(field, value, "expected true or false")
        return value

    def integer(self, field: str, *, required: bool = False) -> int | None:
        value = self.data.get(field)
        if value is None:
            if required:
                raise self.error(field, value, "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, value, "expected an integer")
        return value

    def moment(self, field: str, *, required: bool = False) -> datetime | None:
        """A Unix timestamp (seconds) as an aware UTC datetime."""
        value = self.integer(field, required=required)
        if value is None:
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise self.error(field, value, "not a Unix timestamp") from None

    def ref(self, field: str) -> str | None:
        """An id, whether the field holds the id or the expanded object."""
        value = self.data.get(field)
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get("id")
        if not isinstance(value, str) or not value:
            raise self.error(field, self.data.get(field), "expected an id or an object")
        return value

    def child(self, field: str, kind: str) -> StripeObject | None:
        """An expanded sub-object (``None`` when absent or given only by id)."""
        value = self.data.get(field)
        if isinstance(value, Mapping):
            return StripeObject(value, kind)
        return None

    def mapping(self, field: str) -> Mapping[str, Any]:
        value = self.data.get(field)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(field, value, "expected an object")
        return value

    def items(self, field: str) -> list[Any]:
        """A list field, or the ``data`` of a Stripe list object."""
        value = self.data.get(field)
        if value is None:
            return []
        if isinstance(value, Mapping):
            if value.get("has_more"):
                raise self.error(
                    f"{field}.has_more",
                    True,
                    "the list is paginated: pass every item (auto-paginate or list them apart)",
                )
            value = value.get("data")
        if not isinstance(value, list):
            raise self.error(field, value, "expected a list")
        return value

    def currency(self, field: str = "currency") -> str:
        value = self.data.get(field)
        if not isinstance(value, str) or not value:
            raise self.error(field, value, "a currency code is required")
        code = value.upper()
        try:
            Money.zero(code)
        except ValidationError:
            raise self.error(field, value, "not an ISO 4217 currency code") from None
        return code

    def amount(self, field: str, currency: str, *, required: bool = True) -> Money | None:
        """An integer amount in Stripe's minor units of ``currency``."""
        value = self.integer(field, required=required)
        if value is None:
            return None
        return Money(Decimal(value).scaleb(-minor_exponent(currency)), currency)

    def decimal_amount(self, field: str, currency: str) -> Money | None:
        """A ``*_decimal`` string amount in minor units (``"1250.5"``)."""
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(field, value, "expected a decimal string")
        try:
            d = check_decimal(Decimal(value), self.where(field), value)
        except InvalidOperation:
            raise self.error(field, value, "not a decimal number") from None
        return Money(d.scaleb(-minor_exponent(currency)), currency)


_INTERVALS: Final = {"day": "days", "week": "weeks", "month": "months", "year": "years"}


def cycle_of(recurring: Mapping[str, Any], owner: StripeObject) -> BillingCycle:
    """A price's ``recurring`` (interval and interval_count) as a revcrm cycle."""
    interval = recurring.get("interval")
    count = recurring.get("interval_count", 1)
    if interval not in _INTERVALS:
        raise owner.error("recurring.interval", interval, "expected day, week, month or year")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise owner.error("recurring.interval_count", count, "expected a positive integer")
    make = getattr(BillingCycle, _INTERVALS[interval])
    cycle: BillingCycle = make(count)
    return cycle


def by_id(objects: Iterable[StripeObject]) -> dict[str, StripeObject]:
    """Objects keyed by id; a later copy of an id replaces an earlier one."""
    return {o.id: o for o in objects}
