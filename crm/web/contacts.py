"""Contacts: the list, a contact's page, and adding, editing and deleting contacts."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.store.validation import InvalidPayload
from crm.web import reads
from crm.web.forms import Form
from crm.web.security import check_csrf, current_account, flash
from crm.web.templating import form_error, templates
from crm.web.writes import (
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


class NotFound(Exception):
    """A contact that does not exist, or belongs to another account: both answer 404."""


def contact_form() -> Form:
    return Form({name: "" for name in CONTACT_FIELDS})


def check_contact_form(form: Form) -> None:
    form.required("name")
    form.at_most("name", 200)
    form.at_most("description", 2000)
    form.at_most("contact_method", 500)


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
    data = await request.form()
    check_csrf(request, data)
    form = Form.read(data, CONTACT_FIELDS)
    check_contact_form(form)
    form_id = str(data.get("form_id") or "new-contact")
    page = "contacts/new.html"
    services = services_of(request)
    if form.ok:
        try:
            async with services.pool.connection() as conn:
                done = await commands.add_contact(
                    conn,
                    services.types,
                    account,
                    form["name"],
                    form["description"],
                    form["contact_method"],
                )
        except commands.CommandRefused as refused:
            form.fail(refused.field or "name", str(refused))
        except InvalidPayload as invalid:
            form.payload_errors(invalid, {})
    if not form.ok:
        return form_error(request, page, "contacts/_form.html", form_id, {"form": form})
    position = done.appended.position
    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            "contacts/_added.html",
            {
                "contact_id": done.subject_id,
                "name": form["name"],
                "after": position,
                "form": contact_form(),
                "form_id": form_id,
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        position,
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


async def contact_context(request: Request, account: str, contact_id: str) -> dict[str, Any]:
    async with services_of(request).pool.connection() as conn:
        row = await reads.contact(conn, account, contact_id)
        if row is None:
            raise NotFound()
        interactions = await reads.contact_interactions(conn, account, contact_id)
    return {"contact": row, "interactions": interactions}


SECTIONS = {
    "details": ("contacts/_details.html", ("contacts",)),
    "interactions": ("contacts/_interactions.html", ("interactions",)),
    "notes": ("contacts/_notes.html", ("contacts",)),
}


def blank_forms(contact: dict[str, Any]) -> dict[str, Form]:
    return {
        "edit_form": Form(
            {
                "name": contact["name"],
                "description": contact["description"],
                "contact_method": contact["contact_method"],
            }
        ),
        "interaction_form": Form({"interacted_on": "", "interaction_notes": "", "replace": ""}),
        "notes_form": Form(
            {
                "meeting_on": str(contact["next_meeting_on"] or ""),
                "meeting_notes": contact["next_meeting_notes"] or "",
            }
        ),
    }


async def show(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
    section = request.query_params.get("section")
    if section in SECTIONS:
        template, names = SECTIONS[section]
        if await not_yet(request, names):
            return still_pending()
        try:
            context = await contact_context(request, account, contact_id)
        except NotFound:  # deleted meanwhile: the details say so, the other sections go quiet
            return templates.TemplateResponse(
                request, "contacts/_gone.html", {"announce": section == "details"}
            )
        context.update(blank_forms(context["contact"]))
        return templates.TemplateResponse(request, template, context)
    context = await contact_context(request, account, contact_id)
    context.update(blank_forms(context["contact"]))
    return templates.TemplateResponse(request, "contacts/show.html", context)


async def edit(request: Request) -> Response:
    account = current_account(request)
    context = await contact_context(request, account, request.path_params["contact_id"])
    context.update(blank_forms(context["contact"]))
    return templates.TemplateResponse(request, "contacts/edit.html", context)


async def update(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
    data = await request.form()
    check_csrf(request, data)
    context = await contact_context(request, account, contact_id)
    context.update(blank_forms(context["contact"]))
    form = Form.read(data, CONTACT_FIELDS)
    check_contact_form(form)
    services = services_of(request)
    if form.ok:
        try:
            async with services.pool.connection() as conn:
                done = await commands.edit_contact(
                    conn,
                    services.types,
                    account,
                    contact_id,
                    form["name"],
                    form["description"],
                    form["contact_method"],
                )
        except commands.ContactNotFound:
            raise NotFound() from None
        except commands.CommandRefused as refused:
            form.fail(refused.field or "name", str(refused))
        except InvalidPayload as invalid:
            form.payload_errors(invalid, {})
    if not form.ok:
        context["edit_form"] = form
        return form_error(
            request,
            "contacts/edit.html",
            "contacts/_form.html",
            "edit-contact",
            {**context, "form": form},
        )
    position = done.appended.position
    if is_htmx(request):
        pending = {**context["contact"], **form.values}
        return templates.TemplateResponse(
            request,
            "contacts/_details.html",
            {
                **context,
                "contact": pending,
                "after": position,
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        position,
        f"/contacts/{contact_id}",
        f"Saved {form['name']}.",
    )


async def delete(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
    check_csrf(request, await request.form())
    services = services_of(request)
    try:
        async with services.pool.connection() as conn:
            done = await commands.delete_contact(conn, services.types, account, contact_id)
    except commands.ContactNotFound:
        raise NotFound() from None
    if is_htmx(request):
        reached = await wait_for_projections(services, CONTACT_PROJECTIONS, done.appended.position)
        flash(
            request,
            "Contact deleted."
            if reached
            else "Contact deleted. The list will update when processing resumes.",
        )
        return location_for_htmx("/contacts")
    return await redirect_after_write(
        request, CONTACT_PROJECTIONS, done.appended.position, "/contacts", "Contact deleted."
    )
