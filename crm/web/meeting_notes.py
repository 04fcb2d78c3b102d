"""Next-meeting notes: a day and Markdown notes, written or replaced."""

from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.store.validation import InvalidPayload
from crm.web.contacts import CONTACT_PROJECTIONS, NotFound, blank_forms, contact_context
from crm.web.forms import Form
from crm.web.security import check_csrf, current_account
from crm.web.templating import form_error, templates
from crm.web.writes import is_htmx, redirect_after_write, services_of

FIELDS = ("meeting_on", "meeting_notes")
PAYLOAD_TO_FORM = {"meeting_on": "meeting_on", "notes": "meeting_notes"}


async def write(request: Request) -> Response:
    account = current_account(request)
    contact_id = request.path_params["contact_id"]
    data = await request.form()
    check_csrf(request, data)
    context = await contact_context(request, account, contact_id)
    context.update(blank_forms(context["contact"]))
    form = Form.read(data, FIELDS)
    form.required("meeting_on", "meeting_notes")
    form.a_date("meeting_on")
    form.at_most("meeting_notes", 20000)
    services = services_of(request)
    if form.ok:
        try:
            async with services.pool.connection() as conn:
                done = await commands.write_next_meeting_notes(
                    conn,
                    services.types,
                    account,
                    contact_id,
                    form["meeting_on"],
                    form["meeting_notes"],
                )
        except commands.ContactNotFound:
            raise NotFound() from None
        except InvalidPayload as invalid:
            form.payload_errors(invalid, PAYLOAD_TO_FORM)
    if not form.ok:
        context["notes_form"] = form
        return form_error(
            request, "contacts/show.html", "contacts/_notes_form.html", "notes-form", context
        )
    position = done.appended.position
    if is_htmx(request):
        pending = {"meeting_on": form["meeting_on"], "notes": form["meeting_notes"]}
        return templates.TemplateResponse(
            request,
            "contacts/_notes.html",
            {
                **context,
                "notes_form": form,
                "pending": pending,
                "after": position,
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        position,
        f"/contacts/{contact_id}",
        "Saved the notes for the next meeting.",
    )
