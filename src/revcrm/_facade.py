"""The facade: one object over a billing :class:`~revcrm.storage.Store` and a
:class:`~revcrm.storage._crm.CRMStore`, with sub-services for customers, notes, tags,
segments, credits and leads, and the merge and erasure of customers.

The clock is injected: the facade calls it only to stamp writes and as the default
``as_of`` of reads; every method also takes an explicit moment. Pure code is never
handed the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import attrs

from revcrm._book import Book
from revcrm._calendar import reporting_zone
from revcrm._checks import as_enum, check_instance, check_records
from revcrm._facade_credits import CreditAuthority, Credits, HostCreditAdjuster
from revcrm._facade_units import (
    in_transaction,
    lock_customers,
    read_id,
    reporting_moment,
    retrying,
)
from revcrm._facade_units import trend_months as trend_months_checked
from revcrm._records import Customer
from revcrm._time import utc
from revcrm.crm import (
    Contact,
    CustomerProfile,
    CustomerStatus,
    IntakeAnswer,
    IntakeBreakdown,
    IntakeItem,
    IntakeQuestion,
    IntakeScope,
    LoggedCall,
    Note,
    Tag,
    TagChange,
    TicketRef,
    TimelineEntry,
    activity_timeline,
    customer_intake,
    customer_profile,
    intake_breakdown,
)
from revcrm.errors import NotFoundError, ValidationError
from revcrm.leads import Lead, LeadStage
from revcrm.leads._pipeline import registration_moment
from revcrm.metrics import (
    CustomerValue,
    Dashboard,
    MetricsPolicy,
    MrrAnalysis,
    analyse,
    customer_values,
    dashboard,
)
from revcrm.segments import (
    DEFAULT_CONFIG,
    CustomSegment,
    LtvBaseline,
    Segment,
    Segmentation,
    SegmentConfig,
    SegmentCounts,
    segmentation,
)
from revcrm.storage._crm import ERASED_TEXT, CRMStore, TagRepository, customer_rows
from revcrm.storage._protocols import Store
from revcrm.storage._query import (
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    Direction,
    Page,
    cursor_as_of,
)

__all__ = ["CRM", "CustomerListRow", "MergeResult"]

_Moment = date | datetime


@attrs.frozen(kw_only=True)
class CustomerListRow:
    """A line of the customer list: the store's row plus segments and tags."""

    row: CustomerRow
    segments: frozenset[Segment]
    tags: frozenset[str]
    #: The first of the facade's ``segment_config.precedence`` the customer is in (None
    #: only for a customer registered after the list's ``as_of``).
    primary_segment: Segment | None = None

    @property
    def id(self) -> str:
        return self.row.id


@attrs.frozen(kw_only=True)
class MergeResult:
    """How many records of the secondary customer a merge moved onto the primary."""

    primary_id: str
    secondary_id: str
    subscriptions: int
    invoices: int
    transactions: int
    credits: int
    notes: int
    tags: int
    leads: int


def _new_id() -> str:
    return uuid.uuid4().hex


