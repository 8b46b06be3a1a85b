"""The columnar segment rules (``rule_masks`` over ``RuleColumns``) against the
per-customer rules they replaced, copied here as the oracle, on generated facts.

The facts are drawn at and around every threshold's edge (a microsecond either side of
``as_of - N days``, of a cycle back, of the grace), LTVs at several scales (whole units,
cents, more places, beyond int64) and baselines of any sign, so an off-by-one, a
rounding or a wrong "any service" reduction in the columns would show.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from revcrm import Money
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._ledger._reach import reach_columns, service_reach
from revcrm._money import EXACT_CONTEXT
from revcrm.segments import PRECEDENCE, LtvBaseline, Segment, SegmentConfig
from revcrm.segments._rules import (
    SegmentInputs,
    ServiceFacts,
    active_window_start,
    is_active,
    memberships,
    primary_of,
    reach_at,
    rule_columns,
    rule_masks,
    segment_sets,
    service_paid_up,
)
from revcrm.testing import strategies as rs
from revcrm.testing.strategies import moments_near

AS_OF = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
_US = timedelta(microseconds=1)

# -- the oracle: the per-customer rules as they were -------------------------------------


def _old_exceeded_by(baseline: LtvBaseline, ltv: Money) -> bool:
    if baseline.paying_customers == 0:
        return False
    scaled = EXACT_CONTEXT.multiply(ltv.amount, Decimal(baseline.paying_customers))
    return bool(scaled > baseline.total.amount)


def _old_paid_up(
    service: ServiceFacts, last_payment_at: datetime | None, at: datetime, config: SegmentConfig
) -> bool:
    since = at - timedelta(days=config.active_grace_days)
    if service.billed_through is not None and service.billed_through > since:
        return service.paid_through is not None and service.paid_through > since
    return last_payment_at is not None and last_payment_at >= (
        service.cycle.advance(at, -1) - timedelta(days=config.active_grace_days)
    )


def _old_is_active(f: SegmentInputs, config: SegmentConfig) -> bool:
    if f.active_services <= 0:
        return False
    if config.active_payment_days is not None:
        return f.last_payment_at is not None and f.last_payment_at >= f.as_of - timedelta(
            days=config.active_payment_days
        )
    return any(_old_paid_up(s, f.last_payment_at, f.as_of, config) for s in f.services)


def _old_memberships(
    f: SegmentInputs, config: SegmentConfig, baseline: LtvBaseline
) -> frozenset[Segment]:
    out: set[Segment] = set()
    if (
        f.overdue_invoices > 0
        or f.troubled_services > 0
        or (
            f.next_cancellation_at is not None
            and f.next_cancellation_at <= f.as_of + timedelta(days=config.at_risk_cancellation_days)
        )
    ):
        out.add(Segment.AT_RISK)
    if f.active_services > 0 and _old_exceeded_by(baseline, f.ltv):
        out.add(Segment.HIGH_VALUE)
    if f.as_of - timedelta(days=config.new_customer_days) <= f.registered_at <= f.as_of:
        out.add(Segment.NEW)
    if _old_is_active(f, config):
        out.add(Segment.ACTIVE)
    if f.subscriber_since is not None and f.active_services == 0:
        out.add(Segment.CHURNED)
    if not f.ordered:
        out.add(Segment.NEVER_PURCHASED)
    return frozenset(out or {Segment.OTHER})


# -- generated facts ---------------------------------------------------------------------

_CONFIGS = st.builds(
    SegmentConfig,
    active_payment_days=st.sampled_from((None, None, None, 0, 1, 35)),
    active_grace_days=st.sampled_from((0, 7, 30)),
    at_risk_cancellation_days=st.sampled_from((0, 14)),
    new_customer_days=st.sampled_from((0, 30)),
)
_CYCLES = st.sampled_from(
    (
        BillingCycle.MONTHLY,
        BillingCycle.QUARTERLY,
        BillingCycle.ANNUAL,
        BillingCycle(12, CycleUnit.MONTH),
        BillingCycle(2, CycleUnit.WEEK),
        BillingCycle(10, CycleUnit.DAY),
    )
)


def _edges(config: SegmentConfig) -> list[datetime]:
    days = {0, 1, config.active_grace_days, config.new_customer_days, 31, 92, 366}
    days |= {config.at_risk_cancellation_days}
    if config.active_payment_days is not None:
        days.add(config.active_payment_days)
    marks = [AS_OF + timedelta(days=d) * sign for d in days for sign in (1, -1)]
    for cycle in (BillingCycle.MONTHLY, BillingCycle.QUARTERLY, BillingCycle.ANNUAL):
        marks.append(active_window_start(cycle, AS_OF, config))
        marks.append(cycle.advance(AS_OF, -1))
    return [m + d for m in marks for d in (-_US, timedelta(0), _US)]


def _moment(config: SegmentConfig) -> st.SearchStrategy[datetime]:
    edges = st.sampled_from(_edges(config))
    return st.one_of(
        edges,
        edges,
        st.integers(-400 * 86_400, 60 * 86_400).map(lambda s: AS_OF + timedelta(seconds=s)),
    )


def _optional(config: SegmentConfig) -> st.SearchStrategy[datetime | None]:
    return st.one_of(st.none(), _moment(config))


_AMOUNTS = st.one_of(
    st.integers(-(10**6), 10**6).map(Decimal),
    st.integers(-(10**8), 10**8).map(lambda c: Decimal(c).scaleb(-2)),
    st.integers(-(10**12), 10**12).map(lambda c: Decimal(c).scaleb(-7)),
    st.integers(-(10**30), 10**30).map(lambda c: Decimal(c).scaleb(-3)),
)


@st.composite
def _facts(draw: st.DrawFn, config: SegmentConfig) -> SegmentInputs:
    services = tuple(
        ServiceFacts(
            subscription_id=f"s{k}",
            cycle=draw(_CYCLES),
            period_start=AS_OF - timedelta(days=1),
            period_end=AS_OF + timedelta(days=1),
            billed_through=draw(_optional(config)),
            paid_through=draw(_optional(config)),
        )
        for k in range(draw(st.integers(0, 3)))
    )
    return SegmentInputs(
        as_of=AS_OF,
        registered_at=draw(_moment(config)),
        ltv=Money(draw(_AMOUNTS), "USD"),
        last_payment_at=draw(_optional(config)),
        active_services=draw(st.integers(0, 2)) if services else draw(st.integers(0, 1)),
        troubled_services=draw(st.integers(0, 1)),
        overdue_invoices=draw(st.sampled_from((0, 0, 1, 2))),
        next_cancellation_at=draw(_optional(config)),
        subscriber_since=draw(_optional(config)),
        ordered=draw(st.booleans()),
        services=services,
    )


_BASELINES = st.builds(
    lambda total, n: LtvBaseline(total=Money(total, "USD"), paying_customers=n),
    _AMOUNTS,
    st.sampled_from((0, 1, 2, 3, 7)),
)


@given(st.data())
def test_the_columnar_rules_equal_the_per_customer_rules(data: st.DataObject) -> None:
    config = data.draw(_CONFIGS)
    baseline = data.draw(_BASELINES)
    facts: Sequence[SegmentInputs] = data.draw(st.lists(_facts(config), max_size=20))
    expected = [_old_memberships(f, config, baseline) for f in facts]
    masks = rule_masks(rule_columns(facts, as_of=AS_OF, currency="USD"), config, baseline)
    assert segment_sets(masks) == expected
    # A batch of one (the public per-customer functions) is the same rule.
    assert [memberships(f, config, baseline) for f in facts] == expected
    assert [is_active(f, config) for f in facts] == [_old_is_active(f, config) for f in facts]
    for f in facts:
        for s in f.services:
            got = service_paid_up(s, f.last_payment_at, AS_OF, config)
            assert got == _old_paid_up(s, f.last_payment_at, AS_OF, config)
        assert baseline.exceeded_by(f.ltv) == _old_exceeded_by(baseline, f.ltv)
    primary = primary_of(masks, PRECEDENCE).tolist()
    assert [PRECEDENCE[k] for k in primary] == [
        next(p for p in PRECEDENCE if p in segs) for segs in expected
    ]


@given(_CONFIGS, _BASELINES)
def test_every_edge_moment_in_every_field_is_decided_as_before(
    config: SegmentConfig, baseline: LtvBaseline
) -> None:
    # Deterministic over the edges: each moment of _edges in each moment field at once,
    # with services of each cycle billed / paid to it, and a payment there.
    facts = []
    for m in _edges(config):
        for cycle in (BillingCycle.MONTHLY, BillingCycle.ANNUAL, BillingCycle(10, CycleUnit.DAY)):
            for billed, paid in ((None, None), (m, None), (m, m), (AS_OF, m)):
                service = ServiceFacts(
                    subscription_id="s",
                    cycle=cycle,
                    period_start=AS_OF,
                    period_end=AS_OF,
                    billed_through=billed,
                    paid_through=paid,
                )
                facts.append(
                    SegmentInputs(
                        as_of=AS_OF,
                        registered_at=m,
                        ltv=Money(Decimal("10.00"), "USD"),
                        last_payment_at=m,
                        active_services=1,
                        troubled_services=0,
                        overdue_invoices=0,
                        next_cancellation_at=m,
                        subscriber_since=m,
                        ordered=True,
                        services=(service,),
                    )
                )
    masks = rule_masks(rule_columns(facts, as_of=AS_OF, currency="USD"), config, baseline)
    assert segment_sets(masks) == [_old_memberships(f, config, baseline) for f in facts]


def test_the_baseline_compares_beyond_int64() -> None:
    # An LTV of 10**20 units (int64 wraps at about 9.2 * 10**18) above and below it.
    baseline = LtvBaseline(total=Money(Decimal(10**20), "USD"), paying_customers=1)
    units = np.array([10**20 * 100, 10**20 * 100 + 1, -1], dtype=object)
    assert baseline.exceeded_by_units(units, 2, "USD").tolist() == [False, True, False]
    small = np.array([2**62, -(2**62)], dtype=np.int64)
    huge = LtvBaseline(total=Money(Decimal(10**30), "USD"), paying_customers=3)
    assert huge.exceeded_by_units(small, 0, "USD").tolist() == [False, False]
    tiny = LtvBaseline(total=Money(Decimal(-(10**30)), "USD"), paying_customers=3)
    assert tiny.exceeded_by_units(small, 0, "USD").tolist() == [True, True]


@given(rs.books(currencies=("USD",), max_customers=4), st.data())
def test_the_reach_columns_are_the_steps_of_each_service(book: object, data: st.DataObject) -> None:
    from revcrm import Book

    assert isinstance(book, Book)
    subs = [s.id for s in book.subscriptions]
    at = data.draw(moments_near(book))
    cols = reach_columns(book, subs)
    billed, paid = cols.at(
        int((at - datetime(1970, 1, 1, tzinfo=UTC)) / _US), np.arange(len(subs), dtype=np.int64)
    )
    for k, sub in enumerate(book.subscriptions):
        step = reach_at(
            service_reach(sub.id, book.invoices_by_customer.get(sub.customer_id, ())), at
        )
        want = (None, None) if step is None else (step.billed_through, step.paid_through)
        got = tuple(
            None if v == np.iinfo(np.int64).max else datetime(1970, 1, 1, tzinfo=UTC) + v * _US
            for v in (int(billed[k]), int(paid[k]))
        )
        assert got == want, (sub.id, at)
