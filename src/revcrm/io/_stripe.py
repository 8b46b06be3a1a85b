"""``from_stripe``: Stripe API objects to a :class:`revcrm.Book`.

Ids are Stripe's own (``cus_...``, ``sub_...``, ``in_...``, ``ch_...``), so importing the
same objects again gives the same records. Objects given more than once: the last copy
wins (objects inside events first, in event order, then the objects given directly).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from revcrm._book import Book
from revcrm._money import FxRates, Money
from revcrm._records import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceStatus,
    LineKind,
    Plan,
    Product,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from revcrm._subscription import Subscription
from revcrm.errors import ValidationError
from revcrm.io._lines import DraftLine, build_lines, settle_credits
from revcrm.io._stripe_common import StripeObject, flatten, minor_exponent
from revcrm.io._stripe_prices import plan_of, price_info
from revcrm.io._stripe_subscriptions import (
    LinePlan,
    SubscriptionEvent,
    from_events,
    from_snapshot,
)

__all__ = ["IGNORED_OBJECTS", "from_stripe"]

_KINDS: Final = frozenset(
    {
        "customer", "product", "price", "plan", "coupon", "discount", "subscription",
        "invoice", "line_item", "charge", "refund", "credit_note", "event",
    }
)  # fmt: skip
#: Stripe objects that carry nothing revcrm keeps: accepted and skipped. Any other
#: ``object`` is a ValidationError.
IGNORED_OBJECTS: Final = frozenset(
    {
        "balance_transaction", "customer_balance_transaction", "invoiceitem",
        "payment_intent", "payment_method", "promotion_code", "setup_intent",
        "subscription_item", "subscription_schedule", "tax_rate", "payout", "dispute",
    }
)  # fmt: skip
_SUBSCRIPTION_EVENTS: Final = frozenset(
    {
        "customer.subscription.created", "customer.subscription.updated",
        "customer.subscription.deleted", "customer.subscription.trial_will_end",
        "customer.subscription.paused", "customer.subscription.resumed",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    }
)  # fmt: skip


@contextmanager
def _about(kind: str, obj_id: str) -> Iterator[None]:
    """Name the Stripe object in a record's ValidationError."""
    try:
        yield
    except ValidationError as e:
        if e.field.startswith(f"{kind}[{obj_id}]"):
            raise
        raise ValidationError(f"{kind}[{obj_id}].{e.field}", e.value, e.reason) from e


def _legacy_plan(data: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy ``plan`` object in the shape of a price."""
    return {
        "id": data.get("id"),
        "object": "price",
        "currency": data.get("currency"),
        "unit_amount": data.get("amount"),
        "unit_amount_decimal": data.get("amount_decimal"),
        "billing_scheme": data.get("billing_scheme"),
        "tiers": data.get("tiers"),
        "tiers_mode": data.get("tiers_mode"),
        "product": data.get("product"),
        "nickname": data.get("nickname"),
        "recurring": {
            "interval": data.get("interval"),
            "interval_count": data.get("interval_count", 1),
            "usage_type": data.get("usage_type", "licensed"),
        },
    }


class _Catalogue:
    """Every object by kind and id, embedded ones included (given ones win)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, StripeObject]] = defaultdict(dict)
        self.embedded: dict[str, dict[str, StripeObject]] = defaultdict(dict)
        self.events: dict[str, list[SubscriptionEvent]] = defaultdict(list)
        self.lines: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)

    def add(self, data: Mapping[str, Any], where: str) -> None:
        kind = data.get("object")
        if kind in IGNORED_OBJECTS:
            return
        if kind not in _KINDS:
            raise ValidationError(f"{where}.object", kind, "not a Stripe object revcrm imports")
        if kind == "plan":
            data, kind = _legacy_plan(data), "price"
        obj = StripeObject(data, str(kind))
        if kind == "customer" and obj.flag("deleted"):
            return
        if kind == "line_item":
            invoice = obj.ref("invoice")
            if invoice is None:
                raise obj.error("invoice", None, "a lone invoice line needs its invoice id")
            self.lines[invoice][obj.id] = data
            return
        self.objects[str(kind)][obj.id] = obj
        self._embedded(obj)

    def add_event(self, event: StripeObject) -> None:
        data = event.mapping("data")
        inner = data.get("object")
        if not isinstance(inner, Mapping):
            raise event.error("data.object", inner, "an event needs its object")
        kind = event.get("type")
        if kind in _SUBSCRIPTION_EVENTS:
            sub = StripeObject(inner, "subscription")
            previous = data.get("previous_attributes") or {}
            if not isinstance(previous, Mapping):
                raise event.error("data.previous_attributes", previous, "expected an object")
            created = event.moment("created", required=True)
            assert created is not None
            self.events[sub.id].append(
                SubscriptionEvent(created, event.id, str(kind), sub, previous)
            )
            self._embedded(sub)
        elif inner.get("object") in _KINDS and inner.get("object") != "event":
            self.add(inner, event.where("data.object"))

    def _embed(self, kind: str, value: Any) -> None:
        if isinstance(value, Mapping) and value.get("id"):
            if kind == "price" and value.get("object") == "plan":
                value = _legacy_plan(value)
            obj = StripeObject(value, kind)
            self.embedded[kind].setdefault(obj.id, obj)
            if kind == "price":
                self._embed("product", value.get("product"))

    def _embedded(self, obj: StripeObject) -> None:
        kind = obj.kind
        if kind == "price":
            self._embed("product", obj.get("product"))
        elif kind == "subscription":
            self._embed("customer", obj.get("customer"))
            for item in obj.items("items"):
                if isinstance(item, Mapping):
                    self._embed("price", item.get("price") or item.get("plan"))
        elif kind == "invoice":
            self._embed("customer", obj.get("customer"))
            for line in obj.items("lines"):
                if isinstance(line, Mapping):
                    self._embed("price", line.get("price"))
        elif kind in ("charge", "refund", "credit_note", "discount"):
            self._embed("customer", obj.get("customer"))
            if kind == "charge":
                for refund in obj.items("refunds"):
                    if isinstance(refund, Mapping) and refund.get("id"):
                        self.embedded["refund"].setdefault(
                            str(refund["id"]), StripeObject(refund, "refund")
                        )

    def all(self, kind: str) -> dict[str, StripeObject]:
        return {**self.embedded.get(kind, {}), **self.objects.get(kind, {})}


