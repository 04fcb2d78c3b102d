"""A contact's history: GET /contacts/{id}/history, every event about the contact, newest first;
and the contact as it was at a moment, GET /contacts/{id}?as_of=<date-time>.

Read from the event log itself, not a projection: it is the log, shown. Each entry says what
happened, when (in the account's time zone), who did it (the account, or a system process such
as the morning e-mail) and what changed: for each field, its value before and after, where
"before" is what the last event of the same part of the contact said (its details, its notes,
one day's interaction).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from crm.projections.base import Projection
from crm.projections.contacts import CONTACTS
from crm.projections.interactions import INTERACTIONS
from crm.store import commands
from crm.store.events import Event, about_contact
from crm.web.actors import actors_of
from crm.web.contact_page import contact_id_in, read_contact
from crm.web.requests import NotFound, services_of
from crm.web.routing import Routes
from crm.web.security import current_session
from crm.web.templating import templates
from crm.web.zones import account_zone

routes = Routes()
# entries a history page shows (the newest), and events a view of the past may replay: a
# contact written without end must not make one page read, fold and draw without end
SHOWN, REPLAYED = 500, 20_000
IDS = frozenset({"contact_id", "account_id"})
# what an entry is called, by event type
TITLES = {
    "contact-created": "Contact added",
    "contact-edited": "Details edited",
    "contact-deleted": "Contact deleted",
    "contact-tagged": "Tag added",
    "contact-untagged": "Tag removed",
    "interaction-recorded": "Interaction recorded",
    "next-meeting-notes-written": "Next-meeting notes written",
    "meeting-notes-email-sent": "Morning e-mail sent",
}
# the part of a contact an event rewrites: "before" is what the last event of the part said
PARTS = {"contact-created": "details", "contact-edited": "details"}


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Entry:
    position: int
    title: str
    at: datetime
    actor: str
    changes: list[Change]


def _part(event: Event) -> str:
    if event.type == "interaction-recorded":
        return f"interaction {event.payload['interacted_on']}"
    return PARTS.get(event.type, event.type)


def entries(events: Sequence[Event], actors: dict[str, str], zone: ZoneInfo) -> list[Entry]:
    """The history of one contact, newest first: each event with what it changed."""
    last: dict[str, dict[str, Any]] = {}
    built = []
    for event in events:
        fields = {k: v for k, v in event.payload.items() if k not in IDS}
        before = last.get(_part(event), {})
        changes = [
            Change(_label(name), before.get(name), value)
            for name, value in fields.items()
            if before.get(name) != value and (name in before or value not in ("", None, []))
        ]
        last[_part(event)] = fields
        title = TITLES.get(event.type, event.type)
        actor = actors.get(event.entity_id, "someone")
        built.append(
            Entry(event.position, title, event.created_at.astimezone(zone), actor, changes)
        )
    return built[::-1]


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Told:
    """What the log tells of one of the account's contacts, for a page about its past."""

    account_id: str
    contact_id: str
    contact: dict[str, Any] | None  # as the contacts projection shows it now
    events: list[Event]  # the newest, oldest first
    more: bool  # whether older events were left out
    actors: dict[str, str]
    zone: ZoneInfo
    moment: datetime | None  # the moment its events end at, if not now


async def _told(
    request: Request, newest: int, until: Callable[[ZoneInfo], datetime] | None = None
) -> Told:
    """The account's contact in the URL (404 if it is not one), and its newest events (up to
    the moment `until` reads in the account's zone)."""
    session = await current_session(request)
    contact_id = contact_id_in(request)
    services = services_of(request)
    async with services.pool.connection() as conn:
        if not await commands.owns_contact(conn, session.account_id, contact_id):
            raise NotFound()
        zone = await account_zone(conn, session.account_id)
        moment = None if until is None else until(zone)
        found = await about_contact(
            conn, services.types, session.account_id, contact_id, newest + 1, moment
        )
        events = found[-newest:]
        return Told(
            session.account_id,
            contact_id,
            await read_contact(conn, session.account_id, contact_id),
            events,
            len(found) > newest,
            await actors_of(conn, events, session.account_id),
            zone,
            moment,
        )


@routes.get("/contacts/{contact_id}/history")
async def history(request: Request) -> Response:
    told = await _told(request, SHOWN)
    context = {
        "contact": told.contact,
        "contact_id": told.contact_id,
        "entries": entries(told.events, told.actors, told.zone),
        "more": told.more,
        "zone": told.zone.key,
    }
    return templates.TemplateResponse(request, "contacts/history.html", context)


def _moment(raw: str, zone: ZoneInfo) -> datetime:
    """?as_of: an ISO date-time (a day alone is its end); one without a zone is the account's."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPException(
            400, "as_of must be a date and time written like 2026-12-03T09:30"
        ) from None
    if len(raw) == len("2026-12-03"):
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999_999)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _folded(projection: Projection[Any], events: Sequence[Event]) -> list[dict[str, Any]]:
    """The projection's rows for the contact, folded from these events alone, as its table
    would hold them (Markdown not rendered yet)."""
    state = None
    for event in events:
        if projection.handles(event):
            state = projection.fold(state, event)
    rows = projection.to_rows(state) if state is not None else []
    return [dict(zip(projection.columns, row, strict=True)) for row in rows]


async def _rendered(request: Request, contact: dict[str, Any]) -> dict[str, Any]:
    """The contact's Markdown columns rendered, as the projector would; what does not render
    is shown as its source."""
    sources = {html: contact[source] for html, source in CONTACTS.markdown_columns.items()}
    texts = [text for text in sources.values() if text]
    html, _ = await services_of(request).note_checker.render_some(texts)
    shown = {
        column: html.get(text, f"<pre>{escape(text)}</pre>") if text else None
        for column, text in sources.items()
    }
    return {**contact, **shown}


async def contact_as_of(request: Request) -> Response:
    """The contact's page as the events up to a moment make it: the same folds as the live
    projections, played over the contact's own events; nothing on it can be changed."""
    told = await _told(
        request, REPLAYED, until=lambda zone: _moment(request.query_params["as_of"], zone)
    )
    if told.more:
        raise HTTPException(
            422,
            f"This contact changed more than {REPLAYED:,} times before then: too many to"
            " replay here. Its history lists the latest changes.",
        )
    contacts = _folded(CONTACTS, told.events)
    interactions = sorted(
        _folded(INTERACTIONS, told.events), key=lambda row: row["interacted_on"], reverse=True
    )
    context = {
        "contact": await _rendered(request, contacts[0]) if contacts else None,
        "contact_id": told.contact_id,
        "interactions": interactions,
        "moment": told.moment.astimezone(told.zone) if told.moment else None,
        "zone": told.zone.key,
        "frozen": True,
    }
    return templates.TemplateResponse(request, "contacts/as_of.html", context)
