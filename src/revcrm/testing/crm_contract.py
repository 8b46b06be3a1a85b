"""The contract suite of CRM stores (notes, tags, leads, contacts, calls, intake):
abstract test classes.

Subclass :class:`CRMStoreContract`, name the subclass ``Test...`` and give it a factory::

    class TestMyCRMStore(CRMStoreContract):
        def make_crm_store(self) -> CRMStore:
            return MyCRMStore(...)  # empty, schema created

The class is not collected on its own (its name does not start with ``Test``).

Example counts follow the active hypothesis profile: each property's count is written
for hypothesis' default of 100 examples and scaled by the profile's ``max_examples``
(``n * max_examples // 100``, at least one; see :mod:`revcrm.testing._examples`), so
``--hypothesis-profile=fast`` or a ``settings.load_profile`` in the host's conftest,
done before this module is imported, governs the suite as it governs the host's tests.
"""

from __future__ import annotations

import abc
import threading

import pytest
from hypothesis import HealthCheck, given, settings

from revcrm.crm import (
    Tag,
    TagChange,
    tag_key,
    tags_at,
)
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    UnknownReferenceError,
    ValidationError,
)
from revcrm.storage._crm import ERASED_TEXT, CRMStore
from revcrm.testing._crm_contract_book import (
    _CUSTOMERS,
    _TAG_NAMES,
    T0,
    _note,
    _t,
)
from revcrm.testing._crm_records_contract import CRMRecordsContract
from revcrm.testing._crm_safety_contract import CRMSafetyContract
from revcrm.testing._examples import examples
from revcrm.testing.strategies import tag_change_logs

__all__ = ["CRMStoreContract"]


