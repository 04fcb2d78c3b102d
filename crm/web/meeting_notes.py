"""Next-meeting notes: a day and Markdown notes, written or replaced."""

import logging

from starlette.requests import Request
from starlette.responses import Response

from crm.rendering import RENDER_BUDGET, Renderer, RendererUnavailable, RenderFailed
from crm.store import commands
from crm.web.contacts import (
    attempt_on_contact,
    contact_write,
    context_after_write,
    redirect_to_contact,
)
from crm.web.forms import Form
from crm.web.templating import form_error, templates
from crm.web.writes import is_htmx, services_of

FIELDS = ("meeting_on", "meeting_notes")
PAYLOAD_TO_FORM = {"meeting_on": "meeting_on", "notes": "meeting_notes"}
log = logging.getLogger(__name__)


# accounts with a note being checked now: one at a time each, so that one account's flood of
# costly notes queues behind itself, not in front of everyone's saves
_checking: set[str] = set()
TOO_INTRICATE = (
    f"is too intricate to format in time (the limit is {RENDER_BUDGET * 1000:.0f} ms of work):"
    " use fewer nested brackets, emphasis marks, entities or list levels"
)
NOT_CHECKED = "could not be checked just now; please save it again in a moment"


async def check_renders_in_time(renderer: Renderer, form: Form, name: str, account: str) -> None:
    """Refuse a note that would cost more than RENDER_BUDGET to render, or would render to more
    than MAX_HTML: measured in the renderer's worker process, never on the event loop, so that
    every stored note renders fast."""
    if not form.ok:
        return
    if account in _checking:
        form.fail(name, NOT_CHECKED)
        return
    _checking.add(account)
    try:
        outcome = await renderer.measure(form[name])
    except (RenderFailed, RendererUnavailable) as error:
        log.warning("a note could not be checked: %s", error)
        form.fail(name, NOT_CHECKED)
        return
    finally:
        _checking.discard(account)
    if outcome.html is None and outcome.cpu_seconds >= RENDER_BUDGET:
        form.fail(name, TOO_INTRICATE)
    elif outcome.html is None:
        form.fail(name, f"cannot be formatted: it {outcome.problem}")


async def write(request: Request) -> Response:
    posted = await contact_write(request)
    form = Form.read(posted.data, FIELDS)
    form.required("meeting_on", "meeting_notes")
    form.multi_line("meeting_notes")
    form.a_date("meeting_on")
    form.at_most("meeting_notes", 20000)
    await check_renders_in_time(
        services_of(request).note_checker, form, "meeting_notes", posted.account
    )
    done = await attempt_on_contact(
        request,
        posted,
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
            {**await context_after_write(request, posted), "notes_form": form},
        )
    if is_htmx(request):
        pending = {"meeting_on": form["meeting_on"], "notes": form["meeting_notes"]}
        return templates.TemplateResponse(
            request,
            "contacts/_notes.html",
            {
                **await context_after_write(request, posted),
                "notes_form": form,
                "pending": pending,
                "after": done.appended.position,
            },
        )
    return await redirect_to_contact(
        request, posted, done.appended.position, "Saved the notes for the next meeting."
    )
