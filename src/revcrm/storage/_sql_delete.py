"""Deleting a customer from the SQL store (the rules are in ``_delete``).

One unit of work: the refusals are checked first, then the derived rows (spans, states,
the customer's ledger rows) go with the records, children before parents.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm.errors import NotFoundError
from revcrm.storage._delete import OWNED, blocked, check_delete, refuse
from revcrm.storage._sql_base import SQLBase

__all__ = ["delete_customer_sql"]


def delete_customer_sql(store: SQLBase, customer_id: str, *, cascade: bool) -> int:
    """Delete from a :class:`~revcrm.storage.SQLStore`; returns records deleted."""
    cid = check_delete(customer_id, cascade)
    s = store._schema

    def run(conn: Connection) -> int:
        c = s.customers
        lookup = sa.select(c.c.id).where(c.c.id == cid)
        if not store._sqlite:
            lookup = lookup.with_for_update()
        if conn.execute(lookup).first() is None:
            raise NotFoundError("customer", cid)
        heads = {kind: store._head(kind) for kind in OWNED}
        owned = {
            kind: [
                r[0]
                for r in conn.execute(
                    sa.select(t.c.id).where(t.c.customer_id == cid).order_by(t.c.id)
                )
            ]
            for kind, t in heads.items()
        }
        refuse(cid, cascade, owned)
        subs = sa.select(s.subscriptions.c.id).where(s.subscriptions.c.customer_id == cid)
        invs = sa.select(s.invoices.c.id).where(s.invoices.c.customer_id == cid)
        inv, ln, tx, cr = s.invoices, s.lines, s.transactions, s.credits
        probes: list[tuple[Any, str]] = [
            (
                sa.select(inv.c.id, ln.c.subscription_id)
                .join(inv, inv.c.id == ln.c.invoice_id)
                .where(inv.c.customer_id != cid, ln.c.subscription_id.in_(subs)),
                "invoice {0} line -> subscription {1}",
            ),
            (
                sa.select(tx.c.id, tx.c.invoice_id).where(
                    tx.c.customer_id != cid, tx.c.invoice_id.in_(invs)
                ),
                "transaction {0} -> invoice {1}",
            ),
            (
                sa.select(tx.c.id, tx.c.subscription_id).where(
                    tx.c.customer_id != cid, tx.c.subscription_id.in_(subs)
                ),
                "transaction {0} -> subscription {1}",
            ),
            (
                sa.select(cr.c.id, cr.c.invoice_id).where(
                    cr.c.customer_id != cid, cr.c.invoice_id.in_(invs)
                ),
                "credit {0} -> invoice {1}",
            ),
        ]
        for probe, text in probes:
            hit = conn.execute(probe.limit(1)).first()
            if hit is not None:
                record, target = text.format(hit[0], hit[1]).split(" -> ")
                raise blocked(cid, record, target)
        # Children first: a backend without ON DELETE CASCADE (or SQLite with foreign keys
        # off in a host's engine) must not be left with orphans.
        for t in s.ledger_tables:  # the customer's ledger rows, which its records built
            conn.execute(t.delete().where(t.c.customer_id == cid))
        conn.execute(cr.delete().where(cr.c.customer_id == cid))
        conn.execute(tx.delete().where(tx.c.customer_id == cid))
        conn.execute(ln.delete().where(ln.c.invoice_id.in_(invs)))
        conn.execute(inv.delete().where(inv.c.customer_id == cid))
        conn.execute(s.spans.delete().where(s.spans.c.customer_id == cid))
        conn.execute(s.states.delete().where(s.states.c.subscription_id.in_(subs)))
        conn.execute(s.changes.delete().where(s.changes.c.subscription_id.in_(subs)))
        conn.execute(s.subscriptions.delete().where(s.subscriptions.c.customer_id == cid))
        conn.execute(c.delete().where(c.c.id == cid))
        return 1 + sum(len(ids) for ids in owned.values())

    return store._run(True, run)
