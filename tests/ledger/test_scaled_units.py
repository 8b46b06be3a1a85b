"""The ledger's exact scaling of amounts (``_ledger._cash._scaled``, shared by the cash
entries and the invoice rows): the products are exact whatever the operands' sizes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from revcrm._ledger._cash import _scaled


def test_all_zero_values_times_a_factor_beyond_int64() -> None:
    # The product bound is 0, but the factor alone does not fit an int64 array (it
    # raised OverflowError before).
    for factor in (10**19, 10**28, -(10**30)):
        got = _scaled([0, 0], [factor, factor])
        assert [int(v) for v in got] == [0, 0]


@given(
    st.lists(
        st.tuples(st.integers(-(10**30), 10**30), st.integers(-(10**30), 10**30)),
        min_size=1,
        max_size=6,
    )
)
def test_products_are_exact(pairs: list[tuple[int, int]]) -> None:
    values = [v for v, _ in pairs]
    factors = [f for _, f in pairs]
    assert [int(v) for v in _scaled(values, factors)] == [v * f for v, f in pairs]


def test_small_operands_stay_int64() -> None:
    assert _scaled([3, -4], [10**6, 10**6]).dtype.kind == "i"