class CRM:
    """A revenue CRM over a billing store and a CRM store.

    ``allow_negative_credit`` lets staff adjustments and invoice applications take a
    customer's credit balance below zero (off by default: a
    :class:`~revcrm.errors.ValidationError` naming ``amount`` is raised instead).

    ``timezone`` is the business's reporting time zone (an IANA name such as
    ``"Europe/Berlin"``): months, "this month" and trends follow its calendar. By default
    the policy's (the store's: UTC unless the store's policy says otherwise); a zone other
    than the store's computes the dashboard over the stored book in Python, as another
    policy does.
    """

    def __init__(
        self,
        store: Store,
        crm: CRMStore,
        *,
        reporting_currency: str,
        clock: Callable[[], datetime],
        policy: MetricsPolicy | None = None,
        timezone: str | ZoneInfo | None = None,
        allow_negative_credit: bool = False,
        segment_config: SegmentConfig = DEFAULT_CONFIG,
        credit_authority: CreditAuthority = "revcrm",
        adjust_credit: HostCreditAdjuster | None = None,
    ) -> None:
        if not callable(clock):
            raise ValidationError("clock", clock, "expected a callable returning a datetime")
        if credit_authority not in ("revcrm", "host"):
            raise ValidationError(
                "credit_authority", credit_authority, "expected 'revcrm' or 'host'"
            )
        if adjust_credit is not None and not callable(adjust_credit):
            raise ValidationError("adjust_credit", adjust_credit, "expected a callable")
        if adjust_credit is not None and credit_authority != "host":
            # Both ledgers written at once is what "one source of truth" rules out.
            raise ValidationError(
                "adjust_credit", adjust_credit, "only with credit_authority='host'"
            )
        self.credit_authority: CreditAuthority = credit_authority
        self.adjust_credit = adjust_credit
        self.store = store
        self.crm = crm
        # The store's policy by default, so the facade's figures and the store's agree.
        self.policy = store.policy if policy is None else policy
        if timezone is not None:
            zone = reporting_zone(timezone, "timezone")
            if zone != self.policy.timezone:
                self.policy = attrs.evolve(self.policy, timezone=zone)
        self.reporting_currency = reporting_currency
        self.allow_negative_credit = allow_negative_credit
        if not isinstance(segment_config, SegmentConfig):
            raise ValidationError("segment_config", segment_config, "expected a SegmentConfig")
        self.segment_config = segment_config
        self._clock = clock
        self.customers = _Customers(self)
        self.notes = _Notes(self)
        self.tags = _Tags(self)
        self.segments = _Segments(self)
        self.credits = Credits(self)
        self.leads = _Leads(self)
        self.contacts = _Contacts(self)
        self.metrics = _Metrics(self)
        self.calls = _Calls(self)
        self.intake = _Intake(self)

    def now(self) -> datetime:
        return utc(self._clock(), "clock()")

    @property
    def timezone(self) -> ZoneInfo:
        """The reporting time zone (the policy's)."""
        return self.policy.timezone

    def _at(self, as_of: _Moment | None) -> datetime:
        return self.now() if as_of is None else reporting_moment(as_of, "as_of")

    def segmentation(
        self, *, as_of: _Moment | None = None, book: Book | None = None
    ) -> Segmentation:
        at = self._at(as_of)
        book = self.store.book() if book is None else book
        tags = {c.id: self.crm.tags.tags_of(c.id, as_of=at) for c in book.customers}
        return segmentation(
            book,
            as_of=at,
            currency=self.reporting_currency,
            policy=self.policy,
            tags=tags,
            config=self.segment_config,
        )

    # -- merge and erasure -------------------------------------------------------------------

    def merge(
        self,
        primary_id: str,
        secondary_id: str,
        *,
        staff_id: str,
        at: datetime | None = None,
        keep_secondary: bool = False,
    ) -> MergeResult:
        """Move everything the secondary customer owns onto the primary.

        The primary keeps its id and email; a field the primary leaves empty takes the
        secondary's value (the primary wins every conflict, custom attributes included).
        Records keep their own moments, so the combined histories stay in time order.
        The secondary, owning nothing any more, is then deleted, so it cannot show up as
        a customer who never purchased. ``keep_secondary=True`` keeps it instead (for a
        host whose own tables still name its id): without an email and with the custom
        attribute ``merged_into`` naming the primary. A note on the primary records the
        merge (it shows on the timeline).

        One converted lead per customer: the secondary's lead moves only when the
        primary has none; otherwise it keeps naming the secondary, so the funnel still
        counts its conversion, and (unless ``keep_secondary``) its contact details are
        cleared, since no customer owns it any more. Intake answers move as given: for a
        question both answered, the latest answer is the current one, as for any answer.
        Other customers whose ``referrer_id`` names the secondary keep it (a store has no
        query by referrer; the referral happened to that account).
        """
        primary_id = read_id(primary_id, "primary_id")
        secondary_id = read_id(secondary_id, "secondary_id")
        if primary_id == secondary_id:
            raise ValidationError("secondary_id", secondary_id, "is the primary customer")
        if not isinstance(keep_secondary, bool):
            raise ValidationError("keep_secondary", keep_secondary, "expected True or False")
        moment = self.now() if at is None else utc(at, "at")
        # The whole merge runs again if it lost a race (TransientError): it either
        # completes or leaves both customers as they were.
        return retrying(
            self.store,
            lambda: self._merge_once(primary_id, secondary_id, staff_id, moment, keep_secondary),
        )

    def _merge_once(
        self,
        primary_id: str,
        secondary_id: str,
        staff_id: str,
        moment: datetime,
        keep_secondary: bool,
    ) -> MergeResult:
        store = self.store
        with store.transaction(), self.crm.transaction():
            # Both customers' locks first, in sorted order (docs/facade.md, "Lock order"):
            # a payment written for the secondary meanwhile waits, then finds it merged.
            lock_customers(store, [primary_id, secondary_id])
            primary = store.customers.get(primary_id)
            secondary = store.customers.get(secondary_id)
            subs = store.subscriptions.for_customer(secondary_id)
            invoices = store.invoices.for_customer(secondary_id)
            txs = store.transactions.for_customer(secondary_id)
            credits = store.credits.for_customer(secondary_id)
            store.customers.upsert(_combined(primary, secondary))
            for s in subs:
                store.subscriptions.upsert(attrs.evolve(s, customer_id=primary_id))
            for i in invoices:
                store.invoices.upsert(attrs.evolve(i, customer_id=primary_id))
            for t in txs:
                store.transactions.upsert(attrs.evolve(t, customer_id=primary_id))
            for c in credits:
                store.credits.upsert(attrs.evolve(c, customer_id=primary_id))
            moved = [rows.rehome(secondary_id, primary_id) for rows in customer_rows(self.crm)]
            notes = moved[0]  # customer_rows starts with the notes, whose count is reported
            tags = self._merge_tags(primary_id, secondary_id, moment, staff_id)
            leads = 0
            if self.crm.leads.lead_for_customer(primary_id) is None:
                leads = self.crm.leads.relink(secondary_id, primary_id)
            elif not keep_secondary:
                # The lead stays counted as converted, but no customer will own its contact
                # details any more (no erasure could reach them): clear them now.
                self._erase_lead(secondary_id)
            if keep_secondary:
                attributes = {**secondary.custom_attributes, "merged_into": primary_id}
                store.customers.upsert(
                    attrs.evolve(secondary, email=None, custom_attributes=attributes)
                )
            else:
                # The tag log of the secondary only records removals now; it goes too.
                self.crm.tags.delete_customer(secondary_id)
                store.customers.delete(secondary_id)
            self.notes.add(
                primary_id,
                f"Merged customer {secondary_id} into this customer.",
                author_id=staff_id,
                at=moment,
            )
        return MergeResult(
            primary_id=primary_id,
            secondary_id=secondary_id,
            subscriptions=len(subs),
            invoices=len(invoices),
            transactions=len(txs),
            credits=len(credits),
            notes=notes,
            tags=tags,
            leads=leads,
        )

    def _merge_tags(self, primary_id: str, secondary_id: str, at: datetime, staff: str) -> int:
        tags = self.crm.tags
        have = {t.casefold() for t in tags.tags_of(primary_id, as_of=at)}
        moved = 0
        for name in sorted(tags.tags_of(secondary_id, as_of=at)):
            tags.record(
                TagChange.removed(customer_id=secondary_id, tag=name, at=at, staff_id=staff)
            )
            if name.casefold() not in have:
                tags.record(
                    TagChange.added(customer_id=primary_id, tag=name, at=at, staff_id=staff)
                )
                moved += 1
        return moved

    def erase(
        self,
        customer_id: str,
        *,
        mode: Literal["anonymise", "delete"] = "anonymise",
        staff_id: str | None = None,
        scrub: bool = True,
    ) -> None:
        """Erase a customer's personal data.

        ``anonymise`` (the default) replaces every personal field (name, email, username,
        phone, company, role, website, location, custom attributes) with a neutral value,
        the values of its subscriptions' free-form ``details`` (host names, domains: they
        often contain the username) with ``[erased]`` (the keys stay, so the profile
        still says which details the service had), and the text of the customer's notes
        (audit trail included), calls and free-text intake answers with ``[erased]``; it
        deletes its contacts and clears its converted lead's profile and the notes and
        lost reasons staff wrote on the lead's moves (``[erased]``: erasure is the one
        exception to the append-only lead history; the stages and moments stay). The
        revenue history stays, so every metric is unchanged. With ``staff_id`` a note
        records the erasure.

        ``delete`` removes the customer and everything it owns: subscriptions, invoices,
        transactions and credits (``store.customers.delete(cascade=True)``), notes with
        their audit trail, tag changes, contacts, calls and intake answers. Metrics then
        no longer count it (that is the point of a delete). Its converted lead stays,
        anonymised as above, so the funnel's past conversion counts do not change. A
        record of another customer that refers to one of its records (a payment of its
        invoice) blocks the delete with a :class:`~revcrm.errors.ValidationError`.

        Either mode is all or nothing across both stores when they share one database
        (a :class:`~revcrm.storage.SQLCRMStore` built with ``billing=``); otherwise each
        store is all or nothing and the CRM store's block closes first.

        Then, unless ``scrub=False`` or the call ran inside the host's own open
        transaction (the host calls :meth:`scrub` after committing), :meth:`scrub` makes
        the erased values unreadable from the database files (see docs/facade.md,
        "Erasure and the database files").
        """
        if mode not in ("anonymise", "delete"):
            raise ValidationError("mode", mode, "expected 'anonymise' or 'delete'")
        if not isinstance(scrub, bool):
            raise ValidationError("scrub", scrub, "expected True or False")
        customer_id = read_id(customer_id, "customer_id")
        outermost = not in_transaction(self.store)
        customer = self.store.customers.get(customer_id)
        with self.store.transaction(), self.crm.transaction():
            self._erase_lead(customer_id)
            if mode == "delete":
                for rows in customer_rows(self.crm):
                    rows.delete_customer(customer_id)
                self.crm.tags.delete_customer(customer_id)
                self.store.customers.delete(customer_id, cascade=True)
            else:
                self._anonymise(customer, staff_id)
        if scrub and outermost:
            self.scrub()

    def _anonymise(self, customer: Customer, staff_id: str | None) -> None:
        customer_id = customer.id
        self.store.customers.upsert(
            attrs.evolve(
                customer,
                name="erased customer",
                email=None,
                username=None,
                phone=None,
                company=None,
                role=None,
                website=None,
                location=None,
                custom_attributes={},
            )
        )
        for sub in self.store.subscriptions.for_customer(customer_id):
            if any(value != ERASED_TEXT for _, value in sub.details):
                # Only the free-form details change: the service's history (and so every
                # metric) stays as it was.
                details = tuple((key, ERASED_TEXT) for key, _ in sub.details)
                self.store.subscriptions.upsert(attrs.evolve(sub, details=details))
        for rows in customer_rows(self.crm):
            rows.erase_customer(customer_id)
        if staff_id is not None:
            # Who erased, and when, stays on the timeline (the text names no one).
            self.notes.add(customer_id, "Personal data erased.", author_id=staff_id)

    def scrub(self) -> None:
        """Make values erased so far unreadable from the database files: the billing
        store's ``scrub()`` and the CRM store's (SQLite: secure delete and a truncating
        WAL check-point; PostgreSQL: ``VACUUM`` of revcrm's tables; memory: nothing).
        Call it outside any open transaction; :meth:`erase` calls it itself."""
        self.store.scrub()
        self.crm.scrub()

    def _erase_lead(self, customer_id: str) -> None:
        lead = self.crm.leads.lead_for_customer(customer_id)
        if lead is not None:
            erased = attrs.evolve(
                lead,
                email=f"erased-{lead.id}@erased.invalid",
                name="",
                company=None,
                phone=None,
                notes="",
            )
            self.crm.leads.save(erased, expected_version=len(lead.history))
            # Staff notes on the moves ("emailed victim@example.com") are personal too.
            self.crm.leads.erase_history(lead.id)


