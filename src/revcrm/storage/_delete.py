"""Deleting a customer and, with ``cascade``, every billing record it owns.

Kept apart from the backends because both follow one rule set (the contract suite checks
it on each):

* A missing customer is :class:`~revcrm.errors.NotFoundError`.
* A customer that owns subscriptions, invoices, transactions or credit entries is deleted
  only with ``cascade=True``; otherwise :class:`~revcrm.errors.ValidationError` naming
  ``cascade`` says what it owns. Deleting revenue history changes every metric that
  covered it: that is what a delete is for (anonymising keeps the history).
* A record of another customer that refers to one of the doomed records (an invoice line
  billing its subscription, a payment of its invoice) blocks the delete with a
  :class:`~revcrm.errors.ValidationError` naming ``customer_id``: deleting would leave that
  record dangling, and rewriting another customer's records is not revcrm's call.
* Other customers whose ``referrer_id`` names the deleted customer keep it: a store never
  checks that field, and it records where they came from.
* All or nothing: the delete runs as one unit of work (inside an open
  ``store.transaction()`` it joins it). Derived rows (the SQL store's MRR spans and daily
  cash totals) change with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from revcrm.errors import NotFoundError, ValidationError
from revcrm.storage._codec import references

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from revcrm.storage._memory import InMemoryStore
    from revcrm.storage._sql import SQLStore

__all__ = ["delete_customer_memory", "delete_customer_sql"]

#: The kinds a customer owns, in the order they are deleted (each refers only to earlier
#: ones in :data:`revcrm.storage._codec.KINDS`, so referrers go first).
OWNED: Final = ("credit", "transaction", "invoice", "subscription")


def _check(customer_id: object, cascade: object) -> str:
    if not isinstance(customer_id, str) or not customer_id:
        raise ValidationError("customer_id", customer_id, "expected a customer id")
    if not isinstance(cascade, bool):
        raise ValidationError("cascade", cascade, "expected True or False")
    return customer_id


def _refuse(customer_id: str, cascade: bool, owned: Mapping[str, Sequence[str]]) -> None:
    if cascade or not any(owned.values()):
        return
    what = ", ".join(f"{len(ids)} {kind} record(s)" for kind, ids in owned.items() if ids)
    raise ValidationError(
        "cascade",
        cascade,
        f"customer {customer_id} owns {what}; pass cascade=True to delete them too",
    )


def _blocked(customer_id: str, record: str, target: str) -> ValidationError:
    return ValidationError(
        "customer_id",
        customer_id,
        f"{record} of another customer refers to its {target}; move or delete that first",
    )


def delete_customer_memory(store: InMemoryStore, customer_id: str, *, cascade: bool) -> int:
    """Delete from an :class:`~revcrm.storage.InMemoryStore`; returns records deleted."""
    from revcrm.storage._memory import _MISSING

    cid = _check(customer_id, cascade)
    with store.transaction():  # holds the store's lock for the whole unit
        tables = store._tables
        if cid not in tables["customer"].rows:
            raise NotFoundError("customer", cid)
        owned = {
            kind: sorted(k for k, e in tables[kind].rows.items() if e.record.customer_id == cid)
            for kind in OWNED
        }
        _refuse(cid, cascade, owned)
        doomed = {(kind, k) for kind, ids in owned.items() for k in ids}
        for kind in ("subscription", "invoice", "transaction", "credit"):
            for entry in tables[kind].rows.values():
                if entry.record.customer_id == cid:
                    continue
                for field, value, target in references(kind, entry.record):
                    if (target, value) in doomed:
                        raise _blocked(cid, field, f"{target} {value}")
        deleted = 0
        for kind in (*OWNED, "customer"):
            table = tables[kind]
            for key in owned.get(kind, [cid]):
                ext = getattr(table.rows[key].record, "external_id", None)
                if ext is not None:
                    store._set(table.external, ext, _MISSING)
                store._set(table.rows, key, _MISSING)
                deleted += 1
        return deleted


def delete_customer_sql(store: SQLStore, customer_id: str, *, cascade: bool) -> int:
    """Delete from a :class:`~revcrm.storage.SQLStore`; returns records deleted."""
    import sqlalchemy as sa

    from revcrm.storage._sql import _dec

    cid = _check(customer_id, cascade)
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
        _refuse(cid, cascade, owned)
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
                raise _blocked(cid, record, target)
        # The deleted payments leave the daily cash totals.
        gone: dict[tuple[int, str, str], list[Any]] = {}
        for day, currency, kind, amount in conn.execute(
            sa.select(tx.c.at_day, tx.c.currency, tx.c.kind, tx.c.amount).where(
                tx.c.customer_id == cid, tx.c.status == "succeeded"
            )
        ):
            entry = gone.setdefault((int(day), currency, kind), [Decimal(0), 0])
            entry[0] += _dec(amount)
            entry[1] += 1
        daily = s.cash_daily
        for (day, currency, kind), (amount, count) in sorted(gone.items()):
            where = sa.and_(daily.c.day == day, daily.c.currency == currency, daily.c.kind == kind)
            # The totals are shared by every customer: lock the row so a concurrent payment
            # on that day is not overwritten by totals read before it (SQLite's write lock,
            # taken at BEGIN IMMEDIATE, already serialises writers).
            read = sa.select(daily.c.amount, daily.c.count).where(where)
            if not store._sqlite:
                read = read.with_for_update()
            have = conn.execute(read).one()
            if int(have[1]) == count:
                conn.execute(daily.delete().where(where))
            else:
                conn.execute(
                    daily.update()
                    .where(where)
                    .values(amount=_dec(have[0]) - amount, count=int(have[1]) - count)
                )
        # Children first: a backend without ON DELETE CASCADE (or SQLite with foreign keys
        # off in a host's engine) must not be left with orphans.
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
