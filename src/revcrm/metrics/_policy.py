"""Vendor conventions as explicit settings, with presets per vendor."""

from __future__ import annotations

import enum
from datetime import timedelta

import attrs

from revcrm.errors import PolicyError

__all__ = [
    "ChurnDenominator",
    "ChurnRecognition",
    "DiscountPolicy",
    "FxDateRule",
    "MetricsPolicy",
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


def _non_negative_days(_i: object, a: attrs.Attribute[int | None], v: int | None) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
        raise PolicyError(f"{a.name}={v!r}: expected None or a whole number of days >= 0")


@attrs.frozen(kw_only=True)
class MetricsPolicy:
    """Every convention on which vendors disagree, in one value.

    The defaults are ChartMogul's (:meth:`chartmogul`). See ``docs/policies.md`` for the
    table of differences between the presets and the sources of each choice.
    """

    discounts: DiscountPolicy = attrs.field(default=DiscountPolicy.ALL, converter=DiscountPolicy)
    #: None: a past-due subscription keeps its MRR until cancelled; N: it churns N days in.
    past_due_churn_after_days: int | None = attrs.field(default=None, validator=_non_negative_days)
    count_suspended: bool = False
    churn_recognition: ChurnRecognition = attrs.field(
        default=ChurnRecognition.END_OF_PAID_PERIOD, converter=ChurnRecognition
    )
    count_trials: bool = False
    #: False: a customer on a free plan stays a customer; True: reaching zero MRR is churn
    #: even with a live free subscription (Baremetrics).
    free_plans_churn: bool = False
    #: None: any return after churn is a reactivation; N: only within N days, later it is new.
    reactivation_window_days: int | None = attrs.field(default=None, validator=_non_negative_days)
    #: Movements of one customer closer together than this are merged (ChartMogul: 60 min).
    grouping_window: timedelta | None = timedelta(minutes=60)
    churn_denominator: ChurnDenominator = attrs.field(
        default=ChurnDenominator.START, converter=ChurnDenominator
    )
    fx_date: FxDateRule = attrs.field(default=FxDateRule.SERVICE_PERIOD_START, converter=FxDateRule)
    #: Baremetrics caps MRR churn rates at 100%.
    cap_mrr_churn: bool = False
    #: Net MRR churn subtracts reactivation (ChartMogul) or not (Baremetrics).
    net_churn_includes_reactivation: bool = True
    #: Trailing months of churn averaged for LTV (ChartMogul: six, excluding the current one).
    ltv_churn_months: int = 6

    def __attrs_post_init__(self) -> None:
        if self.grouping_window is not None and self.grouping_window < timedelta(0):
            raise PolicyError(f"grouping_window={self.grouping_window!r}: cannot be negative")
        if self.ltv_churn_months < 1:
            raise PolicyError(f"ltv_churn_months={self.ltv_churn_months!r}: at least 1")

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
