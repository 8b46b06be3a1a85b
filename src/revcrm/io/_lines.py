"""Invoice lines before they become revcrm lines, and pre-payment credit notes.

Credit lines (a proration credit, "unused time", a negative invoice item) stay negative
lines of their invoice. A pre-payment credit note is not a line: it lowers what the
invoice asks, so it is settled within the invoice as a discount on its lines (one-off
lines first, then recurring lines) and off their tax. What an invoice cannot carry (credits
beyond its charges: a negative total) is what Stripe itself does with it, a credit to the
customer's balance, returned here for a :class:`revcrm.CreditEntry` and shown on the
invoice as a line of that amount, so that its total is zero. Invoice totals stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from revcrm._money import Money
from revcrm._records import InvoiceLine, LineKind

__all__ = ["BALANCE_LINE", "DraftLine", "build_lines", "settle_credits"]

_ZERO: Final = Decimal(0)
#: The description of the line that carries a negative total to the customer's balance.
BALANCE_LINE: Final = "credited to the customer's balance"


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

    @property
    def net(self) -> Decimal:
        """The built line's net: ``discount`` is a size, and it lowers a credit too."""
        return self.amount + self.discount if self.is_credit else self.amount - self.discount


def settle_credits(
    lines: list[DraftLine], *, extra: Decimal = _ZERO, subscription_id: str | None = None
) -> tuple[list[DraftLine], Decimal]:
    """The invoice's lines with ``extra`` absorbed, and the credit left over.

    Credit lines beyond the charges are followed by a one-off line of that amount,
    :data:`BALANCE_LINE` (the invoice's total is then zero).

    ``extra`` is a credit on the invoice that is not a line (a pre-payment credit note's
    amount, including its tax): it lowers the charges' amounts first (one-off lines first,
    then those of ``subscription_id``), then their tax, never below what the credit lines
    leave. The left-over credit is what the invoice cannot carry: credit lines beyond the
    charges (a negative total) and the rest of ``extra``.
    """
    net = sum((line.net for line in lines), _ZERO)
    tax = sum((line.tax for line in lines), _ZERO)
    over = max(-(net + tax), _ZERO)
    take_net = max(min(extra, net), _ZERO)
    take_tax = max(min(extra - take_net, tax, net + tax - take_net), _ZERO)
    left = over + extra - take_net - take_tax

    def order(line: DraftLine) -> tuple[int, int]:
        return (
            0 if line.kind is LineKind.ONE_OFF else 1,
            0 if subscription_id is not None and line.subscription_id == subscription_id else 1,
        )

    for line in sorted((x for x in lines if not x.is_credit), key=order):
        if take_net > 0:
            take = min(line.net, take_net)
            line.discount += take
            take_net -= take
        if take_tax > 0:
            take = min(line.tax, take_tax)
            line.tax -= take
            take_tax -= take
    if over > 0:
        # The invoice says where its negative total went, in a line of its own, so that
        # its total is zero (an invoice total is never negative).
        currency = lines[0].currency
        balance = DraftLine(LineKind.ONE_OFF, over, currency, description=BALANCE_LINE)
        lines = [*lines, balance]
    return lines, left


def build_lines(drafts: list[DraftLine]) -> list[InvoiceLine]:
    out = []
    for d in drafts:
        out.append(
            InvoiceLine(
                kind=d.kind,
                amount=Money(d.amount, d.currency),
                description=d.description,
                quantity=d.quantity,
                # A credit's discount lowers the credit: it carries the credit's sign.
                discount=Money(-abs(d.discount) if d.is_credit else d.discount, d.currency)
                if d.discount
                else None,
                tax=Money(d.tax, d.currency) if d.tax else None,
                period_start=d.period_start,
                period_end=d.period_end,
                subscription_id=d.subscription_id,
                product_id=d.product_id,
            )
        )
    return out
