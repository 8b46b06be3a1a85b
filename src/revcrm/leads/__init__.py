"""The lead pipeline: prospects worked from New to Converted or Lost.

A :class:`Lead` is immutable and keeps every move in an append-only history; the moves a
lead may make are the plain table :data:`TRANSITIONS`, validated when this package
loads. :class:`Pipeline` holds a panel's leads (one open lead per email, one lead per
customer) and converts a lead when its prospect registers. The funnel functions are pure
and take explicit moments or periods.
"""

from revcrm._referral import ReferralKind, ReferralSource
from revcrm.leads._funnel import (
    ConversionRate,
    ConversionReport,
    DurationStats,
    Funnel,
    LeadGrouping,
    LostReasonCount,
    LostReasons,
    PipelineValue,
    StageDurations,
    conversion_rate,
    format_funnel,
    funnel,
    lost_reasons,
    open_pipeline_value,
    stage_durations,
    time_to_conversion,
)
from revcrm.leads._lead import (
    Lead,
    LeadRecord,
    LeadTransition,
    LeadTransitionRecord,
    Stay,
    normalise_email,
)
from revcrm.leads._pipeline import REGISTRATION_SKEW, Pipeline, registration_moment
from revcrm.leads._stages import (
    FINAL_STAGES,
    INITIAL_STAGE,
    OPEN_STAGES,
    TRANSITIONS,
    LeadStage,
    validate_transition_table,
)

__all__ = [
    "FINAL_STAGES",
    "INITIAL_STAGE",
    "OPEN_STAGES",
    "REGISTRATION_SKEW",
    "TRANSITIONS",
    "ConversionRate",
    "ConversionReport",
    "DurationStats",
    "Funnel",
    "Lead",
    "LeadGrouping",
    "LeadRecord",
    "LeadStage",
    "LeadTransition",
    "LeadTransitionRecord",
    "LostReasonCount",
    "LostReasons",
    "Pipeline",
    "PipelineValue",
    "ReferralKind",
    "ReferralSource",
    "StageDurations",
    "Stay",
    "conversion_rate",
    "format_funnel",
    "funnel",
    "lost_reasons",
    "normalise_email",
    "open_pipeline_value",
    "registration_moment",
    "stage_durations",
    "time_to_conversion",
    "validate_transition_table",
]
