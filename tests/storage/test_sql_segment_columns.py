"""The SQL store's columnar segment facts at the money edges: amounts its integer limbs
hold, amounts with more places than they hold or too large for them (summed through the
exact aggregate instead), refunds, and customers lacking a rate (from their records):
High Value and the LTV baseline equal the pure segmentation's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from revcrm import Book, Money
from revcrm.segments import Segment, segmentation
from revcrm.storage import SQLStore

from .._builders import customer, payment, service, t

AS_OF = t(2024, 3, 1)

_AMOUNTS = {
    "cents": ("10.25", "3.10"),
    "many places": ("7.000000000000000000000000000000000000000000000000000001", "7"),
    "beyond the limbs": ("12" + "0" * 37, "5" + "0" * 36),
    "refunded": ("100", "-40.5"),
}


@pytest.mark.parametrize("amounts", list(_AMOUNTS.values()), ids=list(_AMOUNTS))
def test_sql_high_value_and_baseline_equal_the_pure_segmentation(
    amounts: tuple[str, str],
) -> None:
    big, small = (Decimal(a) for a in amounts)
    txs = [payment("p1", "a", Money(big, "USD"), t(2024, 2, 1))]
    if small < 0:
        txs.append(payment("r1", "a", Money(-small, "USD"), t(2024, 2, 2), kind="refund"))
        txs.append(payment("p2", "b", Money(Decimal(30), "USD"), t(2024, 2, 1)))
    else:
        txs.append(payment("p2", "b", Money(small, "USD"), t(2024, 2, 1)))
    book = Book.of(
        customers=[customer("a"), customer("b"), customer("c")],
        subscriptions=[
            service("sa", "a", Money(Decimal(10), "USD"), at=t(2024, 1, 1)),
            service("sb", "b", Money(Decimal(10), "USD"), at=t(2024, 1, 1)),
        ],
        transactions=txs,
    )
    pure = segmentation(book, as_of=AS_OF, currency="USD")
    store = SQLStore("sqlite://")
    store.create_schema()
    store.import_book(book)
    assert store.ltv_baseline(as_of=AS_OF, currency="USD") == pure.ltv_baseline
    counts = store.segment_counts(as_of=AS_OF, currency="USD")
    assert counts == pure.counts()
    got = store.segments_of(["a", "b", "c"], as_of=AS_OF, currency="USD")
    assert got == {cid: pure.segments_of(cid) for cid in ("a", "b", "c")}
    assert Segment.HIGH_VALUE in got["a"]
