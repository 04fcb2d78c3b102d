"""Contacts: the list, a contact's page, and adding, editing and deleting contacts."""

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from crm.projections import poison
from crm.projections.registry import BY_NAME
from crm.store import commands
from crm.web import reads
from crm.web.forms import Form, posted_form
from crm.web.params import a_choice, a_contact_id
from crm.web.security import check_csrf, current_account, flash
from crm.web.templating import form_error, templates
from crm.web.writes import (
    Command,
    NotFound,
    attempt,
    is_htmx,
    location_for_htmx,
    not_yet,
    redirect_after_write,
    services_of,
    still_pending,
    wait_for_projections,
)

CONTACT_FIELDS = ("name", "description", "contact_method")
CONTACT_PROJECTIONS = ("contacts", "interactions")  # what a contact's page reads
SECTIONS = {  # the live parts of a contact's page, and the projections each reads
    "details": ("contacts/_details.html", ("contacts",)),
    "interactions": ("contacts/_interactions.html", ("interactions",)),
    "notes": ("contacts/_notes.html", ("contacts",)),
}


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


def contact_form() -> Form:
    return Form({name: "" for name in CONTACT_FIELDS})


def checked_contact_form(data: FormData) -> Form:
    form = Form.read(data, CONTACT_FIELDS)
    form.required("name")
    form.single_line("name", "contact_method")
    form.multi_line("description")
    form.at_most("name", 200)
    form.at_most("description", 2000)
    form.at_most("contact_method", 500)
    return form


def interaction_form() -> Form:
    return Form({"interacted_on": "", "interaction_notes": "", "replace": ""})


def blank_forms(contact: dict[str, Any]) -> dict[str, Form]:
    """The forms of a contact's page, filled with what the contact has now."""
    return {
        "edit_form": Form({name: contact[name] for name in CONTACT_FIELDS}),
        "interaction_form": interaction_form(),
        "notes_form": Form(
            {
                "meeting_on": str(contact["next_meeting_on"] or ""),
                "meeting_notes": contact["next_meeting_notes"] or "",
            }
        ),
    }


def not_shown_yet(contact_id: str) -> dict[str, Any]:
    """A contact the write side has and the contacts projection does not show yet (created a
    moment ago, or the projection is stalled): its id, and nothing else known."""
    return {
        "contact_id": contact_id,
        **dict.fromkeys(CONTACT_FIELDS, ""),
        "next_meeting_on": None,
        "next_meeting_notes": None,
    }


NOT_SHOWN = (
    "This contact cannot be shown right now: crm could not process one of its changes. Your"
    " change is saved and the problem is reported; the contact will show once it is fixed."
)


def _page(
    contact: dict[str, Any], interactions: list[dict[str, Any]], parked: list[str]
) -> dict[str, Any]:
    """A contact's page context; `parked`: the projections with events about it they could not
    apply (crm/projections/poison.py), which the page names as not up to date."""
    stale = [BY_NAME[name].describes if name in BY_NAME else name for name in parked]
    return {
        "contact": contact,
        "interactions": interactions,
        "stale_parts": stale,
        **blank_forms(contact),
    }


async def contact_context(request: Request, account: str, contact_id: str) -> dict[str, Any]:
    """A contact's page, read from the projections: 404 while they do not show the contact."""
    async with services_of(request).pool.connection() as conn:
        row = await reads.contact(conn, account, contact_id)
        parked = await poison.parts_parked_for(conn, contact_id)
        if row is None:
            if parked and await commands.owns_contact(conn, account, contact_id):
                raise HTTPException(503, NOT_SHOWN)
            raise NotFound()
        interactions = await reads.contact_interactions(conn, account, contact_id)
    return _page(row, interactions, parked)


@dataclass(frozen=True)
class ContactWrite:
    """A form posted about a contact; whether it is the account's is not known yet."""

    account: str
    contact_id: str
    data: FormData


async def contact_write(request: Request) -> ContactWrite:
    account = current_account(request)
    data = await posted_form(request)
    check_csrf(request, data)
    return ContactWrite(account, contact_id_in(request), data)


async def attempt_on_contact(
    request: Request,
    write: ContactWrite,
    form: Form,
    command: Command,
    payload_fields: dict[str, str] | None = None,
) -> commands.Done | None:
    """attempt() for a form about one contact: only the write side says whether it exists and
    is the account's (404 if not), never a projection, which may not show it yet.

    A valid form's command decides that in its own transaction. An invalid form runs no
    command, so contact_keys is asked on its own: another account's contact stays a 404.
    """
    if not form.ok:
        async with services_of(request).pool.connection() as conn:
            if not await commands.owns_contact(conn, write.account, write.contact_id):
                raise NotFound()
    return await attempt(request, form, command, payload_fields)


async def context_after_write(request: Request, write: ContactWrite) -> dict[str, Any]:
    """The contact's page context for answering a write, read once attempt_on_contact() found
    the contact on the write side: a contact not projected yet is stood in, never a 404."""
    async with services_of(request).pool.connection() as conn:
        row = await reads.contact(conn, write.account, write.contact_id)
        interactions = await reads.contact_interactions(conn, write.account, write.contact_id)
        parked = await poison.parts_parked_for(conn, write.contact_id)
    return _page(row or not_shown_yet(write.contact_id), interactions, parked)


