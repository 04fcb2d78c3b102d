"""Interactions: recording one with a contact, and every interaction of the account."""

from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.web import reads
from crm.web.contacts import CONTACT_PROJECTIONS, blank_forms, contact_write
from crm.web.forms import Form
from crm.web.security import current_account
from crm.web.templating import form_error, templates
from crm.web.writes import (
    attempt,
    is_htmx,
    not_yet,
    redirect_after_write,
    services_of,
    still_pending,
)

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


async def _day_is_free(request: Request, form: Form, account: str, contact_id: str) -> None:
    """The key is contact + day: a second record for a day must say it replaces the first.

    Read from the projection: a moment's lag is harmless, since the event replaces anyway.
    """
    if not form.ok or form["replace"]:
        return
    async with services_of(request).pool.connection() as conn:
        if await reads.has_interaction_on(conn, account, contact_id, form["interacted_on"]):
            form.fail(
                "interacted_on",
                "already has an interaction with this contact; tick "
                "'Replace that day's notes' to update it",
            )


async def record(request: Request) -> Response:
    write = await contact_write(request)
    form = Form.read(write.data, FIELDS)
    form.required("interacted_on", "interaction_notes")
    form.multi_line("interaction_notes")
    form.a_date("interacted_on")
    form.at_most("interaction_notes", 20000)
    await _day_is_free(request, form, write.account, write.contact_id)
    done = await attempt(
        request,
        form,
        lambda conn, types: commands.record_interaction(
            conn,
            types,
            write.account,
            write.contact_id,
            form["interacted_on"],
            form["interaction_notes"],
        ),
        PAYLOAD_TO_FORM,
    )
    if done is None:
        return form_error(
            request,
            "contacts/show.html",
            "contacts/_interaction_form.html",
            "interaction-form",
            {**write.context, "interaction_form": form},
        )
    if is_htmx(request):
        pending = {"interacted_on": form["interacted_on"], "notes": form["interaction_notes"]}
        return templates.TemplateResponse(
            request,
            "contacts/_interactions.html",
            {
                **write.context,
                "pending": pending,
                "after": done.appended.position,
                "reset_form": blank_forms(write.context["contact"])["interaction_form"],
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        done.appended.position,
        f"/contacts/{write.contact_id}",
        f"Recorded the interaction of {form['interacted_on']}.",
    )
