"""Every MrrAnalysis query of the engine compared with the Decimal oracle, exactly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from revcrm import Book, Money
from revcrm.metrics import Frequency, MetricsPolicy, MrrSource, analyse
from tests.ledger import _oracle_engine as oracle

START = datetime(2017, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)


def cents(value: Money | Decimal, currency: str) -> Decimal:
    """The exact amount: the ledger's units are fine enough (digits chosen per analysis)
    that its figures equal the Decimal oracle's exactly, so to the cent a fortiori."""
    return value.amount if isinstance(value, Money) else value


def _movement(m: Any, cur: str) -> tuple[Any, ...]:
    return (m.customer_id, m.at, m.kind.value, cents(m.amount, cur), m.subscription_ids)


def _waterfall(w: Any, cur: str) -> tuple[Any, ...]:
    names = ("start_mrr", "new", "expansion", "reactivation", "contraction", "churn")
    money = tuple(cents(getattr(w, n), cur) for n in (*names, "fx_impact", "end_mrr"))
    return (w.start, w.end, w.movement_count, *money)


def _first_difference(got: list[Any], want: list[Any]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"[{i}] engine {g} != oracle {w}"
    return f"lengths {len(got)} != {len(want)}"


def moments_of(old: oracle.MrrAnalysis) -> list[datetime]:
    """Every event moment of the book, a microsecond either side, and a few fixed dates."""
    out = {START, END, datetime(2021, 6, 15, tzinfo=UTC)}
    for events in old._events.values():
        for e in events[:6]:
            out.update((e.at, e.at - timedelta(microseconds=1), e.at + timedelta(seconds=1)))
    return sorted(out)


def compare(book: Book, currency: str, policy: MetricsPolicy, source: MrrSource) -> None:
    _compare(book, currency, policy, source)


def _compare(book: Book, currency: str, policy: MetricsPolicy, source: MrrSource) -> None:
    """Assert that the engine answers every query as the oracle does (money to the cent)."""
    new = analyse(book, currency=currency, policy=policy, source=source)
    old = oracle.analyse(book, currency=currency, policy=policy, source=source)
    c = currency
    assert new.horizon == old.horizon
    assert new.customer_ids == old.customer_ids
    moments = moments_of(old)
    sample: Sequence[datetime] = moments[:: max(1, len(moments) // 12)]

    for every in (Frequency.MONTH, Frequency.QUARTER):
        got = [(p.start, p.end, cents(p.mrr, c)) for p in new.series(START, END, every)]
        want = [(p.start, p.end, cents(p.mrr, c)) for p in old.series(START, END, every)]
        assert got == want, _first_difference(got, want)

    falls = new.waterfalls(START, END, Frequency.QUARTER)
    for w in falls:  # exact, not to the cent
        assert w.start_mrr + w.net_movements + w.fx_impact == w.end_mrr
    assert [_waterfall(w, c) for w in falls] == [
        _waterfall(w, c) for w in old.waterfalls(START, END, Frequency.QUARTER)
    ]
    one = new.waterfall(START, END)
    assert one.start_mrr + one.net_movements + one.fx_impact == one.end_mrr
    assert _waterfall(one, c) == _waterfall(old.waterfall(START, END), c), (
        _waterfall(one, c),
        _waterfall(old.waterfall(START, END), c),
    )

    assert [_movement(m, c) for m in new.movements(START, END)] == [
        _movement(m, c) for m in old.movements(START, END)
    ]
    bounds = [START, *sample, END]
    bounds = sorted(set(bounds))
    assert [(r, _movement(m, c)) for r, m in new._movements(bounds)] == [
        (r, _movement(m, c)) for r, m in old._movements(bounds)
    ]

    ids = old.customer_ids
    for at in sample:
        assert cents(new.mrr(at), c) == cents(old.mrr(at), c)
        assert cents(new.mrr_before(at), c) == cents(old.mrr_before(at), c)
        assert cents(new.mrr(at, customer_ids=ids[:2]), c) == cents(
            old.mrr(at, customer_ids=ids[:2]), c
        )
        got_with = {k: cents(v, c) for k, v in new.customers_with_mrr(at).items()}
        want_with = {k: cents(v, c) for k, v in old.customers_with_mrr(at).items()}
        assert got_with == want_with
        for inclusive in (False, True):
            assert sorted(new.customer_states(at, inclusive=inclusive)) == sorted(
                old.customer_states(at, inclusive=inclusive)
            )
    for cid in ids:
        for at in sample[:4]:
            assert cents(new.customer_mrr(cid, at), c) == cents(old.customer_mrr(cid, at), c)
        got_levels = [(cents(v, c), k) for v, k in new.customer_levels(cid, moments)]
        want_levels = [(cents(v, c), k) for v, k in old.customer_levels(cid, moments)]
        assert got_levels == want_levels
        assert [(t, cents(v, c)) for t, v in new.customer_timeline(cid)] == [
            (t, cents(v, c)) for t, v in old.customer_timeline(cid)
        ]
    for subset in (None, ids[:1]):
        got_counts, got_sums = new.profile_at(moments, subset)
        want_counts, want_sums = old.profile_at(moments, subset)
        assert got_counts == want_counts
        assert [cents(v, c) for v in got_sums] == [cents(v, c) for v in want_sums]
    assert new.first_paid() == old.first_paid()
    assert new.customer_mrr("nobody", END).amount == 0
