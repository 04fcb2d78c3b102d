"""The answers to a write, in one place: every write route hands its outcome to `respond`.

There are four: htmx gets a fragment that shows the change as pending, which swaps in the
projected fragment when an SSE message says the projection moved (or at once, if it already has);
htmx gets the form back with each problem beside its field (422); a plain form post gets a 303
after a bounded wait for the projections, so the next page shows the change; or the whole page
again with the problems (422).
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crm.bootstrap import Services
from crm.store import commands
from crm.store.event_types import EventTypes
from crm.store.validation import InvalidPayload
from crm.web.forms import Form
from crm.web.requests import NotFound, is_htmx, services_of
from crm.web.security import flash
from crm.web.templating import templates
from crm.web.tokens import tokens_of

WAIT_SECONDS = 2.0
BEHIND = "Saved. The page will show it when processing resumes."


Command = Callable[[AsyncConnection[Any], EventTypes], Awaitable[commands.Done]]


async def attempt(
    request: Request,
    form: Form,
    command: Command,
    payload_fields: Mapping[str, str] | None = None,
    then: Callable[[AsyncConnection[Any]], Awaitable[None]] | None = None,
) -> commands.Done | None:
    """Run a command if the form is valid; a refusal becomes an error on its form field.

    payload_fields maps event payload fields to form fields, for what only the schema checks
    and for the field a refusal names. `then` reads what the answer needs, on the same
    connection, once the command succeeded.
    """
    if not form.ok:
        return None
    services = services_of(request)
    try:
        async with services.pool.connection() as conn:
            done = await command(conn, services.types)
            if then is not None:
                await then(conn)
            return done
    except commands.ContactNotFound:
        raise NotFound() from None
    except commands.CommandRefused as refused:
        form.fail(_field_for(refused, form, payload_fields or {}), str(refused))
    except InvalidPayload as invalid:
        form.payload_errors(invalid, payload_fields or {})
    return None


def _field_for(
    refused: commands.CommandRefused, form: Form, payload_fields: Mapping[str, str]
) -> str:
    """The field of this form a refusal is shown beside: the one it names, or else the form's
    first field, where the reader starts. A form without fields cannot show it: 409, saying why.
    """
    named = payload_fields.get(refused.field or "", refused.field or "")
    if named in form.values:
        return named
    if not form.values:
        raise HTTPException(409, f"Refused: {refused}.")
    return next(iter(form.values))


async def projections_reached(services: Services, names: Sequence[str], position: int) -> bool:
    async with services.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM projections WHERE name = ANY(%s) AND position >= %s",
            (list(names), position),
        )
        row = await cursor.fetchone()
    return row is not None and row[0] == len(names)


async def wait_for_projections(
    services: Services, names: Sequence[str], position: int, timeout: float = WAIT_SECONDS
) -> bool:
    waits = (services.broadcaster.wait_for(name, position, timeout) for name in names)
    return all(await asyncio.gather(*waits))


async def redirect_after_write(
    request: Request,
    names: Sequence[str],
    position: int,
    location: str,
    message: str,
    location_if_behind: str | None = None,
) -> Response:
    """The no-JavaScript answer: wait (bounded) until the change is visible, then 303.

    If the projections are still behind, say so; a page that cannot show the change yet (a
    contact not projected yet) names a page that can (`location_if_behind`).
    """
    reached = await wait_for_projections(services_of(request), names, position)
    if not reached:
        flash(request, f"{message} {BEHIND}")
        return RedirectResponse(location_if_behind or location, status_code=303)
    flash(request, message)
    return RedirectResponse(location, status_code=303)


async def not_yet(request: Request, names: Sequence[str]) -> bool:
    """For a fragment asked for with ?after=T: True while the projections are behind the
    position token T was sealed from (crm/web/tokens.py).

    A malformed or forged T counts as absent: the fragment is answered as it is now.
    """
    after = tokens_of(request).opened(request.query_params.get("after"))
    if after is None:
        return False
    return not await projections_reached(services_of(request), names, after)


def still_pending() -> Response:
    """htmx swaps nothing on 204: the pending fragment stays until the next SSE message."""
    return Response(status_code=204)


def location_for_htmx(location: str) -> Response:
    """htmx follows this to a page of its own, like a redirect, keeping the SSE setup."""
    return Response(status_code=204, headers={"HX-Location": location})


def form_error(
    request: Request,
    page: str,
    partial: str,
    form_id: str,
    context: dict[str, Any],
    status_code: int = 422,
) -> Response:
    """422 (or 409 for a write refused as stale): the form again, entered values kept, each
    problem beside its field.

    htmx gets just the form's partial, retargeted onto the form (a 422 is swapped because
    base.html's htmx-config says so); a plain post gets the whole page.
    """
    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            partial,
            {**context, "form_id": form_id},
            status_code=status_code,
            headers={"HX-Retarget": f"#{form_id}", "HX-Reswap": "outerHTML"},
        )
    return templates.TemplateResponse(request, page, context, status_code=status_code)


@dataclass(frozen=True)
class Answer:
    """How a write is answered, whichever of the four answers it gets."""

    page: str  # the whole page the form is on: a plain post's 422
    form: str  # the form's partial, and
    form_id: str  # its element id: htmx's 422
    form_key: str  # the name the page's context gives the form
    pending: str  # the fragment that shows the change until it is projected: htmx's 200
    projections: tuple[str, ...]  # what must show the change before a plain post's 303
    location: str  # where that 303 goes,
    message: str  # and what the next page says
    location_if_behind: str | None = None  # where it goes if the wait ends first


Context = Callable[[], Awaitable[dict[str, Any]]]


async def respond(
    request: Request,
    answer: Answer,
    form: Form,
    done: commands.Done | None,
    context: Context,
    pending: dict[str, Any] | None = None,
    refused_status: int = 422,
) -> Response:
    """The answer to a write: `done` None when the form (or the command) refused it, answered
    `refused_status`.

    `context` gives the page's context (read only when a page or fragment is drawn); `pending`
    what the pending fragment shows of the change.
    """
    if done is None:
        page = {**await context(), answer.form_key: form, "form": form}
        return form_error(request, answer.page, answer.form, answer.form_id, page, refused_status)
    if is_htmx(request):
        after = tokens_of(request).seal(done.appended.position)  # never the position itself
        shown = {**await context(), "pending": pending, "after": after}
        return templates.TemplateResponse(request, answer.pending, shown)
    return await redirect_after_write(
        request,
        answer.projections,
        done.appended.position,
        answer.location,
        answer.message,
        answer.location_if_behind,
    )
