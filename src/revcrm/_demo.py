"""A seeded, realistic book of a small hosting business, for the demo and the benchmarks.

Everything is derived from ``seed`` and ``as_of``: no clock, no environment.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import attrs
from dateutil.relativedelta import relativedelta

from revcrm._book import Book
from revcrm._cycles import BillingCycle
from revcrm._discount import Discount, DiscountDuration
from revcrm._money import FxRates, Money
from revcrm._records import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Plan,
    Product,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription, SubscriptionState, SubscriptionStatus
from revcrm.leads import Lead, Pipeline

if TYPE_CHECKING:
    from revcrm._facade import CRM

__all__ = ["DEMO_AS_OF", "demo_book", "demo_crm_activity", "demo_leads"]

DEMO_AS_OF: Final = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# (product id, name, monthly list price in USD, setup fee in USD, weight)
_PRODUCTS: Final = (
    ("shared", "Shared Hosting", Decimal("9.99"), Decimal(0), 45),
    ("wp", "Managed WordPress", Decimal("24.00"), Decimal(0), 20),
    ("vps", "VPS", Decimal("40.00"), Decimal("20.00"), 22),
    ("dedicated", "Dedicated Server", Decimal("189.00"), Decimal("99.00"), 5),
    ("email", "Business Email", Decimal("6.00"), Decimal(0), 8),
)
_ADDONS: Final = (
    ("ssl", "SSL Certificate", Decimal("5.00")),
    ("backup", "Offsite Backup", Decimal("4.00")),
)
# (cycle, weight, multi-period discount: longer terms are cheaper per month)
_CYCLES: Final = (
    (BillingCycle.MONTHLY, 48, Decimal(1)),
    (BillingCycle.QUARTERLY, 10, Decimal("0.97")),
    (BillingCycle.SEMIANNUAL, 6, Decimal("0.95")),
    (BillingCycle.ANNUAL, 26, Decimal("0.90")),
    (BillingCycle.BIENNIAL, 7, Decimal("0.85")),
    (BillingCycle.TRIENNIAL, 3, Decimal("0.80")),
)
_CURRENCIES: Final = (
    ("USD", 60, Decimal(1)),
    ("EUR", 25, Decimal("0.92")),
    ("GBP", 15, Decimal("0.79")),
)
_METHODS: Final = (("stripe", 55), ("paypal", 25), ("bank_transfer", 8), ("credit", 4), ("card", 8))
_SOURCES: Final = (
    ("search", 35),
    ("direct", 25),
    ("referral", 15),
    ("campaign", 12),
    ("social", 13),
)
_FIRST: Final = (
    "Ada",
    "Ben",
    "Chloé",
    "Dmitri",
    "Eva",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jun",
    "Kai",
    "Lena",
)
_LAST: Final = (
    "Nguyen",
    "Schmidt",
    "García",
    "Okafor",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Kowalski",
    "Smith",
)


def _pick(rng: random.Random, table: tuple[tuple[object, ...], ...], weight_index: int) -> int:
    # Sampling weights for the generator's random choices, not money: floats are fine.
    return rng.choices(range(len(table)), weights=[float(row[weight_index]) for row in table])[0]  # type: ignore[arg-type]


@attrs.define
class _Gen:
    rng: random.Random
    start: datetime
    as_of: datetime
    with_invoices: bool
    subs: list[Subscription] = attrs.Factory(list)
    invoices: list[Invoice] = attrs.Factory(list)
    txs: list[Transaction] = attrs.Factory(list)
    credits: list[CreditEntry] = attrs.Factory(list)
    seq: int = 0

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq:07d}"

    def moment(self, lo: datetime, hi: datetime) -> datetime:
        span = max(int((hi - lo).total_seconds()), 1)
        return (lo + timedelta(seconds=self.rng.randrange(span))).replace(microsecond=0)

    def subscription(
        self, customer_id: str, at: datetime, currency: str, fx: Decimal, product: int, addon: bool
    ) -> None:
        rng = self.rng
        ci = _pick(rng, _CYCLES, 1)
        cycle, _, term = _CYCLES[ci]
        if addon:
            pid, _name, monthly = _ADDONS[rng.randrange(len(_ADDONS))]
            setup = Decimal(0)
        else:
            pid, _name, monthly, setup, _w = _PRODUCTS[product]
        months = int(cycle.length_in_months)
        price = Money((monthly * months * term * fx).quantize(Decimal("0.01")), currency)
        trial = not addon and cycle == BillingCycle.MONTHLY and rng.random() < 0.15
        discount = None
        if rng.random() < 0.08:
            discount = Discount.percent(rng.choice((10, 20, 25)), DiscountDuration.FOREVER)
        elif rng.random() < 0.05:
            discount = Discount.percent(50, DiscountDuration.ONCE)
        sub = Subscription.start(
            id=self.next_id("sub_"),
            customer_id=customer_id,
            at=at,
            price=price,
            cycle=cycle,
            quantity=1 if rng.random() < 0.9 else rng.randint(2, 5),
            product_id=pid,
            plan_id=f"{pid}_{ci}",
            discount=discount,
            trial_end=at + timedelta(days=14) if trial else None,
            details=(
                ("server", f"srv{rng.randint(1, 40):02d}"),
                ("node", f"node-{rng.choice('abcd')}"),
            ),
        )
        t = at
        if trial:
            t = at + timedelta(days=14)
            if t >= self.as_of:
                self.subs.append(sub)
                return
            if rng.random() < 0.3:
                self.subs.append(sub.cancel(t, ends_at=t))
                return
            sub = sub.set_status(t, SubscriptionStatus.ACTIVE)
        ended = False
        months_alive = 0
        while not ended:
            t = t + timedelta(days=rng.randint(25, 35))
            months_alive += 1
            if t >= self.as_of:
                break
            r = rng.random()
            state = sub.current
            if r < 0.018:  # cancel at period end, recorded when the paid period ends
                sub = sub.schedule_cancellation(t)
                end = state.service_period(t)[1]
                if end < self.as_of:
                    sub = sub.cancel(end, ends_at=end)
                    ended = True
                    if rng.random() < 0.2:
                        back = end + timedelta(days=rng.randint(5, 120))
                        if back < self.as_of:
                            sub = sub.reactivate(back)
                            ended = False
                            t = back
                else:
                    break
            elif r < 0.038:
                factor = Decimal(rng.choice(("1.5", "2", "2.5")))
                sub = sub.change_plan(
                    t,
                    price=Money((state.price.amount * factor).quantize(Decimal("0.01")), currency),
                )
            elif r < 0.046:
                sub = sub.change_plan(
                    t,
                    price=Money(
                        (state.price.amount * Decimal("0.6")).quantize(Decimal("0.01")), currency
                    ),
                )
            elif r < 0.052:
                sub = sub.change_plan(t, quantity=state.quantity + 1)
            elif r < 0.064 and state.status is SubscriptionStatus.ACTIVE:
                sub = sub.set_status(t, SubscriptionStatus.PAST_DUE)
                fix = t + timedelta(days=rng.randint(2, 20))
                if fix < self.as_of:
                    if rng.random() < 0.75:
                        sub = sub.set_status(fix, SubscriptionStatus.ACTIVE)
                    else:
                        sub = sub.set_status(fix, SubscriptionStatus.SUSPENDED)
                        gone = fix + timedelta(days=rng.randint(5, 30))
                        if gone < self.as_of:
                            sub = sub.set_status(gone, SubscriptionStatus.TERMINATED)
                            ended = True
                    t = fix
            elif r < 0.068 and state.discount is None:
                sub = sub.set_discount(t, Discount.percent(15))
        self.subs.append(sub)
        if self.with_invoices:
            self.bill(sub, setup if not addon else Decimal(0), fx)

    def record(
        self,
        inv: Invoice,
        sub: Subscription,
        method: str,
        kind: TransactionKind,
        status: TransactionStatus,
        amount: Money,
        at: datetime,
    ) -> None:
        self.txs.append(
            Transaction(
                id=self.next_id("tx_"),
                customer_id=sub.customer_id,
                kind=kind,
                status=status,
                amount=amount,
                method=method,
                at=at,
                invoice_id=inv.id,
                subscription_id=sub.id,
            )
        )

    def bill(self, sub: Subscription, setup: Decimal, fx: Decimal) -> None:
        """One invoice per billing period while the service runs, paid or failed."""
        rng = self.rng
        first = True
        for start, end, state in _periods(sub, self.as_of):
            if state.status in (SubscriptionStatus.TRIALING, SubscriptionStatus.SUSPENDED):
                continue
            amount = state.list_amount()
            discount = None
            if state.discount is not None and (
                state.discount.duration is not DiscountDuration.ONCE or first
            ):
                after = state.discount.apply(amount)
                if after != amount:
                    discount = amount - after
            lines = [
                InvoiceLine(
                    kind=LineKind.RECURRING,
                    amount=amount,
                    discount=discount,
                    tax=(
                        (amount - (discount or Money.zero(amount.currency))) * Decimal("0.2")
                    ).rounded()
                    if amount.currency == "EUR"
                    else None,
                    period_start=start,
                    period_end=end,
                    subscription_id=sub.id,
                    product_id=state.product_id,
                    description=f"{state.product_id} {state.cycle}",
                )
            ]
            if first and setup > 0:
                lines.append(
                    InvoiceLine(
                        kind=LineKind.ONE_OFF,
                        amount=Money((setup * fx).quantize(Decimal("0.01")), amount.currency),
                        product_id=state.product_id,
                        description="setup fee",
                    )
                )
            first = False
            inv_id = self.next_id("inv_")
            failed = state.status is SubscriptionStatus.PAST_DUE
            paid_at = start + timedelta(hours=rng.randint(0, 72))
            overdue_open = failed and rng.random() < 0.5
            status = InvoiceStatus.OPEN if overdue_open else InvoiceStatus.PAID
            if paid_at >= self.as_of:
                status = InvoiceStatus.OPEN
            inv = Invoice(
                id=inv_id,
                customer_id=sub.customer_id,
                currency=amount.currency,
                issued_at=start,
                due_date=(start + timedelta(days=7)).date(),
                status=status,
                lines=lines,
                number=f"INV-{self.seq:07d}",
                paid_at=paid_at if status is InvoiceStatus.PAID else None,
            )
            self.invoices.append(inv)
            method = _METHODS[_pick(rng, _METHODS, 1)][0]

            if failed:
                self.record(
                    inv,
                    sub,
                    method,
                    TransactionKind.PAYMENT,
                    TransactionStatus.FAILED,
                    inv.total,
                    start + timedelta(hours=1),
                )
            if status is InvoiceStatus.PAID and not inv.total.is_zero():
                self.record(
                    inv,
                    sub,
                    method,
                    TransactionKind.PAYMENT,
                    TransactionStatus.SUCCEEDED,
                    inv.total,
                    paid_at,
                )
                refund_at = paid_at + timedelta(days=rng.randint(1, 20))
                if rng.random() < 0.02 and refund_at < self.as_of:
                    share = Decimal(rng.choice(("0.5", "1")))
                    self.record(
                        inv,
                        sub,
                        method,
                        TransactionKind.REFUND,
                        TransactionStatus.SUCCEEDED,
                        (inv.total * share).rounded(),
                        refund_at,
                    )


def _periods(
    sub: Subscription, as_of: datetime
) -> Iterator[tuple[datetime, datetime, SubscriptionState]]:
    """Billing periods ``[start, end)`` of a subscription before ``as_of`` with the state that
    opened each, computed from each state's anchor (never stepped)."""
    states = list(sub.replay())
    for k, (change, state) in enumerate(states):
        until = states[k + 1][0].at if k + 1 < len(states) else as_of
        if state.status.is_ended:
            continue
        n = 0
        anchor = state.billing_anchor
        while True:
            start = state.cycle.advance(anchor, n)
            n += 1
            if start < change.at:
                continue
            if start >= until or start >= as_of:
                break
            yield start, state.cycle.advance(anchor, n), state


