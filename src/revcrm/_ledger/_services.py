"""The ledger's service-state intervals as columns: per subscription, where its service is
active, troubled, or has a cancellation pending, by the rules of
:mod:`revcrm._crm_services` (evaluated here, never restated).

A subscription's state is constant between two of its changes; within one state the
rules' answers can change only at its ``ended_at`` (a cancelled service is active, and
its cancellation pending, until then) and, for a cancellation scheduled at the period
end, at each end of a service period (the cancellation takes effect at the end of the
period running). So each state's interval is cut at those moments and the rules are
evaluated once per piece, at its start: every piece's answers hold throughout it.

Periods of an open-ended scheduled cancellation are cut up to ``horizon`` only: the
piece containing ``horizon`` stays open, so the rows are exact for moments up to the end
of the service period running at ``horizon``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import numpy as np
import numpy.typing as npt

from revcrm._crm_services import is_active_service, is_troubled_service, pending_cancellation
from revcrm._cycles import BillingCycle
from revcrm._ledger._cash import moment_us
from revcrm._ledger._rows import ServiceState
from revcrm._records import Invoice, InvoiceStatus
from revcrm._subscription import SubscriptionState, SubscriptionStatus

if TYPE_CHECKING:
    from revcrm._book import Book

__all__ = ["OPEN", "ServiceColumns", "ServicesAt", "first_invoiced_at", "service_columns"]

#: ``end`` / ``cancellation_at`` of an open interval / of no pending cancellation.
OPEN: Final = np.iinfo(np.int64).max


@attrs.frozen(kw_only=True)
class ServicesAt:
    """Per customer (indexes of ``ServiceColumns.customer_ids``) at one moment: services
    active, services troubled, services ended (cancelled and over, or terminated), the
    earliest pending cancellation (:data:`OPEN`: none) and whether any service had
    started; ``active_rows``: the active rows' indexes."""

    active: npt.NDArray[np.int64]
    troubled: npt.NDArray[np.int64]
    next_cancellation: npt.NDArray[np.int64]
    started: npt.NDArray[np.bool_]
    active_rows: npt.NDArray[np.int64]
    ended: npt.NDArray[np.int64]


@attrs.frozen(kw_only=True, eq=False)
class ServiceColumns:
    """Service-state rows as parallel arrays, ordered by (customer, subscription, start).

    ``customer`` indexes ``customer_ids``, ``subscription`` indexes ``subscription_ids``;
    ``end`` and ``cancellation_at`` are :data:`OPEN` for None; ``ended``: the status is
    an ended one (``SubscriptionStatus.is_ended``)."""

    customer_ids: tuple[str, ...]
    subscription_ids: tuple[str, ...]
    statuses: tuple[str, ...]
    product_ids: tuple[str | None, ...]
    horizon: int
    customer: npt.NDArray[np.int64]
    subscription: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    active: npt.NDArray[np.bool_]
    troubled: npt.NDArray[np.bool_]
    cancellation_at: npt.NDArray[np.int64]
    ended: npt.NDArray[np.bool_]
    #: Per row, its state's billing calendar (``billing_anchor``, ``cycle``): what the
    #: service period at a moment of the row is computed from.
    anchors: tuple[datetime, ...] = ()
    cycles: tuple[BillingCycle, ...] = ()

    def __len__(self) -> int:
        return len(self.statuses)

    def rows(self) -> Iterator[ServiceState]:
        for i in range(len(self)):
            end, cancel = int(self.end[i]), int(self.cancellation_at[i])
            yield ServiceState(
                subscription_id=self.subscription_ids[int(self.subscription[i])],
                customer_id=self.customer_ids[int(self.customer[i])],
                start=int(self.start[i]),
                end=None if end == OPEN else end,
                status=self.statuses[i],
                active=bool(self.active[i]),
                troubled=bool(self.troubled[i]),
                cancellation_at=None if cancel == OPEN else cancel,
                product_id=self.product_ids[i],
            )

    def at(self, t: int) -> ServicesAt:
        """What the rows containing moment ``t`` (microseconds) say, per customer."""
        n = len(self.customer_ids)
        inside = (self.start <= t) & (t < self.end)
        cust = self.customer
        active = np.bincount(cust[inside & self.active], minlength=n).astype(np.int64)
        troubled = np.bincount(cust[inside & self.troubled], minlength=n).astype(np.int64)
        ended = np.bincount(cust[inside & self.ended], minlength=n).astype(np.int64)
        nxt = np.full(n, OPEN, dtype=np.int64)
        pending = inside & (self.cancellation_at > t) & (self.cancellation_at != OPEN)
        np.minimum.at(nxt, cust[pending], self.cancellation_at[pending])
        started = np.zeros(n, dtype=bool)
        started[cust[self.start <= t]] = True
        return ServicesAt(
            active=active,
            troubled=troubled,
            next_cancellation=nxt,
            started=started,
            active_rows=np.flatnonzero(inside & self.active).astype(np.int64),
            ended=ended,
        )