async def redirect_to_contact(
    request: Request, write: ContactWrite, position: int, message: str
) -> Response:
    """The no-JavaScript answer to a write about a contact: its page, once it shows the write.

    A contact the projection does not show yet has no page to go to (it would be a 404), so
    if the wait ends with the projections still behind, the list says so instead.
    """
    async with services_of(request).pool.connection() as conn:
        shown = await reads.contact(conn, write.account, write.contact_id) is not None
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        position,
        f"/contacts/{write.contact_id}",
        message,
        location_if_behind=None if shown else "/contacts",
    )


async def index(request: Request) -> Response:
    account = current_account(request)
    listing = reads.Listing.parse(request.query_params, reads.CONTACT_SORTS, "name", "asc")
    async with services_of(request).pool.connection() as conn:
        rows, total = await reads.contacts_page(conn, account, listing)
    context = {
        "contacts": rows,
        "total": total,
        "listing": listing,
        "per_page": reads.PER_PAGE,
        "form": contact_form(),
    }
    if request.query_params.get("section") == "list":
        return templates.TemplateResponse(request, "contacts/_list.html", context)
    return templates.TemplateResponse(request, "contacts/index.html", context)


async def new(request: Request) -> Response:
    current_account(request)
    return templates.TemplateResponse(request, "contacts/new.html", {"form": contact_form()})


async def create(request: Request) -> Response:
    account = current_account(request)
    data = await posted_form(request)
    check_csrf(request, data)
    form = checked_contact_form(data)
    done = await attempt(
        request,
        form,
        lambda conn, types: commands.add_contact(
            conn, types, account, form["name"], form["description"], form["contact_method"]
        ),
    )
    form_id = "new-contact" if data.get("form_id") == "new-contact" else "contact-page"
    if done is None:
        return form_error(
            request, "contacts/new.html", "contacts/_form.html", form_id, {"form": form}
        )
    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            "contacts/_added.html",
            {
                "contact_id": done.subject_id,
                "name": form["name"],
                "after": done.appended.position,
                "form": contact_form(),
                "form_id": form_id,
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        done.appended.position,
        f"/contacts/{done.subject_id}",
        f"Added {form['name']}.",
        location_if_behind="/contacts",
    )


async def added(request: Request) -> Response:
    """The confirmation that replaces a pending 'adding...' line once the contact is projected."""
    account = current_account(request)
    if await not_yet(request, ("contacts",)):
        return still_pending()
    async with services_of(request).pool.connection() as conn:
        row = await reads.contact(conn, account, contact_id_in(request))
    return templates.TemplateResponse(request, "contacts/_added.html", {"contact": row})


async def show(request: Request) -> Response:
    account = current_account(request)
    contact_id = contact_id_in(request)
    section = a_choice(request.query_params.get("section"), SECTIONS, "")
    if section not in SECTIONS:
        context = await contact_context(request, account, contact_id)
        return templates.TemplateResponse(request, "contacts/show.html", context)
    template, names = SECTIONS[section]
    if await not_yet(request, names):
        return still_pending()
    try:
        context = await contact_context(request, account, contact_id)
    except NotFound:  # deleted meanwhile: the details say so, the other sections go quiet
        return templates.TemplateResponse(
            request, "contacts/_gone.html", {"announce": section == "details"}
        )
    return templates.TemplateResponse(request, template, context)


async def edit(request: Request) -> Response:
    account = current_account(request)
    context = await contact_context(request, account, contact_id_in(request))
    return templates.TemplateResponse(request, "contacts/edit.html", context)


async def update(request: Request) -> Response:
    write = await contact_write(request)
    form = checked_contact_form(write.data)
    done = await attempt_on_contact(
        request,
        write,
        form,
        lambda conn, types: commands.edit_contact(
            conn,
            types,
            write.account,
            write.contact_id,
            form["name"],
            form["description"],
            form["contact_method"],
        ),
    )
    if done is None:
        return form_error(
            request,
            "contacts/edit.html",
            "contacts/_form.html",
            "edit-contact",
            {**await context_after_write(request, write), "edit_form": form, "form": form},
        )
    if is_htmx(request):
        context = await context_after_write(request, write)
        pending = {**context["contact"], **form.values}
        return templates.TemplateResponse(
            request,
            "contacts/_details.html",
            {**context, "contact": pending, "after": done.appended.position},
        )
    return await redirect_to_contact(
        request, write, done.appended.position, f"Saved {form['name']}."
    )


async def delete(request: Request) -> Response:
    account = current_account(request)
    check_csrf(request, await posted_form(request))
    contact_id = contact_id_in(request)
    done = await attempt(
        request,
        Form({}),
        lambda conn, types: commands.delete_contact(conn, types, account, contact_id),
    )
    assert done is not None  # no form to fail: a refusal raised NotFound or a 409
    position = done.appended.position
    if not is_htmx(request):
        return await redirect_after_write(
            request, CONTACT_PROJECTIONS, position, "/contacts", "Contact deleted."
        )
    reached = await wait_for_projections(services_of(request), CONTACT_PROJECTIONS, position)
    flash(
        request,
        "Contact deleted."
        if reached
        else "Contact deleted. The list will update when processing resumes.",
    )
    return location_for_htmx("/contacts")