def demo_book(
    customers: int = 300,
    *,
    seed: int = 7,
    as_of: datetime = DEMO_AS_OF,
    months: int = 36,
    with_invoices: bool = True,
) -> Book:
    """A hosting business's book: ``customers`` accounts over ``months`` months before
    ``as_of``, in USD, EUR and GBP, with trials, upgrades, downgrades, past-due spells,
    cancellations, reactivations, invoices, payments, refunds and credits."""
    rng = random.Random(seed)
    start = as_of - relativedelta(months=months)
    g = _Gen(rng=rng, start=start, as_of=as_of, with_invoices=with_invoices)
    fx_rates = _fx(rng, start - relativedelta(months=1), as_of)
    people = []
    for i in range(customers):
        # Growth: later months sign up more customers.
        frac = rng.random() ** 0.75
        registered = (start + (as_of - start) * frac).replace(microsecond=0)
        ci = _pick(rng, _CURRENCIES, 1)
        currency, _, fx = _CURRENCIES[ci]
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        cid = f"cus_{i:06d}"
        source = _SOURCES[_pick(rng, _SOURCES, 1)][0]
        people.append(
            Customer(
                id=cid,
                external_id=f"whmcs-{1000 + i}",
                email=f"{first.lower()}.{last.lower()}{i}@example.com".replace("é", "e").replace(
                    "í", "i"
                ),
                username=f"{first.lower()}{i}",
                name=f"{first} {last}",
                company=f"{last} Studio" if rng.random() < 0.3 else None,
                registered_at=registered,
                last_login_at=g.moment(registered, as_of),
                referral_source=source,
                referrer_id=f"cus_{rng.randrange(max(i, 1)):06d}"
                if source == "referral" and i
                else None,
            )
        )
        if rng.random() < 0.08:
            continue  # registered, never purchased
        at = registered + timedelta(minutes=rng.randint(5, 60 * 24 * 10))
        if at >= as_of:
            continue
        g.subscription(cid, at, currency, fx, _pick(rng, _PRODUCTS, 4), addon=False)
        if rng.random() < 0.45:
            later = at + timedelta(days=rng.randint(0, 200))
            if later < as_of:
                g.subscription(cid, later, currency, fx, 0, addon=True)
        if rng.random() < 0.05:
            g.credits.append(
                CreditEntry(
                    id=g.next_id("cr_"),
                    customer_id=cid,
                    amount=Money(rng.choice(("5.00", "10.00", "25.00")), currency),
                    reason="goodwill credit after outage",
                    staff_id="staff_1",
                    at=g.moment(at, as_of),
                )
            )
    products = [Product(id=p[0], name=p[1]) for p in _PRODUCTS]
    products += [Product(id=a[0], name=a[1]) for a in _ADDONS]
    catalogue = [(p[0], p[1], p[2], p[3]) for p in _PRODUCTS]
    catalogue += [(a[0], a[1], a[2], Decimal(0)) for a in _ADDONS]
    plans = [
        Plan(
            id=f"{pid}_{ci}",
            product_id=pid,
            name=f"{name} ({cycle})",
            price=Money(
                (monthly * int(cycle.length_in_months) * term).quantize(Decimal("0.01")), "USD"
            ),
            cycle=cycle,
            setup_fee=Money(setup, "USD") if setup else None,
        )
        for pid, name, monthly, setup in catalogue
        for ci, (cycle, _, term) in enumerate(_CYCLES)
    ]
    return Book.of(
        customers=people,
        products=products,
        plans=plans,
        subscriptions=g.subs,
        invoices=g.invoices,
        transactions=g.txs,
        credits=g.credits,
        fx=fx_rates,
    )