def _combined(primary: Customer, secondary: Customer) -> Customer:
    changes: dict[str, Any] = {}
    for field in (
        "username",
        "company",
        "phone",
        "role",
        "website",
        "location",
        "owner_id",
        "referral_source",
        "referrer_id",
    ):
        if getattr(primary, field) is None and getattr(secondary, field) is not None:
            changes[field] = getattr(secondary, field)
    if not primary.name and secondary.name:
        changes["name"] = secondary.name
    if primary.email is None and secondary.email is not None:
        changes["email"] = secondary.email
    if changes.get("referrer_id", primary.referrer_id) in (primary.id, secondary.id):
        # One account referred the other: the merged customer would refer itself.
        changes["referrer_id"] = None
    changes["custom_attributes"] = {**secondary.custom_attributes, **primary.custom_attributes}
    return attrs.evolve(primary, **changes)


# -- sub-services -----------------------------------------------------------------------------


class _Service:
    def __init__(self, crm: CRM) -> None:
        self._crm = crm


class _Customers(_Service):
    def list(
        self,
        *,
        as_of: _Moment | None = None,
        search: str | None = None,
        referral_source: str | None = None,
        has_active_services: bool | None = None,
        segment: Segment | CustomSegment | str | None = None,
        tag: str | None = None,
        status: CustomerStatus | str | None = None,
        product_id: str | None = None,
        sort: CustomerSort | str = CustomerSort.NAME,
        direction: Direction | str = Direction.ASC,
        limit: int = 50,
        cursor: str | None = None,
        ltv_baseline: LtvBaseline | None = None,
    ) -> Page[CustomerListRow]:
        """The customer list: one keyset page of the store's customer list, each row with
        its segments (and primary segment) and tags.

        Search, sort, pagination and the referral-source, active-services, ``status``
        (:class:`~revcrm.crm.CustomerStatus`), ``product_id`` (an active service of the
        product) and built-in ``segment`` filters are the store's: pushed down to SQL on
        :class:`~revcrm.storage.SQLStore`. ``tag`` reads the CRM store's tag log (one
        indexed query on :class:`~revcrm.storage.SQLCRMStore`) and passes the tagged ids
        down. A :class:`~revcrm.segments.CustomSegment` is evaluated in Python over the
        store's book (its predicates are Python functions), as is every segment filter
        when the facade's policy differs from the store's.

        Without ``as_of`` the first page is at the clock's moment and every later page at
        its cursor's (so page 2 still works when the clock moved); the page says which
        ``as_of`` it used. An explicit ``as_of`` must match the cursor's.

        ``ltv_baseline`` (from :meth:`CRM.segments.ltv_baseline <_Segments.ltv_baseline>`)
        saves the whole-book read of the High Value threshold that the rows' segments
        otherwise take on every page: a caller listing many pages reads it once and
        decides how long it may keep it (the web pages: their ``cache_seconds``).
        """
        crm = self._crm
        at = crm._at(as_of) if as_of is not None or cursor is None else _cursor_at(crm, cursor)
        ids: set[str] | None = None
        if tag is not None:
            ids = set(crm.crm.tags.customers_with(tag, as_of=at))
        # The store's segments follow its policy: under another one, segment in Python,
        # once per call (the filter and the rows' segments share it).
        in_store = crm.policy == crm.store.policy
        seg = None if in_store else crm.segmentation(as_of=at)
        builtin: Segment | None = None
        if isinstance(segment, CustomSegment) or (segment is not None and seg is not None):
            seg = crm.segmentation(as_of=at) if seg is None else seg
            matching = set(seg.customers_in(segment))
            ids = matching if ids is None else ids & matching
        elif segment is not None:
            builtin = as_enum(Segment, _segment_name(segment), "segment")
        query = CustomerQuery.of(
            as_of=at,
            currency=crm.reporting_currency,
            search=search,
            referral_source=referral_source,
            has_active_services=has_active_services,
            customer_ids=None if ids is None else sorted(ids),
            status=status,
            product_id=product_id,
            segment=builtin,
            segment_config=crm.segment_config,
            sort=sort,
            direction=direction,
            limit=limit,
            cursor=cursor,
        )
        page = crm.store.customers.query(query)
        page_ids = [r.id for r in page.items]
        if in_store:
            segments = crm.store.segments_of(
                page_ids,
                as_of=at,
                currency=crm.reporting_currency,
                config=crm.segment_config,
                ltv_baseline=ltv_baseline,
            )
        else:
            assert seg is not None
            segments = {cid: seg.segments_of(cid) for cid in page_ids}
        order = crm.segment_config.precedence
        return _page(
            at,
            items=tuple(
                CustomerListRow(
                    row=r,
                    segments=segments[r.id],
                    primary_segment=next((x for x in order if x in segments[r.id]), None),
                    tags=crm.crm.tags.tags_of(r.id, as_of=at),
                )
                for r in page.items
            ),
            next_cursor=page.next_cursor,
        )

    def profile(
        self,
        customer_id: str,
        *,
        as_of: _Moment | None = None,
        tickets: Iterable[TicketRef] = (),
        ltv_baseline: LtvBaseline | None = None,
    ) -> CustomerProfile:
        """The customer's profile (see :func:`revcrm.crm.customer_profile`): billing from
        the store; notes, contacts, tags, intake answers and the lead status from the CRM
        store; ``tickets`` are the host's support tickets for the customer.

        The segments need the whole book's High Value threshold: read from the store
        (a whole-book aggregate) unless given as ``ltv_baseline`` (see ``list``)."""
        crm = self._crm
        customer_id = read_id(customer_id, "customer_id")
        at = crm._at(as_of)
        customer = crm.store.customers.get(customer_id)
        if ltv_baseline is None:
            ltv_baseline = crm.segments.ltv_baseline(as_of=at)
        # The converted lead of the customer, else the open lead with its email (a prospect
        # who registered without buying yet); the profile shows it for non-buyers only.
        lead = crm.crm.leads.lead_for_customer(customer_id)
        if lead is None and customer.email is not None:
            lead = crm.crm.leads.open_lead_for(customer.email)
        return customer_profile(
            crm.store.book(customer_ids=[customer_id]),
            customer_id,
            as_of=at,
            currency=crm.reporting_currency,
            policy=crm.policy,
            tickets=tickets,
            notes=crm.crm.notes.for_customer(customer_id),
            contacts=crm.crm.contacts.for_customer(customer_id),
            tags=crm.crm.tags.tags_of(customer_id, as_of=at),
            lead_status=None if lead is None else lead.stage,
            intake=crm.intake._items(customer_id, at),
            ltv_baseline=ltv_baseline,
            segment_config=crm.segment_config,
        )

    def timeline(
        self, customer_id: str, *, as_of: _Moment | None = None
    ) -> tuple[TimelineEntry, ...]:
        """The customer's activity timeline: billing events, notes, tag changes and the
        moves of its converted lead, oldest first."""
        crm = self._crm
        crm.store.customers.get(read_id(customer_id, "customer_id"))
        lead = crm.crm.leads.lead_for_customer(customer_id)
        return activity_timeline(
            crm.store.book(customer_ids=[customer_id]),
            customer_id,
            as_of=crm._at(as_of),
            currency=crm.reporting_currency,
            policy=crm.policy,
            notes=crm.crm.notes.for_customer(customer_id),
            calls=crm.crm.calls.for_customer(customer_id),
            tag_changes=crm.crm.tags.changes(customer_id),
            lead=lead,
        )


