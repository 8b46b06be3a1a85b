"""How far each service's invoices reach over time, as steps and as columns: the one
definition of ``billed_through`` / ``paid_through``, which the cycle-aware Active segment
rule reads (:mod:`revcrm.segments._rules`) and the SQL ledger stores (``ledger_reach``).

A customer's invoices are walked once for all of its subscriptions (every line event
goes to its own subscription), then each subscription's events are folded into steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._ledger._cash import moment_us
from revcrm._ledger._services import OPEN
from revcrm._records import Invoice, InvoiceStatus

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = ["ReachColumns", "ServiceReach", "reach_columns", "service_reach", "service_reaches"]

#: (from when it counts, the line's period end, whether it counts as paid), microseconds
_Event = tuple[int, int, bool]
#: (start, billed_through, paid_through) in microseconds, :data:`OPEN` for None
_Step = tuple[int, int, int]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@attrs.frozen(kw_only=True, slots=True)
class ServiceReach:
    """How far a service's invoices reach from ``start`` until the next step (see
    :func:`service_reach`): ``billed_through`` and ``paid_through`` of
    :class:`~revcrm.segments.ServiceFacts` at every moment of the step."""

    start: datetime
    billed_through: datetime | None
    paid_through: datetime | None


def _memo_us() -> Callable[[datetime], int]:
    """:func:`moment_us` remembering its answers: a service's period bounds repeat (one
    line's end is the next one's start), and a lookup is cheaper than the arithmetic."""
    seen: dict[datetime, int] = {}

    def us(t: datetime) -> int:
        found = seen.get(t)
        if found is None:
            found = seen[t] = moment_us(t)
        return found

    return us


def _events(
    invoices: Iterable[Invoice], wanted: Mapping[str, list[_Event]], us: Callable[[datetime], int]
) -> None:
    """Append the events of every line of ``invoices`` to its subscription's list in
    ``wanted`` (lines of other subscriptions are skipped)."""
    for inv in invoices:
        if inv.status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
            continue
        paid = inv.status is InvoiceStatus.PAID
        issued = us(inv.issued_at)
        paid_at = None if inv.paid_at is None else us(inv.paid_at)
        for line in inv.lines:
            sid = line.subscription_id
            if sid is None or line.period_start is None or line.period_end is None:
                continue
            events = wanted.get(sid)
            if events is None:
                continue
            start = us(line.period_start)
            billed_from = issued if issued > start else start
            end = us(line.period_end)
            events.append((billed_from, end, False))
            if paid:
                paid_from = billed_from if paid_at is None or paid_at < billed_from else paid_at
                events.append((paid_from, end, True))


def _steps(events: list[_Event]) -> list[_Step]:
    """The steps of ``events`` (the fold of :func:`service_reach`)."""
    events.sort(key=lambda e: e[0])
    steps: list[_Step] = []
    billed = paid = OPEN
    for k, (at, end, is_paid) in enumerate(events):
        if is_paid:
            paid = end if paid == OPEN else max(paid, end)
        billed = end if billed == OPEN else max(billed, end)
        if k + 1 < len(events) and events[k + 1][0] == at:
            continue  # every event of one moment holds from it together
        if not steps or (steps[-1][1], steps[-1][2]) != (billed, paid):
            steps.append((at, billed, paid))
    return steps


def _step_lists(
    subscription_ids: Iterable[str],
    invoices: Iterable[Invoice],
    us: Callable[[datetime], int] = moment_us,
) -> dict[str, list[_Step]]:
    wanted: dict[str, list[_Event]] = {sid: [] for sid in subscription_ids}
    _events(invoices, wanted, us)
    return {sid: _steps(events) for sid, events in wanted.items()}


def _moment(us: int) -> datetime | None:
    return None if us == OPEN else _EPOCH + timedelta(microseconds=us)


def service_reaches(
    subscription_ids: Iterable[str], invoices: Iterable[Invoice]
) -> dict[str, tuple[ServiceReach, ...]]:
    """:func:`service_reach` of each of ``subscription_ids`` over one customer's
    ``invoices``, walking them once."""
    return {
        sid: tuple(
            ServiceReach(
                start=_EPOCH + timedelta(microseconds=start),
                billed_through=_moment(billed),
                paid_through=_moment(paid),
            )
            for start, billed, paid in steps
        )
        for sid, steps in _step_lists(subscription_ids, invoices).items()
    }


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


def reach_columns(book: Book, subscription_ids: Sequence[str]) -> ReachColumns:
    """The :func:`service_reach` steps of each of ``subscription_ids`` (subscriptions of
    ``book``), each customer's invoices walked once."""
    by_id = {s.id: s for s in book.subscriptions}
    per_customer: dict[str, list[str]] = {}
    for sid in subscription_ids:
        per_customer.setdefault(by_id[sid].customer_id, []).append(sid)
    index = {sid: k for k, sid in enumerate(subscription_ids)}
    sub: list[int] = []
    steps: list[_Step] = []
    us = _memo_us()
    for cid, subs in per_customer.items():
        invoices = book.invoices_by_customer.get(cid, ())
        for sid, found in _step_lists(subs, invoices, us).items():
            sub.extend([index[sid]] * len(found))
            steps.extend(found)
    order = np.argsort(np.array(sub, dtype=np.int64), kind="stable")
    table = np.array(steps, dtype=np.int64).reshape(-1, 3)[order]
    return ReachColumns(
        subscription_ids=tuple(subscription_ids),
        subscription=np.array(sub, dtype=np.int64)[order],
        start=np.ascontiguousarray(table[:, 0]),
        billed_through=np.ascontiguousarray(table[:, 1]),
        paid_through=np.ascontiguousarray(table[:, 2]),
    )
