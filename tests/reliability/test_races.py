"""Races between processes (issue 12.1): concurrent credit spends never overdraw a
balance, and a merge while payments arrive for the secondary loses nothing.

Each test starts real processes (``spawn``) against a real database, bounded in time.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from revcrm import Customer, Money
from revcrm.storage import SQLStore
from tests.reliability import _race_workers as workers

SPENDERS = 6
PAYMENTS = 25
_WAIT = 120.0  # seconds any one process may take before the test fails


def _customer(cid: str) -> Customer:
    return Customer(id=cid, registered_at=workers.T0 - timedelta(days=30), name=cid)


def _run(target: Callable[..., None], argsets: list[tuple[Any, ...]]) -> list[Any]:
    """Start one process per argument tuple (a shared barrier and queue appended), wait
    for every result and for every process to end."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(argsets))
    out: Any = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, out)) for a in argsets]
    for p in procs:
        p.start()
    try:
        results = []
        for p in procs:
            p.join(_WAIT)
            assert not p.is_alive(), "a worker process hung"
        while not out.empty():
            results.append(out.get(timeout=5))
        return results
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, SQLStore]]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path}/races.db"
    prefix = f"r{uuid.uuid4().hex[:10]}_"
    store = SQLStore(url, prefix=prefix)
    store.create_schema()
    yield url, prefix, store
    if request.param == "postgres":
        store.drop_schema()
    store.close()


def test_concurrent_spends_never_overdraw(database: tuple[str, str, SQLStore]) -> None:
    url, prefix, store = database
    store.customers.upsert(_customer("c1"))
    crm = workers._crm(url, prefix)
    crm.credits.adjust("c1", Money("50", "USD"), reason="start", staff_id="s1")
    crm.store.close()

    results = _run(workers.spend, [(url, prefix, "c1")] * SPENDERS)

    assert len(results) == SPENDERS
    ok = results.count("ok")
    # Every refusal is the named error about the amount, never a raw or storage error.
    assert sorted(set(results) - {"ok"}) <= ["ValidationError:amount"], results
    assert ok <= 2
    balance = store.credits.balance("c1", "USD")
    assert balance == Money("50", "USD") - Money("20", "USD") * ok
    assert balance.amount >= 0


@pytest.mark.postgres
def test_merge_while_payments_arrive_loses_nothing(postgres_url: str) -> None:
    prefix = f"r{uuid.uuid4().hex[:10]}_"
    store = SQLStore(postgres_url, prefix=prefix)
    store.create_schema()
    try:
        store.customers.upsert(_customer("p"))
        store.customers.upsert(_customer("s"))
        results = _run(
            workers.dispatch,
            [("pay", postgres_url, prefix, "s", PAYMENTS), ("merge", postgres_url, prefix)],
        )
        merged = [r for r in results if r[0] in ("merged", "failed")]
        paid = dict(r for r in results if r[0] not in ("merged", "failed"))
        assert len(merged) == 1, results
        assert len(paid) == PAYMENTS, results
        outcome = merged[0]
        assert outcome[0] == "merged" or not outcome[1].startswith("RAW"), outcome
        stored = {t.id: t.customer_id for t in store.book().transactions}
        for tx_id, fate in paid.items():
            if fate == "ok":
                # None lost: an accepted payment is on the primary (merged) or, when the
                # merge failed cleanly, still on the secondary.
                expected = "p" if outcome[0] == "merged" else "s"
                assert stored.get(tx_id) == expected, (tx_id, stored.get(tx_id))
            else:
                assert not fate.startswith("RAW"), fate  # rejected with a named error
                assert tx_id not in stored
        if outcome[0] == "merged":
            assert store.customers.find("s") is None
            assert outcome[1] == sum(1 for f in paid.values() if f == "ok")
    finally:
        store.drop_schema()
        store.close()
