"""Interactions: recording one with a contact, and every interaction of the account."""

from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.web import reads
from crm.web.contacts import (
    attempt_on_contact,
    contact_write,
    context_after_write,
    interaction_form,
    redirect_to_contact,
)
from crm.web.forms import Form
from crm.web.security import current_account
from crm.web.templating import form_error, templates
from crm.web.writes import is_htmx, not_yet, services_of, still_pending

FIELDS = ("interacted_on", "interaction_notes", "replace")
PAYLOAD_TO_FORM = {"interacted_on": "interacted_on", "notes": "interaction_notes"}


async def index(request: Request) -> Response:
    account = current_account(request)
    listing = reads.Listing.parse(request.query_params, reads.INTERACTION_SORTS, "date", "desc")
    fragment = request.query_params.get("section") == "list"
    if fragment and await not_yet(request, ("interactions",)):
        return still_pending()
    async with services_of(request).pool.connection() as conn:
        rows, total = await reads.interactions_page(conn, account, listing)
    context = {"interactions": rows, "total": total, "listing": listing, "per_page": reads.PER_PAGE}
    template = "interactions/_list.html" if fragment else "interactions/index.html"
    return templates.TemplateResponse(request, template, context)


async def record(request: Request) -> Response:
    write = await contact_write(request)
    form = Form.read(write.data, FIELDS)
    form.required("interacted_on", "interaction_notes")
    form.multi_line("interaction_notes")
    form.a_date("interacted_on")
    form.at_most("interaction_notes", 20000)
    done = await attempt_on_contact(
        request,
        write,
        form,
        lambda conn, types: commands.record_interaction(
            conn,
            types,
            write.account,
            write.contact_id,
            form["interacted_on"],
            form["interaction_notes"],
            replace=bool(form["replace"]),  # a day already recorded is refused without it
        ),
        PAYLOAD_TO_FORM,
    )
    if done is None:
        return form_error(
            request,
            "contacts/show.html",
            "contacts/_interaction_form.html",
            "interaction-form",
            {**await context_after_write(request, write), "interaction_form": form},
        )
    if is_htmx(request):
        pending = {"interacted_on": form["interacted_on"], "notes": form["interaction_notes"]}
        return templates.TemplateResponse(
            request,
            "contacts/_interactions.html",
            {
                **await context_after_write(request, write),
                "pending": pending,
                "after": done.appended.position,
                "reset_form": interaction_form(),
            },
        )
    return await redirect_to_contact(
        request,
        write,
        done.appended.position,
        f"Recorded the interaction of {form['interacted_on']}.",
    )
