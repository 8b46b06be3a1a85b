"""Segment membership, primary segments, counts and filtered customer lists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import attrs

from revcrm._book import Book
from revcrm._checks import check_records
from revcrm._ledger._facts import LedgerRows
from revcrm._money import Money, check_currency
from revcrm._time import as_moment
from revcrm.errors import NotFoundError, ValidationError
from revcrm.metrics._customer_value import ledger_rows
from revcrm.metrics._engine import MrrAnalysis, analyse
from revcrm.metrics._mrr import DEFAULT_POLICY
from revcrm.metrics._policy import MetricsPolicy
from revcrm.segments._baseline import LtvBaseline
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._facts import (
    CustomerFacts,
    active_services,
    facts_of,
    ledger_rule_columns,
)
from revcrm.segments._predicates import Predicate
from revcrm.segments._rules import SegmentMiss, misses, rule_masks, segment_sets

__all__ = [
    "CustomSegment",
    "LtvBaseline",
    "SegmentCounts",
    "Segmentation",
    "customers_in",
    "ledger_baseline",
    "primary_segment",
    "segment_counts",
    "segmentation",
    "segmentation_of_ledger",
    "segments_of",
]

_TICK: Final = timedelta(microseconds=1)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("name", value, "must be a non-empty string")
    return value.strip()


def _check_predicate(_i: object, _a: object, value: Any) -> None:
    if not isinstance(value, Predicate):
        raise ValidationError("predicate", value, "expected a Predicate")


@attrs.frozen(kw_only=True)
class CustomSegment:
    """A named segment defined by a predicate, e.g.
    ``CustomSegment(name="Google VIPs", predicate=has_tag("vip") & referral_source("google"))``."""

    name: str = attrs.field(converter=_name)
    predicate: Predicate = attrs.field(validator=_check_predicate)
    description: str = ""


@attrs.frozen(kw_only=True)
class SegmentCounts:
    """Customers registered by ``as_of``; per built-in segment its members (a customer
    counts in each of its segments) and the customers for which it is primary (these add
    up to ``customers``); per custom segment its members."""

    customers: int
    members: Mapping[Segment, int]
    primary: Mapping[Segment, int]
    custom: Mapping[str, int]


@attrs.frozen(kw_only=True, eq=False)
class Segmentation:
    """Every customer's facts and segments at ``as_of``, computed once.

    Customers registered after ``as_of`` are not customers yet: they have no facts, no
    segment and no primary segment, and are left out of counts and lists.
    """

    as_of: datetime
    currency: str
    config: SegmentConfig
    facts: Mapping[str, CustomerFacts]
    ltv_baseline: LtvBaseline  # the High Value threshold (computed or given)
    _known: frozenset[str] = attrs.field(alias="_known")

    @property
    def average_ltv(self) -> Money | None:
        """The mean LTV of paying customers (for display); None when nobody has paid."""
        return self.ltv_baseline.average

    def _facts(self, customer_id: str) -> CustomerFacts | None:
        if customer_id not in self._known:
            raise NotFoundError("customer", customer_id)
        return self.facts.get(customer_id)

    def segments_of(self, customer_id: str) -> frozenset[Segment]:
        f = self._facts(customer_id)
        return f.segments if f is not None else frozenset()

    def primary(self, customer_id: str) -> Segment | None:
        """The first of ``config.precedence`` the customer is in; None only for a customer
        not registered by ``as_of``."""
        f = self._facts(customer_id)
        if f is None:
            return None
        return next(s for s in self.config.precedence if s in f.segments)

    def misses(self, customer_id: str) -> tuple[SegmentMiss, ...]:
        """For each named segment the customer is not in, the rule it missed (empty before
        it registered)."""
        f = self._facts(customer_id)
        return () if f is None else misses(f, self.config, self.ltv_baseline)

    def other_reason(self, customer_id: str) -> str | None:
        """Why a customer in ``OTHER`` is in none of the six segments: the rule each one's
        test missed, one per line; None for a customer not in ``OTHER``."""
        f = self._facts(customer_id)
        if f is None or Segment.OTHER not in f.segments:
            return None
        return "\n".join(str(m) for m in misses(f, self.config, self.ltv_baseline))

    def matches(self, customer_id: str, target: Segment | Predicate | CustomSegment) -> bool:
        f = self._facts(customer_id)
        return f is not None and _matcher(target)(f)

    def customers_in(
        self, target: Segment | Predicate | CustomSegment | str, *, primary: bool = False
    ) -> tuple[str, ...]:
        """Ids (in id order) of the customers in a built-in segment (with ``primary``: whose
        primary segment it is), or matching a predicate or custom segment."""
        if isinstance(target, str) and not isinstance(target, Segment):
            target = Segment(_segment_value(target))
        if primary:
            if not isinstance(target, Segment):
                raise ValidationError("primary", primary, "applies to built-in segments only")
            return tuple(cid for cid in sorted(self.facts) if self.primary(cid) is target)
        test = _matcher(target)
        return tuple(cid for cid in sorted(self.facts) if test(self.facts[cid]))

    def counts(self, custom: Iterable[CustomSegment] = ()) -> SegmentCounts:
        members: Counter[Segment] = Counter()
        primary: Counter[Segment] = Counter()
        for cid, f in self.facts.items():
            members.update(f.segments)
            p = self.primary(cid)
            assert p is not None  # every registered customer has one
            primary[p] += 1
        custom_counts: dict[str, int] = {}
        for seg in check_records(custom, CustomSegment, "custom"):
            if seg.name in custom_counts:
                raise ValidationError("custom", seg.name, "two custom segments share a name")
            custom_counts[seg.name] = sum(1 for f in self.facts.values() if seg.predicate(f))
        return SegmentCounts(
            customers=len(self.facts),
            members=MappingProxyType({s: members[s] for s in Segment}),
            primary=MappingProxyType({s: primary[s] for s in Segment}),
            custom=MappingProxyType(custom_counts),
        )


def _segment_value(text: str) -> str:
    try:
        return Segment(text.strip().lower().replace(" ", "_")).value
    except ValueError:
        raise ValidationError(
            "segment", text, f"expected one of {', '.join(s.value for s in Segment)}"
        ) from None


def _matcher(target: object) -> Predicate | _IsIn:
    if isinstance(target, Segment):
        return _IsIn(target)
    if isinstance(target, CustomSegment):
        return target.predicate
    if isinstance(target, Predicate):
        return target
    raise ValidationError("segment", target, "expected a Segment, a Predicate or a CustomSegment")


class _IsIn:
    __slots__ = ("segment",)

    def __init__(self, segment: Segment) -> None:
        self.segment = segment

    def __call__(self, facts: CustomerFacts) -> bool:
        return self.segment in facts.segments


def segmentation(
    book: Book,
    *,
    as_of: date | datetime,
    currency: str,
    config: SegmentConfig = DEFAULT_CONFIG,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
    ltv_baseline: LtvBaseline | None = None,
) -> Segmentation:
    """Facts and segments of every customer of ``book`` at ``as_of`` (a date means 00:00
    UTC), money in ``currency``.

    ``analysis`` reuses an MRR analysis in ``currency`` (its policy is then used);
    otherwise one is computed under ``policy`` (default ChartMogul's). ``tags`` maps
    customer ids to their tag names at ``as_of`` (see :func:`revcrm.crm.tags_at`).
    ``ltv_baseline`` replaces the High Value threshold computed over ``book``: pass the
    whole book's (``Segmentation.ltv_baseline``, or a store's ``SUM`` and ``COUNT``) when
    ``book`` is one customer's sub-book.
    """
    check_currency(currency)
    at = as_moment(as_of, "as_of")
    if analysis is not None:
        if analysis.currency != currency:
            raise ValidationError("analysis", analysis.currency, f"not in {currency}")
        if policy is not None and policy != analysis.policy:
            raise ValidationError("policy", policy, "differs from the analysis' policy")
        pol = analysis.policy
    else:
        pol = policy if policy is not None else DEFAULT_POLICY
        # The horizon just past as_of, so a renewal exactly at as_of gets its own FX step.
        analysis = analyse(book, currency=currency, policy=pol, horizon=at + _TICK)
    if ltv_baseline is not None and (
        not isinstance(ltv_baseline, LtvBaseline) or ltv_baseline.total.currency != currency
    ):
        raise ValidationError(
            "ltv_baseline", ltv_baseline, f"expected an LtvBaseline in {currency}"
        )
    if not isinstance(config, SegmentConfig):
        raise ValidationError("config", config, "expected a SegmentConfig")
    ledger = ledger_rows(book, as_of=at, currency=currency, policy=pol, analysis=analysis)
    return segmentation_of_ledger(book, at, config, ledger, tags=tags, ltv_baseline=ltv_baseline)


def segmentation_of_ledger(
    book: Book,
    at: datetime,
    config: SegmentConfig,
    ledger: LedgerRows,
    *,
    tags: Mapping[str, Iterable[str]] | None = None,
    ltv_baseline: LtvBaseline | None = None,
) -> Segmentation:
    """The segmentation from the ledger rows of ``book`` at ``at`` (checked arguments; see
    :func:`segmentation`): what a store that keeps the ledger calls."""
    currency = ledger.facts.currency
    if ltv_baseline is None:
        ltv_baseline = ledger_baseline(ledger)
    active = active_services(book, ledger)
    masks = rule_masks(ledger_rule_columns(ledger, at, active), config, ltv_baseline)
    done = facts_of(book, at, ledger, tags or {}, active=active, segments=segment_sets(masks))
    return Segmentation(
        as_of=at,
        currency=currency,
        config=config,
        facts=MappingProxyType(done),
        ltv_baseline=ltv_baseline,
        _known=frozenset(book.customer_index),
    )


def ledger_baseline(ledger: LedgerRows) -> LtvBaseline:
    """The High Value threshold from the ledger's facts: the net payments of the
    customers registered by ``as_of`` with a payment, summed, and their count."""
    f = ledger.facts
    return LtvBaseline.of_units(
        f.net_payments, f.registered & (f.payment_count > 0), f.digits, f.currency
    )


def segments_of(
    book: Book,
    customer_id: str,
    *,
    as_of: date | datetime,
    currency: str,
    config: SegmentConfig = DEFAULT_CONFIG,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
    ltv_baseline: LtvBaseline | None = None,
) -> frozenset[Segment]:
    """The built-in segments of one customer (see :func:`segmentation`; for many
    customers build one :class:`Segmentation` instead)."""
    return segmentation(
        book,
        as_of=as_of,
        currency=currency,
        config=config,
        policy=policy,
        analysis=analysis,
        tags=tags,
        ltv_baseline=ltv_baseline,
    ).segments_of(customer_id)


def primary_segment(
    book: Book,
    customer_id: str,
    *,
    as_of: date | datetime,
    currency: str,
    config: SegmentConfig = DEFAULT_CONFIG,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
    ltv_baseline: LtvBaseline | None = None,
) -> Segment | None:
    """The customer's primary segment: the first of ``config.precedence`` it is in
    (``OTHER`` when in none of the six); None only before it registered."""
    return segmentation(
        book,
        as_of=as_of,
        currency=currency,
        config=config,
        policy=policy,
        analysis=analysis,
        tags=tags,
        ltv_baseline=ltv_baseline,
    ).primary(customer_id)


def segment_counts(
    book: Book,
    *,
    as_of: date | datetime,
    currency: str,
    config: SegmentConfig = DEFAULT_CONFIG,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
    custom: Iterable[CustomSegment] = (),
) -> SegmentCounts:
    return segmentation(
        book,
        as_of=as_of,
        currency=currency,
        config=config,
        policy=policy,
        analysis=analysis,
        tags=tags,
    ).counts(custom)


def customers_in(
    book: Book,
    target: Segment | Predicate | CustomSegment | str,
    *,
    as_of: date | datetime,
    currency: str,
    config: SegmentConfig = DEFAULT_CONFIG,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
    primary: bool = False,
) -> tuple[str, ...]:
    """Ids of the customers in a segment or matching a predicate, in id order."""
    return segmentation(
        book,
        as_of=as_of,
        currency=currency,
        config=config,
        policy=policy,
        analysis=analysis,
        tags=tags,
    ).customers_in(target, primary=primary)
