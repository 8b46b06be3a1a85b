"""Invoice lines before they become revcrm lines: where negative (credit) lines go.

revcrm's ``InvoiceLine`` holds no negative amount yet, so a credit line (a proration credit,
"unused time", a pre-payment credit note) is settled within its invoice: it becomes a
discount on the invoice's positive lines (one-off lines first, those of the same
subscription first, so recurring run-rate lines keep their amount where possible) and tax
credits reduce their tax. What the invoice cannot absorb (a credit larger than the charges)
is what Stripe itself does with a negative invoice total: a credit to the customer's
balance, returned here for a :class:`revcrm.CreditEntry`. Invoice totals stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from revcrm._money import Money
from revcrm._records import InvoiceLine, LineKind

__all__ = ["DraftLine", "build_lines", "settle_credits"]

_ZERO: Final = Decimal(0)


@dataclass(slots=True)
class DraftLine:
    kind: LineKind
    amount: Decimal  # signed, excluding tax
    currency: str
    discount: Decimal = _ZERO
    tax: Decimal = _ZERO
    description: str = ""
    quantity: int = 1
    period_start: datetime | None = None
    period_end: datetime | None = None
    subscription_id: str | None = None
    product_id: str | None = None

    @property
    def is_credit(self) -> bool:
        return self.amount < 0


def settle_credits(
    lines: list[DraftLine], *, extra: Decimal = _ZERO, subscription_id: str | None = None
) -> tuple[list[DraftLine], Decimal]:
    """The invoice's non-credit lines with credits (and ``extra``) absorbed, and the rest.

    ``extra`` is a further credit on the invoice (a pre-payment credit note's amount,
    including its tax: it reduces the line amounts first).
    """
    credit_net = extra
    credit_tax = _ZERO
    charges: list[DraftLine] = []
    for line in lines:
        if line.is_credit:
            credit_net += -line.amount - line.discount
            credit_tax += -line.tax
            sub = subscription_id or line.subscription_id
            subscription_id = sub
        else:
            charges.append(line)

    def order(line: DraftLine) -> tuple[int, int]:
        return (
            0 if line.kind is LineKind.ONE_OFF else 1,
            0 if subscription_id is not None and line.subscription_id == subscription_id else 1,
        )

    for line in sorted(charges, key=order):
        if credit_net > 0:
            take = min(line.amount - line.discount, credit_net)
            line.discount += take
            credit_net -= take
        if credit_tax > 0:
            take = min(line.tax, credit_tax)
            line.tax -= take
            credit_tax -= take
    # A credit note's amount includes its tax: what the line amounts could not take comes
    # off the tax before it is left over.
    for line in charges:
        if credit_net > 0 and line.tax > 0:
            take = min(line.tax, credit_net)
            line.tax -= take
            credit_net -= take
    return charges, max(credit_net, _ZERO) + max(credit_tax, _ZERO)


def build_lines(drafts: list[DraftLine]) -> list[InvoiceLine]:
    out = []
    for d in drafts:
        out.append(
            InvoiceLine(
                kind=d.kind,
                amount=Money(d.amount, d.currency),
                description=d.description,
                quantity=d.quantity,
                discount=Money(d.discount, d.currency) if d.discount else None,
                tax=Money(d.tax, d.currency) if d.tax else None,
                period_start=d.period_start,
                period_end=d.period_end,
                subscription_id=d.subscription_id,
                product_id=d.product_id,
            )
        )
    return out
