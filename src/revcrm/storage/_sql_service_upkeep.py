"""The service and status rows an invoice or plan write changes (schema 8).

The write path (``_sql_write``) rebuilds a customer's MRR rows, with its service and
status rows, on a subscription write, and its cash rows on a transaction or credit
write; an invoice write (overdue invoices change the status) and a plan write (a plan's
product is its services' product) change the service and status rows alone. This mixin
sits before the write path in the store's class order and adds those customers to the
same rebuild, in the write's transaction.

It stands in until ``SQLWrites._write`` names them itself (``services=`` of
``LedgerTouch.add`` and ``_ledger_refresh``, for invoice and plan writes); then it goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_ledger import LedgerTouch, SQLLedger

if TYPE_CHECKING:
    from revcrm.storage._codec import Prepared
    from revcrm.storage._query import ImportResult

__all__ = ["SQLServiceUpkeep"]


class SQLServiceUpkeep(SQLLedger):
    """Invoice and plan writes rebuild the service and status rows they change."""

    def _write(
        self,
        conn: Connection,
        batch: Sequence[Prepared],
        expected: Sequence[int | None],
        *,
        present: Mapping[str, set[str]] | None = None,
        touched: LedgerTouch | None = None,
    ) -> ImportResult:
        write = super()._write  # type: ignore[misc]
        kind = batch[0].kind if batch else None
        if kind not in ("invoice", "plan") or not self._services_ready(conn):
            result: ImportResult = write(conn, batch, expected, present=present, touched=touched)
            return result
        s = self._schema
        ids = sorted({p.record.id for p in batch})
        owners: set[str] = set()
        products: dict[str, str | None] = {}
        if kind == "plan":  # only a plan whose product changes changes service rows
            pl = s.plans
            for chunk in _chunks(ids):
                stmt = sa.select(pl.c.id, pl.c.product_id).where(pl.c.id.in_(chunk))
                products.update((str(i), p) for i, p in conn.execute(stmt))
        if kind == "invoice":
            owners = {p.record.customer_id for p in batch}
            if not self._empty(conn, s.invoices):
                for chunk in _chunks(ids):  # an invoice moved to another customer
                    stmt = sa.select(s.invoices.c.customer_id).where(s.invoices.c.id.in_(chunk))
                    owners.update(r[0] for r in conn.execute(stmt))
        result = write(conn, batch, expected, present=present, touched=touched)
        if not result.inserted and not result.updated:
            return result
        if kind == "plan":
            st = s.states
            moved = sorted(
                p.record.id
                for p in batch
                if p.record.id in products and products[p.record.id] != p.record.product_id
            )
            for chunk in _chunks(moved):
                stmt = sa.select(st.c.customer_id).distinct().where(st.c.plan_id.in_(chunk))
                owners.update(r[0] for r in conn.execute(stmt))
        if not owners:
            return result
        if touched is not None:
            touched.add((), None, services=owners)
        else:
            self._ledger_refresh(conn, (), services=owners)
        return result
