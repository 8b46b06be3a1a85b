"""A small WHMCS-like hosting panel schema (the host's own tables, not revcrm's).

Like most panels it keeps the *current* row of each service and naive local datetimes
(the panel's time zone is a setting), and it declares foreign keys it never asked SQLite
to enforce.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The panel's time zone setting: every naive datetime and date below is local to it.
PANEL_TIMEZONE = "America/New_York"
#: The panel bills in one currency.
PANEL_CURRENCY = "USD"


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    firstname: Mapped[str] = mapped_column(String(100))
    lastname: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200))
    companyname: Mapped[str | None] = mapped_column(String(200), default=None)
    datecreated: Mapped[datetime]


class Service(Base):
    __tablename__ = "services"
    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[int] = mapped_column(ForeignKey("users.id"))
    packageid: Mapped[int] = mapped_column(ForeignKey("products.id"))
    domain: Mapped[str] = mapped_column(String(200), default="")
    regdate: Mapped[date]
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    billingcycle: Mapped[str] = mapped_column(String(30))  # "Monthly", "Annually", "One Time"...
    nextduedate: Mapped[date | None] = mapped_column(default=None)
    domainstatus: Mapped[str] = mapped_column(String(30))  # Pending, Active, Suspended...
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    termination_date: Mapped[date | None] = mapped_column(default=None)


class Invoice(Base):
    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[int] = mapped_column(ForeignKey("users.id"))
    date: Mapped[dt.date]
    duedate: Mapped[dt.date]
    datepaid: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(30))  # Unpaid, Paid, Cancelled, Refunded...


class InvoiceItem(Base):
    __tablename__ = "invoice_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoiceid: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    relid: Mapped[int | None] = mapped_column(default=None)  # the service billed, if any
    type: Mapped[str] = mapped_column(String(30))  # "Hosting" (recurring), "Setup", "Item"
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    period_start: Mapped[date | None] = mapped_column(default=None)
    period_end: Mapped[date | None] = mapped_column(default=None)


class Transaction(Base):
    __tablename__ = "transactions"
    id: Mapped[int] = mapped_column(primary_key=True)
    userid: Mapped[int] = mapped_column(ForeignKey("users.id"))
    invoiceid: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), default=None)
    date: Mapped[dt.datetime]
    gateway: Mapped[str] = mapped_column(String(50))
    amountin: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal(0))
    amountout: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal(0))  # refunds
    status: Mapped[str] = mapped_column(String(30), default="Success")  # Pending, Failed


class Credit(Base):
    __tablename__ = "credits"
    id: Mapped[int] = mapped_column(primary_key=True)
    clientid: Mapped[int] = mapped_column(ForeignKey("users.id"))
    date: Mapped[dt.date]
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))  # negative: credit applied
