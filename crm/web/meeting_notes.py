"""Next-meeting notes: a day and Markdown notes, written or replaced."""

from starlette.requests import Request
from starlette.responses import Response

from crm.store import commands
from crm.web.contacts import CONTACT_PROJECTIONS, contact_write
from crm.web.forms import Form
from crm.web.templating import form_error, templates
from crm.web.writes import attempt, is_htmx, redirect_after_write

FIELDS = ("meeting_on", "meeting_notes")
PAYLOAD_TO_FORM = {"meeting_on": "meeting_on", "notes": "meeting_notes"}


async def write(request: Request) -> Response:
    posted = await contact_write(request)
    form = Form.read(posted.data, FIELDS)
    form.required("meeting_on", "meeting_notes")
    form.multi_line("meeting_notes")
    form.a_date("meeting_on")
    form.at_most("meeting_notes", 20000)
    done = await attempt(
        request,
        form,
        lambda conn, types: commands.write_next_meeting_notes(
            conn,
            types,
            posted.account,
            posted.contact_id,
            form["meeting_on"],
            form["meeting_notes"],
        ),
        PAYLOAD_TO_FORM,
    )
    if done is None:
        return form_error(
            request,
            "contacts/show.html",
            "contacts/_notes_form.html",
            "notes-form",
            {**posted.context, "notes_form": form},
        )
    if is_htmx(request):
        pending = {"meeting_on": form["meeting_on"], "notes": form["meeting_notes"]}
        return templates.TemplateResponse(
            request,
            "contacts/_notes.html",
            {
                **posted.context,
                "notes_form": form,
                "pending": pending,
                "after": done.appended.position,
            },
        )
    return await redirect_after_write(
        request,
        CONTACT_PROJECTIONS,
        done.appended.position,
        f"/contacts/{posted.contact_id}",
        "Saved the notes for the next meeting.",
    )