def first_invoiced_at(invoices: Iterable[Invoice]) -> datetime | None:
    """When a customer first ordered by invoice: the earliest issue of its invoices that
    are neither draft nor void (None: no such invoice). ``ordered`` at a moment holds by
    invoice from then on."""
    issued = [
        inv.issued_at
        for inv in invoices
        if inv.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID)
    ]
    return min(issued) if issued else None


def _cuts(
    state: SubscriptionState, start: datetime, end: datetime | None, horizon: datetime
) -> list[datetime]:
    """The moments inside ``(start, end)`` at which the rules' answers for ``state`` can
    change (see the module docstring)."""
    out: list[datetime] = []
    if state.status is SubscriptionStatus.CANCELLED:
        if (
            state.ended_at is not None
            and state.ended_at > start
            and (end is None or state.ended_at < end)
        ):
            out.append(state.ended_at)
    elif state.cancel_at_period_end and not state.status.is_ended:
        t = start
        while True:
            t = state.service_period(t)[1]
            if (end is not None and t >= end) or (end is None and t > horizon) or t <= start:
                break
            out.append(t)
    return out


def service_columns(
    book: Book, *, customer_ids: tuple[str, ...], horizon: datetime
) -> ServiceColumns:
    """The service-state rows of the subscriptions of ``book`` (of the customers in
    ``customer_ids``), cut up to ``horizon`` (see the module docstring)."""
    index: Mapping[str, int] = {c: i for i, c in enumerate(customer_ids)}
    product_of = {p.id: p.product_id for p in book.plans}
    sub_ids: list[str] = []
    cust: list[int] = []
    subs: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    statuses: list[str] = []
    products: list[str | None] = []
    active: list[bool] = []
    troubled: list[bool] = []
    ended: list[bool] = []
    cancels: list[int] = []
    anchors: list[datetime] = []
    cycles: list[BillingCycle] = []
    for sub in sorted(book.subscriptions, key=lambda s: (index.get(s.customer_id, -1), s.id)):
        c = index.get(sub.customer_id)
        if c is None:
            continue
        k = len(sub_ids)
        sub_ids.append(sub.id)
        times = [ch.at for ch in sub.history]
        states = sub.states
        for i, state in enumerate(states):
            a = times[i]
            b = times[i + 1] if i + 1 < len(times) else None
            if b is not None and b <= a:
                continue  # a later change at the same moment wins (state_at's rule)
            product = state.product_id
            if product is None and state.plan_id is not None:
                product = product_of.get(state.plan_id)
            bounds = [a, *_cuts(state, a, b, horizon)]
            for j, lo in enumerate(bounds):
                hi = bounds[j + 1] if j + 1 < len(bounds) else b
                when = pending_cancellation(state, lo)
                cust.append(c)
                subs.append(k)
                starts.append(moment_us(lo))
                ends.append(OPEN if hi is None else moment_us(hi))
                statuses.append(state.status.value)
                products.append(product)
                active.append(is_active_service(state, lo))
                troubled.append(is_troubled_service(state))
                ended.append(state.status.is_ended)
                cancels.append(OPEN if when is None else moment_us(when))
                anchors.append(state.billing_anchor)
                cycles.append(state.cycle)
    return ServiceColumns(
        customer_ids=customer_ids,
        subscription_ids=tuple(sub_ids),
        statuses=tuple(statuses),
        product_ids=tuple(products),
        horizon=moment_us(horizon),
        customer=np.array(cust, dtype=np.int64),
        subscription=np.array(subs, dtype=np.int64),
        start=np.array(starts, dtype=np.int64),
        end=np.array(ends, dtype=np.int64),
        active=np.array(active, dtype=bool),
        troubled=np.array(troubled, dtype=bool),
        cancellation_at=np.array(cancels, dtype=np.int64),
        ended=np.array(ended, dtype=bool),
        anchors=tuple(anchors),
        cycles=tuple(cycles),
    )
