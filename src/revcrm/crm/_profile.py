"""The customer profile: everything a CRM page shows about one customer, at ``as_of``.

:func:`customer_profile` is pure: it reads a :class:`~revcrm.Book` (the whole book or the
customer's sub-book from ``book.restricted_to([customer_id])``; the figures are the same)
and the CRM records the caller passes in. Money is in the reporting ``currency``: cash
converted at each transaction's date, MRR through the MRR engine (the policy's FX rule),
balances at ``as_of``'s date (see :mod:`revcrm.metrics._customer_value`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs

from revcrm._book import Book
from revcrm._checks import as_enum, check_records
from revcrm._cycles import BillingCycle
from revcrm._money import Money, check_currency, format_money, money_sum
from revcrm._records import (
    Customer,
    Invoice,
    InvoiceStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription, SubscriptionStatus
from revcrm._time import as_moment
from revcrm.crm._intake import IntakeItem
from revcrm.crm._records import Contact, CustomAttribute, Note, Tag, TicketRef, custom_attributes
from revcrm.crm._services import (
    CustomerStatus,
    customer_book,
    customer_status,
    invoice_overdue,
    invoice_unpaid,
)
from revcrm.errors import ValidationError
from revcrm.leads import LeadStage
from revcrm.metrics._customer_value import CustomerValue, customer_value
from revcrm.metrics._engine import Movement, MrrAnalysis, analyse
from revcrm.metrics._mrr import DEFAULT_POLICY, convert_mrr, subscription_mrr
from revcrm.metrics._policy import MetricsPolicy
from revcrm.segments._baseline import LtvBaseline
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._rules import SegmentMiss
from revcrm.segments._segments import segmentation

__all__ = [
    "BillingSummary",
    "CustomerProfile",
    "InvoiceSummary",
    "Overview",
    "ServiceSummary",
    "TransactionGroups",
    "customer_profile",
    "format_profile",
]

_EPOCH: Final = datetime.min.replace(tzinfo=UTC)
_TICK: Final = timedelta(microseconds=1)
_RENEWING: Final = frozenset(
    {SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE}
)


@attrs.frozen(kw_only=True)
class Overview:
    """Who the customer is: contact details and account facts from the host."""

    customer_id: str
    name: str
    email: str | None
    username: str | None
    phone: str | None
    role: str | None
    company: str | None
    website: str | None
    location: str | None
    registered_at: datetime
    last_login_at: datetime | None
    owner_id: str | None
    referral_source: str | None
    referrer_id: str | None
    external_id: str | None

    @classmethod
    def of(cls, c: Customer) -> Overview:
        return cls(
            customer_id=c.id,
            name=c.name,
            email=c.email,
            username=c.username,
            phone=c.phone,
            role=c.role,
            company=c.company,
            website=c.website,
            location=c.location,
            registered_at=c.registered_at,
            last_login_at=c.last_login_at,
            owner_id=c.owner_id,
            referral_source=c.referral_source,
            referrer_id=c.referrer_id,
            external_id=c.external_id,
        )


@attrs.frozen(kw_only=True)
class BillingSummary:
    """The customer's revenue at ``as_of`` in the reporting currency.

    ``ltv`` is the customer's historical lifetime value: net payments (successful payments
    minus refunds, each converted at its date), the same figure the High Value segment
    ranks by. ``lead_stage`` is the lead status given for a customer who has not bought a
    service yet (``status`` is ``LEAD``), else None.
    """

    currency: str
    mrr: Money
    arr: Money
    ltv: Money
    total_paid: Money
    refunded: Money
    net_payments: Money
    payment_count: int
    average_invoice_value: Money | None
    outstanding_balance: Money
    credit_balance: Money
    subscriber_since: datetime | None
    last_payment_at: datetime | None
    status: CustomerStatus
    lead_stage: LeadStage | None


@attrs.frozen(kw_only=True)
class ServiceSummary:
    """One service (subscription) as it stood at ``as_of``.

    ``price`` is per cycle for the whole quantity, before discount, in the service's
    currency; ``mrr`` is its MRR in the reporting currency. ``ends_at`` is when service
    ends or ended after a cancellation or termination. ``paid`` and ``refunded`` are the
    successful payments and refunds for this service: a transaction naming the
    subscription counts whole; one naming an invoice counts for the share of the invoice
    total on this subscription's lines.
    """

    subscription_id: str
    external_id: str | None
    product_id: str | None
    product_name: str | None
    plan_id: str | None
    plan_name: str | None
    status: SubscriptionStatus
    cycle: BillingCycle
    price: Money
    quantity: int
    mrr: Money
    started_at: datetime
    next_renewal: datetime | None
    cancellation_scheduled: bool
    ends_at: datetime | None
    details: tuple[tuple[str, str], ...]
    paid: Money
    refunded: Money
    payment_count: int


@attrs.frozen(kw_only=True)
class InvoiceSummary:
    """An invoice issued by ``as_of``: ``overdue`` and ``balance`` (the unpaid remainder,
    in the invoice currency) are derived at ``as_of``."""

    invoice_id: str
    number: str | None
    issued_at: datetime
    due_date: date
    status: InvoiceStatus
    total: Money
    paid_at: datetime | None
    overdue: bool
    balance: Money


@attrs.frozen(kw_only=True)
class TransactionGroups:
    """Transactions up to ``as_of`` in time order: successful payments, successful
    refunds, failed attempts (either kind) and pending ones."""

    succeeded: tuple[Transaction, ...]
    refunded: tuple[Transaction, ...]
    failed: tuple[Transaction, ...]
    pending: tuple[Transaction, ...]


@attrs.frozen(kw_only=True)
class CustomerProfile:
    customer_id: str
    as_of: datetime
    currency: str
    overview: Overview
    billing: BillingSummary
    services: tuple[ServiceSummary, ...]  # by start, then id
    invoices: tuple[InvoiceSummary, ...]  # newest first
    transactions: TransactionGroups
    tickets: tuple[TicketRef, ...]  # most recently updated first
    mrr_history: tuple[tuple[datetime, Money], ...]  # MRR after each change, oldest first
    movements: tuple[Movement, ...]  # oldest first
    contacts: tuple[Contact, ...]  # by name
    custom_attributes: tuple[CustomAttribute, ...]  # by key
    notes: tuple[Note, ...]  # pinned first, then newest first; deleted notes left out
    tags: tuple[str, ...]  # by name, case-insensitively
    intake: tuple[IntakeItem, ...] = ()  # question order (see revcrm.crm.customer_intake)
    # Built-in segments, when the profile was given the book's LTV baseline (High Value
    # compares with the whole book): the memberships, the primary one, and for a customer
    # in OTHER the rule each named segment's test missed.
    segments: frozenset[Segment] = frozenset()
    primary_segment: Segment | None = None
    other_reason: tuple[SegmentMiss, ...] = ()


def _resolve(
    analysis: MrrAnalysis | None, currency: str, policy: MetricsPolicy | None
) -> MetricsPolicy:
    if analysis is None:
        return policy if policy is not None else DEFAULT_POLICY
    if analysis.currency != currency:
        raise ValidationError(
            "analysis", analysis.currency, f"the analysis is in {analysis.currency}, not {currency}"
        )
    if policy is not None and policy != analysis.policy:
        raise ValidationError("policy", policy, "differs from the analysis' policy")
    return analysis.policy


def _own(items: Iterable[object], field: str, customer_id: str) -> None:
    for i, item in enumerate(items):
        owner = getattr(item, "customer_id", customer_id)
        if owner != customer_id:
            raise ValidationError(
                f"{field}[{i}].customer_id",
                owner,
                f"belongs to another customer than {customer_id}",
            )


def _service_shares(invoice: Invoice) -> list[tuple[str, Decimal]]:
    """Each subscription's share of the invoice total, by its lines (a transaction for the
    invoice is split in these shares). Shares of a fully linked invoice add up to 1."""
    total = invoice.total
    if total.amount <= 0:
        return []
    by_sub: dict[str, Money] = {}
    for line in invoice.lines:
        if line.subscription_id is not None:
            prev = by_sub.get(line.subscription_id, Money.zero(invoice.currency))
            by_sub[line.subscription_id] = prev + line.total
    return [(sid, part.ratio(total)) for sid, part in sorted(by_sub.items())]


def _allocate(
    book: Book, txns: Sequence[Transaction], at: datetime, currency: str
) -> dict[str, tuple[Money, Money, int]]:
    """Per subscription: (paid, refunded, payment count) of successful transactions."""
    invoices = (
        {i.id: i for i in book.invoices_by_customer.get(txns[0].customer_id, ())} if txns else {}
    )
    zero = Money.zero(currency)
    paid: dict[str, Money] = defaultdict(lambda: zero)
    refunded: dict[str, Money] = defaultdict(lambda: zero)
    count: dict[str, int] = defaultdict(int)
    for t in txns:
        if not t.succeeded or t.at > at:
            continue
        amount = book.fx.convert(t.amount, currency, on=t.at.date())
        parts: list[tuple[str, Money]]
        if t.subscription_id is not None:
            parts = [(t.subscription_id, amount)]
        elif t.invoice_id is not None and t.invoice_id in invoices:
            shares = _service_shares(invoices[t.invoice_id])
            parts = [(sid, amount * share) for sid, share in shares]
            if parts and sum(s for _, s in shares) == 1:
                # The last share takes the remainder, so a fully linked payment splits exactly.
                rest = amount - money_sum((m for _, m in parts[:-1]), currency)
                parts[-1] = (parts[-1][0], rest)
        else:
            parts = []
        for sid, part in parts:
            if t.kind is TransactionKind.PAYMENT:
                paid[sid] += part
                count[sid] += 1
            else:
                refunded[sid] += part
    keys = set(paid) | set(refunded)
    return {k: (paid[k], refunded[k], count[k]) for k in keys}


def _services(
    book: Book,
    subs: Sequence[Subscription],
    at: datetime,
    currency: str,
    policy: MetricsPolicy,
    allocated: dict[str, tuple[Money, Money, int]],
) -> tuple[ServiceSummary, ...]:
    products = {p.id: p for p in book.products}
    plans = {p.id: p for p in book.plans}
    zero = Money.zero(currency)
    out = []
    for sub in sorted(subs, key=lambda s: (s.started_at, s.id)):
        s = sub.state_at(at)
        if s is None:
            continue
        plan = plans.get(s.plan_id) if s.plan_id is not None else None
        product_id = s.product_id or (plan.product_id if plan is not None else None)
        product = products.get(product_id) if product_id is not None else None
        value = subscription_mrr(sub, at, policy=policy)
        mrr = zero if value.is_zero() else convert_mrr(value, sub, at, currency, book.fx, policy)
        paid, refunded, count = allocated.get(sub.id, (zero, zero, 0))
        renews = s.next_renewal(at) if s.status in _RENEWING else None
        ends = s.ended_at
        if ends is None and s.cancel_at_period_end and not s.status.is_ended:
            ends = s.service_period(at)[1]
        out.append(
            ServiceSummary(
                subscription_id=sub.id,
                external_id=sub.external_id,
                product_id=product_id,
                product_name=product.name if product is not None else None,
                plan_id=s.plan_id,
                plan_name=plan.name if plan is not None else None,
                status=s.status,
                cycle=s.cycle,
                price=s.list_amount(),
                quantity=s.quantity,
                mrr=mrr,
                started_at=s.started_at,
                next_renewal=renews,
                cancellation_scheduled=s.cancel_at_period_end,
                ends_at=ends,
                details=sub.details,
                paid=paid,
                refunded=refunded,
                payment_count=count,
            )
        )
    return tuple(out)


def _invoices(
    book: Book, invoices: Sequence[Invoice], txns: Sequence[Transaction], at: datetime
) -> tuple[InvoiceSummary, ...]:
    linked: dict[str, list[Transaction]] = defaultdict(list)
    for t in txns:
        if (
            t.invoice_id is not None
            and t.succeeded
            and t.kind is TransactionKind.PAYMENT
            and t.at <= at
        ):
            linked[t.invoice_id].append(t)
    out = []
    for inv in invoices:
        if inv.issued_at > at:
            continue
        balance = Money.zero(inv.currency)
        if invoice_unpaid(inv, at):
            paid = money_sum(
                (book.fx.convert(t.amount, inv.currency, on=t.at.date()) for t in linked[inv.id]),
                inv.currency,
            )
            remainder = inv.total - paid
            balance = remainder if remainder.amount > 0 else balance
        out.append(
            InvoiceSummary(
                invoice_id=inv.id,
                number=inv.number,
                issued_at=inv.issued_at,
                due_date=inv.due_date,
                status=inv.status,
                total=inv.total,
                paid_at=inv.paid_at,
                overdue=invoice_overdue(inv, at),
                balance=balance,
            )
        )
    out.sort(key=lambda i: (i.issued_at, i.invoice_id), reverse=True)
    return tuple(out)


def _groups(txns: Iterable[Transaction], at: datetime) -> TransactionGroups:
    ordered = sorted((t for t in txns if t.at <= at), key=lambda t: (t.at, t.id))
    return TransactionGroups(
        succeeded=tuple(t for t in ordered if t.succeeded and t.kind is TransactionKind.PAYMENT),
        refunded=tuple(t for t in ordered if t.succeeded and t.kind is TransactionKind.REFUND),
        failed=tuple(t for t in ordered if t.status is TransactionStatus.FAILED),
        pending=tuple(t for t in ordered if t.status is TransactionStatus.PENDING),
    )


def customer_profile(
    book: Book,
    customer_id: str,
    *,
    as_of: date | datetime,
    currency: str,
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
    tickets: Iterable[TicketRef] = (),
    contacts: Iterable[Contact] = (),
    notes: Iterable[Note] = (),
    tags: Iterable[Tag | str] = (),
    lead_status: LeadStage | str | None = None,
    value: CustomerValue | None = None,
    intake: Iterable[IntakeItem] = (),
    ltv_baseline: LtvBaseline | None = None,
    segment_config: SegmentConfig | None = None,
) -> CustomerProfile:
    """The profile of one customer at ``as_of`` (a date means 00:00 UTC).

    ``analysis`` reuses an :func:`~revcrm.metrics.analyse` result in ``currency`` (its
    policy is then the profile's); without one, the customer's sub-book is analysed under
    ``policy`` (default ChartMogul's). ``value`` reuses a
    :func:`~revcrm.metrics._customer_value.customer_value` computed for the same moment.
    ``intake`` is the customer's :func:`~revcrm.crm.customer_intake` (shown as given).
    With ``ltv_baseline`` (the whole book's High Value threshold, e.g.
    ``store.ltv_baseline(...)``) the profile carries the customer's built-in segments
    under ``segment_config`` and, in ``OTHER``, the rule each segment missed.
    Notes and contacts must belong to the customer (else
    :class:`~revcrm.errors.ValidationError`); an unknown customer is a
    :class:`~revcrm.errors.NotFoundError`.
    """
    check_currency(currency)
    at = as_moment(as_of, "as_of")
    pol = _resolve(analysis, currency, policy)
    customer = book.customer(customer_id)
    notes = check_records(notes, Note, "notes")
    contacts = check_records(contacts, Contact, "contacts")
    tickets = check_records(tickets, TicketRef, "tickets")
    intake = check_records(intake, IntakeItem, "intake")
    _own(notes, "notes", customer_id)
    _own(contacts, "contacts", customer_id)
    stage = None if lead_status is None else as_enum(LeadStage, lead_status, "lead_status")
    if analysis is None:
        analysis = analyse(
            customer_book(book, customer_id), currency=currency, policy=pol, horizon=at + _TICK
        )
    if value is None:
        # The analysis the MRR comes from also gives "subscriber since" (one analysis).
        value = customer_value(book, customer_id, as_of=at, currency=currency, analysis=analysis)
    elif value.customer_id != customer_id or value.as_of != at or value.currency != currency:
        raise ValidationError("value", value, "computed for another customer, moment or currency")
    subs = book.subscriptions_by_customer.get(customer_id, ())
    invoices = book.invoices_by_customer.get(customer_id, ())
    txns = book.transactions_by_customer.get(customer_id, ())
    status = customer_status(subs, invoices, at)
    mrr = analysis.customer_mrr(customer_id, at)
    billing = BillingSummary(
        currency=currency,
        mrr=mrr,
        arr=mrr * 12,
        ltv=value.net_payments,
        total_paid=value.total_paid,
        refunded=value.refunded,
        net_payments=value.net_payments,
        payment_count=value.payment_count,
        average_invoice_value=value.average_invoice_value,
        outstanding_balance=value.outstanding_balance,
        credit_balance=value.credit_balance,
        subscriber_since=value.subscriber_since,
        last_payment_at=value.last_payment_at,
        status=status,
        lead_stage=stage if status is CustomerStatus.LEAD else None,
    )
    movements = tuple(
        m for m in analysis.movements(_EPOCH, at + _TICK) if m.customer_id == customer_id
    )
    tag_names: dict[str, str] = {}
    for tag in tags:
        t = tag if isinstance(tag, Tag) else Tag.of(tag)
        tag_names.setdefault(t.key, t.name)
    visible = [n for n in notes if not n.deleted and n.created_at <= at]
    visible.sort(key=lambda n: (n.created_at, n.id), reverse=True)
    visible.sort(key=lambda n: not n.pinned)  # stable: pinned first, each group newest first
    return CustomerProfile(
        customer_id=customer_id,
        as_of=at,
        currency=currency,
        overview=Overview.of(customer),
        billing=billing,
        services=_services(book, subs, at, currency, pol, _allocate(book, txns, at, currency)),
        invoices=_invoices(book, invoices, txns, at),
        transactions=_groups(txns, at),
        tickets=tuple(sorted(tickets, key=lambda k: (k.updated_at, k.id), reverse=True)),
        mrr_history=tuple(
            (when, m) for when, m in analysis.customer_timeline(customer_id) if when <= at
        ),
        movements=movements,
        contacts=tuple(sorted(contacts, key=lambda c: (c.name.casefold(), c.id))),
        custom_attributes=custom_attributes(customer.custom_attributes),
        notes=tuple(visible),
        tags=tuple(sorted(tag_names.values(), key=lambda n: (n.casefold(), n))),
        intake=_intake_items(intake, customer_id),
        **_segments(book, customer_id, at, currency, analysis, ltv_baseline, segment_config),
    )


def _segments(
    book: Book,
    customer_id: str,
    at: datetime,
    currency: str,
    analysis: MrrAnalysis,
    baseline: LtvBaseline | None,
    config: SegmentConfig | None,
) -> dict[str, Any]:
    if baseline is None:
        return {}
    seg = segmentation(
        book.restricted_to([customer_id]),
        as_of=at,
        currency=currency,
        analysis=analysis,
        ltv_baseline=baseline,
        config=config if config is not None else DEFAULT_CONFIG,
    )
    segments = seg.segments_of(customer_id)
    return {
        "segments": segments,
        "primary_segment": seg.primary(customer_id),
        "other_reason": seg.misses(customer_id) if Segment.OTHER in segments else (),
    }


def _intake_items(items: Iterable[IntakeItem], customer_id: str) -> tuple[IntakeItem, ...]:
    out = tuple(items)
    for item in out:
        if not isinstance(item, IntakeItem):
            raise ValidationError("intake", item, "expected IntakeItem values")
        if item.answer is not None and item.answer.customer_id != customer_id:
            raise ValidationError("intake", item.answer.customer_id, f"not {customer_id}'s answer")
    return out


# -- plain-text rendering ---------------------------------------------------------------------


def _day(value: datetime | date | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d")


def format_profile(profile: CustomerProfile, *, locale: str) -> str:
    """The profile as a plain-text block (for a terminal or the demo), amounts formatted
    for ``locale`` and rounded once for display."""

    def fm(m: Money | None) -> str:
        return "-" if m is None else format_money(m, locale=locale)

    o, b = profile.overview, profile.billing
    status = b.status.value + (f" ({b.lead_stage.value} lead)" if b.lead_stage else "")
    lines = [
        f"Customer {o.customer_id}: {o.name or '-'} as of {profile.as_of:%Y-%m-%d %H:%M} UTC",
        f"  Email {o.email or '-'}  Phone {o.phone or '-'}  Role {o.role or '-'}",
        f"  Company {o.company or '-'}  Website {o.website or '-'}  Location {o.location or '-'}",
        f"  Registered {_day(o.registered_at)}  Last login {_day(o.last_login_at)}  "
        f"Owner {o.owner_id or '-'}",
        f"  Referral source {o.referral_source or '-'}"
        + (f" (referred by {o.referrer_id})" if o.referrer_id else ""),
        f"  Status {status}  Subscriber since {_day(b.subscriber_since)}",
        f"  MRR {fm(b.mrr)}  ARR {fm(b.arr)}  LTV {fm(b.ltv)}",
        f"  Total paid {fm(b.total_paid)}  Net payments {fm(b.net_payments)}  "
        f"Average invoice {fm(b.average_invoice_value)}",
        f"  Outstanding {fm(b.outstanding_balance)}  Credit {fm(b.credit_balance)}  "
        f"Last payment {_day(b.last_payment_at)}",
    ]
    if profile.primary_segment is not None:
        names = ", ".join(sorted(x.label for x in profile.segments))
        lines.append(f"  Segments {names} (primary {profile.primary_segment.label})")
        lines += [f"    not {m}" for m in profile.other_reason]
    if profile.tags:
        lines.append(f"  Tags: {', '.join(profile.tags)}")
    lines.append(f"  Services ({len(profile.services)})")
    for s in profile.services:
        name = s.plan_name or s.product_name or s.subscription_id
        lines.append(
            f"    {s.subscription_id} {name}: {s.status.value}, {s.cycle}, {fm(s.price)}, "
            f"MRR {fm(s.mrr)}, next renewal {_day(s.next_renewal)}, paid {fm(s.paid)}"
        )
        if s.details:
            lines.append("      " + ", ".join(f"{k}={v}" for k, v in s.details))
    lines.append(f"  Invoices ({len(profile.invoices)})")
    for i in profile.invoices:
        flag = " OVERDUE" if i.overdue else ""
        lines.append(
            f"    {i.number or i.invoice_id} {_day(i.issued_at)} due {_day(i.due_date)}: "
            f"{fm(i.total)} {i.status.value}{flag}"
        )
    tx = profile.transactions
    lines.append(
        f"  Transactions: {len(tx.succeeded)} succeeded, {len(tx.refunded)} refunded, "
        f"{len(tx.failed)} failed, {len(tx.pending)} pending"
    )
    if profile.movements:
        lines.append("  MRR movements")
        lines += [f"    {_day(m.at)} {m.kind.value}: {fm(m.amount)}" for m in profile.movements]
    if profile.tickets:
        lines.append("  Tickets")
        lines += [
            f"    #{k.id} {k.subject} [{k.status}] {_day(k.updated_at)}" for k in profile.tickets
        ]
    if profile.contacts:
        lines.append("  Contacts")
        lines += [
            f"    {c.name}{f' ({c.title})' if c.title else ''} {c.email or '-'} {c.phone or '-'}"
            for c in profile.contacts
        ]
    if profile.custom_attributes:
        lines.append("  Attributes")
        lines += [f"    {a.key} ({a.type.value}): {a.text}" for a in profile.custom_attributes]
    if profile.intake:
        lines.append("  Intake")
        for item in profile.intake:
            a = item.answer
            shown = "-" if a is None else (a.text if a.text is not None else ", ".join(a.choices))
            about = f" [service {item.subscription_id}]" if item.subscription_id else ""
            lines.append(f"    {item.question.prompt}{about}: {shown}")
    if profile.notes:
        lines.append("  Notes")
        lines += [
            f"    {'[pinned] ' if n.pinned else ''}{_day(n.created_at)} {n.author_id}: {n.body}"
            for n in profile.notes
        ]
    return "\n".join(lines)
