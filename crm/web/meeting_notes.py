"""Next-meeting notes: a day and Markdown notes, written or replaced."""

import logging

from starlette.requests import Request
from starlette.responses import Response

from crm.rendering import RENDER_BUDGET, Renderer, RendererUnavailable, RenderFailed
from crm.store import commands
from crm.web.contact_page import NOTES, PARTS, ContactWrite, respond_on_page
from crm.web.forms import Form
from crm.web.requests import services_of
from crm.web.routing import Routes

routes = Routes()
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


@routes.post("/contacts/{contact_id}/next_meeting", "PUT")
async def write_notes(request: Request) -> Response:
    write = await ContactWrite.read(request, NOTES)
    checker = services_of(request).note_checker
    await check_renders_in_time(checker, write.form, "meeting_notes", write.account)
    done = await write.attempt(
        lambda conn, types: commands.write_notes(
            conn, types, write.account, write.contact_id, write.payload, write.based_on
        )
    )
    message = "Saved the notes for the next meeting."
    saved = write.saved(done)
    return await respond_on_page(write, done, PARTS["notes"], message, saved)
