"""How far each service's invoices reach over time, as steps and as columns: the one
definition of ``billed_through`` / ``paid_through``, which the cycle-aware Active segment
rule reads (:mod:`revcrm.segments._rules`) and the SQL ledger stores (``ledger_reach``).

A customer's invoices are walked once for all of its subscriptions (every line event
goes to its own subscription), then each subscription's events are folded into steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._cash import moment_us
from revcrm._ledger._services import OPEN
from revcrm._records import Invoice, InvoiceStatus

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = ["ReachColumns", "ServiceReach", "reach_columns", "service_reach", "service_reaches"]

#: (from when it counts, the line's period end, whether it counts as paid)
_Event = tuple[datetime, datetime, bool]


@attrs.frozen(kw_only=True, slots=True)
class ServiceReach:
    """How far a service's invoices reach from ``start`` until the next step (see
    :func:`service_reach`): ``billed_through`` and ``paid_through`` of
    :class:`~revcrm.segments.ServiceFacts` at every moment of the step."""

    start: datetime
    billed_through: datetime | None
    paid_through: datetime | None


def _events(invoices: Iterable[Invoice], wanted: Mapping[str, list[_Event]]) -> None:
    """Append the events of every line of ``invoices`` to its subscription's list in
    ``wanted`` (lines of other subscriptions are skipped)."""
    for inv in invoices:
        if inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            continue
        for line in inv.lines:
            sid = line.subscription_id
            if sid is None or line.period_start is None or line.period_end is None:
                continue
            events = wanted.get(sid)
            if events is None:
                continue
            billed_from = max(inv.issued_at, line.period_start)
            events.append((billed_from, line.period_end, False))
            if inv.status is InvoiceStatus.PAID:
                paid_from = billed_from if inv.paid_at is None else max(billed_from, inv.paid_at)
                events.append((paid_from, line.period_end, True))


def _steps(events: list[_Event]) -> tuple[ServiceReach, ...]:
    events.sort(key=lambda e: e[0])
    steps: list[ServiceReach] = []
    billed: datetime | None = None
    paid: datetime | None = None
    for k, (at, end, is_paid) in enumerate(events):
        if is_paid:
            paid = end if paid is None else max(paid, end)
        billed = end if billed is None else max(billed, end)
        if k + 1 < len(events) and events[k + 1][0] == at:
            continue  # every event of one moment holds from it together
        last = steps[-1] if steps else None
        if last is None or (last.billed_through, last.paid_through) != (billed, paid):
            steps.append(ServiceReach(start=at, billed_through=billed, paid_through=paid))
    return tuple(steps)


def service_reaches(
    subscription_ids: Iterable[str], invoices: Iterable[Invoice]
) -> dict[str, tuple[ServiceReach, ...]]:
    """:func:`service_reach` of each of ``subscription_ids`` over one customer's
    ``invoices``, walking them once."""
    wanted: dict[str, list[_Event]] = {sid: [] for sid in subscription_ids}
    _events(invoices, wanted)
    return {sid: _steps(events) for sid, events in wanted.items()}


def service_reach(subscription_id: str, invoices: Iterable[Invoice]) -> tuple[ServiceReach, ...]:
    """The steps of ``billed_through`` / ``paid_through`` of the service over time, by
    ``start``: a line counts from the moment its invoice is issued and its service
    period has started (for ``paid_through``: and its invoice is paid, ``paid_at`` unknown
    counting from then), so each reach only grows; before the first step both are None.
    The invoices' statuses are their current ones (a paid invoice is paid from
    ``paid_at``)."""
    return service_reaches((subscription_id,), invoices)[subscription_id]


@attrs.frozen(kw_only=True, eq=False)
class ReachColumns:
    """The steps of :func:`service_reach` of some subscriptions as parallel arrays,
    ordered by (subscription, start): ``subscription`` indexes ``subscription_ids``;
    moments in microseconds, :data:`~revcrm._ledger._services.OPEN` for None."""

    subscription_ids: tuple[str, ...]
    subscription: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    billed_through: npt.NDArray[np.int64]
    paid_through: npt.NDArray[np.int64]

    def at(
        self, t: int, subscriptions: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``billed_through`` and ``paid_through`` at moment ``t`` (microseconds) of each
        of ``subscriptions`` (indexes of ``subscription_ids``): the step holding ``t``,
        :data:`OPEN` before the first."""
        n = len(self.subscription_ids)
        holding = np.flatnonzero(self.start <= t)
        last = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last, self.subscription[holding], holding)
        row = last[subscriptions]
        found = row >= 0
        billed = np.full(len(row), OPEN, dtype=np.int64)
        paid = np.full(len(row), OPEN, dtype=np.int64)
        billed[found] = self.billed_through[row[found]]
        paid[found] = self.paid_through[row[found]]
        return billed, paid


def _us(t: datetime | None) -> int:
    return OPEN if t is None else moment_us(t)


def reach_columns(book: Book, subscription_ids: Sequence[str]) -> ReachColumns:
    """The :func:`service_reach` steps of each of ``subscription_ids`` (subscriptions of
    ``book``), each customer's invoices walked once."""
    by_id = {s.id: s for s in book.subscriptions}
    per_customer: dict[str, list[str]] = {}
    for sid in subscription_ids:
        per_customer.setdefault(by_id[sid].customer_id, []).append(sid)
    index = {sid: k for k, sid in enumerate(subscription_ids)}
    found: dict[str, tuple[ServiceReach, ...]] = {}
    for cid, subs in per_customer.items():
        found.update(service_reaches(subs, book.invoices_by_customer.get(cid, ())))
    sub: list[int] = []
    start: list[int] = []
    billed: list[int] = []
    paid: list[int] = []
    for sid in subscription_ids:
        for step in found[sid]:
            sub.append(index[sid])
            start.append(moment_us(step.start))
            billed.append(_us(step.billed_through))
            paid.append(_us(step.paid_through))
    return ReachColumns(
        subscription_ids=tuple(subscription_ids),
        subscription=np.array(sub, dtype=np.int64),
        start=np.array(start, dtype=np.int64),
        billed_through=np.array(billed, dtype=np.int64),
        paid_through=np.array(paid, dtype=np.int64),
    )