class CRMStoreContract(CRMRecordsContract, CRMSafetyContract):
    @abc.abstractmethod
    def make_crm_store(self) -> CRMStore: ...

    # -- notes -------------------------------------------------------------------------------

    def test_note_round_trip_and_creation_entry(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        assert s.notes.get("n1") == note
        assert s.notes.find("missing") is None
        with pytest.raises(NotFoundError):
            s.notes.get("missing")
        (entry,) = s.notes.history("n1")
        assert entry == note.created()

    def test_note_id_is_unique(self) -> None:
        s = self.make_crm_store()
        s.notes.add(_note())
        with pytest.raises(DuplicateError):
            s.notes.add(_note(customer_id="c2"))
        assert s.notes.for_customer("c2") == ()

    def test_note_changes_keep_an_audit_trail(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        edited, e1 = note.edit("changed", at=_t(1), staff_id="s2")
        s.notes.save(edited, e1)
        deleted, e2 = edited.delete(at=_t(2), staff_id="s3")
        s.notes.save(deleted, e2)
        stored = s.notes.get("n1")
        assert stored == deleted
        assert stored.body == "changed"
        assert stored.deleted
        assert [e.action.value for e in s.notes.history("n1")] == ["created", "edited", "deleted"]
        assert [e.body for e in s.notes.history("n1")] == ["hello", "changed", "changed"]
        assert s.notes.for_customer("c1") == ()
        assert s.notes.for_customer("c1", include_deleted=True) == (deleted,)

    def test_lost_update_is_a_conflict_and_writes_nothing(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        a, ea = note.edit("first", at=_t(1), staff_id="s1")
        b, eb = note.edit("second", at=_t(1), staff_id="s2")
        s.notes.save(a, ea)
        with pytest.raises(ConflictError):
            s.notes.save(b, eb)
        assert s.notes.get("n1").body == "first"
        assert len(s.notes.history("n1")) == 2

    def test_concurrent_edits_of_one_revision_one_wins(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        outcomes: list[str] = []
        lock = threading.Lock()

        def edit(i: int) -> None:
            changed, entry = note.edit(f"edit {i}", at=_t(1), staff_id=f"s{i}")
            try:
                s.notes.save(changed, entry)
                result = "saved"
            except ConflictError:
                result = "conflict"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=edit, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 5 + ["saved"]
        assert len(s.notes.history("n1")) == 2

    def test_mismatched_entry_is_refused(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        a, _ = note.edit("first", at=_t(1), staff_id="s1")
        with pytest.raises(ValidationError):
            s.notes.save(a, note.created())
        assert s.notes.get("n1") == note

    def test_pinned_first_then_newest(self) -> None:
        s = self.make_crm_store()
        for i in range(3):
            s.notes.add(_note(f"n{i}", hours=i))
        pinned, entry = s.notes.get("n0").pin(at=_t(5), staff_id="s1")
        s.notes.save(pinned, entry)
        assert [n.id for n in s.notes.for_customer("c1")] == ["n0", "n2", "n1"]

    def test_rehome_moves_notes_and_their_log(self) -> None:
        s = self.make_crm_store()
        s.notes.add(_note("n1", "c1"))
        s.notes.add(_note("n2", "c2"))
        assert s.notes.rehome("c2", "c1") == 1
        assert {n.id for n in s.notes.for_customer("c1")} == {"n1", "n2"}
        assert s.notes.for_customer("c2") == ()
        assert all(e.customer_id == "c1" for e in s.notes.history("n2"))

    def test_bad_note_writes_are_refused(self) -> None:
        s = self.make_crm_store()
        note = _note()
        edited, entry = note.edit("x", at=_t(1), staff_id="s1")
        with pytest.raises(ValidationError, match="revision"):
            s.notes.add(edited)
        with pytest.raises(NotFoundError):
            s.notes.save(edited, entry)
        with pytest.raises(NotFoundError):
            s.notes.history("n1")
        with pytest.raises(ValidationError):
            s.notes.add("not a note")  # type: ignore[arg-type]
        assert s.notes.for_customer("c1", include_deleted=True) == ()

    def test_erase_customer_replaces_note_text_everywhere(self) -> None:
        s = self.make_crm_store()
        note = _note()
        s.notes.add(note)
        s.notes.save(*note.edit("secret", at=_t(1), staff_id="s1"))
        s.notes.add(_note("other", "c2"))
        assert s.notes.erase_customer("c1") == 1
        assert s.notes.get("n1").body == ERASED_TEXT
        assert {e.body for e in s.notes.history("n1")} == {ERASED_TEXT}
        assert s.notes.get("other").body == "hello"

    def test_nested_transaction_is_a_savepoint(self) -> None:
        s = self.make_crm_store()

        def inner_fails() -> None:
            with s.transaction():
                s.tags.create(Tag.of("Inner"))
                raise RuntimeError("inner")

        with s.transaction():
            s.tags.create(Tag.of("Outer"))
            with pytest.raises(RuntimeError):
                inner_fails()
        assert [t.name for t in s.tags.all()] == ["Outer"]

    # -- tags --------------------------------------------------------------------------------

    def test_tag_names_unique_case_insensitively(self) -> None:
        s = self.make_crm_store()
        s.tags.create(Tag.of("VIP", "#ff0000"))
        with pytest.raises(DuplicateError):
            s.tags.create(Tag.of("vip"))
        assert s.tags.all() == (Tag.of("VIP", "#FF0000"),)
        assert s.tags.get("vIp").colour == "#FF0000"
        with pytest.raises(NotFoundError):
            s.tags.get("other")

    def test_assign_remove_counts_and_members(self) -> None:
        s = self.make_crm_store()
        s.tags.create(Tag.of("VIP"))
        s.tags.create(Tag.of("Trial"))
        s.tags.record(TagChange.added(customer_id="c1", tag="vip", at=_t(0)))
        s.tags.record(TagChange.added(customer_id="c2", tag="VIP", at=_t(1)))
        s.tags.record(TagChange.removed(customer_id="c1", tag="Vip", at=_t(2)))
        assert s.tags.tags_of("c2", as_of=_t(3)) == {"VIP"}
        assert s.tags.tags_of("c1", as_of=_t(1)) == {"vip"}
        assert s.tags.tags_of("c1", as_of=_t(3)) == frozenset()
        assert s.tags.customers_with("vip", as_of=_t(1)) == {"c1", "c2"}
        assert s.tags.customers_with("vip", as_of=_t(3)) == {"c2"}
        assert s.tags.counts(as_of=_t(3)) == {"VIP": 1, "Trial": 0}
        assert len(s.tags.changes()) == 3
        assert len(s.tags.changes("c1")) == 2

    def test_assigning_an_unknown_tag_writes_nothing(self) -> None:
        s = self.make_crm_store()
        with pytest.raises(UnknownReferenceError):
            s.tags.record(TagChange.added(customer_id="c1", tag="ghost", at=T0))
        assert s.tags.changes() == ()

    @settings(
        max_examples=examples(15),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(changes=tag_change_logs(_CUSTOMERS, (*_TAG_NAMES, "vip", "TRIAL", "ViP"), T0))
    def test_current_tags_replay_the_log(self, changes: list[TagChange]) -> None:
        s = self.make_crm_store()
        for name in _TAG_NAMES:
            s.tags.create(Tag.of(name))
        for c in changes:
            s.tags.record(c)
        assert s.tags.changes() == tuple(sorted(changes, key=lambda c: c.at))
        for hours in (0, 3, 6, 12):
            at = _t(hours)
            expected = tags_at(changes, as_of=at)
            for customer in _CUSTOMERS:
                assert s.tags.tags_of(customer, as_of=at) == expected.get(customer, frozenset())
            for name in _TAG_NAMES:
                members = {c for c, tags in expected.items() if tag_key(name) in map(tag_key, tags)}
                assert s.tags.customers_with(name, as_of=at) == members
                assert s.tags.counts(as_of=at)[name] == len(members)
