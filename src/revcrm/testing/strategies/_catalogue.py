"""Customers, products, plans and subscriptions of :mod:`revcrm.testing.strategies`;
import them from there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._money import Money
from revcrm._records import (
    Customer,
    Plan,
    Product,
)
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus
from revcrm.testing.strategies._money_time import (
    _ID_ALPHABET,
    LATEST,
    NAMED_CYCLES,
    _strategy,
    amounts,
    billing_cycles,
    currencies,
    dates,
    discounts,
    ids,
    moments,
    money,
)

# -- records --------------------------------------------------------------------------------

_WORDS: Final = ("alpha", "nova", "orbit", "pixel", "delta", "cobalt", "lumen", "quartz")


_NAMES: Final = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3).map(
    lambda ws: " ".join(w.capitalize() for w in ws)
)
_EMAIL_PART: Final = st.text(_ID_ALPHABET, min_size=1, max_size=8)
_EMAILS: Final = st.tuples(
    _EMAIL_PART, _EMAIL_PART, st.sampled_from(("com", "net", "io", "de"))
).map(lambda p: f"{p[0]}@{p[1]}.{p[2]}")
_ATTRIBUTES: Final = st.dictionaries(
    st.sampled_from(("tier", "seats", "vip", "since", "region")),
    st.one_of(
        st.text(max_size=12),
        st.integers(-1000, 1000),
        amounts(min_value=-1000, max_value=1000),
        st.booleans(),
        dates(),
    ),
    max_size=3,
)
_DAYS_0_400: Final = st.timedeltas(timedelta(0), timedelta(days=400))
_REFERRAL_SOURCES: Final = st.sampled_from((None, "google", "partner", "ads"))


def customers(
    *,
    id: str | SearchStrategy[str] | None = None,
    registered: SearchStrategy[datetime] | None = None,
) -> SearchStrategy[Customer]:
    """Customers with an id (default ``cus_...``), a registration moment (default
    :func:`moments`) and optional contact fields, a last login after registration and a
    few custom attributes."""
    return _customers(
        ids("cus") if id is None else _strategy(id),
        registered if registered is not None else moments(),
    )


@st.composite
def _customers(
    draw: st.DrawFn, customer_id: SearchStrategy[str], registered: SearchStrategy[datetime]
) -> Customer:
    registered_at = draw(registered)
    last_login = None
    if draw(st.booleans()):
        last_login = registered_at + draw(_DAYS_0_400)
    return Customer(
        id=draw(customer_id),
        registered_at=registered_at,
        email=draw(_EMAILS) if draw(st.booleans()) else None,
        name=draw(_NAMES),
        company=draw(_NAMES) if draw(st.booleans()) else None,
        last_login_at=last_login,
        referral_source=draw(_REFERRAL_SOURCES),
        custom_attributes=draw(_ATTRIBUTES),
    )


def products(*, id: str | SearchStrategy[str] | None = None) -> SearchStrategy[Product]:
    """Products with an id (default ``prod_...``) and a name."""
    return st.builds(Product, id=ids("prod") if id is None else _strategy(id), name=_NAMES)


def plans(
    *,
    product_id: str | SearchStrategy[str],
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    recurring: bool | None = None,
) -> SearchStrategy[Plan]:
    """Plans of ``product_id``: a price (sometimes 0, a free plan), a cycle or none
    (one-off) and sometimes a setup fee in the same currency.

    ``recurring=True`` always gives a cycle, ``False`` never; default both.
    """
    code = currencies() if currency is None else _strategy(currency)
    if recurring is None:
        cycle: SearchStrategy[BillingCycle | None] = st.none() | billing_cycles()
    elif recurring:
        cycle = billing_cycles()
    else:
        cycle = st.none()
    return _plans(ids("plan") if id is None else _strategy(id), _strategy(product_id), code, cycle)


@st.composite
def _plans(
    draw: st.DrawFn,
    plan_id: SearchStrategy[str],
    product_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    cycle: SearchStrategy[BillingCycle | None],
) -> Plan:
    c = draw(currency)
    free = draw(st.integers(0, 9)) == 0
    price = Money.zero(c) if free else draw(money(c, min_value=1, max_value=5000))
    return Plan(
        id=draw(plan_id),
        product_id=draw(product_id),
        name=draw(_NAMES),
        price=price,
        cycle=draw(cycle),
        setup_fee=draw(money(c, min_value=1, max_value=500)) if draw(st.booleans()) else None,
    )


# Mostly the named cycles hosts sell, sometimes an arbitrary one.
_SUBSCRIPTION_CYCLES: Final = st.one_of(
    st.sampled_from(NAMED_CYCLES), billing_cycles(units=(CycleUnit.MONTH, CycleUnit.WEEK))
)
# Zero gaps happen: several changes recorded at the same moment.
_GAPS: Final = st.sampled_from((timedelta(0), timedelta(hours=1))) | st.timedeltas(
    timedelta(0), timedelta(days=200)
)
_TRIAL_LENGTHS: Final = st.timedeltas(timedelta(0), timedelta(days=30))
_NOTICE: Final = st.timedeltas(timedelta(0), timedelta(days=60))
_STATUS_MOVES: Final = st.sampled_from(
    (
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.SUSPENDED,
        SubscriptionStatus.TERMINATED,
    )
)
_QUANTITIES: Final = st.sampled_from((1, 1, 1, 2, 3, 10))


# price, cycle, plan id, product id
_Terms = tuple[Money, BillingCycle, str | None, str | None]


@st.composite
def _subscriptions(
    draw: st.DrawFn,
    customer_id: SearchStrategy[str],
    sub_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    plan_list: tuple[Plan, ...],
    start: SearchStrategy[datetime],
    until: datetime,
    max_changes: int,
) -> Subscription:
    code = draw(currency)
    offer = [p for p in plan_list if p.cycle is not None and p.price.currency == code]

    def terms() -> _Terms:
        if offer and draw(st.integers(0, 3)) > 0:
            p = draw(st.sampled_from(offer))
            assert p.cycle is not None
            return p.price, p.cycle, p.id, p.product_id
        price = draw(money(code, min_value=0, max_value=2000))
        return price, draw(_SUBSCRIPTION_CYCLES), None, None

    started = draw(start)
    price, cycle, plan_id, product_id = terms()
    trial_end = None
    if draw(st.integers(0, 3)) == 0:
        trial_end = started + draw(_TRIAL_LENGTHS)
    discount = None
    if draw(st.integers(0, 4)) == 0:
        discount = draw(discounts(code, after=started))
    sub = Subscription.start(
        id=draw(sub_id),
        customer_id=draw(customer_id),
        at=started,
        price=price,
        cycle=cycle,
        quantity=draw(_QUANTITIES),
        plan_id=plan_id,
        product_id=product_id,
        discount=discount,
        trial_end=trial_end,
    )
    t = started
    for _ in range(draw(st.integers(0, max_changes))):
        t2 = t + draw(_GAPS)
        if t2 > until:
            break
        s = sub.current
        if s.cancel_at_period_end and not s.status.is_ended:
            assert s.cancel_requested_at is not None
            end = max(s.service_period(s.cancel_requested_at)[1], t)
            if t2 >= end:
                if draw(st.booleans()):  # the cancellation takes effect at the period end
                    sub = sub.cancel(end, ends_at=end)
                    t = end
                    continue
                t2 = t  # or the customer changes their mind before it does
        sub = _next_change(draw, sub, s, t2, terms)
        t = t2
    return sub


def _next_change(
    draw: st.DrawFn,
    sub: Subscription,
    s: SubscriptionState,
    at: datetime,
    terms: Callable[[], _Terms],
) -> Subscription:
    if s.status.is_ended:
        if s.status is SubscriptionStatus.CANCELLED and draw(st.integers(0, 4)) == 0:
            return sub.set_status(at, SubscriptionStatus.TERMINATED)
        new_price = None
        if draw(st.booleans()):
            new_price = draw(money(s.currency, max_value=2000))
        return sub.reactivate(at, price=new_price)
    actions = ["plan", "discount", "status", "cancel", "schedule"]
    if s.status is SubscriptionStatus.TRIALING:
        actions += ["convert", "convert"]
    if s.cancel_at_period_end:
        actions = ["plan", "status", "cancel", "unschedule", "reactivate"]
    action = draw(st.sampled_from(actions))
    match action:
        case "plan":
            price, cycle, plan_id, product_id = terms()
            quantity = draw(st.integers(1, 12)) if draw(st.booleans()) else None
            return sub.change_plan(
                at,
                price=price,
                cycle=cycle,
                quantity=quantity,
                plan_id=plan_id,
                product_id=product_id,
            )
        case "discount":
            new = draw(discounts(s.currency, after=at)) if draw(st.booleans()) else None
            return sub.set_discount(at, new)
        case "status":
            return sub.set_status(at, draw(_STATUS_MOVES))
        case "convert":
            return sub.set_status(at, SubscriptionStatus.ACTIVE)
        case "cancel":
            # The end of the paid period (None), immediately, or after some notice.
            ends_at = draw(st.sampled_from((None, at, at + draw(_NOTICE))))
            return sub.cancel(at, ends_at=ends_at)
        case "schedule":
            return sub.schedule_cancellation(at)
        case "unschedule":
            return sub.unschedule_cancellation(at)
        case _:
            return sub.reactivate(at)


def subscriptions(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    plans: Sequence[Plan] = (),
    start: datetime | SearchStrategy[datetime] | None = None,
    until: datetime = LATEST,
    max_changes: int = 6,
) -> SearchStrategy[Subscription]:
    """Valid subscriptions with realistic random histories, built only through the named
    methods (``start``, ``change_plan``, ``set_discount``, ``set_status``,
    ``schedule_cancellation``, ``unschedule_cancellation``, ``cancel``, ``reactivate``).

    The history starts at ``start`` (default: a moment in the default range), sometimes
    with a trial (up to 30 days) or a discount, then takes up to ``max_changes`` changes
    in time order (gaps of 0 to 200 days, sometimes several at one moment) and never
    after ``until``. A scheduled cancellation is followed by a cancellation at the end of
    its period unless it is unscheduled or reactivated first. Prices are in ``currency``
    (default :func:`currencies`) and come from the recurring ``plans`` of that currency
    when given (plan and product ids set), otherwise free-standing, sometimes zero.
    """
    return _subscriptions(
        ids("cus") if customer_id is None else _strategy(customer_id),
        ids("sub") if id is None else _strategy(id),
        currencies() if currency is None else _strategy(currency),
        tuple(plans),
        moments(max_value=until) if start is None else _strategy(start),
        until,
        max_changes,
    )
