"""Delete and hostile-argument rules of the CRM store contract, mixed into
:class:`~revcrm.testing.crm_contract.CRMStoreContract` (the class a host runs).
"""

from __future__ import annotations

import abc
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from revcrm.crm import (
    Contact,
    LoggedCall,
    Note,
    Tag,
    TagChange,
)
from revcrm.errors import (
    NotFoundError,
    ValidationError,
)
from revcrm.storage._crm import CRMStore, InMemoryCRMStore
from revcrm.testing._crm_contract_book import (
    _CUSTOMERS,
    _HOSTILE_IDS,
    _HOSTILE_MOMENTS,
    _SOURCE,
    _WHY,
    _lead,
    _note,
    _refused,
    _t,
)

__all__ = ["CRMSafetyContract"]


class CRMSafetyContract(abc.ABC):
    """Deleting a customer's CRM records; refusing hostile arguments."""

    @abc.abstractmethod
    def make_crm_store(self) -> CRMStore: ...

    # -- delete ------------------------------------------------------------------------------

    def test_delete_customer_removes_every_crm_record(self) -> None:
        s = self.make_crm_store()
        for cid in ("c1", "c2"):
            note = _note(f"n-{cid}", cid)
            s.notes.add(note)
            s.notes.save(*note.edit("edited", at=_t(1), staff_id="s1"))
            s.contacts.upsert(Contact(id=f"k-{cid}", customer_id=cid, name="Ann"))
            s.calls.add(LoggedCall(id=f"call-{cid}", customer_id=cid, at=_t(1), summary="hi"))
        s.tags.create(Tag.of("VIP"))
        s.tags.record(TagChange.added(customer_id="c1", tag="VIP", at=_t(1)))
        s.tags.record(TagChange.removed(customer_id="c1", tag="VIP", at=_t(2)))
        s.tags.record(TagChange.added(customer_id="c2", tag="VIP", at=_t(1)))
        s.intake.save_question(_SOURCE)
        s.intake.record(_SOURCE.answer(customer_id="c1", value="Search", at=_t(1)))
        with s.transaction():
            assert s.notes.delete_customer("c1") == 1
            assert s.tags.delete_customer("c1") == 2
            assert s.contacts.delete_customer("c1") == 1
            assert s.calls.delete_customer("c1") == 1
            assert s.intake.delete_customer("c1") == 1
        assert s.notes.find("n-c1") is None
        with pytest.raises(NotFoundError):
            s.notes.history("n-c1")
        assert s.notes.for_customer("c1", include_deleted=True) == ()
        assert s.tags.changes("c1") == ()
        assert s.contacts.for_customer("c1") == ()
        assert s.calls.for_customer("c1") == ()
        with pytest.raises(NotFoundError):
            s.calls.get("call-c1")
        assert s.intake.answers_for("c1") == ()
        # The other customer and the tag itself are untouched.
        assert len(s.notes.history("n-c2")) == 2
        assert s.tags.tags_of("c2", as_of=_t(3)) == {"VIP"}
        assert [t.name for t in s.tags.all()] == ["VIP"]
        assert len(s.contacts.for_customer("c2")) == 1
        assert len(s.calls.for_customer("c2")) == 1
        for repo in (s.notes, s.tags, s.contacts, s.calls, s.intake):
            assert repo.delete_customer("c1") == 0

    def test_failed_delete_leaves_everything(self) -> None:
        s = self.make_crm_store()
        s.notes.add(_note())
        s.intake.save_question(_WHY)
        s.intake.record(_WHY.answer(customer_id="c1", value="words", at=_t(1)))

        def delete_then_fail() -> None:
            with s.transaction():
                s.notes.delete_customer("c1")
                s.intake.delete_customer("c1")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            delete_then_fail()
        assert s.notes.get("n1") == _note()
        assert len(s.notes.history("n1")) == 1
        assert [a.text for a in s.intake.answers_for("c1")] == ["words"]

    # -- hostile arguments -------------------------------------------------------------------

    def _seeded(self) -> CRMStore:
        """A store holding one record of each kind (note n1, tag VIP, lead l1 open and l2
        converted into c2, contact k1, call call1, question why answered by c1)."""
        s = self.make_crm_store()
        s.notes.add(_note())
        s.tags.create(Tag.of("VIP"))
        s.tags.record(TagChange.added(customer_id="c1", tag="VIP", at=_t(1)))
        s.contacts.upsert(Contact(id="k1", customer_id="c1", name="Ann"))
        s.calls.add(LoggedCall(id="call1", customer_id="c1", at=_t(1), summary="hi"))
        s.intake.save_question(_WHY)
        s.intake.record(_WHY.answer(customer_id="c1", value="words", at=_t(1)))
        s.leads.add(_lead())
        s.leads.add(_lead("l2", "bo@example.com").convert(customer_id="c2", at=_t(2)))
        return s

    @staticmethod
    def _state(s: CRMStore) -> object:
        per = [
            (
                s.notes.for_customer(c, include_deleted=True),
                s.contacts.for_customer(c),
                s.calls.for_customer(c),
                s.intake.answers_for(c),
            )
            for c in _CUSTOMERS
        ]
        return per, s.notes.history("n1"), s.tags.changes(), s.tags.all(), s.leads.all()

    def test_reads_refuse_hostile_arguments(self) -> None:
        s = self._seeded()
        reads: dict[str, Callable[[Any], object]] = {
            "notes.get": lambda v: s.notes.get(v),
            "notes.find": lambda v: s.notes.find(v),
            "notes.for_customer": lambda v: s.notes.for_customer(v),
            "notes.history": lambda v: s.notes.history(v),
            "tags.get": lambda v: s.tags.get(v),
            "tags.changes": lambda v: s.tags.changes(v),
            "tags.tags_of": lambda v: s.tags.tags_of(v, as_of=_t(2)),
            "tags.customers_with": lambda v: s.tags.customers_with(v, as_of=_t(2)),
            "leads.get": lambda v: s.leads.get(v),
            "leads.find": lambda v: s.leads.find(v),
            "leads.version": lambda v: s.leads.version(v),
            "leads.open_lead_for": lambda v: s.leads.open_lead_for(v),
            "leads.lead_for_customer": lambda v: s.leads.lead_for_customer(v),
            "leads.page(cursor)": lambda v: s.leads.page(cursor=v),
            "leads.page(stage)": lambda v: s.leads.page(stage=v),
            "contacts.get": lambda v: s.contacts.get(v),
            "contacts.find": lambda v: s.contacts.find(v),
            "contacts.for_customer": lambda v: s.contacts.for_customer(v),
            "calls.get": lambda v: s.calls.get(v),
            "calls.for_customer": lambda v: s.calls.for_customer(v),
            "intake.question": lambda v: s.intake.question(v),
            "intake.questions(scope)": lambda v: s.intake.questions(scope=v),
            "intake.answers_for": lambda v: s.intake.answers_for(v),
        }
        optional = {"tags.changes", "leads.page(cursor)", "leads.page(stage)"}
        optional |= {"intake.questions(scope)"}
        for label, read in reads.items():
            for bad in _HOSTILE_IDS:
                if bad is None and label in optional:
                    continue
                _refused(label, read, bad)
        moments: dict[str, Callable[[Any], object]] = {
            "tags.tags_of": lambda v: s.tags.tags_of("c1", as_of=v),
            "tags.customers_with": lambda v: s.tags.customers_with("VIP", as_of=v),
            "tags.counts": lambda v: s.tags.counts(as_of=v),
            "intake.answers": lambda v: s.intake.answers(as_of=v),
        }
        for label, read in moments.items():
            for moment in _HOSTILE_MOMENTS:
                _refused(label, read, moment)
        for flag in ("yes", 1, None):
            with pytest.raises(ValidationError):
                s.notes.for_customer("c1", include_deleted=flag)  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                s.intake.questions(include_retired=flag)  # type: ignore[arg-type]

    def test_writes_refuse_hostile_ids_and_write_nothing(self) -> None:
        s = self._seeded()
        before = self._state(s)
        writes: dict[str, Callable[[Any], object]] = {
            "notes.rehome(from)": lambda v: s.notes.rehome(v, "c3"),
            "notes.rehome(to)": lambda v: s.notes.rehome("c1", v),
            "notes.erase_customer": lambda v: s.notes.erase_customer(v),
            "notes.delete_customer": lambda v: s.notes.delete_customer(v),
            "tags.delete_customer": lambda v: s.tags.delete_customer(v),
            "leads.relink(from)": lambda v: s.leads.relink(v, "c3"),
            "leads.relink(to)": lambda v: s.leads.relink("c2", v),
            "leads.erase_history": lambda v: s.leads.erase_history(v),
            "leads.save(expected_version)": lambda v: s.leads.save(
                s.leads.get("l1").contact(at=_t(3)),
                expected_version=v,
            ),
            "contacts.remove": lambda v: s.contacts.remove(v),
            "contacts.rehome(to)": lambda v: s.contacts.rehome("c1", v),
            "contacts.erase_customer": lambda v: s.contacts.erase_customer(v),
            "calls.rehome(to)": lambda v: s.calls.rehome("c1", v),
            "calls.erase_customer": lambda v: s.calls.erase_customer(v),
            "calls.delete_customer": lambda v: s.calls.delete_customer(v),
            "intake.rehome(to)": lambda v: s.intake.rehome("c1", v),
            "intake.erase_customer": lambda v: s.intake.erase_customer(v),
            "intake.delete_customer": lambda v: s.intake.delete_customer(v),
        }
        versions = ("1", None, True, -1, 1.0)
        for label, write in writes.items():
            for bad in _HOSTILE_IDS if "version" not in label else versions:
                _refused(label, write, bad)
        records: dict[str, Callable[[Any], object]] = {
            "notes.add": lambda v: s.notes.add(v),
            "notes.save(entry)": lambda v: s.notes.save(s.notes.get("n1"), v),
            "tags.create": lambda v: s.tags.create(v),
            "tags.record": lambda v: s.tags.record(v),
            "leads.add": lambda v: s.leads.add(v),
            "leads.save": lambda v: s.leads.save(v, expected_version=0),
            "contacts.upsert": lambda v: s.contacts.upsert(v),
            "calls.add": lambda v: s.calls.add(v),
            "intake.save_question": lambda v: s.intake.save_question(v),
            "intake.record": lambda v: s.intake.record(v),
        }
        for label, record in records.items():
            for wrong in (None, "x", {"id": "x"}, _note("n9")):
                if label == "notes.add" and isinstance(wrong, Note):
                    continue
                _refused(label, record, wrong)
        assert self._state(s) == before

    def test_forged_lead_cursors_are_refused(self) -> None:
        s = self._seeded()
        real = s.leads.page(limit=1).next_cursor
        assert real is not None
        # A well-formed position the store did not issue (the format of an unsigned cursor).
        raw = json.dumps(["leads:*", 0, "l1"], separators=(",", ":")).encode()
        forged = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        edited = [real[:-1], real + "A", real[:5] + ("B" if real[5] != "B" else "C") + real[6:]]
        for bad in (forged, *edited, f"{forged}.{forged}", "", ".", "\x00", "é" * 10):
            with pytest.raises(ValidationError, match="cursor"):
                s.leads.page(limit=1, cursor=bad)
        assert [x.id for x in s.leads.page(limit=1, cursor=real).items] == ["l2"]

    def test_scrub_inside_a_transaction_is_refused(self) -> None:
        s = self.make_crm_store()
        if isinstance(s, InMemoryCRMStore):
            return  # nothing to scrub: allowed anywhere
        with pytest.raises(ValidationError), s.transaction():
            s.scrub()
