"""The account's event browser: GET /events, its own events, newest first, filtered by type and
dates, a page at a time.

Only events whose payload names the account are read (crm.store.events.of_account); fields marked
"x-secret" in their schema (a password's hash) are never shown; the page before is asked for with
a sealed token of a position, never a position (positions count every account's events).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from crm.store.event_types import EventTypes
from crm.store.events import AccountFilter, Event, of_account
from crm.store.fields import secret_fields
from crm.web.actors import actors_of
from crm.web.forms import Form
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import current_session
from crm.web.templating import templates
from crm.web.tokens import tokens_of
from crm.web.zones import account_zone

routes = Routes()
PER_PAGE = 50
FILTERS = ("type", "from", "to")
HIDDEN = "(not shown)"
SHOWN_IDS = frozenset({"contact_id"})  # the account's own id is on every event: not repeated


@dataclass(frozen=True)
class Shown:
    type: str
    version: int
    at: datetime
    actor: str
    contact_id: str | None
    fields: list[tuple[str, Any]]


def _shown(event: Event, types: EventTypes, actors: dict[str, str], zone: ZoneInfo) -> Shown:
    secret = secret_fields(types.get(event.type))
    fields = [
        (name, HIDDEN if name in secret else value)
        for name, value in event.payload.items()
        if name != "account_id"
    ]
    return Shown(
        event.type,
        event.version,
        event.created_at.astimezone(zone),
        actors.get(event.entity_id, "someone"),
        event.payload.get("contact_id"),
        fields,
    )


def _read_filters(
    request: Request, types: EventTypes, zone: ZoneInfo
) -> tuple[Form, AccountFilter]:
    """The filter form as sent, each bad value named beside its field, and what it selects."""
    form = Form({name: request.query_params.get(name, "").strip() for name in FILTERS})
    names = sorted({name for name, _ in types.by_key})
    if form["type"] and form["type"] not in names:
        form.fail("type", "must be one of the event types listed")
    days = {name: _day(form, name) for name in ("from", "to")}
    if days["from"] and days["to"] and days["from"] > days["to"]:
        form.fail("to", "must not be before the first day")
    before = tokens_of(request).opened(request.query_params.get("before"))
    chosen = AccountFilter(
        before=before,
        types=(form["type"],) if form["type"] and form.ok else None,
        since=_start_of(days["from"], zone),
        until=_start_of(days["to"] and days["to"] + timedelta(days=1), zone),
    )
    return form, chosen


def _day(form: Form, name: str) -> date | None:
    if not form[name]:
        return None
    try:
        return date.fromisoformat(form[name])
    except ValueError:
        form.fail(name, "must be a day written like 2026-12-03")
        return None


def _start_of(day: date | None, zone: ZoneInfo) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), zone)


@routes.get("/events")
async def event_log(request: Request) -> Response:
    session = await current_session(request)
    services = services_of(request)
    async with services.pool.connection() as conn:
        zone = await account_zone(conn, session.account_id)
        form, chosen = _read_filters(request, services.types, zone)
        found: list[Event] = []
        if form.ok:
            found = await of_account(conn, services.types, session.account_id, chosen, PER_PAGE + 1)
        actors = await actors_of(conn, found, session.account_id)
    page, more = found[:PER_PAGE], len(found) > PER_PAGE
    context = {
        "form": form,
        "type_names": sorted({name for name, _ in services.types.by_key}),
        "events": [_shown(event, services.types, actors, zone) for event in page],
        "older": tokens_of(request).seal(page[-1].position) if more else None,
        "zone": zone.key,
    }
    status = 200 if form.ok else 422
    return templates.TemplateResponse(request, "events.html", context, status_code=status)
