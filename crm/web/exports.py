"""Your data out: GET /export/events.jsonl, the account's own events, oldest first.

One JSON object a line: the event's type, the version it is read as (the latest: older ones are
upcast), when, who caused it, and its payload without the fields marked "x-secret" (a password's
hash). Streamed a chunk at a time, each on a connection of its own, so that a large account's
export holds neither memory nor a connection for its whole length.
"""

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from crm.store.events import Event, of_account_after
from crm.store.fields import secret_fields
from crm.web.actors import actors_of
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import current_session

routes = Routes()
CHUNK = 1_000


def _line(event: Event, secret: frozenset[str], actors: dict[str, str]) -> bytes:
    shown: dict[str, Any] = {
        "type": event.type,
        "version": event.version,
        "at": event.created_at.isoformat(),
        "by": actors.get(event.entity_id, "someone"),
        "payload": {k: v for k, v in event.payload.items() if k not in secret},
    }
    return orjson.dumps(shown) + b"\n"


@routes.get("/export/events.jsonl")
async def events_export(request: Request) -> Response:
    session = await current_session(request)
    services = services_of(request)

    async def lines() -> AsyncIterator[bytes]:
        after = 0
        while True:
            async with services.pool.connection() as conn:
                chunk = await of_account_after(
                    conn, services.types, session.account_id, after, CHUNK
                )
                actors = await actors_of(conn, chunk, session.account_id)
            for event in chunk:
                yield _line(event, secret_fields(services.types.get(event.type)), actors)
            if len(chunk) < CHUNK:
                return
            after = chunk[-1].position

    headers = {"Content-Disposition": 'attachment; filename="crm-events.jsonl"'}
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers)
