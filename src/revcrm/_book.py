"""The book: an immutable collection of billing records that pure metric functions read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from revcrm._checks import check_instance, check_items
from revcrm._money import FxRates, Money, money_sum
from revcrm._records import CreditEntry, Customer, Invoice, Plan, Product, Transaction
from revcrm._subscription import Subscription
from revcrm._time import optional_utc
from revcrm.errors import DuplicateError, UnknownReferenceError, ValidationError

__all__ = ["Book"]

_R = TypeVar("_R")


def _by_id(kind: str, items: Iterable[_R], key: Callable[[_R], str]) -> Mapping[str, _R]:
    out: dict[str, _R] = {}
    for item in items:
        k = key(item)
        if k in out:
            raise DuplicateError(kind, k)
        out[k] = item
    return MappingProxyType(out)


def _group(items: Iterable[_R], key: Callable[[_R], str]) -> Mapping[str, tuple[_R, ...]]:
    groups: dict[str, list[_R]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return MappingProxyType({k: tuple(v) for k, v in groups.items()})


def _record_id(record: Any) -> str:
    return str(record.id)


@attrs.frozen(kw_only=True, eq=False)
class Book:
    """Customers and their billing records, validated for unique ids and known references.

    Build with :meth:`of`; records are kept in a canonical order (by id) so results never
    depend on the order the host supplied them in.
    """

    customers: tuple[Customer, ...] = ()
    products: tuple[Product, ...] = ()
    plans: tuple[Plan, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    transactions: tuple[Transaction, ...] = ()
    credits: tuple[CreditEntry, ...] = ()
    fx: FxRates = attrs.field(factory=FxRates)

    @classmethod
    def of(
        cls,
        *,
        customers: Iterable[Customer] = (),
        products: Iterable[Product] = (),
        plans: Iterable[Plan] = (),
        subscriptions: Iterable[Subscription] = (),
        invoices: Iterable[Invoice] = (),
        transactions: Iterable[Transaction] = (),
        credits: Iterable[CreditEntry] = (),
        fx: FxRates | None = None,
    ) -> Book:
        def ordered(field: str, items: Iterable[_R], kind: type[_R]) -> tuple[_R, ...]:
            records = check_items(items, field)
            for i, record in enumerate(records):
                check_instance(record, kind, f"{field}[{i}]")
            return tuple(sorted(records, key=_record_id))

        book = cls(
            customers=ordered("customers", customers, Customer),
            products=ordered("products", products, Product),
            plans=ordered("plans", plans, Plan),
            subscriptions=ordered("subscriptions", subscriptions, Subscription),
            invoices=ordered("invoices", invoices, Invoice),
            transactions=ordered("transactions", transactions, Transaction),
            credits=ordered("credits", credits, CreditEntry),
            fx=FxRates() if fx is None else check_instance(fx, FxRates, "fx"),
        )
        book.validate()
        return book

    def validate(self) -> None:
        """Check unique ids and that every reference resolves; raise a revcrm error if not."""
        customers = self.customer_index
        _by_id("product", self.products, lambda p: p.id)
        plans = _by_id("plan", self.plans, lambda p: p.id)
        products = {p.id for p in self.products}
        subs = self.subscription_index
        invoices = _by_id("invoice", self.invoices, lambda i: i.id)
        _by_id("transaction", self.transactions, lambda t: t.id)
        _by_id("credit", self.credits, lambda c: c.id)
        for p in self.plans:
            if p.product_id not in products:
                raise UnknownReferenceError(f"plan[{p.id}].product_id", p.product_id, "product")
        for s in self.subscriptions:
            if s.customer_id not in customers:
                raise UnknownReferenceError(
                    f"subscription[{s.id}].customer_id", s.customer_id, "customer"
                )
            for st in s.states:
                if st.plan_id is not None and plans and st.plan_id not in plans:
                    raise UnknownReferenceError(f"subscription[{s.id}].plan_id", st.plan_id, "plan")
        for inv in self.invoices:
            if inv.customer_id not in customers:
                raise UnknownReferenceError(
                    f"invoice[{inv.id}].customer_id", inv.customer_id, "customer"
                )
            for line in inv.lines:
                if line.subscription_id is not None and line.subscription_id not in subs:
                    raise UnknownReferenceError(
                        f"invoice[{inv.id}].lines.subscription_id",
                        line.subscription_id,
                        "subscription",
                    )
        for t in self.transactions:
            if t.customer_id not in customers:
                raise UnknownReferenceError(
                    f"transaction[{t.id}].customer_id", t.customer_id, "customer"
                )
            _check_invoice_ref(f"transaction[{t.id}]", t.invoice_id, t.amount, invoices)
            if t.subscription_id is not None and t.subscription_id not in subs:
                raise UnknownReferenceError(
                    f"transaction[{t.id}].subscription_id", t.subscription_id, "subscription"
                )
        for c in self.credits:
            if c.customer_id not in customers:
                raise UnknownReferenceError(
                    f"credit[{c.id}].customer_id", c.customer_id, "customer"
                )
            _check_invoice_ref(f"credit[{c.id}]", c.invoice_id, c.amount, invoices)

    # -- indexes (computed once per book) ------------------------------------------------------

    @cached_property
    def customer_index(self) -> Mapping[str, Customer]:
        return _by_id("customer", self.customers, lambda c: c.id)

    @cached_property
    def subscription_index(self) -> Mapping[str, Subscription]:
        return _by_id("subscription", self.subscriptions, lambda s: s.id)

    @cached_property
    def subscriptions_by_customer(self) -> Mapping[str, tuple[Subscription, ...]]:
        return _group(self.subscriptions, lambda s: s.customer_id)

    @cached_property
    def invoices_by_customer(self) -> Mapping[str, tuple[Invoice, ...]]:
        return _group(self.invoices, lambda i: i.customer_id)

    @cached_property
    def transactions_by_customer(self) -> Mapping[str, tuple[Transaction, ...]]:
        return _group(self.transactions, lambda t: t.customer_id)

    @cached_property
    def credits_by_customer(self) -> Mapping[str, tuple[CreditEntry, ...]]:
        return _group(self.credits, lambda c: c.customer_id)

    def customer(self, customer_id: str) -> Customer:
        from revcrm.errors import NotFoundError

        try:
            return self.customer_index[customer_id]
        except KeyError:
            raise NotFoundError("customer", customer_id) from None

    def credit_balance(
        self, customer_id: str, currency: str, *, at: datetime | None = None
    ) -> Money:
        """Sum of the customer's credit ledger in ``currency`` (up to ``at`` when given)."""
        at = optional_utc(at, "at")
        entries = self.credits_by_customer.get(customer_id, ())
        return money_sum(
            (
                e.amount
                for e in entries
                if e.amount.currency == currency and (at is None or e.at <= at)
            ),
            currency,
        )

    def restricted_to(self, customer_ids: Iterable[str]) -> Book:
        """The sub-book of some customers and everything that belongs to them."""
        # Through the per-customer indexes: cost proportional to what is kept, and ids
        # stay sorted as Book.of would sort them.
        keep = sorted({c for c in customer_ids if c in self.customer_index})

        def gather(index: Mapping[str, tuple[_R, ...]], key: Callable[[_R], str]) -> tuple[_R, ...]:
            return tuple(sorted((r for c in keep for r in index.get(c, ())), key=key))

        return Book(
            customers=tuple(self.customer_index[c] for c in keep),
            products=self.products,
            plans=self.plans,
            subscriptions=gather(self.subscriptions_by_customer, lambda s: s.id),
            invoices=gather(self.invoices_by_customer, lambda i: i.id),
            transactions=gather(self.transactions_by_customer, lambda t: t.id),
            credits=gather(self.credits_by_customer, lambda c: c.id),
            fx=self.fx,
        )

    def __len__(self) -> int:
        return len(self.customers)


def _check_invoice_ref(
    name: str, invoice_id: str | None, amount: Money, invoices: Mapping[str, Invoice]
) -> None:
    """A payment, refund or credit entry naming an invoice names one of the book's, in the
    invoice's own currency (it settles or credits that invoice)."""
    if invoice_id is None:
        return
    invoice = invoices.get(invoice_id)
    if invoice is None:
        raise UnknownReferenceError(f"{name}.invoice_id", invoice_id, "invoice")
    if amount.currency != invoice.currency:
        raise ValidationError(
            f"{name}.amount", amount, f"invoice {invoice.id} is in {invoice.currency}"
        )
