"""The pipeline: a panel's leads, with one open lead per email and one lead per customer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Final

import attrs

from revcrm._records import Customer
from revcrm.errors import DuplicateError, NotFoundError, ValidationError
from revcrm.leads._lead import Lead, normalise_email
from revcrm.leads._stages import LeadStage

__all__ = ["REGISTRATION_SKEW", "Pipeline", "registration_moment"]

#: How much later than a registration a lead's last move may be and still be converted
#: by it at that move: a host stores registration times to the second (a staff move in
#: the same second carries microseconds) and its clock may run a little behind revcrm's.
REGISTRATION_SKEW: Final = timedelta(minutes=1)


def registration_moment(customer: Customer, lead: Lead) -> datetime:
    """When a registration converts ``lead``: at the registration, or at the lead's last
    move when that is later by at most :data:`REGISTRATION_SKEW` (a conversion never
    precedes a move it follows). A move later still keeps the registration moment, which
    the lead then refuses (time cannot go back): that lead was worked on after the
    customer registered, so this registration is not what converted it."""
    last = lead.last_moved_at
    if customer.registered_at < last <= customer.registered_at + REGISTRATION_SKEW:
        return last
    return customer.registered_at


@attrs.frozen(kw_only=True, eq=False)
class Pipeline:
    """An immutable collection of leads by id; every change returns a new pipeline.

    Invariants, checked on every change (a refused change raises and returns nothing, so
    the pipeline a caller holds is never half-updated):

    * lead ids are unique;
    * at most one *open* lead (New, Contacted, Qualified) per email, compared trimmed and
      case-insensitively: a second one is a :class:`~revcrm.errors.DuplicateError`;
    * a customer id is linked to at most one converted lead, so converting a second lead
      into the same customer is a ``DuplicateError`` rather than a duplicate record.

    Build with :meth:`of`; the constructor's fields are internal indexes.
    """

    # Plain dicts, private and never written after construction: dict.copy() is the
    # cheapest copy a change can make.
    _leads: dict[str, Lead] = attrs.field(factory=dict, alias="_leads")
    _open_by_email: dict[str, str] = attrs.field(factory=dict, alias="_open_by_email")
    _by_customer: dict[str, str] = attrs.field(factory=dict, alias="_by_customer")

    @classmethod
    def of(cls, leads: Iterable[Lead] = ()) -> Pipeline:
        """A pipeline of ``leads``, checked like successive :meth:`add` calls (in one pass)."""
        indexes: _Indexes = ({}, {}, {})
        for lead in leads:
            _check_new(indexes[0], lead)
            _place(indexes, lead)
        return cls._of(indexes)

    @classmethod
    def _of(cls, indexes: _Indexes) -> Pipeline:
        leads, open_by_email, by_customer = indexes
        return cls(_leads=leads, _open_by_email=open_by_email, _by_customer=by_customer)

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._leads)

    def __iter__(self) -> Iterator[Lead]:
        """Leads in id order, so results never depend on insertion order."""
        return (self._leads[k] for k in sorted(self._leads))

    def __contains__(self, lead_id: object) -> bool:
        return lead_id in self._leads

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self._leads == other._leads

    def __hash__(self) -> int:
        return hash(frozenset(self._leads.items()))

    def get(self, lead_id: str) -> Lead:
        try:
            return self._leads[lead_id]
        except KeyError:
            raise NotFoundError("lead", lead_id) from None

    def open_lead_for(self, email: str) -> Lead | None:
        """The open lead with this email (trimmed, case-insensitive), if any."""
        lead_id = self._open_by_email.get(normalise_email(email))
        return None if lead_id is None else self._leads[lead_id]

    def lead_for_customer(self, customer_id: str) -> Lead | None:
        """The converted lead linked to this customer, if any."""
        lead_id = self._by_customer.get(customer_id)
        return None if lead_id is None else self._leads[lead_id]

    # -- changes -----------------------------------------------------------------------------

    def add(self, lead: Lead) -> Pipeline:
        """Add a new lead; a duplicate id or a second open lead for its email raises."""
        _check_new(self._leads, lead)
        return self._put(lead)

    def update(self, lead: Lead) -> Pipeline:
        """Replace a stored lead by a later version of it.

        The new version must extend the stored history (append-only): a lead whose history
        was rewritten, or that two callers moved from the same version, raises
        :class:`~revcrm.errors.ValidationError`. Profile fields may change.
        """
        if not isinstance(lead, Lead):
            raise ValidationError("lead", lead, "expected a Lead")
        old = self.get(lead.id)
        if lead.history[: len(old.history)] != old.history:
            raise ValidationError(
                f"lead[{lead.id}].history",
                len(lead.history),
                f"must extend the stored history of {len(old.history)} moves (append-only)",
            )
        return self._put(lead)

    def move(
        self,
        lead_id: str,
        to: LeadStage,
        *,
        at: datetime,
        staff_id: str | None = None,
        note: str = "",
        lost_reason: str | None = None,
        customer_id: str | None = None,
    ) -> Pipeline:
        """Move one lead (see :meth:`Lead.move`) and return the new pipeline."""
        lead = self.get(lead_id).move(
            to,
            at=at,
            staff_id=staff_id,
            note=note,
            lost_reason=lost_reason,
            customer_id=customer_id,
        )
        return self._put(lead)

    def convert(
        self,
        lead_id: str,
        customer_id: str,
        *,
        at: datetime,
        staff_id: str | None = None,
        note: str = "",
    ) -> Pipeline:
        """Convert a lead into ``customer_id``.

        Converting a lead twice raises :class:`~revcrm.errors.TransitionNotAllowed` (Converted
        is final) and converting a second lead into a customer that already has one raises
        :class:`~revcrm.errors.DuplicateError`; either way nothing changes.
        """
        return self.move(
            lead_id,
            LeadStage.CONVERTED,
            at=at,
            staff_id=staff_id,
            note=note,
            customer_id=customer_id,
        )

    def match_registration(
        self,
        customer: Customer,
        *,
        at: datetime | None = None,
        staff_id: str | None = None,
    ) -> tuple[Pipeline, Lead | None]:
        """Convert the open lead whose email matches a newly registered customer.

        ``at`` defaults to :func:`registration_moment`: the registration, or the lead's
        last move when that is at most :data:`REGISTRATION_SKEW` later. Returns the new
        pipeline and the
        converted lead, or this pipeline and None when no open lead has the customer's
        email, the customer has no email, or a lead was already converted into this
        customer (a registration event delivered twice changes nothing).
        """
        if customer.email is None or customer.id in self._by_customer:
            return self, None
        lead = self.open_lead_for(customer.email)
        if lead is None:
            return self, None
        moment = registration_moment(customer, lead) if at is None else at
        converted = lead.convert(customer.id, at=moment, staff_id=staff_id, note="registered")
        return self._put(converted), converted

    # -- internals ---------------------------------------------------------------------------

    def _put(self, lead: Lead) -> Pipeline:
        """A new pipeline with ``lead`` stored (new or replacing its old version).

        Copies the indexes, so a change costs O(number of leads); the pipeline is a plain
        in-memory collection, and storage backends keep their own indexes.
        """
        indexes: _Indexes = (
            self._leads.copy(),
            self._open_by_email.copy(),
            self._by_customer.copy(),
        )
        _place(indexes, lead)
        return Pipeline._of(indexes)


# leads by id, open lead id by email key, converted lead id by customer id
_Indexes = tuple[dict[str, Lead], dict[str, str], dict[str, str]]


def _check_new(leads: Mapping[str, Lead], lead: object) -> None:
    if not isinstance(lead, Lead):
        raise ValidationError("lead", lead, "expected a Lead")
    if lead.id in leads:
        raise DuplicateError("lead", lead.id)


def _place(indexes: _Indexes, lead: Lead) -> None:
    """Store ``lead`` in the indexes; every check runs before the first write."""
    leads, open_by_email, by_customer = indexes
    old = leads.get(lead.id)
    if lead.is_open:
        holder = open_by_email.get(lead.email_key)
        if holder is not None and holder != lead.id:
            raise DuplicateError("open lead", lead.email_key)
    if lead.customer_id is not None:
        holder = by_customer.get(lead.customer_id)
        if holder is not None and holder != lead.id:
            raise DuplicateError("converted lead for customer", lead.customer_id)
    if old is not None:
        if open_by_email.get(old.email_key) == old.id:
            del open_by_email[old.email_key]
        if old.customer_id is not None:
            del by_customer[old.customer_id]
    if lead.is_open:
        open_by_email[lead.email_key] = lead.id
    if lead.customer_id is not None:
        by_customer[lead.customer_id] = lead.id
    leads[lead.id] = lead
