"""SQLite's ledger cash rows carry the stored values themselves (microseconds, decimal
text): flattened for the driver they are exactly the typed rows PostgreSQL is given,
flattened (no datetime or Decimal is made for SQLite only to be undone)."""

from __future__ import annotations

from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm.storage._codec import flat, moment_value
from revcrm.storage._sql_ledger_build import build_cash_rows


def test_sqlite_cash_rows_flatten_to_the_typed_rows() -> None:
    book = demo_book(40, seed=3, as_of=DEMO_AS_OF)
    ids = [c.id for c in book.customers]
    args = (book.transactions, book.credits, book.fx)
    sqlite, _ = build_cash_rows(*args, currency="USD", customer_ids=ids, limbs=True)
    typed, _ = build_cash_rows(*args, currency="USD", customer_ids=ids, limbs=False)
    assert len(sqlite) == len(typed) > 0
    for s, t in zip(sqlite, typed, strict=True):
        assert isinstance(s["at"], int)
        assert s["at"] == moment_value(t["at"])
        assert all(k.startswith("reporting") for k in s if k not in t)  # its money limbs
        assert flat({k: s[k] for k in t}) == flat(t)