class _Notes(_Service):
    def add(
        self,
        customer_id: str,
        body: str,
        *,
        author_id: str,
        pinned: bool = False,
        id: str | None = None,
        at: datetime | None = None,
    ) -> Note:
        crm = self._crm
        crm.store.customers.get(customer_id)
        note = Note.create(
            id=_new_id() if id is None else id,
            customer_id=customer_id,
            author_id=author_id,
            body=body,
            pinned=pinned,
            at=crm.now() if at is None else at,
        )
        crm.crm.notes.add(note)
        return note

    def _change(
        self, note_id: str, how: str, staff_id: str, at: datetime | None, **kw: Any
    ) -> Note:
        note = self._crm.crm.notes.get(read_id(note_id, "note_id"))
        moment = self._crm.now() if at is None else at
        changed, entry = getattr(note, how)(at=moment, staff_id=staff_id, **kw)
        self._crm.crm.notes.save(changed, entry)
        assert isinstance(changed, Note)
        return changed

    def edit(self, note_id: str, body: str, *, staff_id: str, at: datetime | None = None) -> Note:
        return self._change(note_id, "edit", staff_id, at, body=body)

    def delete(self, note_id: str, *, staff_id: str, at: datetime | None = None) -> Note:
        return self._change(note_id, "delete", staff_id, at)

    def pin(self, note_id: str, *, staff_id: str, at: datetime | None = None) -> Note:
        return self._change(note_id, "pin", staff_id, at)

    def unpin(self, note_id: str, *, staff_id: str, at: datetime | None = None) -> Note:
        return self._change(note_id, "unpin", staff_id, at)

    def get(self, note_id: str) -> Note:
        return self._crm.crm.notes.get(read_id(note_id, "note_id"))

    def list(self, customer_id: str) -> tuple[Note, ...]:
        """Live notes, pinned first then newest first (deleted ones stay in the audit log)."""
        return self._crm.crm.notes.for_customer(read_id(customer_id, "customer_id"))


