"""A contact's history: GET /contacts/{id}/history, every event about the contact, newest first.

Read from the event log itself, not a projection: it is the log, shown. Each entry says what
happened, when (in the account's time zone), who did it (the account, or a system process such
as the morning e-mail) and what changed: for each field, its value before and after, where
"before" is what the last event of the same part of the contact said (its details, its notes,
one day's interaction).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

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


@routes.get("/contacts/{contact_id}/history")
async def history(request: Request) -> Response:
    session = await current_session(request)
    contact_id = contact_id_in(request)
    services = services_of(request)
    async with services.pool.connection() as conn:
        if not await commands.owns_contact(conn, session.account_id, contact_id):
            raise NotFound()
        contact = await read_contact(conn, session.account_id, contact_id)
        events = await about_contact(conn, services.types, session.account_id, contact_id)
        actors = await actors_of(conn, events, session.account_id)
        zone = await account_zone(conn, session.account_id)
    context = {
        "contact": contact,
        "contact_id": contact_id,
        "entries": entries(events, actors, zone),
        "zone": zone.key,
    }
    return templates.TemplateResponse(request, "contacts/history.html", context)
