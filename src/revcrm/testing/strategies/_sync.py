"""Hypothesis strategies for host sync: sequences of a host's views of one service.

Re-exported from :mod:`revcrm.testing.strategies` (``service_observations``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from revcrm._discount import Discount
from revcrm._money import Money
from revcrm.sync import ServiceState

__all__ = ["Observation", "service_observations"]

#: One observation: the moment the host's rows were read, and what they said.
Observation = tuple[datetime, ServiceState]

_START = datetime(2024, 1, 1, tzinfo=UTC)
_CYCLES = ("Monthly", "Quarterly", "Annually", "Semi-Annually", "Free Account")
_STATUSES = ("Active", "Active", "Suspended", "Cancelled", "Terminated")


@st.composite
def service_observations(
    draw: st.DrawFn, *, max_steps: int = 6, service_id: str = "s1", customer_id: str = "c1"
) -> list[Observation]:
    """A host service observed several times, in time order.

    Each view may change the price, cycle, quantity, discount, status (including ending
    and coming back), the cancellation request, and the host's own moments for those
    changes; every host moment of a view lies after the previous observation and no later
    than its own, as a panel's clock would have it.
    """
    started = _START + timedelta(days=draw(st.integers(0, 60)))
    first_obs = started + timedelta(hours=draw(st.integers(0, 72)))
    pending_first = draw(st.booleans())
    state = ServiceState(
        id=service_id,
        customer_id=customer_id,
        product_id="p1",
        price=Money(draw(st.sampled_from(["5", "10", "12.50"])), "USD"),
        cycle=draw(st.sampled_from(_CYCLES)),
        status="Pending" if pending_first else "Active",
        started_at=started,
    )
    out: list[Observation] = [(first_obs, state)]
    obs = first_obs
    for _ in range(draw(st.integers(0, max_steps - 1))):
        prev = obs
        obs = prev + timedelta(hours=draw(st.integers(1, 24 * 50)))

        def within(prev: datetime = prev, obs: datetime = obs) -> datetime:
            span = int((obs - prev).total_seconds())
            return prev + timedelta(seconds=draw(st.integers(1, span)))

        changes: dict[str, object] = {}
        if draw(st.booleans()):
            changes["price"] = Money(draw(st.sampled_from(["5", "10", "20", "12.50"])), "USD")
        if draw(st.integers(0, 3)) == 0:
            # "Free Account" included: a paid service becoming free is a change to price zero.
            changes["cycle"] = draw(st.sampled_from(_CYCLES))
        if draw(st.integers(0, 3)) == 0:
            changes["quantity"] = draw(st.integers(1, 3))
        if draw(st.integers(0, 3)) == 0:
            changes["discount"] = draw(st.sampled_from([None, Discount.percent(10)]))
        status = draw(st.sampled_from(_STATUSES))
        if status != state.status.value or draw(st.booleans()):
            changes["status"] = status
            changes["status_since"] = within() if draw(st.booleans()) else None
        if status in ("Cancelled", "Terminated"):
            if draw(st.booleans()):
                changes["ended_at"] = within() if draw(st.booleans()) else obs + timedelta(days=20)
            changes["cancelled_at"] = within() if draw(st.booleans()) else None
        else:
            requested = draw(st.integers(0, 3)) == 0
            changes["cancellation_requested"] = requested
            changes["cancellation_requested_at"] = within() if requested else None
            changes["ended_at"] = None
        state = state.replace(**changes)
        out.append((obs, state))
    return out
