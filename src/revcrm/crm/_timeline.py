"""The activity timeline of one customer: everything that happened, in time order."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Final

import attrs

from revcrm._book import Book
from revcrm._money import Money, check_currency, format_money
from revcrm._records import Customer, Invoice, Transaction, TransactionKind
from revcrm._time import as_moment
from revcrm.crm._records import LoggedCall, Note, TagAction, TagChange
from revcrm.crm._services import customer_book
from revcrm.errors import ValidationError
from revcrm.leads import Lead, LeadStage, LeadTransition
from revcrm.metrics._engine import Movement, MrrAnalysis, analyse
from revcrm.metrics._mrr import DEFAULT_POLICY
from revcrm.metrics._policy import MetricsPolicy

__all__ = ["TimelineEntry", "TimelineKind", "activity_timeline", "format_timeline"]

_EPOCH: Final = datetime.min.replace(tzinfo=UTC)
_TICK: Final = timedelta(microseconds=1)


class TimelineKind(enum.StrEnum):
    """What an entry records; entries at the same moment appear in this order."""

    REGISTERED = "registered"
    LEAD_EVENT = "lead_event"
    INVOICE = "invoice"
    TRANSACTION = "transaction"
    MRR_MOVEMENT = "mrr_movement"
    TAG_CHANGE = "tag_change"
    CALL = "call"
    NOTE = "note"


_RANK: Final = {k: i for i, k in enumerate(TimelineKind)}

TimelineRecord = (
    Customer
    | Lead
    | LeadTransition
    | Invoice
    | Transaction
    | Movement
    | TagChange
    | LoggedCall
    | Note
)


@attrs.frozen(kw_only=True)
class TimelineEntry:
    """One event of a customer's history.

    ``summary`` is locale-free text (amounts are kept apart so :func:`format_timeline`
    can format them); ``amount`` is in the reporting currency (cash converted at the
    transaction's date, invoices at the issue date, movements as the MRR engine converts
    them) and ``original_amount`` in the record's own currency. ``ref`` is the id of the
    source record (the subscription ids of a movement), ``record`` the record itself.
    """

    at: datetime
    kind: TimelineKind
    summary: str
    ref: str | None
    staff_id: str | None
    amount: Money | None
    original_amount: Money | None
    record: TimelineRecord

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.at, _RANK[self.kind], self.ref or "")


def _lead_summary(t: LeadTransition) -> str:
    text = f"Lead moved from {t.from_stage} to {t.to_stage}"
    if t.to_stage is LeadStage.LOST and t.lost_reason:
        text += f" ({t.lost_reason})"
    if t.note:
        text += f": {t.note}"
    return text


def _transaction_summary(t: Transaction) -> str:
    kind = "Payment" if t.kind is TransactionKind.PAYMENT else "Refund"
    text = f"{kind} {t.status.value} via {t.method}"
    if t.invoice_id is not None:
        text += f" for invoice {t.invoice_id}"
    return text


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def activity_timeline(
    book: Book,
    customer_id: str,
    *,
    as_of: date | datetime,
    currency: str,
    notes: Iterable[Note] = (),
    calls: Iterable[LoggedCall] = (),
    lead_events: Iterable[LeadTransition] = (),
    lead: Lead | None = None,
    tag_changes: Iterable[TagChange] = (),
    policy: MetricsPolicy | None = None,
    analysis: MrrAnalysis | None = None,
) -> tuple[TimelineEntry, ...]:
    """The customer's timeline up to ``as_of`` inclusive, oldest first.

    Entries: the registration, lead events (``lead`` adds its creation and every move;
    ``lead_events`` adds loose moves; give one or the other), invoices issued, transactions
    (any status), MRR movements (under ``policy``, or ``analysis``'s), tag changes, logged
    calls and notes (deleted notes are left out; an edited note appears once, at its
    creation, with its current text). Ties are broken by :class:`TimelineKind` order, then
    record id, so the order is deterministic. Records of another customer are a
    :class:`~revcrm.errors.ValidationError`.
    """
    check_currency(currency)
    at = as_moment(as_of, "as_of")
    customer = book.customer(customer_id)
    notes, calls, tag_changes = tuple(notes), tuple(calls), tuple(tag_changes)
    lead_events = tuple(lead_events)
    owned: tuple[tuple[str, tuple[Note | LoggedCall | TagChange, ...]], ...] = (
        ("notes", notes),
        ("calls", calls),
        ("tag_changes", tag_changes),
    )
    for field, items in owned:
        for i, item in enumerate(items):
            if item.customer_id != customer_id:
                raise ValidationError(
                    f"{field}[{i}].customer_id", item.customer_id, f"not {customer_id}"
                )
    if lead is not None and lead_events:
        raise ValidationError("lead_events", lead_events, "give lead or lead_events, not both")
    if analysis is not None:
        if analysis.currency != currency:
            raise ValidationError("analysis", analysis.currency, f"not in {currency}")
        if policy is not None and policy != analysis.policy:
            raise ValidationError("policy", policy, "differs from the analysis' policy")
    else:
        analysis = analyse(
            customer_book(book, customer_id),
            currency=currency,
            policy=policy if policy is not None else DEFAULT_POLICY,
            horizon=at + _TICK,
        )
    fx = book.fx
    out: list[TimelineEntry] = []

    def add(
        when: datetime,
        kind: TimelineKind,
        summary: str,
        record: TimelineRecord,
        *,
        ref: str | None = None,
        staff_id: str | None = None,
        amount: Money | None = None,
        original: Money | None = None,
    ) -> None:
        if when <= at:
            out.append(
                TimelineEntry(
                    at=when,
                    kind=kind,
                    summary=summary,
                    ref=ref,
                    staff_id=staff_id,
                    amount=amount,
                    original_amount=original,
                    record=record,
                )
            )

    add(customer.registered_at, TimelineKind.REGISTERED, "Registered", customer, ref=customer.id)
    if lead is not None:
        add(
            lead.created_at,
            TimelineKind.LEAD_EVENT,
            "Lead created",
            lead,
            ref=lead.id,
            staff_id=lead.owner_id,
        )
        lead_events = lead.history
    for t in lead_events:
        add(
            t.at,
            TimelineKind.LEAD_EVENT,
            _lead_summary(t),
            t,
            staff_id=t.staff_id,
            ref=lead.id if lead is not None else None,
        )
    for inv in book.invoices_by_customer.get(customer_id, ()):
        if inv.issued_at <= at:
            total = inv.total
            add(
                inv.issued_at,
                TimelineKind.INVOICE,
                f"Invoice {inv.number or inv.id} issued, due {inv.due_date.isoformat()}",
                inv,
                ref=inv.id,
                amount=fx.convert(total, currency, on=inv.issued_at.date()),
                original=total,
            )
    for txn in book.transactions_by_customer.get(customer_id, ()):
        if txn.at <= at:
            add(
                txn.at,
                TimelineKind.TRANSACTION,
                _transaction_summary(txn),
                txn,
                ref=txn.id,
                amount=fx.convert(txn.amount, currency, on=txn.at.date()),
                original=txn.amount,
            )
    for m in analysis.movements(_EPOCH, at + _TICK):
        if m.customer_id == customer_id:
            add(
                m.at,
                TimelineKind.MRR_MOVEMENT,
                f"MRR {m.kind.value.replace('_', ' ')}",
                m,
                ref=",".join(m.subscription_ids),
                amount=m.amount,
                original=m.amount,
            )
    for c in tag_changes:
        verb = "added" if c.action is TagAction.ADDED else "removed"
        add(
            c.at,
            TimelineKind.TAG_CHANGE,
            f"Tag {c.tag!r} {verb}",
            c,
            ref=c.tag,
            staff_id=c.staff_id,
        )
    for call in calls:
        summary = "Call logged" + (f": {_first_line(call.summary)}" if call.summary else "")
        add(call.at, TimelineKind.CALL, summary, call, ref=call.id, staff_id=call.staff_id)
    for n in notes:
        if not n.deleted:
            add(
                n.created_at,
                TimelineKind.NOTE,
                f"Note: {_first_line(n.body)}",
                n,
                ref=n.id,
                staff_id=n.author_id,
            )
    out.sort(key=lambda e: e.sort_key)
    return tuple(out)


def format_timeline(entries: Iterable[TimelineEntry], *, locale: str) -> str:
    """The timeline as plain text, one line per entry, amounts formatted for ``locale``."""
    lines = []
    for e in entries:
        amount = f" {format_money(e.amount, locale=locale)}" if e.amount is not None else ""
        staff = f" [{e.staff_id}]" if e.staff_id else ""
        lines.append(f"{e.at:%Y-%m-%d %H:%M} {e.kind.value:<12} {e.summary}{amount}{staff}")
    return "\n".join(lines)
