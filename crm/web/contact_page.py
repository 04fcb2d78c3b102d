"""A contact's page: its id in the URL, its context, and the writes posted from it.

Contacts, interactions, next-meeting notes and tags are all shown on this page and written from
its forms; what they share about it lives here.
"""

from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from crm.projections import poison
from crm.projections.contacts import CONTACTS
from crm.projections.registry import BY_NAME
from crm.store import commands
from crm.store.event_types import EventTypes
from crm.web import answers
from crm.web.answers import Answer, Command, attempt
from crm.web.forms import REVISION, Form, FormSpec, posted_form
from crm.web.params import a_contact_id, a_whole_number
from crm.web.requests import NotFound, is_htmx, services_of
from crm.web.security import check_csrf, current_account

CONTACT = FormSpec.of(
    "contact-edited", "name", "description", "contact_method", revision=commands.DETAILS.column
)
# "replace": the same day's interaction is replaced, not refused
INTERACTION = FormSpec.of(
    "interaction-recorded",
    "interacted_on",
    interaction_notes="notes",
    extra=("replace",),
    required=("interaction_notes",),
)
NOTES = FormSpec.of(
    "next-meeting-notes-written",
    "meeting_on",
    meeting_notes="notes",
    required=("meeting_notes",),
    revision=commands.NOTES.column,
)
TAG = FormSpec.of("contact-tagged", "tag")
UNTAG = FormSpec.of("contact-untagged", "tag")
PROJECTIONS = ("contacts", "interactions")  # what a contact's page reads
NOT_SHOWN = (
    "This contact cannot be shown right now: crm could not process one of its changes. Your"
    " change is saved and the problem is reported; the contact will show once it is fixed."
)


@dataclass(frozen=True)
class Part:
    """A live part of the page, with the form that writes it."""

    fragment: str  # the part's partial: a section of the page, refreshed live
    projections: tuple[str, ...]  # what it reads
    form: str = ""  # the form's partial,
    form_id: str = ""  # its element id,
    form_key: str = ""  # and its name in the page's context


PARTS = {
    "details": Part(
        "contacts/_details.html", ("contacts",), "contacts/_form.html", "edit-contact", "edit_form"
    ),
    "interactions": Part(
        "contacts/_interactions.html",
        ("interactions",),
        "contacts/_interaction_form.html",
        "interaction-form",
        "interaction_form",
    ),
    "notes": Part(
        "contacts/_notes.html",
        ("contacts",),
        "contacts/_notes_form.html",
        "notes-form",
        "notes_form",
    ),
}
# the tags show among the details; the form that adds one is its own
TAGGING = Part(
    "contacts/_details.html", ("contacts",), "contacts/_tag_form.html", "tag-form", "tag_form"
)


def contact_id_in(request: Request) -> str:
    """The contact id in the URL, as events store it; 404 if it is not written as one.

    Every route reads it here: a raw id that PostgreSQL does not take as a uuid would be a 500
    (after the write side had saved the event), and one in capitals must still find the parked
    events keyed by the contact's text and send the browser to the contact's one URL.
    """
    contact_id = a_contact_id(request.path_params["contact_id"])
    if contact_id is None:
        raise NotFound()
    return contact_id


def blank_forms(types: EventTypes, contact: dict[str, Any]) -> dict[str, Form]:
    """The forms of a contact's page, filled with what the contact has now."""
    notes = {
        "meeting_on": contact["next_meeting_on"],
        "notes": contact["next_meeting_notes"],
        NOTES.revision: contact[NOTES.revision],
    }
    return {
        "edit_form": CONTACT.blank(types, **contact),
        "interaction_form": INTERACTION.blank(types),
        "notes_form": NOTES.blank(types, **notes),
        "tag_form": TAG.blank(types),
    }


