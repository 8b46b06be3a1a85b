"""Vendor conventions as explicit settings, with presets per vendor."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from revcrm.errors import PolicyError, _shown

__all__ = [
    "ChurnDenominator",
    "ChurnRecognition",
    "DiscountPolicy",
    "FxDateRule",
    "MetricsPolicy",
    "Spreading",
]


class DiscountPolicy(enum.StrEnum):
    """Which discounts reduce MRR."""

    ALL = "all"  # ChartMogul (amount after discount), ProfitWell, Baremetrics
    RECURRING_ONLY = "recurring_only"  # repeating and forever, not one-time
    FOREVER_ONLY = "forever_only"  # Stripe's legacy default
    NONE = "none"  # list price


class ChurnRecognition(enum.StrEnum):
    """When a cancellation removes MRR."""

    AT_CANCELLATION = "at_cancellation"  # the moment the cancellation is recorded
    END_OF_PAID_PERIOD = "end_of_paid_period"  # when paid service ends (ChartMogul default)
    WHEN_SCHEDULED = "when_scheduled"  # as soon as the customer asks to cancel


class ChurnDenominator(enum.StrEnum):
    """The denominator of the customer churn rate."""

    START = "start"  # ChartMogul: customers at period start, excluding joiners and reactivations
    START_30_DAY = "start_30_day"  # Baremetrics: active 30 days ago, all cancellations counted
    START_PLUS_NEW = "start_plus_new"  # Stripe: active at start + new in the period


class FxDateRule(enum.StrEnum):
    """Which date's exchange rate converts MRR into the reporting currency."""

    SERVICE_PERIOD_START = "service_period_start"  # ChartMogul
    TRANSACTION_DATE = "transaction_date"  # the date of the measured moment


class Spreading(enum.StrEnum):
    """How an invoice line's amount is spread over its service period into MRR."""

    #: revcrm's default: whole billing months (``anchor + n`` months, clamped); a partial
    #: period is a share of the billing cycle that holds it (ChartMogul, Stripe).
    BILLING_CYCLE = "billing_cycle"
    #: By days: a line's amount per day of its period, a month's MRR the days of that
    #: calendar month (saas-metrics: 31/366 of an annual line in January, 29/366 in
    #: February), in whole cents, the leftover cents to the largest remainders (the
    #: earlier month on a tie), so a line's months add up to its amount, as saas-metrics.
    DAYS = "days"


_E = TypeVar("_E", bound=enum.StrEnum)

#: Longest day count a policy accepts (about 270 years): beyond it dates overflow.
_MAX_DAYS = 100_000


def _member(kind: type[_E], name: str, value: object) -> _E:
    try:
        return kind(value)  # type: ignore[arg-type]  # any value: the enum says no below
    except (ValueError, TypeError):
        choices = ", ".join(repr(m.value) for m in kind)
        raise PolicyError(f"{name}={_shown(value)}: expected one of {choices}") from None


def _discounts(value: object) -> DiscountPolicy:
    return _member(DiscountPolicy, "discounts", value)


def _recognition(value: object) -> ChurnRecognition:
    return _member(ChurnRecognition, "churn_recognition", value)


def _denominator(value: object) -> ChurnDenominator:
    return _member(ChurnDenominator, "churn_denominator", value)


def _fx_date(value: object) -> FxDateRule:
    return _member(FxDateRule, "fx_date", value)


def _spreading(value: object) -> Spreading:
    return _member(Spreading, "spreading", value)


def _zone(value: object) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if isinstance(value, str) and value:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise PolicyError(f"timezone={_shown(value)}: expected an IANA time zone name such as 'UTC'")


def _non_negative_days(_i: object, a: attrs.Attribute[int | None], v: int | None) -> None:
    if v is not None and (
        isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _MAX_DAYS
    ):
        raise PolicyError(
            f"{a.name}={_shown(v)}: expected None or a whole number of days, 0 to {_MAX_DAYS}"
        )


