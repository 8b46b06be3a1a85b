"""The host's current view of one service, and reading host moments in the host's zone."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from revcrm._cycles import BillingCycle
from revcrm._discount import Discount
from revcrm._money import Money
from revcrm._subscription import SubscriptionStatus
from revcrm.errors import ValidationError
from revcrm.sync._vocab import NonRecurring, host_cycle, host_id, optional_host_id, service_status

__all__ = ["HostMoment", "HostZone", "ServiceState"]

#: A host's moment: a datetime (naive ones are in the host's zone) or a calendar date.
HostMoment = datetime | date


class HostZone:
    """Reads a host's moments: naive datetimes and dates are in ``zone``, never the machine's.

    A ``date`` is the start of that day in the host zone; an aware datetime is kept as the
    instant it names. Every result is an aware UTC datetime.
    """

    __slots__ = ("zone",)

    def __init__(self, zone: object) -> None:
        if isinstance(zone, str):
            try:
                zone = ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as e:
                raise ValidationError("timezone", zone, "unknown time zone name") from e
        if not isinstance(zone, tzinfo):
            raise ValidationError("timezone", zone, "a zoneinfo name or a ZoneInfo")
        self.zone: tzinfo = zone

    def moment(self, value: object, field: str = "at") -> datetime:
        if isinstance(value, datetime):
            if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
                value = value.replace(tzinfo=self.zone)
            return value.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(0), tzinfo=self.zone).astimezone(UTC)
        raise ValidationError(field, value, "expected a datetime or a date")

    def optional(self, value: object, field: str) -> datetime | None:
        return None if value is None else self.moment(value, field)

    def __repr__(self) -> str:
        return f"HostZone({self.zone!s})"


def _moment_field(field: str, *, optional: bool) -> Any:
    def check(_i: object, _a: object, value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, date):  # a datetime is a date too
            raise ValidationError(field, value, "expected a datetime or a date")

    return check


def _id(value: object) -> str:
    return host_id(value, "service.id")


def _customer_id(value: object) -> str:
    return host_id(value, "service.customer_id")


def _product_id(value: object) -> str | None:
    return optional_host_id(value, "service.product_id")


def _plan_id(value: object) -> str | None:
    return optional_host_id(value, "service.plan_id")


def _cycle(value: object) -> BillingCycle | NonRecurring:
    return host_cycle(value)


def _status(value: object) -> SubscriptionStatus:
    return service_status(value)


def _price(_i: object, _a: object, value: Any) -> None:
    if not isinstance(value, Money):
        raise ValidationError("service.price", value, "expected Money (the price per cycle)")
    if value.amount < 0:
        raise ValidationError("service.price", value, "prices cannot be negative")


def _quantity(_i: object, _a: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError("service.quantity", value, "must be a positive whole number")


def _discount(_i: object, _a: object, value: Any) -> None:
    if value is not None and not isinstance(value, Discount):
        raise ValidationError("service.discount", value, "expected a Discount or None")


def _flag(_i: object, _a: object, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValidationError("service.cancellation_requested", value, "expected a bool")


def _details(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, tuple | list) and all(
        isinstance(p, tuple) and len(p) == 2 for p in value
    ):
        pairs = list(value)
    else:
        raise ValidationError("service.details", value, "a mapping of text to text")
    out: dict[str, str] = {}
    for k, v in pairs:
        if not isinstance(k, str) or not isinstance(v, str | int) or isinstance(v, bool):
            raise ValidationError(f"service.details[{k!r}]", v, "keys are text, values text")
        out[k] = str(v)
    return tuple(sorted(out.items()))


@attrs.frozen(kw_only=True)
class ServiceState:
    """A host's current view of one service (a row of its services table), observed once.

    Host ids may be integers: they are converted to revcrm's string ids here (``42`` is
    ``"42"``). ``cycle`` and ``status`` take a revcrm value or a panel word ("Annually",
    "Suspended"). Moments (``started_at``, ``next_due_date``, ``status_since``,
    ``cancellation_requested_at``, ``cancelled_at``, ``ended_at``) are datetimes or dates;
    naive ones are read in the :class:`HostSync`'s time zone. ``price`` is per cycle and
    per unit, before the discount. At least one of ``product_id`` and ``plan_id`` is given.

    ``status_since``, ``cancellation_requested_at`` and ``cancelled_at`` are the host's own
    moments for the current status, the cancellation request and the cancellation; when
    the host does not know them the sync uses the observation moment.
    """

    id: str = attrs.field(converter=_id)
    customer_id: str = attrs.field(converter=_customer_id)
    price: Money = attrs.field(validator=_price)
    cycle: BillingCycle | NonRecurring = attrs.field(converter=_cycle)
    status: SubscriptionStatus = attrs.field(converter=_status)
    started_at: HostMoment = attrs.field(
        validator=_moment_field("service.started_at", optional=False)
    )
    product_id: str | None = attrs.field(default=None, converter=_product_id)
    plan_id: str | None = attrs.field(default=None, converter=_plan_id)
    quantity: int = attrs.field(default=1, validator=_quantity)
    discount: Discount | None = attrs.field(default=None, validator=_discount)
    next_due_date: HostMoment | None = attrs.field(
        default=None, validator=_moment_field("service.next_due_date", optional=True)
    )
    status_since: HostMoment | None = attrs.field(
        default=None, validator=_moment_field("service.status_since", optional=True)
    )
    cancellation_requested: bool = attrs.field(default=False, validator=_flag)
    cancellation_requested_at: HostMoment | None = attrs.field(
        default=None, validator=_moment_field("service.cancellation_requested_at", optional=True)
    )
    cancelled_at: HostMoment | None = attrs.field(
        default=None, validator=_moment_field("service.cancelled_at", optional=True)
    )
    ended_at: HostMoment | None = attrs.field(
        default=None, validator=_moment_field("service.ended_at", optional=True)
    )
    details: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_details)

    def __attrs_post_init__(self) -> None:
        if self.product_id is None and self.plan_id is None:
            raise ValidationError(
                f"service[{self.id}].product_id", None, "give a product or a plan"
            )
        d = self.discount
        if (
            d is not None
            and d.amount_off is not None
            and d.amount_off.currency != self.price.currency
        ):
            raise ValidationError(
                f"service[{self.id}].discount", d, f"must be in {self.price.currency}"
            )

    @classmethod
    def of(cls, **fields: Any) -> ServiceState:
        """The same as the constructor; reads well in comprehensions over host rows."""
        return cls(**fields)

    def replace(self, **changes: Any) -> ServiceState:
        """This state with some fields changed (validated again): the host's next view."""
        return attrs.evolve(self, **changes)

    @property
    def recurring(self) -> bool:
        return not isinstance(self.cycle, NonRecurring) or self.cycle is NonRecurring.FREE

    def plan_terms(self) -> tuple[Money, BillingCycle]:
        """Price and cycle as a subscription holds them (a free account: zero, monthly)."""
        if isinstance(self.cycle, BillingCycle):
            return self.price, self.cycle
        return Money.zero(self.price.currency), BillingCycle.MONTHLY
