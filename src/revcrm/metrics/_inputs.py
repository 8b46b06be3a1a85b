"""What every metric takes and gives back in common: a book or an analysis in, rates out.

A metric that needs only MRR takes either a :class:`~revcrm.Book` (with ``currency`` and
``policy``: MRR from the subscriptions, as before) or an :class:`MrrAnalysis` (its
currency, policy and MRR source: pass ``analyse(book, source="invoices")`` for a book
whose recurring revenue is only on invoices). A metric that also needs the book's records
(products, referral sources) takes the book and an optional ``analysis=``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

import attrs

from revcrm._book import Book
from revcrm._money import check_currency, divide
from revcrm.errors import ValidationError
from revcrm.metrics._engine import MrrAnalysis, MrrSource, analyse
from revcrm.metrics._mrr import DEFAULT_POLICY
from revcrm.metrics._policy import MetricsPolicy

__all__ = ["BookOrAnalysis", "Rate", "rate_of"]

#: The first argument of a metric that needs only MRR.
BookOrAnalysis: TypeAlias = Book | MrrAnalysis


@attrs.frozen(kw_only=True)
class Rate:
    """A rate or ratio: ``value = numerator / denominator``, ``None`` when the denominator
    is zero (never 0, never an exception).

    Every metric that returns a bare rate returns this (``quick_ratio``,
    ``customer_retention_rate``, ``ltv_to_cac``, ``cac_payback_months``); results holding
    several figures (:class:`ChurnRate`, :class:`TrialConversion`) have a ``value`` too.
    ``value`` is exact when the quotient terminates, else it carries
    ``DIVISION_PRECISION`` significant digits; ``numerator`` and ``denominator`` are kept
    so a report can show how it was obtained (amounts as plain decimals in the result's
    currency).
    """

    numerator: Decimal
    denominator: Decimal
    value: Decimal | None


def rate_of(numerator: int | Decimal, denominator: int | Decimal) -> Rate:
    """``Rate(numerator / denominator)`` under Money's division rule."""
    n, d = Decimal(numerator), Decimal(denominator)
    return Rate(numerator=n, denominator=d, value=None if d == 0 else divide(n, d))


def check_analysis_args(
    analysis: MrrAnalysis, currency: str | None, policy: MetricsPolicy | None
) -> None:
    """An analysis carries its currency and policy: a different one passed alongside is a
    mistake (the figures would silently follow the analysis), so it is refused."""
    if currency is not None and currency != analysis.currency:
        raise ValidationError(
            "currency", currency, f"the analysis is in {analysis.currency}; leave currency out"
        )
    if policy is not None and policy != analysis.policy:
        raise ValidationError(
            "policy", policy, "the analysis was made with another policy; leave policy out"
        )


def book_args(
    book: Book, currency: str | None, policy: MetricsPolicy | None
) -> tuple[str, MetricsPolicy]:
    """The currency (required with a book) and policy (default when None) of the book form."""
    if not isinstance(book, Book):
        raise ValidationError("book", type(book).__name__, "expected a Book or an MrrAnalysis")
    if currency is None:
        raise ValidationError("currency", None, "required with a book (or pass an analysis)")
    check_currency(currency)
    if policy is not None and not isinstance(policy, MetricsPolicy):
        raise ValidationError("policy", type(policy).__name__, "expected a MetricsPolicy")
    return currency, DEFAULT_POLICY if policy is None else policy


def analysis_of(
    source: BookOrAnalysis,
    *,
    currency: str | None,
    policy: MetricsPolicy | None,
    horizon: datetime | None = None,
) -> MrrAnalysis:
    """``source`` itself when it is an analysis, else the book analysed from subscriptions."""
    if isinstance(source, MrrAnalysis):
        check_analysis_args(source, currency, policy)
        return source
    cur, pol = book_args(source, currency, policy)
    return analyse(source, currency=cur, policy=pol, horizon=horizon)


def invoice_source(analysis: MrrAnalysis) -> bool:
    return analysis.source is MrrSource.INVOICES