def _flag(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if not isinstance(v, bool):
        raise PolicyError(f"{a.name}={_shown(v)}: expected True or False")


def _window(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if v is not None and not isinstance(v, timedelta):
        raise PolicyError(f"{a.name}={_shown(v)}: expected None or a timedelta")


def _months(_i: object, a: attrs.Attribute[Any], v: object) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1200:
        raise PolicyError(f"{a.name}={_shown(v)}: expected a whole number of months, 1 to 1200")


@attrs.frozen(kw_only=True)
class MetricsPolicy:
    """Every convention on which vendors disagree, in one value.

    The defaults are ChartMogul's (:meth:`chartmogul`). See ``docs/policies.md`` for the
    table of differences between the presets and the sources of each choice.
    """

    discounts: DiscountPolicy = attrs.field(
        default=DiscountPolicy.ALL, converter=_discounts
    )
    #: None: a past-due subscription keeps its MRR until cancelled; N: it churns N days in.
    past_due_churn_after_days: int | None = attrs.field(default=None, validator=_non_negative_days)
    count_suspended: bool = attrs.field(default=False, validator=_flag)
    churn_recognition: ChurnRecognition = attrs.field(
        default=ChurnRecognition.END_OF_PAID_PERIOD,
        converter=_recognition,
    )
    count_trials: bool = attrs.field(default=False, validator=_flag)
    #: False: a customer on a free plan stays a customer; True: reaching zero MRR is churn
    #: even with a live free subscription (Baremetrics).
    free_plans_churn: bool = attrs.field(default=False, validator=_flag)
    #: None: any return after churn is a reactivation; N: only within N days, later it is new.
    reactivation_window_days: int | None = attrs.field(default=None, validator=_non_negative_days)
    #: Movements of one customer closer together than this are merged (ChartMogul: 60 min).
    grouping_window: timedelta | None = attrs.field(
        default=timedelta(minutes=60), validator=_window
    )
    churn_denominator: ChurnDenominator = attrs.field(
        default=ChurnDenominator.START,
        converter=_denominator,
    )
    fx_date: FxDateRule = attrs.field(
        default=FxDateRule.SERVICE_PERIOD_START, converter=_fx_date
    )
    #: Baremetrics caps MRR churn rates at 100%.
    cap_mrr_churn: bool = attrs.field(default=False, validator=_flag)
    #: Net MRR churn subtracts reactivation (ChartMogul) or not (Baremetrics).
    net_churn_includes_reactivation: bool = attrs.field(default=True, validator=_flag)
    #: Trailing months of churn averaged for LTV (ChartMogul: six, excluding the current one).
    ltv_churn_months: int = attrs.field(default=6, validator=_months)
    #: How invoice lines spread over their service periods (see :class:`Spreading`).
    spreading: Spreading = attrs.field(default=Spreading.BILLING_CYCLE, converter=_spreading)
    #: The business's reporting time zone (an IANA name): months, days, "this month",
    #: cohorts and renewal windows follow its calendar. UTC by default.
    timezone: ZoneInfo = attrs.field(factory=lambda: ZoneInfo("UTC"), converter=_zone)

    def __attrs_post_init__(self) -> None:
        if self.grouping_window is not None and not (
            timedelta(0) <= self.grouping_window <= timedelta(days=_MAX_DAYS)
        ):
            raise PolicyError(
                f"grouping_window={self.grouping_window!r}: expected 0 to {_MAX_DAYS} days"
            )

    @classmethod
    def chartmogul(cls) -> MetricsPolicy:
        """ChartMogul's conventions (the default)."""
        return cls()

    @classmethod
    def stripe(cls) -> MetricsPolicy:
        """Stripe Billing analytics' conventions."""
        return cls(
            discounts=DiscountPolicy.FOREVER_ONLY,
            churn_recognition=ChurnRecognition.AT_CANCELLATION,
            grouping_window=None,
            churn_denominator=ChurnDenominator.START_PLUS_NEW,
            fx_date=FxDateRule.TRANSACTION_DATE,
        )

    @classmethod
    def baremetrics(cls) -> MetricsPolicy:
        """Baremetrics' conventions."""
        return cls(
            past_due_churn_after_days=30,
            free_plans_churn=True,
            grouping_window=None,
            churn_denominator=ChurnDenominator.START_30_DAY,
            cap_mrr_churn=True,
            net_churn_includes_reactivation=False,
            fx_date=FxDateRule.TRANSACTION_DATE,
        )