def _ordered(objects: Any) -> _Catalogue:
    cat = _Catalogue()
    flat = list(flatten(objects))
    events = []
    for i, data in enumerate(flat):
        if data.get("object") == "event":
            events.append(StripeObject(data, "event"))
        elif data.get("object") is None:
            raise ValidationError(f"objects[{i}].object", None, "not a Stripe object")
    for event in sorted(events, key=lambda e: (e.moment("created", required=True), e.id)):
        cat.add_event(event)
    for i, data in enumerate(flat):
        if data.get("object") != "event":
            cat.add(data, f"objects[{i}]")
    return cat


def _moment_date(moment: datetime) -> Any:
    return moment.astimezone(UTC).date()


class _Import:
    def __init__(self, cat: _Catalogue) -> None:
        self.cat = cat
        self.prices = cat.all("price")
        self.products = cat.all("product")
        self.discounts = {k: v.data for k, v in cat.all("discount").items()}
        self.customer_ids: dict[str, datetime] = {}  # referenced customers, first seen

    def price_of(self, value: Any, owner: StripeObject, field: str) -> StripeObject:
        if isinstance(value, Mapping):
            pid = value.get("id")
            if isinstance(pid, str) and pid in self.prices:
                return self.prices[pid]
            return StripeObject(value, "price")
        if isinstance(value, str) and value in self.prices:
            return self.prices[value]
        raise owner.error(field, value, "unknown price: expand it or pass the price object")

    def seen(self, customer_id: str | None, at: datetime | None, owner: StripeObject) -> str:
        if customer_id is None:
            raise owner.error("customer", None, "required")
        if at is not None:
            first = self.customer_ids.get(customer_id)
            self.customer_ids[customer_id] = at if first is None else min(first, at)
        else:
            self.customer_ids.setdefault(customer_id, datetime(1970, 1, 1, tzinfo=UTC))
        return customer_id

    # -- catalogue ----------------------------------------------------------------------

    def products_and_plans(self) -> tuple[list[Product], list[Plan]]:
        products: dict[str, Product] = {}
        for p in self.products.values():
            with _about("product", p.id):
                products[p.id] = Product(id=p.id, name=p.text("name") or p.id)
        plans = []
        for price in self.prices.values():
            with _about("price", price.id):
                info = price_info(price)
                product = info.product_id or f"{price.id}#product"
                if product not in products:
                    products[product] = Product(id=product, name=product)
                name = price.text("nickname") or products[product].name
                plans.append(
                    Plan(
                        id=price.id,
                        product_id=product,
                        name=name,
                        price=info.unit or Money.zero(price.currency()),
                        cycle=info.cycle,
                    )
                )
        return list(products.values()), plans

    def customers(self) -> list[Customer]:
        out = {}
        for c in self.cat.all("customer").values():
            with _about("customer", c.id):
                created = c.moment("created", required=True)
                address = c.mapping("address")
                country = address.get("country")
                out[c.id] = Customer(
                    id=c.id,
                    registered_at=created,
                    email=c.text("email"),
                    name=c.text("name") or "",
                    phone=c.text("phone"),
                    location=country if isinstance(country, str) and country else None,
                )
        for cid, first in sorted(self.customer_ids.items()):
            if cid not in out:
                # A customer the objects refer to but do not include: known from its records.
                out[cid] = Customer(id=cid, registered_at=first)
        return list(out.values())

    # -- invoices -----------------------------------------------------------------------

    def _line(
        self, raw: Mapping[str, Any], inv: StripeObject, currency: str, subs: set[str]
    ) -> tuple[DraftLine, LinePlan | None, bool] | None:
        line = StripeObject({"id": raw.get("id") or f"{inv.id}#line", **raw}, "line_item")
        with _about("line_item", line.id):
            if line.currency() != currency:
                raise line.error("currency", line.get("currency"), f"invoice is in {currency}")
            amount = line.amount("amount", currency)
            assert amount is not None
            quantity = line.integer("quantity")
            if quantity == 0 and amount.is_zero():
                return None
            discount = sum(
                (
                    _part(d, line, "discount_amounts", currency)
                    for d in line.items("discount_amounts")
                ),
                Decimal(0),
            )
            tax = Decimal(0)
            inclusive = Decimal(0)
            for t in line.items("tax_amounts"):
                value = _part(t, line, "tax_amounts", currency)
                tax += value
                if isinstance(t, Mapping) and t.get("inclusive"):
                    inclusive += value
            period = line.mapping("period")
            start = _ts(period.get("start"), line, "period.start")
            end = _ts(period.get("end"), line, "period.end")
            if start is None or end is None or end <= start:
                start = end = None
            proration = line.flag("proration")
            sub = line.ref("subscription")
            if sub is None and line.get("type") == "subscription":
                sub = inv.ref("subscription")
            price = None
            if line.get("price") is not None:
                price = self.price_of(line.get("price"), line, "price")
            # A proration (credit for unused time, charge for the rest of the cycle) is a
            # recurring line of its subscription: the pair is the run-rate change at the
            # switch. Without its subscription it stays a one-off line.
            recurring = start is not None and (
                (line.get("type") == "subscription" and not proration)
                or (proration and sub in subs)
            )
            draft = DraftLine(
                kind=LineKind.RECURRING if recurring else LineKind.ONE_OFF,
                amount=amount.amount - inclusive,
                currency=currency,
                discount=discount,
                tax=tax,
                description=line.text("description") or "",
                quantity=max(quantity or 1, 1),
                period_start=start,
                period_end=end,
                subscription_id=sub if sub in subs else None,
                product_id=price_info(price).product_id if price is not None else None,
            )
            plan = None
            shows_plan = line.get("type") == "subscription" or proration
            if (
                shows_plan
                and sub in subs
                and price is not None
                and start is not None
                and amount.amount >= 0
            ):
                plan = LinePlan(start, plan_of([(price, max(quantity or 1, 1))], line, "price"))
            return draft, plan, proration

    def invoices(
        self, subs: set[str], credit_notes: Mapping[str, Decimal]
    ) -> tuple[list[Invoice], list[CreditEntry], dict[str, list[tuple[str, bool, LinePlan]]]]:
        invoices = []
        credits = []
        plans: dict[str, list[tuple[str, bool, LinePlan]]] = defaultdict(list)
        for inv in self.cat.all("invoice").values():
            with _about("invoice", inv.id):
                currency = inv.currency()
                transitions = inv.mapping("status_transitions")
                created = inv.moment("created", required=True)
                assert created is not None
                issued = (
                    _ts(transitions.get("finalized_at"), inv, "status_transitions.finalized_at")
                    or created
                )
                customer = self.seen(inv.ref("customer"), issued, inv)
                raw_lines = {
                    str(r.get("id")): r for r in inv.items("lines") if isinstance(r, Mapping)
                }
                raw_lines.update(self.cat.lines.get(inv.id, {}))
                drafts = []
                for raw in raw_lines.values():
                    got = self._line(raw, inv, currency, subs)
                    if got is None:
                        continue
                    draft, plan, proration = got
                    drafts.append(draft)
                    if plan is not None and draft.subscription_id is not None:
                        plans[draft.subscription_id].append((inv.id, proration, plan))
                charges, left = settle_credits(drafts, extra=credit_notes.get(inv.id, Decimal(0)))

                status = inv.get("status")
                if status not in {s.value for s in InvoiceStatus}:
                    raise inv.error(
                        "status", status, "expected draft, open, paid, void or uncollectible"
                    )
                due = inv.moment("due_date")
                due_day = max(_moment_date(due or issued), _moment_date(issued))
                paid_at = _ts(transitions.get("paid_at"), inv, "status_transitions.paid_at")
                invoices.append(
                    Invoice(
                        id=inv.id,
                        customer_id=customer,
                        currency=currency,
                        issued_at=issued,
                        due_date=due_day,
                        status=InvoiceStatus(status),
                        lines=tuple(build_lines(charges)),
                        number=inv.text("number"),
                        paid_at=paid_at if status == "paid" else None,
                    )
                )
                if left > 0 and status not in ("draft", "void"):
                    # Stripe credits a negative invoice total to the customer's balance.
                    credits.append(
                        CreditEntry(
                            id=f"{inv.id}#balance",
                            customer_id=customer,
                            amount=Money(left, currency),
                            reason=f"negative total of invoice {inv.text('number') or inv.id}",
                            at=issued,
                            invoice_id=inv.id,
                        )
                    )
        return invoices, credits, plans

    # -- credit notes -------------------------------------------------------------------

    def credit_notes(
        self, refunds: Mapping[str, StripeObject]
    ) -> tuple[dict[str, Decimal], list[CreditEntry]]:
        pre: dict[str, Decimal] = defaultdict(Decimal)
        entries = []
        for cn in self.cat.all("credit_note").values():
            with _about("credit_note", cn.id):
                if cn.get("status") == "void":
                    continue
                currency = cn.currency()
                amount = cn.amount("amount", currency)
                assert amount is not None
                invoice = cn.ref("invoice")
                at = cn.moment("effective_at") or cn.moment("created", required=True)
                customer = self.seen(cn.ref("customer"), at, cn)
                if cn.get("type") == "pre_payment":
                    if invoice is None:
                        raise cn.error("invoice", None, "a credit note needs its invoice")
                    pre[invoice] += amount.amount
                    continue
                credited = amount
                out_of_band = cn.amount("out_of_band_amount", currency, required=False)
                if out_of_band is not None:
                    credited -= out_of_band
                refund_id = cn.ref("refund")
                if refund_id is not None:
                    refund = refunds.get(refund_id)
                    refunded = refund.amount("amount", currency) if refund is not None else credited
                    assert refunded is not None
                    credited -= refunded
                if credited.amount > 0 and cn.has("customer_balance_transaction"):
                    entries.append(
                        CreditEntry(
                            id=cn.id,
                            customer_id=customer,
                            amount=credited,
                            reason=f"credit note {cn.text('number') or cn.id}",
                            at=at,
                            invoice_id=invoice if invoice in self.cat.all("invoice") else None,
                        )
                    )
        return pre, entries

    # -- payments -----------------------------------------------------------------------

    def transactions(self, invoice_ids: set[str]) -> list[Transaction]:
        out = []
        charges = self.cat.all("charge")
        for ch in charges.values():
            with _about("charge", ch.id):
                customer = ch.ref("customer")
                amount = ch.amount("amount", ch.currency())
                assert amount is not None
                if customer is None or amount.is_zero():
                    continue  # a guest charge (no customer) has no place in a customer's record
                at = ch.moment("created", required=True)
                self.seen(customer, at, ch)
                invoice = ch.ref("invoice")
                out.append(
                    Transaction(
                        id=ch.id,
                        customer_id=customer,
                        kind=TransactionKind.PAYMENT,
                        status=_charge_status(ch),
                        amount=amount,
                        method=_method(ch),
                        at=at,
                        invoice_id=invoice if invoice in invoice_ids else None,
                        external_id=ch.ref("payment_intent"),
                    )
                )
        for re in self.cat.all("refund").values():
            with _about("refund", re.id):
                charge_id = re.ref("charge")
                charge = charges.get(charge_id) if charge_id is not None else None
                if charge is None:
                    raise re.error("charge", charge_id, "pass the refunded charge too")
                customer = charge.ref("customer")
                if customer is None:
                    continue
                amount = re.amount("amount", re.currency())
                assert amount is not None
                invoice = charge.ref("invoice")
                out.append(
                    Transaction(
                        id=re.id,
                        customer_id=customer,
                        kind=TransactionKind.REFUND,
                        status=_refund_status(re),
                        amount=amount,
                        method=_method(charge),
                        at=re.moment("created", required=True),
                        invoice_id=invoice if invoice in invoice_ids else None,
                    )
                )
        return out

    # -- subscriptions ------------------------------------------------------------------

    def subscriptions(
        self,
        plans: Mapping[str, list[tuple[str, bool, LinePlan]]],
        open_since: Mapping[str, datetime],
    ) -> list[Subscription]:
        out = []
        objects = self.cat.all("subscription")
        for sid in sorted(set(objects) | set(self.cat.events)):
            events = self.cat.events.get(sid)
            if events:
                sub = objects.get(sid) or max(events, key=lambda e: (e.created, e.event_id)).object
            else:
                sub = objects[sid]
            with _about("subscription", sid):
                customer = self.seen(sub.ref("customer"), sub.moment("start_date"), sub)
                if events:
                    out.append(from_events(events, customer, self.price_of, self.discounts))
                    continue
                single = len(sub.items("items")) == 1
                line_plans = [
                    lp for _inv, proration, lp in plans.get(sid, []) if single or not proration
                ]
                out.append(
                    from_snapshot(
                        sub,
                        customer,
                        self.price_of,
                        self.discounts,
                        line_plans,
                        open_since.get(sid),
                    )
                )
        return out


