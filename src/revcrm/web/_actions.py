"""The POST actions: notes, tags, credits, leads, and the admins' merge and erase.

The acting staff id is always ``ctx.staff.id`` (from the host's ``authenticate``), never
a form field. Every action answers with a 303 to the page it changed (post / redirect /
get), naming what was done by a fixed code, never by what was written.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Final
from urllib.parse import quote

from starlette.responses import Response

from revcrm._money import Money
from revcrm.leads import Lead, LeadStage
from revcrm.web._core import Ctx, HttpError

__all__ = [
    "add_lead",
    "add_note",
    "add_tag",
    "adjust_credit",
    "convert_lead",
    "edit_note",
    "erase",
    "lose_lead",
    "merge",
    "move_lead",
    "pin_note",
    "remove_tag",
    "unpin_note",
]

NOTE_LIMIT: Final = 20_000
TAG_LIMIT: Final = 50
REASON_LIMIT: Final = 500
ID_LIMIT: Final = 200


def _path(ctx: Ctx, name: str) -> str:
    value = str(ctx.request.path_params[name])
    if not value or len(value) > ID_LIMIT:
        raise HttpError(400, f"{name} is empty or too long.")
    return value


def _profile(ctx: Ctx, customer_id: str, done: str) -> Response:
    return ctx.redirect(f"/customers/{quote(customer_id, safe='')}", {"done": done})


def _own_note(ctx: Ctx, customer_id: str, note_id: str) -> None:
    # A note id of another customer posted to this customer's URL is refused: the URL
    # names the page the change shows on.
    note = ctx.crm.notes.get(note_id)
    if note.customer_id != customer_id:
        raise HttpError(404, "No such note on this customer.")


def add_note(ctx: Ctx) -> Response:
    customer_id = _path(ctx, "customer_id")
    body = ctx.form.text("body", limit=NOTE_LIMIT, label="Note")
    pinned = ctx.form.get("pinned") == "1"
    ctx.crm.notes.add(customer_id, body, author_id=ctx.staff.id, pinned=pinned)
    return _profile(ctx, customer_id, "note")


def edit_note(ctx: Ctx) -> Response:
    customer_id, note_id = _path(ctx, "customer_id"), _path(ctx, "note_id")
    body = ctx.form.text("body", limit=NOTE_LIMIT, label="Note")
    _own_note(ctx, customer_id, note_id)
    ctx.crm.notes.edit(note_id, body, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "note-edited")


def pin_note(ctx: Ctx) -> Response:
    customer_id, note_id = _path(ctx, "customer_id"), _path(ctx, "note_id")
    _own_note(ctx, customer_id, note_id)
    ctx.crm.notes.pin(note_id, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "pinned")


def unpin_note(ctx: Ctx) -> Response:
    customer_id, note_id = _path(ctx, "customer_id"), _path(ctx, "note_id")
    _own_note(ctx, customer_id, note_id)
    ctx.crm.notes.unpin(note_id, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "unpinned")


def add_tag(ctx: Ctx) -> Response:
    customer_id = _path(ctx, "customer_id")
    name = ctx.form.text("tag", limit=TAG_LIMIT, label="Tag")
    crm = ctx.crm
    crm.store.customers.get(customer_id)  # an unknown customer creates no tag
    tag = crm.tags.ensure(name)
    crm.tags.assign(customer_id, tag.name, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "tag")


def remove_tag(ctx: Ctx) -> Response:
    customer_id = _path(ctx, "customer_id")
    name = ctx.form.text("tag", limit=TAG_LIMIT, label="Tag")
    ctx.crm.tags.remove(customer_id, name, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "untag")


def _amount(text: str, currency: str) -> Money:
    try:
        value = Decimal(text.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise HttpError(400, "Amount is not a number (e.g. 25.00 or -10).") from None
    if not value.is_finite() or value == 0 or abs(value) >= Decimal("1e12"):
        raise HttpError(400, "Amount must be a non-zero number below a trillion.")
    return Money(value, currency)


def adjust_credit(ctx: Ctx) -> Response:
    customer_id = _path(ctx, "customer_id")
    amount_text = ctx.form.text("amount", limit=40, label="Amount")
    currency = ctx.form.text("currency", limit=3, label="Currency").upper()
    reason = ctx.form.text("reason", limit=REASON_LIMIT, label="Reason")
    amount = _amount(amount_text, currency)
    ctx.crm.credits.adjust(customer_id, amount, reason=reason, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "credit")


def merge(ctx: Ctx) -> Response:
    customer_id = _path(ctx, "customer_id")
    other = ctx.form.text("secondary_id", limit=ID_LIMIT, label="Customer id to merge")
    if ctx.form.get("confirm") != "1":
        raise HttpError(400, "Tick the confirmation box to merge.")
    ctx.crm.merge(customer_id, other, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "merged")


def erase(ctx: Ctx) -> Response:
    customer_id = _path(ctx, "customer_id")
    mode = ctx.form.get("mode", "anonymise")
    if mode not in ("anonymise", "delete"):
        raise HttpError(400, "Erase mode is anonymise or delete.")
    if ctx.form.get("confirm") != "1":
        raise HttpError(400, "Tick the confirmation box to erase.")
    ctx.crm.erase(
        customer_id, mode="delete" if mode == "delete" else "anonymise", staff_id=ctx.staff.id
    )
    if mode == "delete":
        return ctx.redirect("/customers")
    return _profile(ctx, customer_id, "erased")


# -- leads ----------------------------------------------------------------------------------


def _leads(ctx: Ctx, done: str) -> Response:
    return ctx.redirect("/leads", {"done": done})


def add_lead(ctx: Ctx) -> Response:
    form = ctx.form
    email = form.text("email", limit=320, label="Email")
    name = form.text("name", limit=200, required=False, label="Name")
    company = form.text("company", limit=200, required=False, label="Company")
    source = form.text("source", limit=100, required=False, label="Source")
    value = form.text("expected_value", limit=40, required=False, label="Expected value")
    lead = Lead(
        id=uuid.uuid4().hex,
        email=email,
        name=name,
        company=company or None,
        source=source or None,
        owner_id=ctx.staff.id,
        created_at=ctx.crm.now(),
        expected_value=None if not value else _amount(value, ctx.crm.reporting_currency),
    )
    ctx.crm.leads.add(lead)
    return _leads(ctx, "lead")


_MOVES: Final = {
    "contacted": LeadStage.CONTACTED,
    "qualified": LeadStage.QUALIFIED,
    "new": LeadStage.NEW,
}


def move_lead(ctx: Ctx) -> Response:
    lead_id = _path(ctx, "lead_id")
    to = _MOVES.get(ctx.form.get("to"))
    if to is None:
        raise HttpError(
            400, "Move to contacted, qualified or new (conversion and loss have their own forms)."
        )
    note = ctx.form.text("note", limit=REASON_LIMIT, required=False, label="Note")
    ctx.crm.leads.move(lead_id, to, staff_id=ctx.staff.id, note=note)
    return _leads(ctx, "moved")


def lose_lead(ctx: Ctx) -> Response:
    lead_id = _path(ctx, "lead_id")
    reason = ctx.form.text("reason", limit=REASON_LIMIT, label="Lost reason")
    ctx.crm.leads.move(lead_id, LeadStage.LOST, staff_id=ctx.staff.id, lost_reason=reason)
    return _leads(ctx, "lost")


def convert_lead(ctx: Ctx) -> Response:
    lead_id = _path(ctx, "lead_id")
    customer_id = ctx.form.text("customer_id", limit=ID_LIMIT, label="Customer id")
    ctx.crm.leads.convert(lead_id, customer_id, staff_id=ctx.staff.id)
    return _profile(ctx, customer_id, "converted")
