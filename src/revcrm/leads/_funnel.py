"""Funnel analytics: pure functions over leads and explicit moments or periods.

Periods are half-open, ``[start, end)``; a ``date`` means 00:00 UTC that day. Rates are
exact Decimals (``DIVISION_PRECISION`` significant digits), or None when nobody is in the
denominator: "no leads" is not a 0% rate. Durations have microsecond resolution.
"""

from __future__ import annotations

import decimal
import enum
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Final

import attrs

from revcrm._money import DIVISION_PRECISION, FxRates, Money, check_currency
from revcrm._time import Moment, as_moment
from revcrm.errors import CurrencyMismatchError, NotFoundError, ValidationError
from revcrm.leads._lead import Lead
from revcrm.leads._stages import LeadStage

__all__ = [
    "ConversionRate",
    "ConversionReport",
    "DurationStats",
    "Funnel",
    "LeadGrouping",
    "LostReasonCount",
    "LostReasons",
    "PipelineValue",
    "StageDurations",
    "conversion_rate",
    "format_funnel",
    "funnel",
    "lost_reasons",
    "open_pipeline_value",
    "stage_durations",
    "time_to_conversion",
]

_DIVIDE: Final = decimal.Context(
    prec=DIVISION_PRECISION, traps=[decimal.InvalidOperation, decimal.DivisionByZero]
)


