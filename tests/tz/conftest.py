"""Stores of every backend under a given reporting time zone."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from revcrm import Book
from revcrm.metrics import MetricsPolicy
from revcrm.storage import InMemoryStore, SQLStore, Store

StoreOf = Callable[[Book, MetricsPolicy], Store]

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_of(request: pytest.FixtureRequest) -> Iterator[StoreOf]:
    """Loads a book into a new store of the backend under a policy."""
    made: list[Store] = []
    kind = request.param
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None

    def make(book: Book, policy: MetricsPolicy) -> Store:
        store: Store
        if kind == "memory":
            store = InMemoryStore(policy=policy)
        else:
            prefix = f"t{uuid.uuid4().hex[:12]}_"
            store = SQLStore(url or "sqlite://", prefix=prefix, policy=policy)
            store.create_schema()
        made.append(store)
        store.import_book(book)
        return store

    yield make
    for store in made:
        if isinstance(store, SQLStore) and kind == "postgres":
            store.drop_schema()
        store.close()