class _Tags(_Service):
    def create(self, name: str, colour: str = "#808080", *, exist_ok: bool = False) -> Tag:
        """Create a tag; a name taken case-insensitively is a
        :class:`~revcrm.errors.DuplicateError`, or with ``exist_ok=True`` returns the
        stored tag unchanged (its colour kept): a get-or-create a re-sync can repeat."""
        if not isinstance(exist_ok, bool):
            raise ValidationError("exist_ok", exist_ok, "expected True or False")
        tag = Tag.of(name, colour)
        repo = self._crm.crm.tags
        if exist_ok:
            with self._crm.crm.transaction():
                found = _find_tag(repo, tag.name)
                if found is not None:
                    return found
                repo.create(tag)
            return tag
        repo.create(tag)
        return tag

    def ensure(self, name: str, colour: str = "#808080") -> Tag:
        """The tag with this name, created with ``colour`` when there is none."""
        return self.create(name, colour, exist_ok=True)

    def assign(
        self, customer_id: str, tag: str, *, staff_id: str | None, at: datetime | None = None
    ) -> None:
        crm = self._crm
        crm.store.customers.get(customer_id)
        moment = crm.now() if at is None else utc(at, "at")
        name = crm.crm.tags.get(read_id(tag, "tag")).name
        if tag_key_in(name, crm.crm.tags.tags_of(customer_id, as_of=moment)):
            return  # already there: the log records changes only
        crm.crm.tags.record(
            TagChange.added(customer_id=customer_id, tag=name, at=moment, staff_id=staff_id)
        )

    def remove(
        self, customer_id: str, tag: str, *, staff_id: str | None, at: datetime | None = None
    ) -> None:
        crm = self._crm
        customer_id = read_id(customer_id, "customer_id")
        moment = crm.now() if at is None else utc(at, "at")
        name = crm.crm.tags.get(read_id(tag, "tag")).name
        if not tag_key_in(name, crm.crm.tags.tags_of(customer_id, as_of=moment)):
            raise NotFoundError("tag of customer", f"{customer_id}/{tag}")
        crm.crm.tags.record(
            TagChange.removed(customer_id=customer_id, tag=name, at=moment, staff_id=staff_id)
        )

    def all(self) -> tuple[Tag, ...]:
        """Every tag, by key."""
        return self._crm.crm.tags.all()

    def counts(self, *, as_of: _Moment | None = None) -> dict[str, int]:
        return self._crm.crm.tags.counts(as_of=self._crm._at(as_of))

    def customers_with(self, tag: str, *, as_of: _Moment | None = None) -> frozenset[str]:
        return self._crm.crm.tags.customers_with(read_id(tag, "tag"), as_of=self._crm._at(as_of))


