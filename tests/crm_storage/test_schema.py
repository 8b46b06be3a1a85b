"""SQLCRMStore schema versions: create_schema(), schema_version(), migrate()."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from revcrm.crm import Contact, IntakeQuestion, LoggedCall, Note, Tag, TagChange
from revcrm.errors import StorageError, ValidationError
from revcrm.leads import Lead
from revcrm.storage._crm_sql import LATEST_VERSION, MIGRATIONS, SQLCRMStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
V1_TABLES = {
    "notes",
    "note_revisions",
    "tags",
    "tag_changes",
    "leads",
    "lead_transitions",
    "contacts",
    "calls",
}
SOURCE = IntakeQuestion.choice(id="source", prompt="How?", options=("Search", "Friend"))

Factory = Callable[[], SQLCRMStore]


@pytest.fixture(params=["sqlite-file", "postgres"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], SQLCRMStore]]:
    """Stores over one database and prefix, as separate processes would open them."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path}/crm.db"
    prefix = f"v{uuid.uuid4().hex[:10]}_"
    made: list[SQLCRMStore] = []

    def make() -> SQLCRMStore:
        store = SQLCRMStore(url, prefix=prefix)
        made.append(store)
        return store

    yield make
    made[0].drop_schema()
    for store in made:
        store.close()


def _tables(store: SQLCRMStore) -> set[str]:
    names = sa.inspect(store.engine).get_table_names()
    return {n.removeprefix(store.prefix) for n in names if n.startswith(store.prefix)}


def _recorded(store: SQLCRMStore) -> list[tuple[int, str]]:
    table = f"{store.prefix}schema_version"
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT version, description FROM {table} ORDER BY version"))
        return [(int(v), str(d)) for v, d in rows]


def _fill_version_one(store: SQLCRMStore) -> None:
    note = Note.create(id="n1", customer_id="c1", author_id="s1", body="hello", at=T0)
    store.notes.add(note)
    store.tags.create(Tag.of("VIP"))
    store.tags.record(TagChange.added(customer_id="c1", tag="VIP", at=T0))
    store.leads.add(Lead(id="l1", email="a@example.com", created_at=T0).convert("c1", at=T0))
    store.contacts.upsert(Contact(id="k1", customer_id="c1", name="Ann"))
    store.calls.add(LoggedCall(id="call1", customer_id="c1", at=T0, summary="intro"))


def _check_version_one_data(store: SQLCRMStore) -> None:
    assert store.notes.get("n1").body == "hello"
    assert store.tags.tags_of("c1", as_of=T0) == {"VIP"}
    lead = store.leads.lead_for_customer("c1")
    assert lead is not None
    assert lead.id == "l1"
    assert store.contacts.get("k1").name == "Ann"
    assert store.calls.get("call1").summary == "intro"


def test_versions_are_recorded_and_create_schema_is_idempotent(make_store: Factory) -> None:
    store = make_store()
    assert store.schema_version() == 0
    assert store.create_schema() == LATEST_VERSION == 2
    assert store.create_schema() == LATEST_VERSION
    assert store.migrate() == LATEST_VERSION
    assert store.schema_version() == LATEST_VERSION
    assert _recorded(store) == [(v, d) for v, d, _ in MIGRATIONS]
    assert _tables(store) == {*V1_TABLES, "intake_questions", "intake_answers", "schema_version"}


def test_a_version_one_database_is_migrated_with_its_data(make_store: Factory) -> None:
    old = make_store()
    assert old.migrate(to=1) == 1
    assert _tables(old) == {*V1_TABLES, "schema_version"}
    assert _recorded(old) == [(1, MIGRATIONS[0][1])]
    with pytest.raises(StorageError, match=r"version 1.*needs 2: call migrate\(\)"):
        old.intake.questions()
    with pytest.raises(StorageError, match=r"migrate\(\)"):
        old.notes.find("n1")
    assert old.migrate(to=1) == 1  # nothing to do

    # Data written at version 1 (through the tables directly: this code reads version 2).
    new = make_store()
    new.create_schema()
    _fill_version_one(new)
    _drop_intake(new, keep_versions=1)
    reopened = make_store()
    assert reopened.schema_version() == 1
    with pytest.raises(StorageError, match=r"migrate\(\)"):
        reopened.intake.record(SOURCE.answer(customer_id="c1", value="Search", at=T0))
    assert reopened.migrate() == 2
    _check_version_one_data(reopened)
    reopened.intake.save_question(SOURCE)
    reopened.intake.record(SOURCE.answer(customer_id="c1", value="search", at=T0))
    assert [a.choices for a in reopened.intake.answers_for("c1")] == [("Search",)]
    assert [v for v, _ in _recorded(reopened)] == [1, 2]


def test_tables_from_before_versions_count_as_version_one(make_store: Factory) -> None:
    store = make_store()
    store.create_schema()
    _fill_version_one(store)
    _drop_intake(store, keep_versions=0)  # what create_schema() made before this change
    legacy = make_store()
    assert _tables(legacy) == V1_TABLES
    assert legacy.schema_version() == 1
    with pytest.raises(StorageError, match=r"call migrate\(\)"):
        legacy.intake.questions()
    assert legacy.create_schema() == 2
    _check_version_one_data(legacy)
    assert legacy.intake.questions() == ()
    recorded = _recorded(legacy)
    assert [v for v, _ in recorded] == [1, 2]
    assert "found without a version record" in recorded[0][1]


def _drop_intake(store: SQLCRMStore, *, keep_versions: int) -> None:
    p = store.prefix
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {p}intake_answers"))
        conn.execute(sa.text(f"DROP TABLE {p}intake_questions"))
        if keep_versions:
            conn.execute(
                sa.text(f"DELETE FROM {p}schema_version WHERE version > :v"), {"v": keep_versions}
            )
        else:
            conn.execute(sa.text(f"DROP TABLE {p}schema_version"))


def test_a_newer_schema_is_refused(make_store: Factory) -> None:
    store = make_store()
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {store.prefix}schema_version (version, description, applied_at) "
                "VALUES (3, 'from the future', 0)"
            )
        )
    other = make_store()
    with pytest.raises(StorageError, match="upgrade revcrm"):
        other.notes.find("n1")
    with pytest.raises(StorageError, match="newer"):
        other.migrate()
    assert other.schema_version() == 3


@pytest.mark.parametrize("to", [0, 3, True, "2", 1.0])
def test_migrate_target_is_checked(to: object) -> None:
    store = SQLCRMStore("sqlite://")
    with pytest.raises(ValidationError, match="to"):
        store.migrate(to=to)  # type: ignore[arg-type]
    assert store.schema_version() == 0
    store.close()


def test_missing_schema_says_create_schema() -> None:
    store = SQLCRMStore("sqlite://")
    with pytest.raises(StorageError, match=r"create_schema\(\)"):
        store.intake.answers()
    store.close()


def test_a_failing_migration_leaves_the_schema_as_it_was(make_store: Factory) -> None:
    store = make_store()
    p = store.prefix
    # An index already holding the name version 2 gives its own index: that step fails.
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {p}host (customer_id VARCHAR)"))
        conn.execute(
            sa.text(f"CREATE INDEX ix_{p}intake_answers_customer_id ON {p}host (customer_id)")
        )
    with pytest.raises(StorageError):
        store.create_schema()
    assert store.schema_version() == 0
    assert _tables(store) == {"host"}
    assert store.migrate(to=1) == 1
    with pytest.raises(StorageError):
        store.migrate()
    assert store.schema_version() == 1
    assert _tables(store) == {*V1_TABLES, "schema_version", "host"}
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {p}host"))
    assert store.migrate() == 2