async def read_contact(
    conn: AsyncConnection[Any], account_id: str, contact_id: str
) -> dict[str, Any] | None:
    """The contact's row; contact_id is canonical (contact_id_in)."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT * FROM projected_contacts WHERE contact_id = %s AND account_id = %s",
        (contact_id, account_id),
    )
    return await cursor.fetchone()


async def read_interactions(
    conn: AsyncConnection[Any], account_id: str, contact_id: str
) -> list[dict[str, Any]]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT * FROM projected_interactions"
        " WHERE contact_id = %s AND account_id = %s ORDER BY interacted_on DESC",
        (contact_id, account_id),
    )
    return await cursor.fetchall()


def not_shown_yet(contact_id: str) -> dict[str, Any]:
    """A contact the write side has and the contacts projection does not show yet (created a
    moment ago, or the projection is stalled): its id, and nothing else known."""
    empty = {"text": "", "text[]": []}
    unknown = {c.name: empty.get(c.sql_type) for c in CONTACTS.table_columns if not c.nullable}
    return {**{name: None for name in CONTACTS.columns}, **unknown, "contact_id": contact_id}


async def page_context(
    request: Request, account: str, contact_id: str, missing_ok: bool = False
) -> dict[str, Any]:
    """A contact's page, read from the projections. A contact they do not show is a 404, or
    503 when one of its events is parked; with `missing_ok` (answering a write the write side
    accepted) it is stood in for, never a 404."""
    async with services_of(request).pool.connection() as conn:
        return await read_page(request, conn, account, contact_id, missing_ok)


async def read_page(
    request: Request,
    conn: AsyncConnection[Any],
    account: str,
    contact_id: str,
    missing_ok: bool = False,
) -> dict[str, Any]:
    """page_context() on a connection the caller holds."""
    row = await read_contact(conn, account, contact_id)
    parked = await poison.parts_parked_for(conn, contact_id)
    if row is None and not missing_ok:
        if parked and await commands.owns_contact(conn, account, contact_id):
            raise HTTPException(503, NOT_SHOWN)
        raise NotFound()
    interactions = await read_interactions(conn, account, contact_id)
    contact = row or not_shown_yet(contact_id)
    return {
        "contact": contact,
        "interactions": interactions,
        # the projections with events about it they could not apply, named as not up to date
        "stale_parts": [BY_NAME[name].describes if name in BY_NAME else name for name in parked],
        **blank_forms(services_of(request).types, contact),
    }


@dataclass(frozen=True)
class ContactWrite:
    """A form posted about a contact, read and checked against its spec; whether the contact
    is the account's is decided by the command, on the write side."""

    request: Request
    account: str
    contact_id: str
    spec: FormSpec
    form: Form
    # the revision the form was drawn from (a form with a revision; None when not sent: then
    # the fields sent overwrite and the others keep their values)
    based_on: int | None = None

    @classmethod
    async def read(cls, request: Request, spec: FormSpec) -> "ContactWrite":
        account = await current_account(request)
        data = await posted_form(request)
        check_csrf(request, data)
        # a form with a revision writes the fields it sends: an API client's PATCH of the name
        # keeps the description
        form = spec.read(data, services_of(request).types, partial=bool(spec.revision))
        based_on = _revision_in(form) if spec.revision else None
        return cls(request, account, contact_id_in(request), spec, form, based_on)

    @property
    def payload(self) -> dict[str, str]:
        return self.spec.payload(self.form)

    def saved(self, done: commands.Done | None) -> dict[str, Any]:
        """What the answer shows as written: with what the command merged or kept, once it ran."""
        return dict(done.fields) if done else self.payload

    # what the answer reads, read on the command's connection once it succeeded: a write that is
    # saved is never answered 503 for want of a second connection
    _read: dict[str, Any] = field(default_factory=dict)

    async def attempt(self, command: Command) -> commands.Done | None:
        """Run the command if the form is valid. Only the write side says whether the contact
        exists and is the account's (404 if not), never a projection, which may lag: a command
        decides in its own transaction; for an invalid form, which runs none, contact_keys is
        asked on its own, so another account's contact stays a 404."""
        if not self.form.ok:
            async with services_of(self.request).pool.connection() as conn:
                if not await commands.owns_contact(conn, self.account, self.contact_id):
                    raise NotFound()
        fields = self.spec.form_fields
        done = await attempt(
            self.request, self.form, self._noting_conflicts(command), fields, self._read_answer
        )
        if "conflict" in self._read:
            self._show_conflict(self._read["conflict"])
        return done

    def _noting_conflicts(self, command: Command) -> Command:
        """The command, with a refused stale write kept to be shown, and a revision this contact
        never had answered 400 (no form sends one)."""

        async def run(conn: AsyncConnection[Any], types: EventTypes) -> commands.Done:
            try:
                return await command(conn, types)
            except commands.UnknownRevision as unknown:
                raise HTTPException(400, f"{REVISION} {unknown}.") from None
            except commands.WriteConflict as conflict:
                self._read["conflict"] = conflict
                raise

        return run

    def _show_conflict(self, conflict: commands.WriteConflict) -> None:
        """The form again with the user's changes kept, the current version of every field the
        user did not change, the other version beside each field both changed, and the current
        revision: saved again, it deliberately keeps the user's version."""
        form_field = self.spec.form_fields
        for payload_field, value in conflict.fields.items():
            self.form.values[form_field[payload_field]] = str(value)
        self.form.values[REVISION] = str(conflict.revision)
        for payload_field, clash in conflict.clashes.items():
            name = form_field[payload_field]
            self.form.errors[name] = "was changed elsewhere since you opened this form"
            self.form.conflicts[name] = str(clash.theirs)

    @property
    def conflicted(self) -> bool:
        return "conflict" in self._read

    async def append(self) -> commands.Done | None:
        """attempt() the plain command for the spec's event: appended about the contact, once
        the write side has found the contact is the account's."""
        return await self.attempt(
            lambda conn, types: commands.append_about_contact(
                conn, types, self.spec.event_type, self.account, self.contact_id, self.payload
            )
        )

    async def _read_answer(self, conn: AsyncConnection[Any]) -> None:
        if is_htmx(self.request):
            self._read["context"] = await read_page(
                self.request, conn, self.account, self.contact_id, missing_ok=True
            )
        else:
            row = await read_contact(conn, self.account, self.contact_id)
            self._read["shown"] = row is not None

    async def context(self) -> dict[str, Any]:
        """The page's context for answering this write."""
        if "context" in self._read:
            return dict(self._read["context"])
        return await page_context(self.request, self.account, self.contact_id, missing_ok=True)

    async def shown(self) -> bool:
        """Whether the contacts projection shows the contact (read when the write was saved)."""
        return bool(self._read.get("shown"))


