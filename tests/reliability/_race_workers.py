"""Worker processes of tests/reliability/test_races.py (importable by a spawned child)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from revcrm import Money, Transaction, TransactionKind, TransactionStatus
from revcrm._facade import CRM
from revcrm.errors import RevcrmError
from revcrm.storage import SQLStore
from revcrm.storage._crm import InMemoryCRMStore

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _crm(url: str, prefix: str) -> CRM:
    store = SQLStore(url, prefix=prefix)
    return CRM(store, InMemoryCRMStore(), reporting_currency="USD", clock=lambda: T0)


def _outcome(error: BaseException) -> str:
    if isinstance(error, RevcrmError):
        field = getattr(error, "field", "")
        return f"{type(error).__name__}:{field}"
    return f"RAW {type(error).__name__}: {error}"  # a raw error is a failure


def spend(url: str, prefix: str, customer_id: str, barrier: Barrier, out: Queue[Any]) -> None:
    crm = _crm(url, prefix)
    try:
        barrier.wait(30)
        crm.credits.adjust(customer_id, Money("-20", "USD"), reason="spend", staff_id="s1")
        out.put("ok")
    except BaseException as e:
        out.put(_outcome(e))
    finally:
        crm.store.close()


def pay(
    url: str, prefix: str, customer_id: str, count: int, barrier: Barrier, out: Queue[Any]
) -> None:
    """Write ``count`` payments for the customer, one unit each; report each one's fate."""
    store = SQLStore(url, prefix=prefix)
    try:
        barrier.wait(30)
        for i in range(count):
            tx = Transaction(
                id=f"race-pay-{i}",
                customer_id=customer_id,
                kind=TransactionKind.PAYMENT,
                status=TransactionStatus.SUCCEEDED,
                amount=Money("1", "USD"),
                method="card",
                at=T0 + timedelta(minutes=i),
            )
            try:
                store.transactions.upsert(tx)
                out.put((tx.id, "ok"))
            except BaseException as e:
                out.put((tx.id, _outcome(e)))
    finally:
        store.close()


def merge(
    url: str,
    prefix: str,
    primary: str,
    secondary: str,
    delay: float,
    barrier: Barrier,
    out: Queue[Any],
) -> None:
    crm = _crm(url, prefix)
    try:
        barrier.wait(30)
        time.sleep(delay)  # let some payments in first: the merge then races the rest
        result = crm.merge(primary, secondary, staff_id="s9", at=T0)
        out.put(("merged", result.transactions))
    except BaseException as e:
        out.put(("failed", _outcome(e)))
    finally:
        crm.store.close()


def dispatch(kind: str, url: str, prefix: str, *rest: Any) -> None:
    """One entry point for the two sides of the merge race."""
    if kind == "pay":
        customer, count, barrier, out = rest
        pay(url, prefix, customer, count, barrier, out)
    else:
        barrier, out = rest
        merge(url, prefix, "p", "s", 0.3, barrier, out)
