"""Orderings of the ledger's rows by two integer keys, as one sort where it can."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["lex_order"]

I64 = npt.NDArray[np.int64]


def lex_order(major: npt.NDArray[np.integer[Any]], minor: I64) -> I64:
    """``np.lexsort((minor, major))`` (stable: ties keep their order) in one stable sort of
    a combined key when it fits an int64: each key in steps of its common divisor above its
    least value (moments of invoice lines are whole days, customers are small indices)."""
    if major.size > 1:
        wide = max(int(k.max()) - int(k.min()) for k in (major, minor)) >= 2**62
        a, a_span = (major, 0) if wide else _dense_steps(major.astype(np.int64))
        b, b_span = (minor, 0) if wide else _dense_steps(minor)
        if not wide and a_span * b_span < 2**62:
            order: I64 = np.argsort(a * b_span + b, kind="stable")
            return order
    fallback: I64 = np.lexsort((minor, major))
    return fallback


def _dense_steps(x: I64) -> tuple[I64, int]:
    """``(x - min) // step`` (``step`` the gcd of those differences) and its span."""
    shifted = x - int(x.min())  # below 2**62: checked by the caller
    step = int(np.gcd.reduce(shifted)) or 1
    if step > 1:
        shifted = shifted // step
    return shifted, int(shifted.max()) + 1
