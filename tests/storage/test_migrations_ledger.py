"""Schema versions 7 and 8: the forward migrations build the ledger tables from the stored
records.

A database left as an older revcrm wrote it (version 7, 6 and 3) migrates to the
latest version, reporting the ledger's progress; the rows it builds are those a rebuild
writes, and the ledger's reads equal the engine's over the same records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from revcrm.errors import PolicyError, StorageError
from revcrm.metrics import MetricsPolicy, analyse
from revcrm.storage import SQLStore
from revcrm.storage._schema import LATEST_VERSION
from revcrm.storage._sql_base import _POLICY_KEY
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.testing.contract import AS_OF, sample_book


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/revcrm.db"


def _dump(store: SQLStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in store._schema.ledger_tables
        }


def _leave_at(db: str, version: int) -> None:
    """Make the database look as a revcrm at ``version`` left it: no ledger tables, the
    policy fingerprint of that release, and no later version rows."""
    old = SQLStore(db)
    old.create_schema()
    old.import_book(sample_book())
    with old.engine.begin() as conn:
        versions = old._schema.schema_version
        conn.execute(versions.delete().where(versions.c.version > version))
        gone = old._schema.service_tables if version == 7 else old._schema.ledger_tables
        for t in reversed(gone):
            t.drop(conn)
        settings = old._schema.settings
        conn.execute(
            settings.update().where(settings.c.key == _POLICY_KEY).values(value="older release")
        )
        if version < 6:
            conn.exec_driver_sql("DROP INDEX revcrm_line_subscription")
    old.close()


@pytest.mark.parametrize("version", [7, 6, 3])
def test_migration_builds_the_ledger_from_the_stored_records(db: str, version: int) -> None:
    _leave_at(db, version)
    store = SQLStore(db)
    assert store.schema_version() == version
    with pytest.raises(StorageError, match=f"version {version}"):
        store.customers.count()
    heard: list[tuple[str, int, int]] = []
    assert store.migrate(progress=lambda *a: heard.append(a)) == LATEST_VERSION == 9
    book = sample_book()
    owners = len({s.customer_id for s in book.subscriptions})
    # Built once, even though the older fingerprint also asked for a rebuild.
    payers = len({t.customer_id for t in book.transactions} | {c.customer_id for c in book.credits})
    ordered = len(
        {s.customer_id for s in book.subscriptions} | {i.customer_id for i in book.invoices}
    )
    mrr = [("ledger", 0, owners), ("ledger", owners, owners), ("cash", payers, payers)]
    assert heard == [*mrr, ("services", ordered, ordered)]
    built = _dump(store)
    missing = store._schema.ledger_cash_missing.name
    assert all(rows for name, rows in built.items() if name != missing)
    assert not built[missing]
    store.rebuild_ledger()
    assert _dump(store) == built
    engine = analyse(book, currency="USD", policy=store.policy, horizon=store.ledger_horizon())
    reads = LedgerReads(store)
    assert reads.mrr(AS_OF) == engine.mrr(AS_OF) == store.mrr(at=AS_OF, currency="USD")
    start = AS_OF.replace(year=AS_OF.year - 1)
    assert reads.series(start, AS_OF) == engine.series(start, AS_OF)
    assert reads.waterfalls(start, AS_OF) == engine.waterfalls(start, AS_OF)


def test_a_store_opened_with_other_movement_rules_must_migrate(db: str) -> None:
    # The grouping window decides the ledger's kinds: part of the policy fingerprint now.
    store = SQLStore(db)
    store.create_schema()
    store.import_book(sample_book())
    other = SQLStore(db, policy=MetricsPolicy(grouping_window=None))
    with pytest.raises(PolicyError, match="migrate"):
        other.customers.count()
    other.migrate()
    book = sample_book()
    engine = analyse(book, currency="USD", policy=other.policy, horizon=other.ledger_horizon())
    start = AS_OF.replace(year=AS_OF.year - 1)
    assert LedgerReads(other).waterfalls(start, AS_OF) == engine.waterfalls(start, AS_OF)
