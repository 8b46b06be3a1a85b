"""On the demo book, Active means paid up on the customer's own cycle (issue 18)."""

from __future__ import annotations

from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm.segments import Segment, SegmentConfig, segmentation
from revcrm.storage import SQLStore

from . import _reference as ref


def test_every_paying_customer_paid_up_on_its_cycle_is_active_or_high_value() -> None:
    book = demo_book()
    seg = segmentation(book, as_of=DEMO_AS_OF, currency="USD")
    paid_up = [
        c.id
        for c in book.customers
        if ref.paid_ever(book, c.id, DEMO_AS_OF) and ref.active(book, c.id, DEMO_AS_OF, None)
    ]
    assert len(paid_up) > 200
    for cid in paid_up:
        assert seg.segments_of(cid) & {Segment.ACTIVE, Segment.HIGH_VALUE}, cid
    # OTHER is rare, and each member's reason names every segment it missed.
    others = seg.customers_in(Segment.OTHER)
    assert len(others) <= 5
    for cid in others:
        assert seg.facts[cid].active_services == 0
        reason = seg.other_reason(cid)
        assert reason is not None
        assert reason.count("\n") == 5
    # The fixed 35-day window of earlier versions left 56 customers in OTHER.
    fixed = segmentation(
        book, as_of=DEMO_AS_OF, currency="USD", config=SegmentConfig(active_payment_days=35)
    )
    assert len(fixed.customers_in(Segment.OTHER)) == 56
    # A monthly payer behaves as before: nobody Active under the old window is lost.
    assert set(fixed.customers_in(Segment.ACTIVE)) <= set(seg.customers_in(Segment.ACTIVE))


def test_the_sql_store_agrees_on_the_demo_book() -> None:
    book = demo_book(120)
    store = SQLStore("sqlite://")
    store.create_schema()
    try:
        store.import_book(book)
        pure = segmentation(book, as_of=DEMO_AS_OF, currency="USD", policy=store.policy)
        assert store.segment_counts(as_of=DEMO_AS_OF, currency="USD") == pure.counts()
        ids = [c.id for c in book.customers]
        got = store.segments_of(ids, as_of=DEMO_AS_OF, currency="USD")
        assert got == {cid: pure.segments_of(cid) for cid in ids}
    finally:
        store.close()
