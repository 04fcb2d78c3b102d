"""After a write: answer at once, and show the user their change once it is projected.

htmx requests get a fragment that shows the change as pending; it swaps in the projected
fragment when an SSE message says the projection moved (or at once, if it already has). Plain
form posts get a 303 after a bounded wait for the projection, so the next page shows the change.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
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
from crm.web.params import a_position
from crm.web.security import flash

WAIT_SECONDS = 2.0
BEHIND = "Saved. The page will show it when processing resumes."


Command = Callable[[AsyncConnection[Any], EventTypes], Awaitable[commands.Done]]


class NotFound(Exception):
    """Something that does not exist, or is another account's: both answer 404."""


async def attempt(
    request: Request,
    form: Form,
    command: Command,
    payload_fields: dict[str, str] | None = None,
) -> commands.Done | None:
    """Run a command if the form is valid; a refusal becomes an error on its form field.

    payload_fields maps event payload fields to form fields, for what only the schema checks
    and for the field a refusal names.
    """
    if not form.ok:
        return None
    services = services_of(request)
    try:
        async with services.pool.connection() as conn:
            return await command(conn, services.types)
    except commands.ContactNotFound:
        raise NotFound() from None
    except commands.CommandRefused as refused:
        form.fail(_field_for(refused, form, payload_fields or {}), str(refused))
    except InvalidPayload as invalid:
        form.payload_errors(invalid, payload_fields or {})
    return None


def _field_for(refused: commands.CommandRefused, form: Form, payload_fields: dict[str, str]) -> str:
    """The field of this form a refusal is shown beside: the one it names, or else the form's
    first field, where the reader starts. A form without fields cannot show it: 409, saying why.
    """
    named = payload_fields.get(refused.field or "", refused.field or "")
    if named in form.values:
        return named
    if not form.values:
        raise HTTPException(409, f"Refused: {refused}.")
    return next(iter(form.values))


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


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
    """For a fragment asked for with ?after=P: True while the projections are behind P.

    A malformed P counts as absent: the fragment is answered as it is now.
    """
    after = a_position(request.query_params.get("after"))
    if after is None:
        return False
    return not await projections_reached(services_of(request), names, after)


def still_pending() -> Response:
    """htmx swaps nothing on 204: the pending fragment stays until the next SSE message."""
    return Response(status_code=204)


def location_for_htmx(location: str) -> Response:
    """htmx follows this to a page of its own, like a redirect, keeping the SSE setup."""
    return Response(status_code=204, headers={"HX-Location": location})