def _rate(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else _DIVIDE.divide(Decimal(part), Decimal(whole))


def _period(start: Moment, end: Moment) -> tuple[datetime, datetime]:
    s, e = as_moment(start, "start"), as_moment(end, "end")
    if e <= s:
        raise ValidationError("end", end, f"must be after start ({start})")
    return s, e


# -- counts per stage -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Funnel:
    """How many leads stood in each stage at moment ``at`` (leads created later excluded)."""

    at: datetime
    counts: Mapping[LeadStage, int]  # every stage, in table order

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __getitem__(self, stage: LeadStage) -> int:
        return self.counts[stage]

    def share(self, stage: LeadStage) -> Decimal | None:
        """The stage's fraction of all leads (0..1), None when there are no leads."""
        return _rate(self.counts[stage], self.total)


def funnel(leads: Iterable[Lead], *, at: Moment) -> Funnel:
    moment = as_moment(at, "at")
    counts = dict.fromkeys(LeadStage, 0)
    for lead in leads:
        stage = lead.stage_at(moment)
        if stage is not None:
            counts[stage] += 1
    return Funnel(at=moment, counts=MappingProxyType(counts))


# -- conversion rates -------------------------------------------------------------------------


class LeadGrouping(enum.StrEnum):
    SOURCE = "source"  # the full source: each campaign or referrer apart
    SOURCE_KIND = "source_kind"  # direct, referral, campaign, social, search, custom
    OWNER = "owner"  # the lead's current owner (staff id)


def _group_key(grouping: LeadGrouping) -> Callable[[Lead], str | None]:
    if grouping is LeadGrouping.SOURCE:
        return lambda lead: None if lead.source is None else str(lead.source)
    if grouping is LeadGrouping.SOURCE_KIND:
        return lambda lead: None if lead.source is None else lead.source.kind.value
    return lambda lead: lead.owner_id


@attrs.frozen(kw_only=True)
class ConversionRate:
    """``converted`` of ``leads`` converted; ``key`` names the group (None: no source/owner)."""

    key: str | None
    leads: int
    converted: int

    @property
    def rate(self) -> Decimal | None:
        """converted / leads, or None when the group has no leads."""
        return _rate(self.converted, self.leads)


@attrs.frozen(kw_only=True)
class ConversionReport:
    """The conversion of the leads created in ``[start, end)``, read at ``as_of``.

    ``groups`` is empty unless a grouping was asked for; it is ordered by key with the
    leads without a source or owner (key None) last, and its counts add up to ``overall``.
    """

    start: datetime
    end: datetime
    as_of: datetime
    by: LeadGrouping | None
    overall: ConversionRate
    groups: tuple[ConversionRate, ...]

    def group(self, key: str | None) -> ConversionRate:
        for g in self.groups:
            if g.key == key:
                return g
        raise NotFoundError(f"conversion group by {self.by}", key)


def conversion_rate(
    leads: Iterable[Lead],
    *,
    start: Moment,
    end: Moment,
    as_of: Moment | None = None,
    by: LeadGrouping | str | None = None,
) -> ConversionReport:
    """Cohort conversion: of the leads created in ``[start, end)``, how many had converted
    by ``as_of`` (default ``end``; later values give late converters time to count)."""
    s, e = _period(start, end)
    read_at = e if as_of is None else as_moment(as_of, "as_of")
    if read_at < e:
        raise ValidationError("as_of", as_of, f"must not be before end ({end})")
    grouping = _grouping(by)
    key = _group_key(grouping) if grouping is not None else None
    totals: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    cohort = converted = 0
    for lead in leads:
        if not s <= lead.created_at < e:
            continue
        done = lead.converted_at is not None and lead.converted_at <= read_at
        cohort += 1
        converted += done
        if key is not None:
            counts = totals[key(lead)]
            counts[0] += 1
            counts[1] += done
    groups = tuple(
        ConversionRate(key=k, leads=n, converted=c)
        for k, (n, c) in sorted(totals.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    )
    return ConversionReport(
        start=s,
        end=e,
        as_of=read_at,
        by=grouping,
        overall=ConversionRate(key=None, leads=cohort, converted=converted),
        groups=groups,
    )


def _grouping(by: LeadGrouping | str | None) -> LeadGrouping | None:
    if by is None or isinstance(by, LeadGrouping):
        return by
    try:
        return LeadGrouping(by)
    except ValueError:
        options = ", ".join(g.value for g in LeadGrouping)
        raise ValidationError("by", by, f"expected one of {options}") from None


# -- durations --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DurationStats:
    """Count, mean and median of some durations; the statistics are None when count is 0."""

    count: int
    average: timedelta | None
    median: timedelta | None

    @classmethod
    def of(cls, durations: Iterable[timedelta]) -> DurationStats:
        values: Sequence[timedelta] = sorted(durations)
        n = len(values)
        if n == 0:
            return cls(count=0, average=None, median=None)
        mid = n // 2
        median = values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2
        return cls(count=n, average=sum(values, timedelta()) / n, median=median)


@attrs.frozen(kw_only=True)
class StageDurations:
    """Time spent in each stage over stays that ended in the period (every stage present;
    Converted, which is never left, always has a count of 0)."""

    start: datetime | None
    end: datetime
    by_stage: Mapping[LeadStage, DurationStats]

    def __getitem__(self, stage: LeadStage) -> DurationStats:
        return self.by_stage[stage]


def stage_durations(
    leads: Iterable[Lead], *, end: Moment, start: Moment | None = None
) -> StageDurations:
    """Average and median time in each stage, over the stays that ended in ``[start, end)``
    (from the beginning when ``start`` is None). A stay ends when the lead moves on; stays
    still running at ``end`` are left out, as their length is not known yet."""
    if start is None:
        s, e = None, as_moment(end, "end")
    else:
        s, e = _period(start, end)
    spans: dict[LeadStage, list[timedelta]] = {stage: [] for stage in LeadStage}
    for lead in leads:
        for stay in lead.stays():
            left = stay.exited_at
            if left is not None and left < e and (s is None or left >= s):
                spans[stay.stage].append(left - stay.entered_at)
    return StageDurations(
        start=s,
        end=e,
        by_stage=MappingProxyType({stage: DurationStats.of(v) for stage, v in spans.items()}),
    )


def time_to_conversion(leads: Iterable[Lead], *, start: Moment, end: Moment) -> DurationStats:
    """From creation to conversion, over the leads converted in ``[start, end)``."""
    s, e = _period(start, end)
    return DurationStats.of(
        lead.converted_at - lead.created_at
        for lead in leads
        if lead.converted_at is not None and s <= lead.converted_at < e
    )


# -- lost reasons -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LostReasonCount:
    reason: str
    count: int
    share: Decimal  # of all losses in the period, 0..1


@attrs.frozen(kw_only=True)
class LostReasons:
    """Moves to Lost in ``[start, end)`` by reason, most frequent first (ties by reason)."""

    start: datetime
    end: datetime
    total: int
    reasons: tuple[LostReasonCount, ...]

    def count(self, reason: str) -> int:
        return next((r.count for r in self.reasons if r.reason == reason), 0)


def lost_reasons(leads: Iterable[Lead], *, start: Moment, end: Moment) -> LostReasons:
    """Every move to Lost in the period counts, so a lead lost, reopened and lost again
    counts twice. Reasons are grouped exactly as recorded (trimmed): use a fixed
    vocabulary for a meaningful breakdown."""
    s, e = _period(start, end)
    counter: Counter[str] = Counter(
        t.lost_reason
        for lead in leads
        for t in lead.history
        if t.lost_reason is not None and s <= t.at < e
    )
    total = sum(counter.values())
    return LostReasons(
        start=s,
        end=e,
        total=total,
        reasons=tuple(
            LostReasonCount(reason=r, count=c, share=_DIVIDE.divide(Decimal(c), Decimal(total)))
            for r, c in sorted(counter.items(), key=lambda rc: (-rc[1], rc[0]))
        ),
    )


# -- open pipeline value ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PipelineValue:
    """Sum of the expected monthly value of the leads open at ``at``.

    ``open_leads`` counts every open lead, ``valued_leads`` those with an expected value
    (the others add nothing to ``total``).
    """

    at: datetime
    total: Money
    open_leads: int
    valued_leads: int


def open_pipeline_value(
    leads: Iterable[Lead], *, currency: str, at: Moment, fx: FxRates | None = None
) -> PipelineValue:
    """Exact sum in ``currency`` of the open leads' expected values.

    Values in another currency are converted through ``fx`` at the rate of ``at``'s date;
    without ``fx`` they raise :class:`~revcrm.errors.CurrencyMismatchError` rather than
    being added as plain numbers. The value is each lead's current estimate (not versioned).
    """
    check_currency(currency, "currency")
    moment = as_moment(at, "at")
    total = Money.zero(currency)
    open_leads = valued = 0
    for lead in leads:
        stage = lead.stage_at(moment)
        if stage is None or not stage.is_open:
            continue
        open_leads += 1
        value = lead.expected_value
        if value is None:
            continue
        if value.currency != currency:
            if fx is None:
                raise CurrencyMismatchError(currency, value.currency, "add")
            value = fx.convert(value, currency, on=moment.date())
        total += value
        valued += 1
    return PipelineValue(at=moment, total=total, open_leads=open_leads, valued_leads=valued)


# -- text rendering ---------------------------------------------------------------------------

_PERCENT: Final = Decimal("0.1")


def _percent(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{(value * 100).quantize(_PERCENT, rounding=ROUND_HALF_EVEN)}%"


def format_funnel(
    result: Funnel,
    *,
    conversion: ConversionReport | None = None,
    pipeline_value: PipelineValue | None = None,
) -> str:
    """A plain-text table of a funnel, optionally followed by a conversion report and the
    open pipeline value. Shares are rounded half-even to 0.1% for display only."""
    width = max(len(s.value) for s in LeadStage) + 2
    lines = [
        f"Lead funnel at {result.at:%Y-%m-%d %H:%M} UTC",
        f"{'Stage':<{width}}{'Leads':>7}{'Share':>9}",
    ]
    for stage, count in result.counts.items():
        lines.append(
            f"{stage.value.capitalize():<{width}}{count:>7}{_percent(result.share(stage)):>9}"
        )
    whole = Decimal(1) if result.total else None
    lines.append(f"{'Total':<{width}}{result.total:>7}{_percent(whole):>9}")
    if conversion is not None:
        c = conversion
        lines.append("")
        lines.append(
            f"Conversion of leads created {c.start:%Y-%m-%d} to {c.end:%Y-%m-%d}"
            f" (read {c.as_of:%Y-%m-%d}): {c.overall.converted}/{c.overall.leads}"
            f" = {_percent(c.overall.rate)}"
        )
        labels = [g.key if g.key is not None else "(none)" for g in c.groups]
        label_width = max([width - 2, *(len(label) + 1 for label in labels)])
        for label, g in zip(labels, c.groups, strict=True):
            ratio = f"{g.converted}/{g.leads}"
            lines.append(f"  {label:<{label_width}}{ratio:>7}{_percent(g.rate):>9}")
    if pipeline_value is not None:
        v = pipeline_value
        lines.append("")
        lines.append(
            f"Open pipeline value: {v.total.rounded_amount()} {v.total.currency} per month"
            f" ({v.valued_leads} of {v.open_leads} open leads valued)"
        )
    return "\n".join(lines)
