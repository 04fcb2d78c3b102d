"""GET /stream: server-sent events telling a page which projections moved for its account.

One connection per page. Each message is named after a projection; its data and id are the
projection's new position. Only news that concerns the signed-in account is sent (news that
names no accounts, such as a rebuild, may concern anyone and is sent to all). A reconnecting
browser sends Last-Event-ID; anything that moved past it is announced at once.
"""

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from crm.web.params import a_position
from crm.web.security import LoginRequired, current_account
from crm.web.writes import services_of

# The projections pages show; the accounts projection is read only at log-in.
LIVE = ("contacts", "interactions", "meeting_notes_emails")


def _message(projection: str, position: int) -> ServerSentEvent:
    return ServerSentEvent(str(position), event=projection, id=str(position))


def _last_seen(request: Request) -> int | None:
    """The position a page last heard (a browser's Last-Event-ID, else ?since=); else None.

    A malformed value counts as absent: the page then hears only news from now on.
    """
    header = a_position(request.headers.get("Last-Event-ID"))
    return header if header is not None else a_position(request.query_params.get("since"))


async def stream(request: Request) -> Response:
    try:
        account = current_account(request)
    except LoginRequired:
        return Response("log in first", status_code=401)
    broadcaster = services_of(request).broadcaster
    since = _last_seen(request)

    async def messages() -> AsyncIterator[ServerSentEvent]:
        async with broadcaster.subscribe() as news:
            if since is not None:
                for name in LIVE:
                    if broadcaster.positions.get(name, 0) > since:
                        yield _message(name, broadcaster.positions[name])
            while True:
                advanced = await news.get()
                if advanced.projection in LIVE and advanced.concerns(account):
                    yield _message(advanced.projection, advanced.position)

    return EventSourceResponse(messages(), ping=15, headers={"X-Accel-Buffering": "no"})
