"""Deleting a customer and, with ``cascade``, every billing record it owns: the rules.

Both backends follow one rule set (the contract suite checks it on each); the deletes
themselves are the in-memory store's (``_memory``) and the SQL store's (``_sql_delete``),
which import these checks, never the other way round:

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
  ``store.transaction()`` it joins it). Derived rows (the SQL store's MRR spans and ledger
  rows) change with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from revcrm.errors import ValidationError

__all__ = ["OWNED", "blocked", "check_delete", "refuse"]

#: The kinds a customer owns, in the order they are deleted (each refers only to earlier
#: ones in :data:`revcrm.storage._codec.KINDS`, so referrers go first).
OWNED: Final = ("credit", "transaction", "invoice", "subscription")


def check_delete(customer_id: object, cascade: object) -> str:
    if not isinstance(customer_id, str) or not customer_id:
        raise ValidationError("customer_id", customer_id, "expected a customer id")
    if not isinstance(cascade, bool):
        raise ValidationError("cascade", cascade, "expected True or False")
    return customer_id


def refuse(customer_id: str, cascade: bool, owned: Mapping[str, Sequence[str]]) -> None:
    if cascade or not any(owned.values()):
        return
    what = ", ".join(f"{len(ids)} {kind} record(s)" for kind, ids in owned.items() if ids)
    raise ValidationError(
        "cascade",
        cascade,
        f"customer {customer_id} owns {what}; pass cascade=True to delete them too",
    )


def blocked(customer_id: str, record: str, target: str) -> ValidationError:
    return ValidationError(
        "customer_id",
        customer_id,
        f"{record} of another customer refers to its {target}; move or delete that first",
    )