def _revision_in(form: Form) -> int | None:
    """The form's based_on: None when blank or not sent; anything but a revision number is a
    400 naming it (a form sends what it was drawn with)."""
    raw = form.values.get(REVISION, "")
    if not raw:
        return None
    revision = a_whole_number(raw)
    if revision is None:
        raise HTTPException(
            400, f"{REVISION} must be the revision the form was drawn from: a whole number."
        )
    return revision


async def respond_on_page(
    write: ContactWrite,
    done: commands.Done | None,
    part: Part,
    message: str,
    pending: dict[str, Any] | None = None,
) -> Response:
    """answers.respond() for a form on the contact's page, writing `part` of it.

    Without JavaScript the answer is the contact's page once it shows the write; a contact the
    projection does not show yet has no page (it would be a 404), so if the wait ends with the
    projections still behind, the list says so instead.
    """
    behind = None
    if done is not None and not is_htmx(write.request) and not await write.shown():
        behind = "/contacts"
    answer = Answer(
        page="contacts/show.html",
        form=part.form,
        form_id=part.form_id,
        form_key=part.form_key,
        pending=part.fragment,
        projections=PROJECTIONS,
        location=f"/contacts/{write.contact_id}",
        message=message,
        location_if_behind=behind,
    )

    async def context() -> dict[str, Any]:
        page = await write.context()
        if done is not None and done.revision is not None and part.form_key:
            # the form stays on the page: drawn again from what was saved, at its revision, so
            # that the next save from it is based on this one
            types = services_of(write.request).types
            saved = write.spec.blank(types, **done.fields, based_on=done.revision)
            page |= {part.form_key: saved, "refreshed_form": part.form_id}
        return page

    status = 409 if write.conflicted else 422
    return await answers.respond(write.request, answer, write.form, done, context, pending, status)
