"""Records as flat rows of plain values, and back; canonical fingerprints; text checks.

Both backends use these: the SQL store writes the rows into its tables, and both compare
fingerprints to decide whether an upsert changes anything, so "equal" means the same on
every backend. Rows hold str, int, bool, Decimal, aware UTC datetime, date or None.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

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
from revcrm._subscription import (
    Subscription,
    SubscriptionChange,
    SubscriptionState,
    SubscriptionStatus,
)
from revcrm.errors import ValidationError

__all__ = [
    "Row",
    "check_rows",
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
    "prepare",
    "search_folds",
]

Row = dict[str, Any]


def _check_str(value: str, path: str) -> None:
    if "\x00" in value:
        raise ValidationError(path, value, "NUL characters cannot be stored")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(path, value, "not valid Unicode text (lone surrogate)") from None


def check_rows(kind: str, key: object, head: Row, children: Sequence[Row]) -> None:
    """Reject text no backend can store faithfully: NUL characters and lone surrogates.

    PostgreSQL refuses NUL in text and no UTF-8 database holds a lone surrogate, so every
    backend rejects them up front with a :class:`ValidationError` naming the field. Custom
    attributes and subscription details are stored as ASCII-escaped JSON and accept any
    text.
    """
    for column, value in head.items():
        if type(value) is str:
            _check_str(value, f"{kind}[{key}].{column}")
    for i, row in enumerate(children):
        for column, value in row.items():
            if type(value) is str:
                _check_str(value, f"{kind}[{key}][{i}].{column}")


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
    # ``_value_``: enum.value is a descriptor call, measurable in bulk imports.
    return (None, None) if cycle is None else (cycle.count, cycle.unit._value_)


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
        "kind": c.kind._value_,
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
        "discount_duration": None if d is None else d.duration._value_,
        "discount_ends_at": None if d is None else d.ends_at,
        "status": None if c.status is None else c.status._value_,
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


def _moment_text(m: datetime | None) -> str | None:
    return None if m is None else m.astimezone(UTC).isoformat()


def _text_moment(v: str | None) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def encode_state(st: SubscriptionState) -> str:
    """A subscription's current state (what replaying its history yields) as stored text.

    Materialised at every write so a reader needing only the current state skips the
    replay; it is never edited on its own (see ``current_states``)."""
    d = st.discount
    discount = None
    if d is not None:
        amount = d.amount_off
        discount = [
            None if d.percent_off is None else str(d.percent_off),
            None if amount is None else [str(amount.amount), amount.currency],
            d.duration._value_,
            _moment_text(d.ends_at),
        ]
    m = _moment_text
    return json.dumps(
        [
            st.status._value_,
            m(st.status_since),
            st.product_id,
            st.plan_id,
            [str(st.price.amount), st.price.currency],
            [st.cycle.count, st.cycle.unit._value_],
            st.quantity,
            discount,
            m(st.discount_from),
            m(st.started_at),
            m(st.trial_end),
            m(st.billing_anchor),
            st.cancel_at_period_end,
            m(st.cancel_requested_at),
            m(st.cancelled_at),
            m(st.ended_at),
            st.paying_status._value_,
            m(st.as_of),
        ],
        ensure_ascii=True,
    )


def decode_state(text: str) -> SubscriptionState:
    (
        status,
        status_since,
        product_id,
        plan_id,
        (price, currency),
        (count, unit),
        quantity,
        discount,
        discount_from,
        started_at,
        trial_end,
        billing_anchor,
        cancel_at_period_end,
        cancel_requested_at,
        cancelled_at,
        ended_at,
        paying_status,
        as_of,
    ) = json.loads(text)
    d = None
    if discount is not None:
        percent, amount, duration, ends_at = discount
        d = Discount(
            percent_off=None if percent is None else Decimal(percent),
            amount_off=None if amount is None else Money(amount[0], amount[1]),
            duration=DiscountDuration(duration),
            ends_at=_text_moment(ends_at),
        )
    t = _text_moment
    anchor = t(billing_anchor)
    since, start, at = t(status_since), t(started_at), t(as_of)
    assert anchor is not None
    assert since is not None
    assert start is not None
    assert at is not None
    return SubscriptionState(
        status=SubscriptionStatus(status),
        status_since=since,
        product_id=product_id,
        plan_id=plan_id,
        price=Money(price, currency),
        cycle=BillingCycle(int(count), CycleUnit(unit)),
        quantity=int(quantity),
        discount=d,
        discount_from=t(discount_from),
        started_at=start,
        trial_end=t(trial_end),
        billing_anchor=anchor,
        cancel_at_period_end=bool(cancel_at_period_end),
        cancel_requested_at=t(cancel_requested_at),
        cancelled_at=t(cancelled_at),
        ended_at=t(ended_at),
        paying_status=SubscriptionStatus(paying_status),
        as_of=at,
    )


def subscription_refs(s: Subscription) -> set[str]:
    """Plan ids the history refers to."""
    return {c.plan_id for c in s.history if c.plan_id is not None}


# -- invoices --------------------------------------------------------------------------------


def encode_line(inv_id: str, seq: int, line: InvoiceLine) -> Row:
    return {
        "invoice_id": inv_id,
        "seq": seq,
        "kind": line.kind._value_,
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
        "status": inv.status._value_,
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
        "kind": t.kind._value_,
        "status": t.status._value_,
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


EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def moment_value(value: datetime) -> int:
    """An aware moment as whole microseconds since 1970-01-01 UTC (SQLite's storage)."""
    if value.tzinfo is None:
        raise ValidationError("moment", value, "naive datetime")
    return (value - EPOCH) // _MICROSECOND


def moment_from_value(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


# How each value type is written as a plain value (SQLite stores exactly this).
_FLAT: Final[dict[type, Callable[[Any], Any]]] = {
    Decimal: str,
    datetime: moment_value,
    date: date.isoformat,
    bool: int,
}


def flat(row: Row) -> tuple[Any, ...]:
    """A row's values as text, numbers and None: exact decimal text, moments in UTC
    microseconds."""
    get = _FLAT.get
    return tuple([v if (f := get(type(v))) is None else f(v) for v in row.values()])


def fingerprint(head: Row, children: Sequence[Row] = ()) -> str:
    """A digest of encoded rows: records written the same way get the same digest.

    Rows come from the encoders above, whose keys are always in the same order; amounts
    compare as written (``1.5`` and ``1.50`` are equal Money but different text).
    """
    return _digest(flat(head), [flat(r) for r in children])


def _digest(head: tuple[Any, ...], children: list[tuple[Any, ...]]) -> str:
    text = repr((head, children))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


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


class Prepared(NamedTuple):
    """A record checked and encoded once: its rows (typed and flat), references, digest."""

    kind: str
    record: Any
    head: Row
    children: list[Row]
    flat_head: tuple[Any, ...]
    flat_children: list[tuple[Any, ...]]
    refs: list[Reference]
    external_id: str | None
    digest: str


def _flat_checked(row: Row, path: str) -> tuple[Any, ...]:
    # ``flat`` and ``check_rows`` in one pass: the hot loop of every bulk import.
    get = _FLAT.get
    out: list[Any] = []
    for column, v in row.items():
        kind = type(v)
        if kind is str:
            if "\x00" in v or not v.isascii():
                _check_str(v, f"{path}.{column}")
            out.append(v)
        elif (f := get(kind)) is not None:
            out.append(f(v))
        else:
            out.append(v)
    return tuple(out)


def prepare(kind: str, record: object) -> Prepared:
    """The checks every backend makes before writing (type, then text), and the rows."""
    expected = RECORD_TYPES[kind]
    if not isinstance(record, expected):
        raise ValidationError(kind, record, f"expected a {expected.__name__}")
    head, children = encode(kind, record)
    path = f"{kind}[{head['id']}]"
    flat_head = _flat_checked(head, path)
    flat_children = [_flat_checked(r, f"{path}[{i}]") for i, r in enumerate(children)]
    return Prepared(
        kind,
        record,
        head,
        children,
        flat_head,
        flat_children,
        references(kind, record),
        external_id(record),
        _digest(flat_head, flat_children),
    )


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


# -- exact integer limbs (SQLite sums these in C) ----------------------------------------------

_LIMB_WEIGHTS: Final = tuple(10 ** (12 * (6 - k)) for k in range(7))  # in units of 1e-48
_LIMB_LIMIT: Final = 10**84  # 10**36 in units of 1e-48


def to_limbs(amount: Decimal) -> tuple[int | None, ...]:
    """``amount`` as seven integers ``l_k`` with ``amount = sum(l_k * 10**(24 - 12k))``.

    All None when the amount needs more than 48 decimal places or is 10**36 or more: the
    store then sums it exactly in Python instead.
    """
    # Amounts repeat (prices, the ledger's levels): a bulk import splits each distinct
    # value once. Equal Decimals (1.5, 1.50) have equal limbs, so the cache is exact; a
    # value that cannot be hashed (a signalling NaN) is split directly.
    if amount.is_snan():
        return _split_limbs(amount)
    return _cached_limbs(amount)


def _split_limbs(amount: Decimal) -> tuple[int | None, ...]:
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int) or exponent < -48:
        return (None,) * 7
    units = int("".join(map(str, digits)) or "0") * 10 ** (exponent + 48)
    if units >= _LIMB_LIMIT:
        return (None,) * 7
    out: list[int | None] = []
    for weight in _LIMB_WEIGHTS:
        q, units = divmod(units, weight)
        out.append(-q if sign else q)
    return tuple(out)


_cached_limbs: Final = functools.lru_cache(maxsize=1 << 16)(_split_limbs)


def from_limbs(sums: Sequence[int]) -> Decimal:
    """The exact Decimal of summed limbs (trailing zeros of the fraction dropped)."""
    units = sum(s * w for s, w in zip(sums, _LIMB_WEIGHTS, strict=True))
    value = Decimal(units).scaleb(-48, context=EXACT_CONTEXT).normalize(context=EXACT_CONTEXT)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        value = value.quantize(Decimal(1), context=EXACT_CONTEXT)
    return value
