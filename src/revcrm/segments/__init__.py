"""Customer segments: High Value, Active, At Risk, Churned, New, Never Purchased, custom.

Every function is pure and takes an explicit ``as_of`` and reporting ``currency``. Build
one :class:`Segmentation` with :func:`segmentation` to ask many questions of one book;
:func:`segments_of`, :func:`primary_segment`, :func:`segment_counts` and
:func:`customers_in` are one-call shortcuts. Definitions, thresholds and the precedence
are documented in ``docs/segments.md``.
"""

from revcrm.segments._baseline import LtvBaseline
from revcrm.segments._config import DEFAULT_CONFIG, PRECEDENCE, Segment, SegmentConfig
from revcrm.segments._facts import CustomerFacts
from revcrm.segments._predicates import (
    AllOf,
    AnyOf,
    AttributeEquals,
    HasActiveService,
    HasTag,
    InSegment,
    LtvAtLeast,
    MrrAtLeast,
    MrrBelow,
    Not,
    OwnedBy,
    Predicate,
    ReferralSourceIs,
    RegisteredBefore,
    RegisteredSince,
    Where,
    attribute_equals,
    has_active_service,
    has_tag,
    in_segment,
    ltv_at_least,
    mrr_at_least,
    mrr_below,
    owned_by,
    referral_source,
    registered_before,
    registered_since,
    where,
)
from revcrm.segments._rules import (
    SegmentMiss,
    ServiceFacts,
    active_window_start,
    service_paid_up,
)
from revcrm.segments._segments import (
    CustomSegment,
    Segmentation,
    SegmentCounts,
    customers_in,
    primary_segment,
    segment_counts,
    segmentation,
    segments_of,
)

__all__ = [
    "DEFAULT_CONFIG",
    "PRECEDENCE",
    "AllOf",
    "AnyOf",
    "AttributeEquals",
    "CustomSegment",
    "CustomerFacts",
    "HasActiveService",
    "HasTag",
    "InSegment",
    "LtvAtLeast",
    "LtvBaseline",
    "MrrAtLeast",
    "MrrBelow",
    "Not",
    "OwnedBy",
    "Predicate",
    "ReferralSourceIs",
    "RegisteredBefore",
    "RegisteredSince",
    "Segment",
    "SegmentConfig",
    "SegmentCounts",
    "SegmentMiss",
    "Segmentation",
    "ServiceFacts",
    "Where",
    "active_window_start",
    "attribute_equals",
    "customers_in",
    "has_active_service",
    "has_tag",
    "in_segment",
    "ltv_at_least",
    "mrr_at_least",
    "mrr_below",
    "owned_by",
    "primary_segment",
    "referral_source",
    "registered_before",
    "registered_since",
    "segment_counts",
    "segmentation",
    "segments_of",
    "service_paid_up",
    "where",
]