def _part(value: Any, line: StripeObject, field: str, currency: str) -> Decimal:
    if not isinstance(value, Mapping):
        raise line.error(field, value, "expected objects with an amount")
    amount = value.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise line.error(f"{field}.amount", amount, "expected an integer")
    return Decimal(amount).scaleb(-minor_exponent(currency))


def _ts(value: Any, owner: StripeObject, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise owner.error(field, value, "expected a Unix timestamp")
    return datetime.fromtimestamp(value, UTC)


def _charge_status(ch: StripeObject) -> TransactionStatus:
    status = ch.get("status")
    if status == "succeeded":
        captured = ch.get("captured")
        return TransactionStatus.PENDING if captured is False else TransactionStatus.SUCCEEDED
    if status == "pending":
        return TransactionStatus.PENDING
    if status == "failed":
        return TransactionStatus.FAILED
    raise ch.error("status", status, "expected succeeded, pending or failed")


def _refund_status(re: StripeObject) -> TransactionStatus:
    status = re.get("status")
    if status == "succeeded":
        return TransactionStatus.SUCCEEDED
    if status in ("pending", "requires_action"):
        return TransactionStatus.PENDING
    if status in ("failed", "canceled"):
        return TransactionStatus.FAILED
    raise re.error(
        "status", status, "expected succeeded, pending, requires_action, failed or canceled"
    )


def _method(ch: StripeObject) -> str:
    details = ch.mapping("payment_method_details")
    kind = details.get("type")
    return kind if isinstance(kind, str) and kind.strip() else "stripe"


def from_stripe(objects: Any, *, fx: FxRates | None = None) -> Book:
    """A book from Stripe API objects (dicts, JSON exports, stripe-python objects).

    ``objects`` is one object, a list, or Stripe list results, of customers, products,
    prices (and legacy plans), coupons, discounts, subscriptions, invoices (with their
    lines, or lines passed apart with their ``invoice``), charges, refunds, credit notes
    and events. Amounts are read in Stripe's minor units of each currency (JPY has none,
    KWD three). See ``docs/import.md`` for the mapping; objects of a kind revcrm does not
    read are a :class:`~revcrm.errors.ValidationError` naming them (except those in
    :data:`IGNORED_OBJECTS`).
    """
    cat = _ordered(objects)
    imp = _Import(cat)
    products, plans = imp.products_and_plans()
    sub_ids = set(cat.all("subscription")) | set(cat.events)
    refunds = cat.all("refund")
    pre_payment, note_credits = imp.credit_notes(refunds)
    invoices, balance_credits, line_plans = imp.invoices(sub_ids, pre_payment)
    open_since: dict[str, datetime] = {}
    by_id = {i.id: i for i in invoices}
    for inv in cat.all("invoice").values():
        sub = inv.ref("subscription")
        record = by_id[inv.id]
        if sub is not None and record.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
            first = open_since.get(sub)
            open_since[sub] = record.issued_at if first is None else min(first, record.issued_at)
    subscriptions = imp.subscriptions(line_plans, open_since)
    transactions = imp.transactions(set(by_id))
    customers = imp.customers()
    return Book.of(
        customers=customers,
        products=products,
        plans=plans,
        subscriptions=subscriptions,
        invoices=invoices,
        transactions=transactions,
        credits=[*note_credits, *balance_credits],
        fx=fx,
    )
