"""Contacts: the list, a contact's page, and adding, editing and deleting contacts."""

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.web import reads
from crm.web.forms import Form, posted_form
from crm.web.params import a_choice
from crm.web.security import check_csrf, current_account, flash
from crm.web.templating import form_error, templates
from crm.web.writes import (
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


def blank_forms(contact: dict[str, Any]) -> dict[str, Form]:
    """The forms of a contact's page, filled with what the contact has now."""
    return {
        "edit_form": Form({name: contact[name] for name in CONTACT_FIELDS}),
        "interaction_form": Form({"interacted_on": "", "interaction_notes": "", "replace": ""}),
        "notes_form": Form(
            {
                "meeting_on": str(contact["next_meeting_on"] or ""),
                "meeting_notes": contact["next_meeting_notes"] or "",
            }
        ),
    }


async def contact_context(request: Request, account: str, contact_id: str) -> dict[str, Any]:
    async with services_of(request).pool.connection() as conn:
        row = await reads.contact(conn, account, contact_id)
        if row is None:
            raise NotFound()
        interactions = await reads.contact_interactions(conn, account, contact_id)
    return {"contact": row, "interactions": interactions, **blank_forms(row)}


@dataclass(frozen=True)
class ContactWrite:
    """A form posted about one of the account's contacts, with that contact's page context."""

    account: str
    contact_id: str
    data: FormData
    context: dict[str, Any]


async def contact_write(request: Request) -> ContactWrite:
    account = current_account(request)
    data = await posted_form(request)
    check_csrf(request, data)
    contact_id = request.path_params["contact_id"]
    return ContactWrite(
        account, contact_id, data, await contact_context(request, account, contact_id)
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
        row = await reads.contact(conn, account, request.path_params["contact_id"])
    return templates.TemplateResponse(request, "contacts/_added.html", {"contact": row})


async def show(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
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
    context = await contact_context(request, account, request.path_params["contact_id"])
    return templates.TemplateResponse(request, "contacts/edit.html", context)


async def update(request: Request) -> Response:
    write = await contact_write(request)
    form = checked_contact_form(write.data)
    done = await attempt(
        request,
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
            {**write.context, "edit_form": form, "form": form},
        )
    if is_htmx(request):
        pending = {**write.context["contact"], **form.values}
        return templates.TemplateResponse(
            request,
            "contacts/_details.html",
            {
                **write.context,
                "contact": pending,
                "after": done.appended.position,
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        done.appended.position,
        f"/contacts/{write.contact_id}",
        f"Saved {form['name']}.",
    )


async def delete(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
    check_csrf(request, await posted_form(request))
    done = await attempt(
        request,
        Form({}),
        lambda conn, types: commands.delete_contact(conn, types, account, contact_id),
    )
    assert done is not None  # a delete has no form to fail; a missing contact raised NotFound
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
