"""Interactions: recording one with a contact, and every interaction of the account."""

from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.store.validation import InvalidPayload
from crm.web import reads
from crm.web.contacts import CONTACT_PROJECTIONS, NotFound, blank_forms, contact_context
from crm.web.forms import Form
from crm.web.security import check_csrf, current_account
from crm.web.templating import form_error, templates
from crm.web.writes import is_htmx, not_yet, redirect_after_write, services_of, still_pending

FIELDS = ("interacted_on", "interaction_notes", "replace")
PAYLOAD_TO_FORM = {"interacted_on": "interacted_on", "notes": "interaction_notes"}


async def index(request: Request) -> Response:
    account = current_account(request)
    listing = reads.Listing.parse(request.query_params, reads.INTERACTION_SORTS, "date", "desc")
    if request.query_params.get("section") == "list" and await not_yet(request, ("interactions",)):
        return still_pending()
    async with services_of(request).pool.connection() as conn:
        rows, total = await reads.interactions_page(conn, account, listing)
    context = {"interactions": rows, "total": total, "listing": listing, "per_page": reads.PER_PAGE}
    if request.query_params.get("section") == "list":
        return templates.TemplateResponse(request, "interactions/_list.html", context)
    return templates.TemplateResponse(request, "interactions/index.html", context)


async def record(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
    data = await request.form()
    check_csrf(request, data)
    context = await contact_context(request, account, contact_id)
    context.update(blank_forms(context["contact"]))
    form = Form.read(data, FIELDS)
    form.required("interacted_on", "interaction_notes")
    form.a_date("interacted_on")
    form.at_most("interaction_notes", 20000)
    services = services_of(request)
    if form.ok and not form["replace"]:
        async with services.pool.connection() as conn:
            if await reads.has_interaction_on(conn, account, contact_id, form["interacted_on"]):
                form.fail(
                    "interacted_on",
                    "already has an interaction with this contact; tick "
                    "'Replace that day's notes' to update it",
                )
    if form.ok:
        try:
            async with services.pool.connection() as conn:
                done = await commands.record_interaction(
                    conn,
                    services.types,
                    account,
                    contact_id,
                    form["interacted_on"],
                    form["interaction_notes"],
                )
        except commands.ContactNotFound:
            raise NotFound() from None
        except InvalidPayload as invalid:
            form.payload_errors(invalid, PAYLOAD_TO_FORM)
    if not form.ok:
        context["interaction_form"] = form
        return form_error(
            request,
            "contacts/show.html",
            "contacts/_interaction_form.html",
            "interaction-form",
            context,
        )
    position = done.appended.position
    if is_htmx(request):
        pending = {"interacted_on": form["interacted_on"], "notes": form["interaction_notes"]}
        return templates.TemplateResponse(
            request,
            "contacts/_interactions.html",
            {
                **context,
                "pending": pending,
                "after": position,
                "reset_form": blank_forms(context["contact"])["interaction_form"],
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        position,
        f"/contacts/{contact_id}",
        f"Recorded the interaction of {form['interacted_on']}.",
    )
