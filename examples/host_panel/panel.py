"""The panel's own behaviour (what a hosting panel does to its tables), for the demo and tests.

Nothing here knows revcrm: it registers clients, sells and changes services, issues and
pays invoices, the way a WHMCS-like panel writes its current-state rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import schema as h


class HostPanel:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create_tables(self) -> None:
        h.Base.metadata.create_all(self.engine)

    def seed(self) -> None:
        """The panel's starting data: two products, two clients with a service each."""
        with Session(self.engine) as s, s.begin():
            s.add_all([h.Product(id=1, name="Shared Hosting"), h.Product(id=2, name="VPS")])
        self.register(1, "Ada", "Lovelace", datetime(2023, 11, 2, 9, 30))
        self.register(2, "Alan", "Turing", datetime(2023, 12, 1, 23, 45))
        self.buy(11, 1, 1, Decimal("10.00"), "Monthly", date(2023, 11, 2))
        self.buy(12, 2, 2, Decimal("240.00"), "Annually", date(2023, 12, 1))

    def register(self, uid: int, first: str, last: str, at: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(
                h.User(
                    id=uid,
                    firstname=first,
                    lastname=last,
                    email=f"{first.lower()}@example.org",
                    datecreated=at,
                )
            )

    def buy(self, sid: int, uid: int, pid: int, amount: Decimal, cycle: str, on: date) -> None:
        """A new active service, its first invoice paid on the day."""
        months = {"Monthly": 1, "Quarterly": 3, "Annually": 12}[cycle]
        end = _add_months(on, months)
        with Session(self.engine) as s, s.begin():
            s.add(
                h.Service(
                    id=sid,
                    userid=uid,
                    packageid=pid,
                    domain=f"site{sid}.example",
                    regdate=on,
                    amount=amount,
                    billingcycle=cycle,
                    nextduedate=end,
                    domainstatus="Active",
                )
            )
        self.invoice(sid * 100, uid, sid, amount, on, end, paid=True)

    def invoice(
        self,
        iid: int,
        uid: int,
        sid: int,
        amount: Decimal,
        start: date,
        end: date,
        *,
        paid: bool,
    ) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(h.Invoice(id=iid, userid=uid, date=start, duedate=start, status="Unpaid"))
            s.flush()
            s.add(
                h.InvoiceItem(
                    invoiceid=iid,
                    relid=sid,
                    type="Hosting",
                    description=f"Service {sid} {start} - {end}",
                    amount=amount,
                    period_start=start,
                    period_end=end,
                )
            )
        if paid:
            self.pay(iid, datetime.combine(start, datetime.min.time()) + timedelta(hours=10))

    def pay(self, iid: int, at: datetime, *, pending: bool = False) -> int:
        """A payment of the invoice's total (pending: the gateway has not confirmed yet)."""
        with Session(self.engine) as s, s.begin():
            inv = s.get_one(h.Invoice, iid)
            total = sum(
                (i.amount for i in s.scalars(sa.select(h.InvoiceItem).filter_by(invoiceid=iid))),
                Decimal(0),
            )
            tx = h.Transaction(
                userid=inv.userid,
                invoiceid=iid,
                date=at,
                gateway="stripe",
                amountin=total,
                status="Pending" if pending else "Success",
            )
            s.add(tx)
            if not pending:
                inv.status, inv.datepaid = "Paid", at
            s.flush()
            return tx.id

    def confirm(self, txid: int, at: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            tx = s.get_one(h.Transaction, txid)
            tx.status = "Success"
            inv = s.get_one(h.Invoice, tx.invoiceid)
            inv.status, inv.datepaid = "Paid", at

    def refund(self, iid: int, at: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            inv = s.get_one(h.Invoice, iid)
            paid = s.scalars(
                sa.select(h.Transaction).filter_by(invoiceid=iid, status="Success")
            ).first()
            assert paid is not None
            s.add(
                h.Transaction(
                    userid=inv.userid,
                    invoiceid=iid,
                    date=at,
                    gateway=paid.gateway,
                    amountout=paid.amountin,
                )
            )
            inv.status = "Refunded"

    def set_service(self, sid: int, **values: object) -> None:
        """The admin edits a service row in place (status, price, cycle...)."""
        with Session(self.engine) as s, s.begin():
            row = s.get_one(h.Service, sid)
            for key, value in values.items():
                setattr(row, key, value)

    def add_credit(self, cid: int, uid: int, on: date, amount: Decimal, why: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(h.Credit(id=cid, clientid=uid, date=on, description=why, amount=amount))


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    last = [31, 29 if (d.year + y) % 4 == 0 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m]
    return d.replace(year=d.year + y, month=m + 1, day=min(d.day, last))
