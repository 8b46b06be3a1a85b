"""Records as flat rows of plain values, and back; canonical fingerprints; text checks.

Both backends use these: the SQL store writes the rows into its tables, and both compare
fingerprints to decide whether an upsert changes anything, so "equal" means the same on
every backend. Rows hold str, int, bool, Decimal, aware UTC datetime, date or None.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._discount import Discount, DiscountDuration
from revcrm._money import EXACT_CONTEXT, Money
from revcrm._records import (
    AttributeValue,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    Plan,
    Product,
    Transaction,
)
from revcrm._subscription import Subscription, SubscriptionChange
from revcrm.errors import ValidationError

__all__ = [
    "Row",
    "check_text",
    "decode_credit",
    "decode_customer",
    "decode_invoice",
    "decode_plan",
    "decode_product",
    "decode_subscription",
    "decode_transaction",
    "encode_credit",
    "encode_customer",
    "encode_invoice",
    "encode_plan",
    "encode_product",
    "encode_subscription",
    "encode_transaction",
    "fingerprint",
    "search_folds",
]

Row = dict[str, Any]

_SKIP: Final = (Decimal, datetime, date, int, bool, float, type(None), Money)


def _check_str(value: str, path: str) -> None:
    if "\x00" in value:
        raise ValidationError(path, value, "NUL characters cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(path, value, "not valid Unicode text (lone surrogate)") from None


def _walk(value: object, path: str) -> None:
    if isinstance(value, str):
        _check_str(value, path)
    elif isinstance(value, _SKIP):
        return
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(f"{path} key", k, "keys must be strings")
            _check_str(k, f"{path} key")
            _walk(v, f"{path}[{k}]")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")
    elif attrs.has(type(value)):
        for a in attrs.fields(type(value)):  # type: ignore[arg-type]
            if a.name.startswith("_") or a.name in _JSON_FIELDS:
                continue  # derived caches, and fields stored as escaped JSON
            _walk(getattr(value, a.name), f"{path}.{a.name}")


#: Stored as ASCII-escaped JSON, so any text round-trips (custom attributes, host details).
_JSON_FIELDS: Final = frozenset({"custom_attributes", "details"})


def check_text(record: object, kind: str) -> None:
    """Reject text no backend can store faithfully: NUL characters and lone surrogates.

    PostgreSQL refuses NUL in text and no UTF-8 database holds a lone surrogate, so every
    backend rejects them up front with a :class:`ValidationError` naming the field. Custom
    attributes and subscription details are stored as escaped JSON and accept any text.
    """
    _walk(record, kind)


def search_folds(c: Customer) -> Row:
    """Case-folded name, email and username: what search and the name/email sorts use."""
    return {
        "name_fold": c.name.casefold(),
        "email_fold": (c.email or "").casefold(),
        "username_fold": (c.username or "").casefold(),
    }


# -- customers -------------------------------------------------------------------------------


def _encode_attribute(value: AttributeValue) -> list[Any]:
    # Tagged so a round trip restores the exact type (bool before int: bool is an int).
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, Decimal):
        return ["d", str(value)]
    if isinstance(value, date):
        return ["t", value.isoformat()]
    return ["s", value]


def _decode_attribute(tagged: Sequence[Any]) -> AttributeValue:
    tag, value = tagged
    match tag:
        case "b":
            return bool(value)
        case "i":
            return int(value)
        case "d":
            return Decimal(value)
        case "t":
            return date.fromisoformat(value)
    return str(value)


def encode_attributes(values: Mapping[str, AttributeValue]) -> str:
    return json.dumps(
        {k: _encode_attribute(v) for k, v in values.items()},
        sort_keys=True,
        separators=(",", ":"),
        # ASCII escapes keep any text storable, NUL and lone surrogates included.
        ensure_ascii=True,
    )


def decode_attributes(text: str) -> dict[str, AttributeValue]:
    return {k: _decode_attribute(v) for k, v in json.loads(text).items()}


def encode_customer(c: Customer) -> Row:
    return {
        "id": c.id,
        "external_id": c.external_id,
        "registered_at": c.registered_at,
        "email": c.email,
        "username": c.username,
        "name": c.name,
        "company": c.company,
        "phone": c.phone,
        "role": c.role,
        "website": c.website,
        "location": c.location,
        "owner_id": c.owner_id,
        "last_login_at": c.last_login_at,
        "referral_source": c.referral_source,
        "referrer_id": c.referrer_id,
        "custom_attributes": encode_attributes(c.custom_attributes),
    }


def decode_customer(r: Mapping[Any, Any]) -> Customer:
    return Customer(
        id=r["id"],
        external_id=r["external_id"],
        registered_at=r["registered_at"],
        email=r["email"],
        username=r["username"],
        name=r["name"],
        company=r["company"],
        phone=r["phone"],
        role=r["role"],
        website=r["website"],
        location=r["location"],
        owner_id=r["owner_id"],
        last_login_at=r["last_login_at"],
        referral_source=r["referral_source"],
        referrer_id=r["referrer_id"],
        custom_attributes=decode_attributes(r["custom_attributes"]),
    )


# -- catalogue -------------------------------------------------------------------------------


def encode_product(p: Product) -> Row:
    return {"id": p.id, "external_id": p.external_id, "name": p.name}


def decode_product(r: Mapping[Any, Any]) -> Product:
    return Product(id=r["id"], external_id=r["external_id"], name=r["name"])


def _cycle_cols(cycle: BillingCycle | None) -> tuple[int | None, str | None]:
    return (None, None) if cycle is None else (cycle.count, cycle.unit.value)


def _cycle(count: int | None, unit: str | None) -> BillingCycle | None:
    return None if count is None or unit is None else BillingCycle(int(count), CycleUnit(unit))


def encode_plan(p: Plan) -> Row:
    count, unit = _cycle_cols(p.cycle)
    return {
        "id": p.id,
        "external_id": p.external_id,
        "product_id": p.product_id,
        "name": p.name,
        "price": p.price.amount,
        "currency": p.price.currency,
        "cycle_count": count,
        "cycle_unit": unit,
        "setup_fee": None if p.setup_fee is None else p.setup_fee.amount,
    }


def decode_plan(r: Mapping[Any, Any]) -> Plan:
    cur = r["currency"]
    return Plan(
        id=r["id"],
        external_id=r["external_id"],
        product_id=r["product_id"],
        name=r["name"],
        price=Money(r["price"], cur),
        cycle=_cycle(r["cycle_count"], r["cycle_unit"]),
        setup_fee=None if r["setup_fee"] is None else Money(r["setup_fee"], cur),
    )


# -- subscriptions ---------------------------------------------------------------------------


def encode_change(sub_id: str, seq: int, c: SubscriptionChange) -> Row:
    count, unit = _cycle_cols(c.cycle)
    d = c.discount
    return {
        "subscription_id": sub_id,
        "seq": seq,
        "kind": c.kind.value,
        "at": c.at,
        "price": None if c.price is None else c.price.amount,
        "price_currency": None if c.price is None else c.price.currency,
        "cycle_count": count,
        "cycle_unit": unit,
        "quantity": c.quantity,
        "product_id": c.product_id,
        "plan_id": c.plan_id,
        "discount_percent": None if d is None else d.percent_off,
        "discount_amount": None if d is None or d.amount_off is None else d.amount_off.amount,
        "discount_currency": None if d is None or d.amount_off is None else d.amount_off.currency,
        "discount_duration": None if d is None else d.duration.value,
        "discount_ends_at": None if d is None else d.ends_at,
        "status": None if c.status is None else c.status.value,
        "trial_end": c.trial_end,
        "billing_anchor": c.billing_anchor,
        "ends_at": c.ends_at,
        "note": c.note,
    }


def decode_change(r: Mapping[Any, Any]) -> SubscriptionChange:
    discount = None
    if r["discount_duration"] is not None:
        amount = r["discount_amount"]
        discount = Discount(
            percent_off=r["discount_percent"],
            amount_off=None if amount is None else Money(amount, r["discount_currency"]),
            duration=DiscountDuration(r["discount_duration"]),
            ends_at=r["discount_ends_at"],
        )
    price = r["price"]
    return SubscriptionChange(
        kind=r["kind"],
        at=r["at"],
        price=None if price is None else Money(price, r["price_currency"]),
        cycle=_cycle(r["cycle_count"], r["cycle_unit"]),
        quantity=r["quantity"],
        product_id=r["product_id"],
        plan_id=r["plan_id"],
        discount=discount,
        status=r["status"],
        trial_end=r["trial_end"],
        billing_anchor=r["billing_anchor"],
        ends_at=r["ends_at"],
        note=r["note"],
    )


def encode_subscription(s: Subscription) -> tuple[Row, list[Row]]:
    head = {
        "id": s.id,
        "external_id": s.external_id,
        "customer_id": s.customer_id,
        "currency": s.currency,
        "started_at": s.started_at,
        "details": json.dumps([list(d) for d in s.details], ensure_ascii=True),
        "change_count": len(s.history),
    }
    return head, [encode_change(s.id, i, c) for i, c in enumerate(s.history)]


def decode_subscription(
    head: Mapping[Any, Any], changes: Iterable[Mapping[Any, Any]]
) -> Subscription:
    ordered = sorted(changes, key=lambda r: int(r["seq"]))
    return Subscription(
        id=head["id"],
        customer_id=head["customer_id"],
        external_id=head["external_id"],
        history=tuple(decode_change(r) for r in ordered),
        details=tuple((str(a), str(b)) for a, b in json.loads(head["details"])),
    )


def subscription_refs(s: Subscription) -> set[str]:
    """Plan ids the history refers to."""
    return {c.plan_id for c in s.history if c.plan_id is not None}


# -- invoices --------------------------------------------------------------------------------


def encode_line(inv_id: str, seq: int, line: InvoiceLine) -> Row:
    return {
        "invoice_id": inv_id,
        "seq": seq,
        "kind": line.kind.value,
        "amount": line.amount.amount,
        "description": line.description,
        "quantity": line.quantity,
        "discount": None if line.discount is None else line.discount.amount,
        "tax": None if line.tax is None else line.tax.amount,
        "period_start": line.period_start,
        "period_end": line.period_end,
        "subscription_id": line.subscription_id,
        "product_id": line.product_id,
    }


def decode_line(r: Mapping[Any, Any], currency: str) -> InvoiceLine:
    return InvoiceLine(
        kind=r["kind"],
        amount=Money(r["amount"], currency),
        description=r["description"],
        quantity=r["quantity"],
        discount=None if r["discount"] is None else Money(r["discount"], currency),
        tax=None if r["tax"] is None else Money(r["tax"], currency),
        period_start=r["period_start"],
        period_end=r["period_end"],
        subscription_id=r["subscription_id"],
        product_id=r["product_id"],
    )


def encode_invoice(inv: Invoice) -> tuple[Row, list[Row]]:
    head = {
        "id": inv.id,
        "external_id": inv.external_id,
        "customer_id": inv.customer_id,
        "currency": inv.currency,
        "issued_at": inv.issued_at,
        "due_date": inv.due_date,
        "status": inv.status.value,
        "number": inv.number,
        "paid_at": inv.paid_at,
    }
    return head, [encode_line(inv.id, i, line) for i, line in enumerate(inv.lines)]


def decode_invoice(head: Mapping[Any, Any], lines: Iterable[Mapping[Any, Any]]) -> Invoice:
    cur = head["currency"]
    ordered = sorted(lines, key=lambda r: int(r["seq"]))
    return Invoice(
        id=head["id"],
        customer_id=head["customer_id"],
        currency=cur,
        issued_at=head["issued_at"],
        due_date=head["due_date"],
        status=head["status"],
        lines=tuple(decode_line(r, cur) for r in ordered),
        number=head["number"],
        external_id=head["external_id"],
        paid_at=head["paid_at"],
    )


# -- transactions and credit -----------------------------------------------------------------


def encode_transaction(t: Transaction) -> Row:
    return {
        "id": t.id,
        "external_id": t.external_id,
        "customer_id": t.customer_id,
        "kind": t.kind.value,
        "status": t.status.value,
        "amount": t.amount.amount,
        "currency": t.amount.currency,
        "method": t.method,
        "at": t.at,
        "invoice_id": t.invoice_id,
        "subscription_id": t.subscription_id,
    }


def decode_transaction(r: Mapping[Any, Any]) -> Transaction:
    return Transaction(
        id=r["id"],
        customer_id=r["customer_id"],
        kind=r["kind"],
        status=r["status"],
        amount=Money(r["amount"], r["currency"]),
        method=r["method"],
        at=r["at"],
        invoice_id=r["invoice_id"],
        subscription_id=r["subscription_id"],
        external_id=r["external_id"],
    )


def encode_credit(c: CreditEntry) -> Row:
    return {
        "id": c.id,
        "customer_id": c.customer_id,
        "amount": c.amount.amount,
        "currency": c.amount.currency,
        "reason": c.reason,
        "at": c.at,
        "staff_id": c.staff_id,
        "invoice_id": c.invoice_id,
    }


def decode_credit(r: Mapping[Any, Any]) -> CreditEntry:
    return CreditEntry(
        id=r["id"],
        customer_id=r["customer_id"],
        amount=Money(r["amount"], r["currency"]),
        reason=r["reason"],
        at=r["at"],
        staff_id=r["staff_id"],
        invoice_id=r["invoice_id"],
    )


# -- fingerprints ----------------------------------------------------------------------------


def _canonical(value: object) -> object:
    if isinstance(value, Decimal):
        # Value equality, as Money's: 1.50 and 1.5 are the same amount.
        return ["d", str(value.normalize(context=EXACT_CONTEXT))]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, date):
        return ["D", value.isoformat()]
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def fingerprint(rows: object) -> str:
    """A digest of encoded rows: equal records (as Money compares amounts) get equal digests."""
    text = json.dumps(rows, default=_canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- references ------------------------------------------------------------------------------

Reference = tuple[str, str, str]  # (field, referenced id, referenced kind)


def references(kind: str, record: object) -> list[Reference]:
    """Every id ``record`` refers to, in a fixed order, so backends report the same one."""
    match record:
        case Plan():
            return [(f"plan[{record.id}].product_id", record.product_id, "product")]
        case Subscription():
            refs = [(f"subscription[{record.id}].customer_id", record.customer_id, "customer")]
            for i, c in enumerate(record.history):
                if c.plan_id is not None:
                    refs.append(
                        (f"subscription[{record.id}].history[{i}].plan_id", c.plan_id, "plan")
                    )
            return refs
        case Invoice():
            refs = [(f"invoice[{record.id}].customer_id", record.customer_id, "customer")]
            for i, line in enumerate(record.lines):
                if line.subscription_id is not None:
                    refs.append(
                        (
                            f"invoice[{record.id}].lines[{i}].subscription_id",
                            line.subscription_id,
                            "subscription",
                        )
                    )
            return refs
        case Transaction():
            refs = [(f"transaction[{record.id}].customer_id", record.customer_id, "customer")]
            if record.invoice_id is not None:
                refs.append((f"transaction[{record.id}].invoice_id", record.invoice_id, "invoice"))
            if record.subscription_id is not None:
                refs.append(
                    (
                        f"transaction[{record.id}].subscription_id",
                        record.subscription_id,
                        "subscription",
                    )
                )
            return refs
        case CreditEntry():
            refs = [(f"credit[{record.id}].customer_id", record.customer_id, "customer")]
            if record.invoice_id is not None:
                refs.append((f"credit[{record.id}].invoice_id", record.invoice_id, "invoice"))
            return refs
    return []


#: Record kinds in the order an import writes them (each refers only to earlier kinds).
KINDS: Final = ("customer", "product", "plan", "subscription", "invoice", "transaction", "credit")

RECORD_TYPES: Final[dict[str, type]] = {
    "customer": Customer,
    "product": Product,
    "plan": Plan,
    "subscription": Subscription,
    "invoice": Invoice,
    "transaction": Transaction,
    "credit": CreditEntry,
}


def check_record(kind: str, record: object) -> None:
    """The checks every backend makes before writing: the type, then the text."""
    expected = RECORD_TYPES[kind]
    if not isinstance(record, expected):
        raise ValidationError(kind, record, f"expected a {expected.__name__}")
    check_text(record, kind)


def external_id(record: object) -> str | None:
    value = getattr(record, "external_id", None)
    return value if isinstance(value, str) else None


def encode(kind: str, record: Any) -> tuple[Row, list[Row]]:
    """The record's head row and child rows (history or lines; empty for flat records)."""
    match kind:
        case "customer":
            return encode_customer(record), []
        case "product":
            return encode_product(record), []
        case "plan":
            return encode_plan(record), []
        case "subscription":
            return encode_subscription(record)
        case "invoice":
            return encode_invoice(record)
        case "transaction":
            return encode_transaction(record), []
        case "credit":
            return encode_credit(record), []
    raise ValueError(kind)


def record_fingerprint(kind: str, record: object) -> str:
    head, children = encode(kind, record)
    return fingerprint([head, children])