def _cursor_at(crm: CRM, cursor: str) -> datetime:
    found = cursor_as_of(cursor)
    return crm.now() if found is None else reporting_moment(found, "cursor")


def _page(at: datetime, **fields: Any) -> Page[CustomerListRow]:
    return Page(as_of=at, **fields)


def _find_tag(repo: TagRepository, name: str) -> Tag | None:
    try:
        return repo.get(name)
    except NotFoundError:
        return None


def _current_answer(history: Sequence[IntakeAnswer], answer: IntakeAnswer) -> IntakeAnswer | None:
    """The latest answer of the history to the same question (and service)."""
    same = [
        a
        for a in history
        if a.question_id == answer.question_id and a.subscription_id == answer.subscription_id
    ]
    return same[-1] if same else None


def _segment_name(value: object) -> object:
    # "High Value" and "high_value" name the same segment, as in Segmentation.customers_in.
    if isinstance(value, str) and not isinstance(value, Segment):
        return value.strip().lower().replace(" ", "_")
    return value


def tag_key_in(name: str, names: Iterable[str]) -> bool:
    return name.casefold() in {n.casefold() for n in names}


class _Segments(_Service):
    def counts(
        self, *, as_of: _Moment | None = None, custom: Iterable[CustomSegment] = ()
    ) -> SegmentCounts:
        """Members and primary-segment counts: the store's (pushed down to SQL) for the
        built-in segments; with ``custom`` segments, or a facade policy other than the
        store's, the whole segmentation runs in Python over the store's book."""
        crm = self._crm
        custom = check_records(custom, CustomSegment, "custom")
        if custom or crm.policy != crm.store.policy:
            return crm.segmentation(as_of=as_of).counts(custom)
        return crm.store.segment_counts(
            as_of=crm._at(as_of), currency=crm.reporting_currency, config=crm.segment_config
        )

    def members(self, segment: Segment | str, *, as_of: _Moment | None = None) -> tuple[str, ...]:
        return self._crm.segmentation(as_of=as_of).customers_in(segment)

    def ltv_baseline(self, *, as_of: _Moment | None = None) -> LtvBaseline:
        """The High Value threshold at ``as_of`` in the reporting currency: the store's
        ``ltv_baseline`` (equal to ``segmentation(...).ltv_baseline``; one whole-book
        aggregate), for ``customers.list`` and ``customers.profile`` to reuse."""
        crm = self._crm
        return crm.store.ltv_baseline(as_of=crm._at(as_of), currency=crm.reporting_currency)


