"""MRR and ARR at a moment, from a book or an analysis."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from revcrm._money import Money
from revcrm._time import as_moment
from revcrm.metrics._engine import MrrAnalysis
from revcrm.metrics._inputs import BookOrAnalysis, book_args, check_analysis_args
from revcrm.metrics._mrr import mrr as _book_mrr
from revcrm.metrics._policy import MetricsPolicy

__all__ = ["arr", "mrr"]


def mrr(
    source: BookOrAnalysis,
    *,
    at: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    customer_ids: Iterable[str] | None = None,
) -> Money:
    """Total MRR at moment ``at`` (changes effective at ``at`` included).

    ``source`` is a :class:`~revcrm.Book` (MRR from its subscriptions, converted to the
    required ``currency`` through ``book.fx`` with ``policy``, the default policy unless
    given) or an :class:`~revcrm.metrics.MrrAnalysis` (its own currency, policy and MRR
    source: invoice-sourced analyses count invoice lines). A missing exchange rate raises
    :class:`revcrm.errors.MissingRateError`: amounts in different currencies are never
    summed as plain numbers.
    """
    if isinstance(source, MrrAnalysis):
        check_analysis_args(source, currency, policy)
        return source.mrr(as_moment(at, "at"), customer_ids=customer_ids)
    cur, pol = book_args(source, currency, policy)
    return _book_mrr(source, at=at, currency=cur, policy=pol, customer_ids=customer_ids)


def arr(
    source: BookOrAnalysis,
    *,
    at: date | datetime,
    currency: str | None = None,
    policy: MetricsPolicy | None = None,
    customer_ids: Iterable[str] | None = None,
) -> Money:
    """Annual run rate: ``12 x`` :func:`mrr` at moment ``at`` (same arguments), exact."""
    return mrr(source, at=at, currency=currency, policy=policy, customer_ids=customer_ids) * 12