def _fx(rng: random.Random, start: datetime, end: datetime) -> FxRates:
    """Daily-ish EUR and GBP rates to USD, a gentle random walk (one rate a week)."""
    rates: list[tuple[date, str, str, Decimal]] = []
    eur, gbp = Decimal("1.08"), Decimal("1.26")
    day = start.date()
    while day <= end.date():
        rates.append((day, "EUR", "USD", eur))
        rates.append((day, "GBP", "USD", gbp))
        eur = (eur * (1 + Decimal(rng.randint(-12, 12)) / 1000)).quantize(Decimal("0.0001"))
        gbp = (gbp * (1 + Decimal(rng.randint(-12, 12)) / 1000)).quantize(Decimal("0.0001"))
        day += timedelta(days=7)
    return FxRates.from_rates(rates)


_LOST_REASONS: Final = ("price", "went with a competitor", "no budget", "no response")


def demo_leads(book: Book, *, seed: int = 11, as_of: datetime = DEMO_AS_OF) -> Pipeline:
    """Leads for the demo book: prospects that later registered (converted when they did,
    through :meth:`Pipeline.match_registration`), plus prospects lost or still open."""
    rng = random.Random(seed)
    pipeline = Pipeline.of()
    staff = ("staff_1", "staff_2", "staff_3")
    start = as_of - relativedelta(months=12)
    n = 0
    for c in book.customers:
        if c.registered_at < start or c.email is None or rng.random() < 0.5:
            continue
        created = c.registered_at - timedelta(days=rng.randint(2, 40))
        lead = Lead(
            id=f"lead_{n:05d}",
            email=c.email.upper() if rng.random() < 0.1 else c.email,
            name=c.name,
            created_at=created,
            source=c.referral_source if c.referral_source != "referral" else "direct",
            owner_id=rng.choice(staff),
            expected_value=Money(rng.choice(("10", "25", "40", "189")), "USD"),
        )
        n += 1
        t = created + timedelta(hours=rng.randint(2, 48))
        if t < c.registered_at:
            lead = lead.contact(at=t, staff_id=lead.owner_id)
            t2 = t + timedelta(days=rng.randint(1, 5))
            if t2 < c.registered_at and rng.random() < 0.6:
                lead = lead.qualify(at=t2, staff_id=lead.owner_id)
        pipeline = pipeline.add(lead)
        pipeline, _ = pipeline.match_registration(c, at=c.registered_at)
    for i in range(n // 2):
        created = start + (as_of - start) * rng.random()
        lead = Lead(
            id=f"lead_{n + i:05d}",
            email=f"prospect{i}@example.net",
            name=f"Prospect {i}",
            created_at=created,
            source=rng.choice(("campaign:black-friday", "search", "social", "direct")),
            owner_id=rng.choice(staff),
            expected_value=Money(rng.choice(("10", "25", "40")), "USD"),
        )
        t = created + timedelta(days=rng.randint(1, 10))
        if t < as_of and rng.random() < 0.8:
            lead = lead.contact(at=t, staff_id=lead.owner_id)
            t += timedelta(days=rng.randint(1, 20))
            if t < as_of and rng.random() < 0.5:
                lead = lead.qualify(at=t, staff_id=lead.owner_id)
                t += timedelta(days=rng.randint(1, 20))
            if t < as_of and rng.random() < 0.6:
                lead = lead.lose(reason=rng.choice(_LOST_REASONS), at=t, staff_id=lead.owner_id)
        pipeline = pipeline.add(lead)
    return pipeline


_TAGS: Final = (("VIP", "#d4af37"), ("Reseller", "#2e86de"), ("Needs follow-up", "#e74c3c"))
_NOTES: Final = (
    "Asked about moving to a dedicated server next quarter.",
    "Prefers email over phone.",
    "Had a billing dispute in spring, resolved with a credit.",
    "Runs several client sites; candidate for the reseller plan.",
)
_HEARD: Final = ("Search engine", "A friend", "Podcast", "Forum")
_PLANS_FOR: Final = ("Personal site", "Client sites", "Online shop", "Other")
_TOOLS: Final = ("cPanel", "Plesk", "Docker", "Nothing yet")


def demo_crm_activity(
    crm: CRM, book: Book, *, seed: int = 13, as_of: datetime = DEMO_AS_OF
) -> None:
    """What staff and customers add through the CRM to the demo book: tags, notes (one
    pinned), logged calls and intake answers, each at a moment before ``as_of``."""
    from revcrm.crm import IntakeQuestion, IntakeScope

    rng = random.Random(seed)
    staff = ("staff_1", "staff_2", "staff_3")
    for name, colour in _TAGS:
        crm.tags.create(name, colour)
    heard = crm.intake.define(
        IntakeQuestion.choice(
            id="heard", prompt="How did you hear about us?", options=_HEARD, position=1
        )
    )
    purpose = crm.intake.define(
        IntakeQuestion.choice(
            id="purpose", prompt="What is the hosting for?", options=_PLANS_FOR, position=2
        )
    )
    tools = crm.intake.define(
        IntakeQuestion.multiple_choice(
            id="tools",
            prompt="Which tools do you use?",
            options=_TOOLS,
            scope=IntakeScope.PURCHASE,
            position=3,
        )
    )
    subs = book.subscriptions_by_customer
    for c in book.customers:
        if c.registered_at >= as_of:
            continue
        at = c.registered_at + timedelta(minutes=5)
        if rng.random() < 0.7:
            crm.intake.answer(c.id, heard.id, rng.choice(_HEARD), at=at)
        if rng.random() < 0.6:
            crm.intake.answer(c.id, purpose.id, rng.choice(_PLANS_FOR), at=at)
        first = subs.get(c.id, ())[:1]
        if first and first[0].started_at < as_of and rng.random() < 0.5:
            picked = rng.sample(_TOOLS, rng.randint(1, 2))
            crm.intake.answer(
                c.id,
                tools.id,
                picked,
                subscription_id=first[0].id,
                at=first[0].started_at + timedelta(minutes=1),
            )
        later = c.registered_at + (as_of - c.registered_at) * rng.random()
        if rng.random() < 0.25:
            note = crm.notes.add(c.id, rng.choice(_NOTES), author_id=rng.choice(staff), at=later)
            if rng.random() < 0.3:
                crm.notes.pin(note.id, staff_id=note.author_id, at=later)
        if rng.random() < 0.1:
            crm.calls.log(c.id, "Renewal check-in call.", staff_id=rng.choice(staff), at=later)
        if rng.random() < 0.15:
            name = rng.choice(_TAGS)[0]
            crm.tags.assign(c.id, name, staff_id=rng.choice(staff), at=later)
