"""Lead pipeline micro-benchmark: creating a lead and moving it through three transitions.

    .venv/bin/python benchmarks/bench_leads.py [--iterations 20000] [--leads 1000 10000]

Prints microseconds per lead creation and per transition (New -> Contacted -> Qualified ->
Converted) for revcrm's table-driven move, and for a naive alternative in the same run:
``attrs.evolve`` of the whole lead, which re-runs every field validator and replays the
history on each move. Then the cost of rebuilding a lead from its stored records, of
building a Pipeline and adding one lead to it, and of the funnel over many leads. Each figure is the best of
five repeats. The target is under 20 microseconds per transition; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from revcrm import Money
from revcrm.leads import (
    Lead,
    LeadStage,
    LeadTransition,
    Pipeline,
    ReferralSource,
    conversion_rate,
    funnel,
)

T0 = datetime(2024, 1, 1, 9, tzinfo=UTC)
T1, T2, T3 = T0 + timedelta(days=1), T0 + timedelta(days=3), T0 + timedelta(days=9)
VALUE = Money("49.90", "EUR")
SOURCE = ReferralSource.campaign("spring")
REPEATS = 5


def best_per_call(fn: Callable[[], object], iterations: int) -> float:
    """Best of REPEATS runs, in microseconds per call of ``fn``."""
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / iterations * 1e6


def create(lead_id: str = "L1", email: str = "ann@example.com") -> Lead:
    return Lead(
        id=lead_id,
        email=email,
        created_at=T0,
        name="Ann Lee",
        source=SOURCE,
        owner_id="staff-1",
        expected_value=VALUE,
    )


def three_moves(lead: Lead) -> Lead:
    return (
        lead.contact(at=T1, staff_id="staff-1")
        .qualify(at=T2, staff_id="staff-1")
        .convert("cus-1", at=T3, staff_id="staff-1")
    )


def naive_move(lead: Lead, to: LeadStage, at: datetime, **extra: str) -> Lead:
    """What a move costs without the fast path: a fully validated copy of the lead."""
    t = LeadTransition(from_stage=lead.stage, to_stage=to, at=at, staff_id="staff-1", **extra)
    return attrs.evolve(lead, history=(*lead.history, t))


def naive_three_moves(lead: Lead) -> Lead:
    lead = naive_move(lead, LeadStage.CONTACTED, T1)
    lead = naive_move(lead, LeadStage.QUALIFIED, T2)
    return naive_move(lead, LeadStage.CONVERTED, T3, customer_id="cus-1")


def many_leads(n: int) -> list[Lead]:
    out = []
    for i in range(n):
        lead = create(f"L{i:06d}", f"lead{i}@example.com")
        if i % 3:
            lead = lead.contact(at=T1)
        if i % 3 == 2:
            lead = lead.qualify(at=T2)
        if i % 5 == 0:
            lead = lead.lose("price", at=T3)
        elif i % 7 == 0:
            lead = lead.convert(f"cus-{i}", at=T3)
        out.append(lead)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("--leads", type=int, nargs="*", default=[1_000, 10_000])
    args = parser.parse_args()
    n = args.iterations

    base = create()
    created = best_per_call(create, n)
    moved = best_per_call(lambda: three_moves(base), n)
    naive = best_per_call(lambda: naive_three_moves(base), n)
    long_history = base
    for day in range(30):  # a lead lost and reopened 15 times: 30 moves
        at = T0 + timedelta(days=day)
        long_history = (
            long_history.lose("no answer", at=at) if day % 2 == 0 else long_history.reopen(at=at)
        )
    one_more = best_per_call(lambda: long_history.contact(at=T3 + timedelta(days=30)), n)
    one_more_naive = best_per_call(
        lambda: naive_move(long_history, LeadStage.CONTACTED, T3 + timedelta(days=30)), n
    )
    done = three_moves(base)
    record, rows = done.to_record(), done.transition_records()
    loaded = best_per_call(lambda: Lead.from_record(record, rows), n)

    print(f"lead benchmark, {n} iterations, best of {REPEATS} (microseconds)")
    print(f"  create a lead (validated constructor)           {created:8.2f}")
    print(f"  per transition, table-driven move               {moved / 3:8.2f}")
    print(f"  per transition, naive attrs.evolve              {naive / 3:8.2f}")
    print(f"  create + 3 transitions, table-driven            {created + moved:8.2f}")
    print(f"  one more move after 30 moves, table-driven      {one_more:8.2f}")
    print(f"  one more move after 30 moves, naive             {one_more_naive:8.2f}")
    print(f"  rebuild from records (3 moves, full replay)     {loaded:8.2f}")
    target = "met" if moved / 3 < 20 else "NOT met"
    print(f"  target < 20 us per transition: {target}")

    for size in args.leads:
        leads = many_leads(size)
        start = time.perf_counter()
        pipeline = Pipeline.of(leads)
        built = time.perf_counter() - start
        extra = create("L-extra", "extra@example.com")
        add = best_per_call(functools.partial(pipeline.add, extra), max(1, n // size))
        start = time.perf_counter()
        counts = funnel(pipeline, at=T3 + timedelta(days=1))
        conversion_rate(pipeline, start=T0, end=T3, by="owner")
        analysed = time.perf_counter() - start
        print(
            f"{size:>7} leads: Pipeline.of {built * 1e3:6.1f} ms,"
            f" one add {add:8.1f} us (copies the indexes),"
            f" funnel + conversion by owner {analysed * 1e3:6.1f} ms ({counts.total} leads)"
        )


if __name__ == "__main__":
    main()
