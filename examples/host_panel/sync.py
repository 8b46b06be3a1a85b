"""The glue: the panel's tables read with SQLAlchemy, handed to revcrm's HostSync."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from revcrm import (
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    LineKind,
    Money,
    Product,
    Transaction,
    TransactionKind,
)
from revcrm.storage import Store
from revcrm.sync import HostSync, ServiceState, SyncReport, host_id, invoice_status

from . import schema as h

_TX_STATUS = {"Success": "succeeded", "Pending": "pending", "Failed": "failed"}


def sync_all(
    host_engine: sa.Engine, store: Store, observed_at: datetime | date
) -> dict[str, SyncReport]:
    """One full sync of the panel into ``store``; safe to run every night."""
    sync = HostSync(store, timezone=h.PANEL_TIMEZONE)
    cur = h.PANEL_CURRENCY
    with Session(host_engine) as s:
        products = [Product(id=host_id(p.id), name=p.name) for p in s.scalars(sa.select(h.Product))]
        customers = [
            Customer(
                id=host_id(u.id),
                registered_at=sync.moment(u.datecreated),
                email=u.email,
                name=f"{u.firstname} {u.lastname}".strip(),
                company=u.companyname,
            )
            for u in s.scalars(sa.select(h.User))
        ]
        services = [
            ServiceState(
                id=r.id,
                customer_id=r.userid,
                product_id=r.packageid,
                price=Money(r.amount, cur),
                cycle=r.billingcycle,
                status=r.domainstatus,
                started_at=r.regdate,
                next_due_date=r.nextduedate,
                cancellation_requested=r.cancel_requested_at is not None,
                cancellation_requested_at=r.cancel_requested_at,
                ended_at=r.termination_date,
                details={"domain": r.domain} if r.domain else {},
            )
            for r in s.scalars(sa.select(h.Service))
        ]
        lines: dict[int, list[InvoiceLine]] = defaultdict(list)
        for it in s.scalars(sa.select(h.InvoiceItem).order_by(h.InvoiceItem.id)):
            recurring = it.type == "Hosting" and it.period_start is not None
            lines[it.invoiceid].append(
                InvoiceLine(
                    kind=LineKind.RECURRING if recurring else LineKind.ONE_OFF,
                    amount=Money(it.amount, cur),
                    description=it.description,
                    period_start=sync.optional_moment(it.period_start) if recurring else None,
                    period_end=sync.optional_moment(it.period_end) if recurring else None,
                    subscription_id=host_id(it.relid) if it.relid is not None else None,
                )
            )
        invoices = [
            Invoice(
                id=host_id(i.id),
                customer_id=host_id(i.userid),
                currency=cur,
                issued_at=sync.moment(i.date),
                due_date=i.duedate,
                status=invoice_status(i.status),
                lines=lines[i.id],
                paid_at=sync.optional_moment(i.datepaid),
            )
            for i in s.scalars(sa.select(h.Invoice))
        ]
        transactions = [
            Transaction(
                id=host_id(t.id),
                customer_id=host_id(t.userid),
                kind=TransactionKind.REFUND if t.amountout else TransactionKind.PAYMENT,
                status=_TX_STATUS[t.status],
                amount=Money(t.amountout or t.amountin, cur),
                method=t.gateway,
                at=sync.moment(t.date),
                invoice_id=host_id(t.invoiceid) if t.invoiceid is not None else None,
            )
            for t in s.scalars(sa.select(h.Transaction))
        ]
        credits = [
            CreditEntry(
                id=host_id(c.id),
                customer_id=host_id(c.clientid),
                amount=Money(c.amount, cur),
                reason=c.description,
                at=sync.moment(c.date),
            )
            for c in s.scalars(sa.select(h.Credit))
        ]
    with store.transaction():  # one all-or-nothing sync
        return {
            "products": sync.products(products),
            "customers": sync.customers(customers),
            "services": sync.services(services, observed_at=observed_at),
            "invoices": sync.invoices(invoices),
            "transactions": sync.transactions(transactions),
            "credits": sync.credits(credits),
        }
