"""SQL import_book writes a book a chunk of records at a time, in one transaction, with
Python's cyclic collector paused: the same rows as one batch, all or nothing."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import sqlalchemy as sa

from revcrm._demo import DEMO_AS_OF, demo_book
from revcrm.errors import ValidationError
from revcrm.storage import SQLStore, _codec, _sql_write
from revcrm.testing.contract import sample_book


def _tables(store: SQLStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with store.engine.connect() as conn:
        for t in store._schema.all_tables:
            if t is store._schema.schema_version:
                continue
            order = list(t.primary_key) or list(t.c)
            out[t.name] = [tuple(r) for r in conn.execute(sa.select(t).order_by(*order))]
    return out


def _imported(book: Any) -> dict[str, list[tuple[Any, ...]]]:
    store = SQLStore("sqlite://")
    store.create_schema()
    try:
        store.import_book(book)
        return _tables(store)
    finally:
        store.close()


@pytest.mark.parametrize("which", ["sample", "demo"])
def test_chunks_write_the_rows_one_batch_writes(
    which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = sample_book() if which == "sample" else demo_book(12, seed=3, as_of=DEMO_AS_OF)
    whole = _imported(book)
    monkeypatch.setattr(_sql_write, "_IMPORT_CHUNK", 2)
    chunked = _imported(book)
    assert chunked == whole
    assert sum(map(len, whole.values())) > 0


def test_a_failing_chunk_writes_nothing_and_the_collector_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = demo_book(6, seed=5, as_of=DEMO_AS_OF)
    assert len(book.transactions) > 3
    bad = book.transactions[-1].id
    real = _codec.prepare

    def prepare(kind: str, record: Any) -> Any:
        assert not gc.isenabled()  # paused during the import
        if kind == "transaction" and record.id == bad:
            raise ValidationError("transaction", record.id, "planted")
        return real(kind, record)

    monkeypatch.setattr(_sql_write, "_IMPORT_CHUNK", 2)
    monkeypatch.setattr(_sql_write, "prepare", prepare)
    store = SQLStore("sqlite://")
    store.create_schema()
    try:
        empty = _tables(store)
        assert gc.isenabled()
        with pytest.raises(ValidationError):
            store.import_book(book)
        assert gc.isenabled()
        assert _tables(store) == empty
    finally:
        store.close()


def test_a_collector_off_before_the_import_stays_off() -> None:
    store = SQLStore("sqlite://")
    store.create_schema()
    gc.disable()
    try:
        store.import_book(sample_book())
        assert not gc.isenabled()
    finally:
        gc.enable()
        store.close()
