"""Customers, products, plans, invoices, transactions and credit ledger entries."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import attrs

from revcrm._checks import (
    as_enum,
    check_count,
    check_id,
    check_instance,
    check_items,
    check_mapping,
    check_text,
    optional_id,
    optional_instance,
    optional_text,
)
from revcrm._cycles import BillingCycle
from revcrm._money import Money, check_currency, check_decimal, money_sum
from revcrm._time import check_date, optional_utc, utc
from revcrm.errors import ValidationError, WrongTypeError

__all__ = [
    "ATTRIBUTE_INT_LIMIT",
    "AttributeValue",
    "CreditEntry",
    "Customer",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "LineKind",
    "PaymentMethod",
    "Plan",
    "Product",
    "Transaction",
    "TransactionKind",
    "TransactionStatus",
]

AttributeValue = str | int | Decimal | bool | date

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


_Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _id(field: str) -> _Validator:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        check_id(value, field)

    return check


def _ref(field: str) -> _Validator:
    """A required reference to another record (``customer_id``, ``product_id``)."""

    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        check_id(value, field)

    return check


def _opt_ref(field: str) -> _Validator:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        optional_id(value, field)

    return check


def _text(field: str) -> _Validator:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        check_text(value, field)

    return check


def _opt_text(field: str) -> _Validator:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        optional_text(value, field)

    return check


def _currency(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    check_currency(value)


def _cycle(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
    optional_instance(value, BillingCycle, "cycle")


def _email(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise ValidationError("email", value, "not an email address")
    return check_text(value.strip(), "email")


#: Integer attribute values lie strictly between ``-ATTRIBUTE_INT_LIMIT`` and
#: ``ATTRIBUTE_INT_LIMIT`` (the decimal range, :data:`revcrm.MAX_MAGNITUDE` digits).
ATTRIBUTE_INT_LIMIT: Final = 10**40


def check_attribute_value(v: object, field: str) -> AttributeValue:
    """One custom attribute value, of the closed set every backend gives back exactly.

    ``str`` (any text: attributes are stored escaped), ``bool``, ``int`` within
    :data:`ATTRIBUTE_INT_LIMIT`, a finite ``Decimal`` in the decimal range (kept as
    written: ``5.10472031E+11`` stays so) or a ``date``. Floats, NaN, datetimes, bytes,
    ``None`` and containers are refused.
    """
    if isinstance(v, str | bool):
        return v
    if isinstance(v, int):
        if not -ATTRIBUTE_INT_LIMIT < v < ATTRIBUTE_INT_LIMIT:
            raise ValidationError(field, v, "integer out of range (at most 40 digits)")
        return v
    if isinstance(v, Decimal):
        check_decimal(v, field)  # the range only: the value is kept exactly as written
        return v
    if isinstance(v, float):
        raise WrongTypeError(field, v, "floats not accepted; use Decimal")
    if isinstance(v, datetime):
        # Attributes hold calendar dates; a moment belongs in a typed field.
        raise WrongTypeError(field, v, "a date, not a datetime")
    if isinstance(v, date):
        return v
    raise WrongTypeError(field, v, "string, integer, Decimal, boolean or date")


def _attributes(value: Mapping[str, AttributeValue] | None) -> Mapping[str, AttributeValue]:
    items = dict(check_mapping(value, "custom_attributes"))
    for key, v in items.items():
        if not isinstance(key, str):
            raise WrongTypeError("custom_attributes", key, "keys must be strings")
        check_attribute_value(v, f"custom_attributes[{key}]")
    return MappingProxyType(items)


def _positive_money(field: str, *, allow_zero: bool = True, optional: bool = False) -> _Validator:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, Money):
            raise ValidationError(field, value, "expected Money")
        if value.amount < 0 or (not allow_zero and value.amount == 0):
            reason = "cannot be negative" if allow_zero else "must be positive"
            raise ValidationError(field, value, reason)

    return check


# Named converters (not lambdas) so mypy sees the accepted types of each field.
def _registered_at(v: object) -> datetime:
    return utc(v, "registered_at")


def _last_login_at(v: object) -> datetime | None:
    return optional_utc(v, "last_login_at")


def _period_start(v: object) -> datetime | None:
    return optional_utc(v, "period_start")


def _period_end(v: object) -> datetime | None:
    return optional_utc(v, "period_end")


def _issued_at(v: object) -> datetime:
    return utc(v, "issued_at")


def _due_date(v: object) -> date:
    return check_date(v, "due_date")


def _paid_at(v: object) -> datetime | None:
    return optional_utc(v, "paid_at")


def _at(v: object) -> datetime:
    return utc(v, "at")


@attrs.frozen(kw_only=True)
class Customer:
    """A customer (a client account of the host panel)."""

    id: str = attrs.field(validator=_id("customer.id"))
    registered_at: datetime = attrs.field(converter=_registered_at)
    external_id: str | None = attrs.field(default=None, validator=_opt_ref("external_id"))
    email: str | None = attrs.field(default=None, converter=_email)
    username: str | None = attrs.field(default=None, validator=_opt_text("username"))
    name: str = attrs.field(default="", validator=_text("name"))
    company: str | None = attrs.field(default=None, validator=_opt_text("company"))
    phone: str | None = attrs.field(default=None, validator=_opt_text("phone"))
    role: str | None = attrs.field(default=None, validator=_opt_text("role"))
    website: str | None = attrs.field(default=None, validator=_opt_text("website"))
    location: str | None = attrs.field(default=None, validator=_opt_text("location"))
    # staff member who owns the account
    owner_id: str | None = attrs.field(default=None, validator=_opt_ref("owner_id"))
    last_login_at: datetime | None = attrs.field(default=None, converter=_last_login_at)
    referral_source: str | None = attrs.field(default=None, validator=_opt_text("referral_source"))
    referrer_id: str | None = attrs.field(default=None, validator=_opt_ref("referrer_id"))
    custom_attributes: Mapping[str, AttributeValue] = attrs.field(
        factory=dict, converter=_attributes, hash=False
    )


@attrs.frozen(kw_only=True)
class Product:
    id: str = attrs.field(validator=_id("product.id"))
    name: str = attrs.field(validator=_text("name"))
    external_id: str | None = attrs.field(default=None, validator=_opt_ref("external_id"))


@attrs.frozen(kw_only=True)
class Plan:
    """A price of a product on one billing cycle; the setup fee is kept apart from it."""

    id: str = attrs.field(validator=_id("plan.id"))
    product_id: str = attrs.field(validator=_ref("product_id"))
    name: str = attrs.field(validator=_text("name"))
    price: Money = attrs.field(validator=_positive_money("price"))
    # None: a one-off product, not recurring
    cycle: BillingCycle | None = attrs.field(validator=_cycle)
    setup_fee: Money | None = attrs.field(
        default=None, validator=_positive_money("setup_fee", optional=True)
    )
    external_id: str | None = attrs.field(default=None, validator=_opt_ref("external_id"))

    def __attrs_post_init__(self) -> None:
        if self.setup_fee is not None and self.setup_fee.currency != self.price.currency:
            raise ValidationError("setup_fee", self.setup_fee, "must be in the price's currency")


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class LineKind(enum.StrEnum):
    RECURRING = "recurring"
    ONE_OFF = "one_off"


def _line_kind(value: object) -> LineKind:
    return as_enum(LineKind, value, "kind")


def _invoice_status(value: object) -> InvoiceStatus:
    return as_enum(InvoiceStatus, value, "status")


def _money(field: str, *, optional: bool = False) -> _Validator:
    def check(_i: object, _a: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, Money):
            raise ValidationError(field, value, "expected Money")

    return check


@attrs.frozen(kw_only=True)
class InvoiceLine:
    """One invoice line: ``amount`` is quantity x unit price before discount and tax.

    A negative ``amount`` is a credit line, of either kind: a recurring credit covers a
    service period (a proration credit, Stripe's "unused time": it lowers the stream's
    MRR over that period), a one-off credit lowers the invoice only. A credit line's
    ``discount`` and ``tax`` carry its sign (zero or negative, the discount no larger than
    the credit). An invoice's total stays at zero or above (see :class:`Invoice`).
    """

    kind: LineKind = attrs.field(converter=_line_kind)
    amount: Money = attrs.field(validator=_money("amount"))
    description: str = attrs.field(default="", validator=_text("description"))
    quantity: int = 1
    discount: Money | None = attrs.field(default=None, validator=_money("discount", optional=True))
    tax: Money | None = attrs.field(default=None, validator=_money("tax", optional=True))
    period_start: datetime | None = attrs.field(default=None, converter=_period_start)
    period_end: datetime | None = attrs.field(default=None, converter=_period_end)
    subscription_id: str | None = attrs.field(default=None, validator=_opt_ref("subscription_id"))
    product_id: str | None = attrs.field(default=None, validator=_opt_ref("product_id"))

    def __attrs_post_init__(self) -> None:
        check_count(self.quantity, "quantity", minimum=1)
        for field in ("discount", "tax"):
            other = getattr(self, field)
            if other is not None and other.currency != self.amount.currency:
                raise ValidationError(field, other, f"must be in {self.amount.currency}")
        if (self.period_start is None) != (self.period_end is None):
            raise ValidationError("period_end", self.period_end, "give both period ends or neither")
        if (
            self.period_start is not None
            and self.period_end is not None
            and self.period_end <= self.period_start
        ):
            raise ValidationError("period_end", self.period_end, "must be after period_start")
        if self.kind is LineKind.RECURRING and self.period_start is None:
            raise ValidationError("period_start", None, "a recurring line needs its service period")
        credit = self.amount.amount < 0
        sign = "zero or negative on a credit line" if credit else "cannot be negative"
        for field in ("discount", "tax"):
            other = getattr(self, field)
            if other is not None and (other.amount > 0 if credit else other.amount < 0):
                raise ValidationError(field, other, sign)
        if self.discount is not None and abs(self.discount.amount) > abs(self.amount.amount):
            raise ValidationError("discount", self.discount, "exceeds the line amount")

    @property
    def net(self) -> Money:
        """Amount after discount, excluding tax: what MRR counts."""
        return self.amount - self.discount if self.discount is not None else self.amount

    @property
    def total(self) -> Money:
        return self.net + self.tax if self.tax is not None else self.net


def _lines(value: Iterable[InvoiceLine]) -> tuple[InvoiceLine, ...]:
    lines = check_items(value, "lines")
    for i, line in enumerate(lines):
        check_instance(line, InvoiceLine, f"lines[{i}]")
    return lines


@attrs.frozen(kw_only=True)
class Invoice:
    id: str = attrs.field(validator=_id("invoice.id"))
    customer_id: str = attrs.field(validator=_ref("customer_id"))
    currency: str = attrs.field(validator=_currency)
    issued_at: datetime = attrs.field(converter=_issued_at)
    due_date: date = attrs.field(converter=_due_date)
    status: InvoiceStatus = attrs.field(converter=_invoice_status)
    lines: tuple[InvoiceLine, ...] = attrs.field(converter=_lines, default=())
    number: str | None = attrs.field(default=None, validator=_opt_text("number"))
    external_id: str | None = attrs.field(default=None, validator=_opt_ref("external_id"))
    paid_at: datetime | None = attrs.field(default=None, converter=_paid_at)

    def __attrs_post_init__(self) -> None:
        for i, line in enumerate(self.lines):
            if line.amount.currency != self.currency:
                raise ValidationError(
                    f"lines[{i}].amount", line.amount, f"must be in {self.currency}"
                )
        # Credit lines lower the invoice, never below zero: a credit beyond the charges
        # is the customer's credit balance (a CreditEntry), as Stripe books a negative total.
        if any(line.amount.amount < 0 for line in self.lines) and self.total.amount < 0:
            raise ValidationError("lines", self.total, "credits exceed the charges")
        if self.due_date < self.issued_at.date():
            raise ValidationError("due_date", self.due_date, "is before the issue date")

    @property
    def subtotal(self) -> Money:
        return money_sum((line.net for line in self.lines), self.currency)

    @property
    def tax(self) -> Money:
        return money_sum((line.tax for line in self.lines if line.tax is not None), self.currency)

    @property
    def total(self) -> Money:
        return self.subtotal + self.tax

    def is_overdue(self, on: date) -> bool:
        """Open and past its due date on ``on`` (derived, never stored)."""
        return self.status is InvoiceStatus.OPEN and check_date(on, "on") > self.due_date


class TransactionKind(enum.StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class TransactionStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"


class PaymentMethod(enum.StrEnum):
    """Common payment methods; ``Transaction.method`` accepts any other lowercase name too."""

    STRIPE = "stripe"
    PAYPAL = "paypal"
    CREDIT = "credit"
    BANK_TRANSFER = "bank_transfer"
    CARD = "card"


def _transaction_kind(value: object) -> TransactionKind:
    return as_enum(TransactionKind, value, "kind")


def _transaction_status(value: object) -> TransactionStatus:
    return as_enum(TransactionStatus, value, "status")


def _method(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("method", value, "a payment method name is required")
    return check_text(value.strip().lower(), "method")


@attrs.frozen(kw_only=True)
class Transaction:
    """A payment or refund; ``amount`` is always positive, ``kind`` gives the direction."""

    id: str = attrs.field(validator=_id("transaction.id"))
    customer_id: str = attrs.field(validator=_ref("customer_id"))
    kind: TransactionKind = attrs.field(converter=_transaction_kind)
    status: TransactionStatus = attrs.field(converter=_transaction_status)
    amount: Money = attrs.field(validator=_positive_money("amount", allow_zero=False))
    method: str = attrs.field(converter=_method)
    at: datetime = attrs.field(converter=_at)
    invoice_id: str | None = attrs.field(default=None, validator=_opt_ref("invoice_id"))
    subscription_id: str | None = attrs.field(default=None, validator=_opt_ref("subscription_id"))
    external_id: str | None = attrs.field(default=None, validator=_opt_ref("external_id"))

    @property
    def succeeded(self) -> bool:
        return self.status is TransactionStatus.SUCCEEDED

    @property
    def signed_amount(self) -> Money:
        """Positive for payments, negative for refunds."""
        return self.amount if self.kind is TransactionKind.PAYMENT else -self.amount


@attrs.frozen(kw_only=True)
class CreditEntry:
    """A credit ledger entry: positive adds credit, negative spends it. Balances are derived."""

    id: str = attrs.field(validator=_id("credit.id"))
    customer_id: str = attrs.field(validator=_ref("customer_id"))
    amount: Money
    reason: str
    at: datetime = attrs.field(converter=_at)
    staff_id: str | None = attrs.field(default=None, validator=_opt_ref("staff_id"))
    invoice_id: str | None = attrs.field(default=None, validator=_opt_ref("invoice_id"))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.amount, Money) or self.amount.is_zero():
            raise ValidationError("amount", self.amount, "a non-zero Money is required")
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValidationError("reason", self.reason, "a reason is required")
        check_text(self.reason, "reason")