class _Metrics(_Service):
    """The metrics of the MRR engine and the churn analyses, over the stored book."""

    def dashboard(self, *, as_of: _Moment | None = None, trend_months: int = 12) -> Dashboard:
        """Every dashboard card, computed by the store where the data lives; under a
        facade policy (or time zone) other than the store's, by
        :func:`revcrm.metrics.dashboard` over the stored book. Either way the one
        definition :func:`revcrm.metrics.compose_dashboard`."""
        crm = self._crm
        months = trend_months_checked(trend_months)
        at = crm._at(as_of)
        if crm.policy != crm.store.policy:
            return dashboard(
                crm.store.book(),
                as_of=at,
                currency=crm.reporting_currency,
                policy=crm.policy,
                trend_months=months,
            )
        return crm.store.dashboard(as_of=at, currency=crm.reporting_currency, trend_months=months)

    def analysis(self, *, horizon: _Moment | None = None) -> MrrAnalysis:
        """:func:`revcrm.metrics.analyse` of the whole stored book: MRR at any moment,
        series, movements, waterfalls and churn."""
        crm = self._crm
        return analyse(
            crm.store.book(), currency=crm.reporting_currency, policy=crm.policy, horizon=horizon
        )

    def customer_values(self, *, as_of: _Moment | None = None) -> tuple[CustomerValue, ...]:
        """LTV, total paid and the other per-customer values of every customer."""
        crm = self._crm
        return customer_values(
            crm.store.book(),
            as_of=crm._at(as_of),
            currency=crm.reporting_currency,
            policy=crm.policy,
        )


class _Contacts(_Service):
    def save(self, contact: Contact) -> Contact:
        """Add or replace a contact of a known customer."""
        check_instance(contact, Contact, "contact")
        self._crm.store.customers.get(contact.customer_id)
        self._crm.crm.contacts.upsert(contact)
        return contact

    def remove(self, contact_id: str) -> None:
        self._crm.crm.contacts.remove(read_id(contact_id, "contact_id"))

    def list(self, customer_id: str) -> tuple[Contact, ...]:
        return self._crm.crm.contacts.for_customer(read_id(customer_id, "customer_id"))


class _Calls(_Service):
    def log(
        self,
        customer_id: str,
        summary: str,
        *,
        staff_id: str | None,
        duration: timedelta | None = None,
        at: datetime | None = None,
        id: str | None = None,
    ) -> LoggedCall:
        crm = self._crm
        crm.store.customers.get(customer_id)
        call = LoggedCall(
            id=_new_id() if id is None else id,
            customer_id=customer_id,
            at=crm.now() if at is None else at,
            staff_id=staff_id,
            summary=summary,
            duration=duration,
        )
        crm.crm.calls.add(call)
        return call

    def list(self, customer_id: str) -> tuple[LoggedCall, ...]:
        return self._crm.crm.calls.for_customer(read_id(customer_id, "customer_id"))


class _Intake(_Service):
    """Intake questions (asked at registration or purchase) and the customers' answers."""

    def define(self, question: IntakeQuestion) -> IntakeQuestion:
        """Add a question, or replace the one with its id (answers already given stay)."""
        self._crm.crm.intake.save_question(question)
        return question

    def retire(self, question_id: str, *, at: datetime | None = None) -> IntakeQuestion:
        """Stop asking a question; its answers stay on profiles and in the breakdown."""
        crm = self._crm
        moment = crm.now() if at is None else utc(at, "at")
        question = crm.crm.intake.question(read_id(question_id, "question_id"))
        if question.retired_at is not None:
            raise ValidationError(
                "question_id", question_id, f"already retired at {question.retired_at}"
            )
        retired = question.retire(at=moment)
        crm.crm.intake.save_question(retired)
        return retired

    def questions(
        self, *, scope: IntakeScope | str | None = None, include_retired: bool = False
    ) -> tuple[IntakeQuestion, ...]:
        wanted = None if scope is None else as_enum(IntakeScope, scope, "scope")
        return self._crm.crm.intake.questions(scope=wanted, include_retired=include_retired)

    def answer(
        self,
        customer_id: str,
        question_id: str,
        value: str | Sequence[str],
        *,
        subscription_id: str | None = None,
        staff_id: str | None = None,
        at: datetime | None = None,
        idempotent: bool = False,
    ) -> IntakeAnswer:
        """Record a customer's answer, checked against the stored question. A purchase
        question's answer names the customer's own subscription (the service bought).

        With ``idempotent=True`` (a re-sync repeating the answers it knows), an answer
        equal to the customer's current answer to the question (same value, same
        subscription) writes nothing and returns the stored one."""
        if not isinstance(idempotent, bool):
            raise ValidationError("idempotent", idempotent, "expected True or False")
        crm = self._crm
        moment = crm.now() if at is None else utc(at, "at")
        customer = crm.store.customers.get(customer_id)
        if moment < customer.registered_at:
            raise ValidationError(
                "at", at, f"before customer {customer_id} registered ({customer.registered_at})"
            )
        if subscription_id is not None:
            sub = crm.store.subscriptions.get(subscription_id)
            if sub.customer_id != customer_id:
                raise ValidationError(
                    "subscription_id", subscription_id, f"belongs to customer {sub.customer_id}"
                )
        question = crm.crm.intake.question(read_id(question_id, "question_id"))
        answer = question.answer(
            customer_id=customer_id,
            value=value,
            at=moment,
            subscription_id=subscription_id,
            staff_id=staff_id,
        )
        if not idempotent:
            return crm.crm.intake.record(answer)
        with crm.crm.transaction():
            current = _current_answer(crm.crm.intake.answers_for(customer_id), answer)
            stored = question.check(answer)
            if current is not None and (sorted(current.choices), current.text) == (
                sorted(stored.choices),
                stored.text,
            ):
                return current
            return crm.crm.intake.record(answer)

    def of(self, customer_id: str, *, as_of: _Moment | None = None) -> tuple[IntakeItem, ...]:
        """The customer's intake as the profile shows it (current answers, question order)."""
        crm = self._crm
        crm.store.customers.get(read_id(customer_id, "customer_id"))
        return self._items(customer_id, crm._at(as_of))

    def _items(self, customer_id: str, at: datetime) -> tuple[IntakeItem, ...]:
        intake = self._crm.crm.intake
        return customer_intake(
            intake.questions(include_retired=True),
            intake.answers_for(customer_id),
            customer_id,
            as_of=at,
        )

    def breakdown(
        self, *, as_of: _Moment | None = None, by_referral_source: bool = False
    ) -> IntakeBreakdown:
        """Per option: customers, paying customers, MRR, ARPA, conversion and net payments
        (see :func:`revcrm.crm.intake_breakdown`), split by referral source on request."""
        crm = self._crm
        at = crm._at(as_of)
        return intake_breakdown(
            crm.store.book(),
            crm.crm.intake.questions(include_retired=True),
            crm.crm.intake.answers(as_of=at),
            at=at,
            currency=crm.reporting_currency,
            policy=crm.policy,
            by_referral_source=by_referral_source,
        )


