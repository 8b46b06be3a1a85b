"""The record strategies of :mod:`revcrm.testing.strategies` (scalars, records, books,
invalid values); import them from there."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Final, TypeVar

import babel.numbers
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._discount import Discount, DiscountDuration
from revcrm._money import FxRates, Money
from revcrm._records import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    PaymentMethod,
    Plan,
    Product,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus

_T = TypeVar("_T")

#: The realistic default set: two-decimal currencies, one without minor units (JPY) and
#: one with three (KWD), so rounding and formatting meet every precision.
DEFAULT_CURRENCIES: Final[tuple[str, ...]] = ("USD", "EUR", "GBP", "JPY", "KWD")

#: Default bounds of every drawn moment (inclusive).
EARLIEST: Final = datetime(2018, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)
_FIRST_DAY: Final = EARLIEST.date()
_LAST_DAY: Final = LATEST.date()

#: Every named billing cycle constant.
NAMED_CYCLES: Final[tuple[BillingCycle, ...]] = (
    BillingCycle.MONTHLY,
    BillingCycle.QUARTERLY,
    BillingCycle.SEMIANNUAL,
    BillingCycle.ANNUAL,
    BillingCycle.BIENNIAL,
    BillingCycle.TRIENNIAL,
    BillingCycle.WEEKLY,
    BillingCycle.DAILY,
)

# Largest count drawn per unit for arbitrary cycles: long enough to meet clamping and
# multi-year periods, short enough that a history fits in the default date range.
_MAX_COUNT: Final = {CycleUnit.DAY: 90, CycleUnit.WEEK: 12, CycleUnit.MONTH: 36, CycleUnit.YEAR: 3}

_ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_PAYING: Final = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


def _cldr_codes() -> tuple[str, ...]:
    return tuple(sorted(babel.numbers.list_currencies()))


def _strategy(value: _T | SearchStrategy[_T]) -> SearchStrategy[_T]:
    if isinstance(value, SearchStrategy):
        return value
    return st.just(value)


def minor_units(currency: str) -> int:
    """Decimal places of ``currency`` in CLDR (USD 2, JPY 0, KWD 3); a plain helper."""
    return babel.numbers.get_currency_precision(currency)


# -- scalars --------------------------------------------------------------------------------


def currencies(
    *, among: Iterable[str] | None = None, any_cldr: bool = False
) -> SearchStrategy[str]:
    """ISO 4217 codes: :data:`DEFAULT_CURRENCIES` unless ``among`` names others.

    ``any_cldr=True`` draws from every code CLDR knows (307 in babel 2.18, historical
    ones included), for properties that must hold for any currency revcrm accepts.
    """
    if any_cldr:
        return st.sampled_from(_cldr_codes())
    codes = tuple(among) if among is not None else DEFAULT_CURRENCIES
    if not codes:
        raise ValueError("currencies(among=...) needs at least one code")
    return st.sampled_from(codes)


@st.composite
def _amounts(draw: st.DrawFn, min_value: Decimal, max_value: Decimal, max_places: int) -> Decimal:
    places = draw(st.integers(0, max_places))
    scale = Decimal(10) ** places
    lo = (min_value * scale).to_integral_value(rounding="ROUND_CEILING")
    hi = (max_value * scale).to_integral_value(rounding="ROUND_FLOOR")
    if lo > hi:  # no value with this few places lies in the range; use the most places
        places = max_places
        scale = Decimal(10) ** places
        lo = (min_value * scale).to_integral_value(rounding="ROUND_CEILING")
        hi = (max_value * scale).to_integral_value(rounding="ROUND_FLOOR")
    units = draw(st.integers(int(lo), int(hi)))
    # Built from a string, as a host reading a database column or a form would.
    return Decimal(f"{units}E-{places}") if places else Decimal(str(units))


def amounts(
    *,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 100_000,
    places: int | None = None,
    currency: str | None = None,
) -> SearchStrategy[Decimal]:
    """Exact Decimal amounts in ``[min_value, max_value]`` built from strings, never floats.

    At most ``places`` decimal places (the number of places itself varies, so ``12``,
    ``12.5`` and ``12.50`` all occur). With ``currency`` and no ``places``, the currency's
    CLDR minor units (JPY whole numbers, KWD three places); with neither, four places.
    """
    lo, hi = Decimal(min_value), Decimal(max_value)
    if lo > hi:
        raise ValueError(f"amounts: min_value {lo} > max_value {hi}")
    if places is None:
        places = minor_units(currency) if currency is not None else 4
    if places < 0:
        raise ValueError("amounts: places must be >= 0")
    return _cached_amounts(lo, hi, places)


@functools.cache
def _cached_amounts(lo: Decimal, hi: Decimal, places: int) -> SearchStrategy[Decimal]:
    # Strategies are reused across draws: building a fresh one per draw costs more than
    # the draw itself.
    return _amounts(lo, hi, places)


@st.composite
def _money(
    draw: st.DrawFn,
    currency: SearchStrategy[str],
    min_value: Decimal | int | str,
    max_value: Decimal | int | str,
    use_minor_units: bool,
    places: int | None,
) -> Money:
    code = draw(currency)
    if places is None and not use_minor_units:
        places = minor_units(code) + 4
    amount = draw(amounts(min_value=min_value, max_value=max_value, places=places, currency=code))
    return Money(amount, code)


def money(
    currency: str | SearchStrategy[str] | None = None,
    *,
    min_value: Decimal | int | str = 0,
    max_value: Decimal | int | str = 100_000,
    minor_units: bool = True,
    places: int | None = None,
) -> SearchStrategy[Money]:
    """:class:`Money` in ``currency`` (a code or a strategy; default :func:`currencies`).

    ``minor_units=True`` (default) gives realistic prices on the currency's minor-unit
    grid (``12.34 USD``, ``1200 JPY``); ``minor_units=False`` adds four more places, for
    arithmetic properties that must not depend on the grid. ``places`` overrides both.
    """
    if isinstance(currency, str):
        return _cached_money(currency, Decimal(min_value), Decimal(max_value), minor_units, places)
    code = currencies() if currency is None else currency
    return _money(code, min_value, max_value, minor_units, places)


@functools.cache
def _cached_money(
    currency: str, lo: Decimal, hi: Decimal, use_minor_units: bool, places: int | None
) -> SearchStrategy[Money]:
    return _money(st.just(currency), lo, hi, use_minor_units, places)


def billing_cycles(
    *,
    named_only: bool = False,
    units: Iterable[CycleUnit] | None = None,
    max_count: int | None = None,
) -> SearchStrategy[BillingCycle]:
    """Billing cycles: every named constant (:data:`NAMED_CYCLES`) and arbitrary count x unit.

    Arbitrary counts go up to 90 days, 12 weeks, 36 months or 3 years (``max_count``
    caps them further); ``units`` restricts both the constants and the arbitrary cycles.
    """
    allowed = tuple(units) if units is not None else tuple(CycleUnit)
    return _cached_cycles(named_only, allowed, max_count)


@functools.cache
def _cached_cycles(
    named_only: bool, allowed: tuple[CycleUnit, ...], max_count: int | None
) -> SearchStrategy[BillingCycle]:
    named = [c for c in NAMED_CYCLES if c.unit in allowed]
    if max_count is not None:
        named = [c for c in named if c.count <= max_count]
    options: list[SearchStrategy[BillingCycle]] = []
    if named:
        options.append(st.sampled_from(named))
    if not named_only:
        for unit in allowed:
            top = _MAX_COUNT[unit] if max_count is None else min(max_count, _MAX_COUNT[unit])
            if top >= 1:
                options.append(st.builds(BillingCycle, st.integers(1, top), st.just(unit)))
    if not options:
        raise ValueError("billing_cycles: no cycle satisfies the options")
    return st.one_of(options)


def moments(
    *,
    min_value: datetime = EARLIEST,
    max_value: datetime = LATEST,
    any_offset: bool = False,
) -> SearchStrategy[datetime]:
    """Aware datetimes in ``[min_value, max_value]``, in UTC.

    ``any_offset=True`` expresses the same instants in fixed UTC offsets (-12h..+14h)
    instead, for properties about normalisation to UTC.
    """
    lo = min_value.astimezone(UTC).replace(tzinfo=None)
    hi = max_value.astimezone(UTC).replace(tzinfo=None)
    utc_moments = st.datetimes(min_value=lo, max_value=hi).map(lambda d: d.replace(tzinfo=UTC))
    if not any_offset:
        return utc_moments
    offsets = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
    return st.tuples(utc_moments, offsets).map(lambda p: p[0].astimezone(p[1]))


def dates(*, min_value: date = _FIRST_DAY, max_value: date = _LAST_DAY) -> SearchStrategy[date]:
    """Plain dates (not datetimes) in ``[min_value, max_value]``."""
    return st.dates(min_value=min_value, max_value=max_value)


def ids(prefix: str) -> SearchStrategy[str]:
    """Readable record ids such as ``cus_k3x9``: ``prefix``, an underscore, 4-8 characters."""
    return st.text(_ID_ALPHABET, min_size=4, max_size=8).map(lambda s: f"{prefix}_{s}")


_DISCOUNT_LENGTHS: Final = st.timedeltas(timedelta(days=1), timedelta(days=730))


@st.composite
def _discounts(
    draw: st.DrawFn,
    currency: SearchStrategy[str] | None,
    after: SearchStrategy[datetime],
    durations: tuple[DiscountDuration, ...],
) -> Discount:
    duration = draw(st.sampled_from(durations))
    ends_at = None
    if duration is DiscountDuration.REPEATING:
        ends_at = draw(after) + draw(_DISCOUNT_LENGTHS)
    if currency is not None and draw(st.booleans()):
        off = draw(money(currency, min_value="0.01", max_value=500))
        if off.amount <= 0:  # JPY and other whole-unit currencies cannot take 0.01
            off = Money(1, off.currency)
        return Discount.amount(off, duration, ends_at=ends_at)
    percent = draw(amounts(min_value="0.01", max_value=100, places=2))
    return Discount.percent(percent, duration, ends_at=ends_at)


def discounts(
    currency: str | SearchStrategy[str] | None = None,
    *,
    after: datetime | SearchStrategy[datetime] | None = None,
    durations: Iterable[DiscountDuration] | None = None,
    percent_only: bool = False,
) -> SearchStrategy[Discount]:
    """Percentage discounts (0.01-100 %) and, unless ``percent_only``, amounts off.

    Amounts off are in ``currency`` (default :func:`currencies`), between 0.01 and 500.
    Repeating discounts end 1-730 days after ``after`` (default: a drawn moment), so a
    discount set at ``after`` is always valid on a subscription.
    """
    code = None if percent_only else (currencies() if currency is None else _strategy(currency))
    start = moments() if after is None else _strategy(after)
    allowed = tuple(durations) if durations is not None else tuple(DiscountDuration)
    return _discounts(code, start, allowed)


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


def _billed_periods(sub: Subscription, until: datetime) -> list[tuple[SubscriptionState, datetime]]:
    """Service periods a subscription was billed for: (state, moment in the period).

    Only paying periods (active or past due, billing anchor reached), at most a few per
    state, each period once.
    """
    out: list[tuple[SubscriptionState, datetime]] = []
    seen: set[datetime] = set()
    changes = sub.history
    for i, s in enumerate(sub.states):
        if s.status not in _PAYING or s.cancel_at_period_end:
            continue
        stop = changes[i + 1].at if i + 1 < len(changes) else until
        t = max(changes[i].at, s.billing_anchor)
        for _ in range(4):
            if t >= stop:
                break
            start, end = s.service_period(t)
            if start not in seen:
                seen.add(start)
                out.append((s, t))
            t = end
    return out


def _recurring_line(s: SubscriptionState, at: datetime, sub_id: str) -> InvoiceLine:
    start, end = s.service_period(at)
    amount = s.list_amount()
    discount = None
    if s.discount is not None:
        off = (amount - s.discount.apply(amount)).rounded()
        discount = min(off, amount) if off else None
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=amount,
        quantity=s.quantity,
        discount=discount,
        period_start=start,
        period_end=end,
        subscription_id=sub_id,
        product_id=s.product_id,
        description=f"{s.plan_id or 'subscription'} {start:%Y-%m-%d}",
    )


@st.composite
def _one_off_lines(draw: st.DrawFn, currency: str) -> InvoiceLine:
    amount = draw(money(currency, min_value=0, max_value=1000))
    tax = draw(money(currency, min_value=0, max_value=100)) if draw(st.booleans()) else None
    return InvoiceLine(
        kind=LineKind.ONE_OFF,
        amount=amount,
        tax=tax,
        description=draw(st.sampled_from(("setup fee", "domain", "addon", "support"))),
    )


def invoice_lines(
    currency: str | SearchStrategy[str] | None = None,
    *,
    kind: LineKind | None = None,
) -> SearchStrategy[InvoiceLine]:
    """Free-standing invoice lines: one-off lines (sometimes taxed), and recurring lines
    whose service period is one period of a drawn cycle from a drawn moment."""
    code = currencies() if currency is None else _strategy(currency)
    return _invoice_lines(code, st.sampled_from(tuple(LineKind) if kind is None else (kind,)))


@st.composite
def _invoice_lines(
    draw: st.DrawFn, currency: SearchStrategy[str], kind: SearchStrategy[LineKind]
) -> InvoiceLine:
    c = draw(currency)
    if draw(kind) is LineKind.ONE_OFF:
        return draw(_one_off_lines(c))
    start = draw(moments())
    cycle = draw(billing_cycles())
    amount = draw(money(c, min_value=0, max_value=5000))
    discount = None
    if draw(st.booleans()):
        discount = draw(money(c, min_value=0, max_value=amount.amount))
    return InvoiceLine(
        kind=LineKind.RECURRING,
        amount=amount,
        quantity=draw(st.integers(1, 5)),
        discount=discount,
        tax=draw(money(c, min_value=0, max_value=100)) if draw(st.booleans()) else None,
        period_start=start,
        period_end=cycle.advance(start, 1),
    )


_PAYMENT_DELAYS: Final = st.timedeltas(timedelta(0), timedelta(days=20))
_REFUND_DELAYS: Final = st.timedeltas(timedelta(0), timedelta(days=30))


@st.composite
def _invoices(
    draw: st.DrawFn,
    customer_id: SearchStrategy[str],
    invoice_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    subscription: Subscription | None,
    billed: tuple[SubscriptionState, datetime] | None,
    max_lines: int,
) -> Invoice:
    lines: list[InvoiceLine] = []
    if subscription is not None:
        code = subscription.currency
        periods = [billed] if billed is not None else _billed_periods(subscription, LATEST)
        if periods:
            s, at = draw(st.sampled_from(periods))
            lines.append(_recurring_line(s, at, subscription.id))
    else:
        code = draw(currency)
    n_one_off = draw(st.integers(0 if lines else 1, max(max_lines - len(lines), 0 if lines else 1)))
    lines += [draw(_one_off_lines(code)) for _ in range(n_one_off)]
    if lines and lines[0].period_start is not None:
        issued_at = lines[0].period_start
    else:
        issued_at = draw(moments())
    status = draw(
        st.sampled_from(
            (InvoiceStatus.PAID, InvoiceStatus.PAID, InvoiceStatus.PAID, *InvoiceStatus)
        )
    )
    paid_at = None
    if status is InvoiceStatus.PAID:
        paid_at = issued_at + draw(_PAYMENT_DELAYS)
    number = draw(st.integers(1, 999_999))
    return Invoice(
        id=draw(invoice_id),
        customer_id=subscription.customer_id if subscription is not None else draw(customer_id),
        currency=code,
        issued_at=issued_at,
        due_date=issued_at.date() + timedelta(days=draw(st.sampled_from((0, 7, 14, 30)))),
        status=status,
        lines=lines,
        number=f"INV-{number:06d}",
        paid_at=paid_at,
    )


def invoices(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    subscription: Subscription | None = None,
    max_lines: int = 3,
) -> SearchStrategy[Invoice]:
    """Invoices with lines, issued, due 0-30 days later, mostly paid (``paid_at`` set).

    With ``subscription`` the invoice belongs to its customer and currency and carries one
    recurring line for one of its billed service periods (a period of the cycle in force,
    from its billing anchor, while active or past due): amount = price x quantity, the
    subscription's discount as the line discount rounded to minor units, issued at the
    period start; one-off lines may follow. A subscription never billed (a trial that was
    cancelled, a free plan still gets lines) yields one-off lines only. Without it, lines
    are one-off only, in ``currency`` (default :func:`currencies`).
    """
    return _invoices(
        ids("cus") if customer_id is None else _strategy(customer_id),
        ids("inv") if id is None else _strategy(id),
        currencies() if currency is None else _strategy(currency),
        subscription,
        None,
        max_lines,
    )


@st.composite
def _transactions(
    draw: st.DrawFn,
    customer_id: SearchStrategy[str],
    transaction_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    invoice: Invoice | None,
) -> Transaction:
    method = draw(st.sampled_from(tuple(PaymentMethod)) | st.sampled_from(("sepa", "crypto")))
    if invoice is not None and invoice.total.amount > 0:
        kind = draw(st.sampled_from((TransactionKind.PAYMENT, TransactionKind.REFUND)))
        at = invoice.paid_at or invoice.issued_at
        amount = invoice.total
        if kind is TransactionKind.REFUND:
            at += draw(_REFUND_DELAYS)
            share = draw(amounts(min_value="0.01", max_value=1, places=2))
            smallest = Money(Decimal(1).scaleb(-minor_units(amount.currency)), amount.currency)
            amount = min(max((amount * share).rounded(), smallest), invoice.total)
        status = (
            TransactionStatus.SUCCEEDED
            if invoice.status is InvoiceStatus.PAID
            else draw(st.sampled_from(tuple(TransactionStatus)))
        )
        return Transaction(
            id=draw(transaction_id),
            customer_id=invoice.customer_id,
            kind=kind,
            status=status,
            amount=amount,
            method=method,
            at=at,
            invoice_id=invoice.id,
        )
    code = draw(currency)
    amount = draw(money(code, min_value=1, max_value=5000))
    return Transaction(
        id=draw(transaction_id),
        customer_id=draw(customer_id),
        kind=draw(st.sampled_from(tuple(TransactionKind))),
        status=draw(st.sampled_from(tuple(TransactionStatus))),
        amount=amount,
        method=method,
        at=draw(moments()),
    )


def transactions(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    invoice: Invoice | None = None,
) -> SearchStrategy[Transaction]:
    """Payments and refunds with a positive amount, a method and a moment.

    With an ``invoice`` whose total is positive: a payment of the total at ``paid_at``
    (or the issue moment), or a partial refund up to 30 days later, succeeded when the
    invoice is paid; otherwise any kind and status, 1-5000 in ``currency``.
    """
    return _transactions(
        ids("cus") if customer_id is None else _strategy(customer_id),
        ids("txn") if id is None else _strategy(id),
        currencies() if currency is None else _strategy(currency),
        invoice,
    )


def credit_entries(
    customer_id: str | SearchStrategy[str] | None = None,
    *,
    id: str | SearchStrategy[str] | None = None,
    currency: str | SearchStrategy[str] | None = None,
    invoice_ids: Sequence[str] = (),
    at: SearchStrategy[datetime] | None = None,
) -> SearchStrategy[CreditEntry]:
    """Credit ledger entries: non-zero amounts (positive adds, negative spends) with a
    reason, sometimes against one of ``invoice_ids``."""
    return _credit_entries(
        ids("cred") if id is None else _strategy(id),
        ids("cus") if customer_id is None else _strategy(customer_id),
        currencies() if currency is None else _strategy(currency),
        st.none() | st.sampled_from(tuple(invoice_ids)) if invoice_ids else st.none(),
        at if at is not None else moments(),
    )


@st.composite
def _credit_entries(
    draw: st.DrawFn,
    credit_id: SearchStrategy[str],
    customer_id: SearchStrategy[str],
    currency: SearchStrategy[str],
    invoice_id: SearchStrategy[str | None],
    at: SearchStrategy[datetime],
) -> CreditEntry:
    amount = draw(money(draw(currency), min_value=1, max_value=1000))
    if draw(st.booleans()):
        amount = -amount
    return CreditEntry(
        id=draw(credit_id),
        customer_id=draw(customer_id),
        amount=amount,
        reason=draw(st.sampled_from(("refund as credit", "goodwill", "top-up", "invoice"))),
        at=draw(at),
        invoice_id=draw(invoice_id),
    )


@st.composite
def _fx_rates(
    draw: st.DrawFn, codes: tuple[str, ...], since: date, until: date, max_changes: int
) -> FxRates:
    rates: list[tuple[date, str, str, Decimal]] = []
    for a, b in itertools.combinations(codes, 2):
        # Some pairs stored one way, some the other, so lookups meet reciprocals.
        source, target = (a, b) if draw(st.booleans()) else (b, a)
        days = {since} | set(
            draw(st.lists(dates(min_value=since, max_value=until), max_size=max_changes))
        )
        for day in sorted(days):
            mantissa = draw(st.integers(1, 99_999))
            exponent = draw(st.integers(-6, 2))
            rates.append((day, source, target, Decimal(f"{mantissa}E{exponent}")))
    return FxRates.from_rates(rates)


def fx_rates(
    currencies: Iterable[str] = DEFAULT_CURRENCIES,
    *,
    since: date = date(2014, 1, 1),
    until: date = _LAST_DAY,
    max_changes: int = 3,
) -> SearchStrategy[FxRates]:
    """Exchange rates between every pair of ``currencies``, each from ``since`` on.

    Every pair has a first rate dated ``since`` (default 2014-01-01, four years before
    :data:`EARLIEST`, so service periods that start before a subscription, such as a
    triennial period behind a later billing anchor, still convert) and up to
    ``max_changes`` more until ``until``. Rates are positive Decimals between 1e-6 and
    1e7; the pair's direction is drawn, so half the lookups use the reciprocal.
    """
    codes = tuple(sorted(set(currencies)))
    return _fx_rates(codes, since, until, max_changes)


@st.composite
def _books(
    draw: st.DrawFn,
    given: tuple[str, ...] | None,
    single_currency: bool,
    max_customers: int,
    max_subscriptions: int,
    max_invoices: int,
    earliest: datetime,
    latest: datetime,
) -> Book:
    pool = given if given is not None else DEFAULT_CURRENCIES
    if single_currency:
        codes: tuple[str, ...] = (draw(st.sampled_from(pool)),)
    elif given is not None:
        codes = given
    else:
        codes = tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)))
    code = st.sampled_from(codes)
    product_list = [
        Product(id=f"prod_{i}", name=f"Product {i}") for i in range(draw(st.integers(1, 2)))
    ]
    plan_list: list[Plan] = []
    for p in product_list:
        for _ in range(draw(st.integers(1, 2))):
            plan_list.append(
                draw(plans(product_id=p.id, id=f"plan_{len(plan_list)}", currency=code))
            )
    customer_list: list[Customer] = []
    sub_list: list[Subscription] = []
    invoice_list: list[Invoice] = []
    txn_list: list[Transaction] = []
    credit_list: list[CreditEntry] = []
    window = moments(min_value=earliest, max_value=latest)
    for i in range(draw(st.integers(1, max_customers))):
        cid = f"cus_{i}"
        customer = draw(customers(id=cid, registered=window))
        customer_list.append(customer)
        for _ in range(draw(st.integers(0, max_subscriptions))):
            sid = f"sub_{len(sub_list)}"
            start = moments(min_value=customer.registered_at, max_value=latest)
            sub = draw(
                subscriptions(
                    cid,
                    id=sid,
                    currency=code,
                    plans=plan_list,
                    start=start,
                    until=latest,
                    max_changes=5,
                )
            )
            sub_list.append(sub)
            periods = _billed_periods(sub, latest)
            if periods and max_invoices:
                chosen = draw(
                    st.lists(
                        st.sampled_from(range(len(periods))),
                        max_size=max_invoices,
                        unique=True,
                    )
                )
                for k in sorted(chosen):
                    invoice_list.append(
                        draw(
                            _invoices(
                                st.just(cid),
                                st.just(f"inv_{len(invoice_list)}"),
                                code,
                                sub,
                                periods[k],
                                2,
                            )
                        )
                    )
        if draw(st.integers(0, 2)) == 0:
            invoice_list.append(
                draw(invoices(cid, id=f"inv_{len(invoice_list)}", currency=code, max_lines=2))
            )
        for _ in range(draw(st.integers(0, 2))):
            credit_list.append(
                draw(
                    credit_entries(
                        cid,
                        id=f"cred_{len(credit_list)}",
                        currency=code,
                        at=moments(min_value=customer.registered_at, max_value=latest),
                    )
                )
            )
    for inv in invoice_list:
        if inv.status is InvoiceStatus.PAID and inv.total.amount > 0:
            txn_list.append(
                draw(
                    _transactions(
                        st.just(inv.customer_id), st.just(f"txn_{len(txn_list)}"), code, inv
                    )
                )
            )
    if draw(st.booleans()):
        txn_list.append(
            draw(
                transactions(
                    st.sampled_from([c.id for c in customer_list]),
                    id=f"txn_{len(txn_list)}",
                    currency=code,
                )
            )
        )
    # Some records draw moments from the whole default range, whatever the window: the
    # rates must cover that range too.
    since = date(min(earliest, EARLIEST).year - 4, 1, 1)
    fx = draw(fx_rates(codes, since=since, until=latest.date(), max_changes=2))
    return Book.of(
        customers=customer_list,
        products=product_list,
        plans=plan_list,
        subscriptions=sub_list,
        invoices=invoice_list,
        transactions=txn_list,
        credits=credit_list,
        fx=fx,
    )


def books(
    *,
    currencies: Iterable[str] | None = None,
    single_currency: bool = False,
    max_customers: int = 4,
    max_subscriptions: int = 2,
    max_invoices: int = 2,
    earliest: datetime = EARLIEST,
    latest: datetime = LATEST,
) -> SearchStrategy[Book]:
    """Small valid books built with :meth:`Book.of` (so ids are unique and references
    resolve).

    * Currencies: ``currencies`` when given (all of them, or one with
      ``single_currency``), else one to three of :data:`DEFAULT_CURRENCIES` (one with
      ``single_currency``). Every record's money is in one of them.
    * One or two products with one or two plans each (some free, some one-off).
    * 1..``max_customers`` customers ``cus_0``, ``cus_1``... registered in
      ``[earliest, latest]``, each with 0..``max_subscriptions`` subscriptions
      (:func:`subscriptions`, starting after registration, often on the book's plans).
    * Up to ``max_invoices`` invoices per subscription, each for a distinct billed
      service period (a sample of the periods, not all of them), plus an occasional
      one-off invoice per customer; a succeeded payment (or a refund) per paid invoice
      with a positive total; an occasional free-standing transaction; up to two credit
      entries per customer.
    * ``fx``: rates between every pair of the book's currencies from January 1st four
      years before ``earliest`` (see :func:`fx_rates`), so ``mrr(book, currency=c)``
      works for any of them.
    """
    given = None
    if currencies is not None:
        given = tuple(dict.fromkeys(currencies))
        if not given:
            raise ValueError("books(currencies=...) needs at least one code")
    return _books(
        given, single_currency, max_customers, max_subscriptions, max_invoices, earliest, latest
    )


# -- invalid values -------------------------------------------------------------------------


def negative_amounts(*, max_value: Decimal | int | str = "-0.0001") -> SearchStrategy[Decimal]:
    """Decimal amounts below zero (to ``max_value``), for prices and fees that must be >= 0."""
    return amounts(min_value=-1_000_000, max_value=max_value, places=4)


def negative_money(currency: str | SearchStrategy[str] | None = None) -> SearchStrategy[Money]:
    """Money below zero: a valid :class:`Money`, but never a valid price, fee or line amount."""
    return money(currency, min_value=-100_000, max_value="-0.01", minor_units=False, places=2)


def non_positive_quantities() -> SearchStrategy[int]:
    """Whole quantities <= 0."""
    return st.integers(max_value=0)


def invalid_quantities() -> SearchStrategy[object]:
    """Anything a quantity must reject: ints <= 0, bools, floats, numeric strings, Decimals."""
    return st.one_of(
        non_positive_quantities(),
        st.booleans(),
        st.floats(allow_nan=True),
        st.integers(1, 100).map(str),
        st.integers(1, 100).map(Decimal),
    )


def naive_datetimes(
    *, min_value: datetime = EARLIEST, max_value: datetime = LATEST
) -> SearchStrategy[datetime]:
    """Datetimes without a timezone, which every moment field rejects."""
    return st.datetimes(
        min_value=min_value.astimezone(UTC).replace(tzinfo=None),
        max_value=max_value.astimezone(UTC).replace(tzinfo=None),
    )


def float_amounts() -> SearchStrategy[float]:
    """Floats (finite or not), which money rejects with a TypeError however exact they look."""
    return st.floats(allow_nan=True, allow_infinity=True)


def unknown_currency_codes() -> SearchStrategy[str]:
    """Strings that are not an ISO 4217 code CLDR knows: unassigned three-letter codes,
    lowercase codes, wrong lengths, digits and the empty string."""
    known = set(_cldr_codes())
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return st.one_of(
        st.text(letters, min_size=3, max_size=3).filter(lambda c: c not in known),
        st.sampled_from(DEFAULT_CURRENCIES).map(str.lower),
        st.text(letters, min_size=0, max_size=2),
        st.text(letters, min_size=4, max_size=6),
        st.sampled_from(("840", "US$", "€", " USD", "USD ")),
    )


def invalid_amount_strings() -> SearchStrategy[str]:
    """Strings money rejects with a ValidationError: not decimal numbers, or not finite."""
    return st.one_of(
        st.sampled_from(("", "abc", "1,50", "1.2.3", "$5", "NaN", "-Infinity", "inf", "sNaN")),
        st.text("xyz!?", min_size=1, max_size=5),
    )
