"""SQLCRMStore with ``billing=``: CRM and billing rows in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from revcrm import Customer
from revcrm.crm import IntakeQuestion, Note, Tag
from revcrm.errors import DuplicateError, StorageError, ValidationError
from revcrm.storage import SQLStore
from revcrm.storage._crm_sql import SQLCRMStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SOURCE = IntakeQuestion.choice(id="source", prompt="How?", options=("Search", "Friend"))


class _Pair:
    def __init__(self, billing: SQLStore, crm: SQLCRMStore) -> None:
        self.billing = billing
        self.crm = crm


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Pair]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    elif request.param == "sqlite-file":
        url = f"sqlite:///{tmp_path}/revcrm.db"
    else:
        url = "sqlite://"
    tag = uuid.uuid4().hex[:10]
    billing = SQLStore(url, prefix=f"b{tag}_")
    billing.create_schema()
    crm = SQLCRMStore.alongside(billing, prefix=f"b{tag}_crm_")
    assert crm.create_schema() == 2
    yield _Pair(billing, crm)
    crm.drop_schema()
    billing.drop_schema()
    crm.close()
    billing.close()


def _customer(cid: str = "c1") -> Customer:
    return Customer(id=cid, registered_at=T0, name="Ann")


def _note(nid: str = "n1", cid: str = "c1") -> Note:
    return Note.create(id=nid, customer_id=cid, author_id="s1", body="hello", at=T0)


def _write_both(p: _Pair) -> None:
    p.billing.customers.upsert(_customer())
    p.crm.notes.add(_note())
    p.crm.tags.create(Tag.of("VIP"))
    p.crm.intake.save_question(SOURCE)
    p.crm.intake.record(SOURCE.answer(customer_id="c1", value="Search", at=T0))


def _nothing_written(p: _Pair) -> None:
    assert p.billing.customers.find("c1") is None
    assert p.crm.notes.find("n1") is None
    assert p.crm.tags.all() == ()
    assert p.crm.intake.answers() == ()


def test_billing_transaction_rolls_back_crm_writes(pair: _Pair) -> None:
    def fail() -> None:
        with pair.billing.transaction():
            _write_both(pair)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    _nothing_written(pair)


def test_crm_transaction_rolls_back_billing_writes(pair: _Pair) -> None:
    def fail() -> None:
        with pair.crm.transaction():
            _write_both(pair)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    _nothing_written(pair)


def test_both_commit_together(pair: _Pair) -> None:
    with pair.billing.transaction(), pair.crm.transaction():
        _write_both(pair)
    assert pair.billing.customers.get("c1").name == "Ann"
    assert pair.crm.notes.get("n1") == _note()
    assert len(pair.crm.intake.answers_for("c1")) == 1


def test_a_failed_crm_write_is_a_savepoint_inside_the_billing_transaction(pair: _Pair) -> None:
    with pair.billing.transaction():
        pair.billing.customers.upsert(_customer())
        pair.crm.notes.add(_note())
        with pytest.raises(DuplicateError):
            pair.crm.notes.add(_note())
        # The transaction goes on after the refused write (PostgreSQL too).
        pair.crm.notes.add(_note("n2"))
        pair.billing.customers.upsert(_customer("c2"))
    assert {n.id for n in pair.crm.notes.for_customer("c1")} == {"n1", "n2"}
    assert pair.billing.customers.count() == 2


def test_crm_reads_join_a_read_only_billing_session(pair: _Pair) -> None:
    pair.crm.notes.add(_note())
    with pair.billing.connection(write=False):
        assert pair.crm.notes.get("n1") == _note()
        assert pair.crm.intake.questions() == ()
        with pytest.raises(StorageError, match="read-only"):
            pair.crm.tags.create(Tag.of("VIP"))
    assert pair.crm.tags.all() == ()


def test_standalone_stores_on_one_engine_still_work(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/shared.db")
    crm = SQLCRMStore(engine, prefix="solo_")
    crm.create_schema()
    crm.notes.add(_note())
    assert crm.notes.get("n1") == _note()
    assert "billing" not in repr(crm)
    crm.close()
    engine.dispose()


def test_billing_store_is_checked(tmp_path: Path) -> None:
    billing = SQLStore(f"sqlite:///{tmp_path}/b.db", prefix="b_")
    with pytest.raises(ValidationError, match="billing"):
        SQLCRMStore(f"sqlite:///{tmp_path}/c.db", billing=billing)
    with pytest.raises(ValidationError, match="prefix"):
        SQLCRMStore.alongside(billing, prefix="b_")
    with pytest.raises(ValidationError, match="billing"):
        SQLCRMStore(billing.engine, billing="not a store")  # type: ignore[arg-type]
    crm = SQLCRMStore.alongside(billing)
    assert crm.engine is billing.engine
    assert "billing=SQLStore" in repr(crm)
    billing.close()