class _Leads(_Service):
    def add(self, lead: Lead) -> Lead:
        self._crm.crm.leads.add(lead)
        return lead

    def get(self, lead_id: str) -> Lead:
        return self._crm.crm.leads.get(read_id(lead_id, "lead_id"))

    def all(self) -> tuple[Lead, ...]:
        """Every lead, by id (for the funnel; ``list`` pages through them)."""
        return self._crm.crm.leads.all()

    def lead_for_customer(self, customer_id: str) -> Lead | None:
        """The lead converted into this customer, if any."""
        return self._crm.crm.leads.lead_for_customer(read_id(customer_id, "customer_id"))

    def open_lead_for(self, email: str) -> Lead | None:
        """The open lead with this email, if any (a prospect who registered without
        buying yet)."""
        return self._crm.crm.leads.open_lead_for(email)

    def list(
        self,
        *,
        stage: LeadStage | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Lead]:
        """One keyset page of leads (of one ``stage``, or all), oldest first: by creation
        moment, then id, so pages never skip or repeat a lead while leads are added."""
        wanted = None if stage is None else as_enum(LeadStage, stage, "stage")
        return self._crm.crm.leads.page(stage=wanted, limit=limit, cursor=cursor)

    def move(
        self,
        lead_id: str,
        to: LeadStage | str,
        *,
        staff_id: str | None,
        at: datetime | None = None,
        note: str = "",
        lost_reason: str | None = None,
    ) -> Lead:
        """Move a lead (contact, qualify, lose, reopen); conversion is
        :meth:`match_registration` or :meth:`convert`."""
        repo = self._crm.crm.leads
        lead = repo.get(read_id(lead_id, "lead_id"))
        moved = lead.move(
            as_enum(LeadStage, to, "to"),
            at=self._crm.now() if at is None else at,
            staff_id=staff_id,
            note=note,
            lost_reason=lost_reason,
        )
        repo.save(moved, expected_version=len(lead.history))
        return moved

    def convert(
        self, lead_id: str, customer_id: str, *, staff_id: str | None, at: datetime | None = None
    ) -> Lead:
        """Converting twice raises :class:`~revcrm.errors.TransitionNotAllowed`; nothing
        is written then. ``at`` defaults to the clock; an ``at`` before the lead's last
        move is a :class:`~revcrm.errors.ValidationError` (its history is in time order)."""
        repo = self._crm.crm.leads
        self._crm.store.customers.get(read_id(customer_id, "customer_id"))
        lead = repo.get(read_id(lead_id, "lead_id"))
        moment = self._crm.now() if at is None else at
        converted = lead.convert(customer_id, at=moment, staff_id=staff_id)
        repo.save(converted, expected_version=len(lead.history))
        return converted

    def match_registration(
        self, customer: Customer, *, at: datetime | None = None, staff_id: str | None = None
    ) -> Lead | None:
        """Convert the open lead with the new customer's email; None when there is none
        or the customer already has a converted lead.

        The conversion is dated ``at`` when given (before the lead's last move it is a
        :class:`~revcrm.errors.ValidationError`). By default it is dated at the customer's
        registration, or at the lead's last move when that is later by at most a minute
        (``REGISTRATION_SKEW``: a host stores registration to the second, a staff move of
        that second carries microseconds, clocks differ a little); a move later still is
        the "time cannot go back" ValidationError (pass ``at=`` to convert anyway).
        """
        if not isinstance(customer, Customer):
            raise ValidationError("customer", customer, "expected a Customer")
        repo = self._crm.crm.leads
        if customer.email is None or repo.lead_for_customer(customer.id) is not None:
            return None
        lead = repo.open_lead_for(customer.email)
        if lead is None:
            return None
        moment = registration_moment(customer, lead) if at is None else utc(at, "at")
        converted = lead.convert(customer.id, at=moment, staff_id=staff_id, note="registered")
        repo.save(converted, expected_version=len(lead.history))
        return converted
