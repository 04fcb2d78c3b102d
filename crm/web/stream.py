"""GET /stream: server-sent events telling a page which projections moved for its account.

One connection per page. Each message is named after a projection; its data and id are the
projection's new position. Only news that concerns the signed-in account is sent (news that
names no accounts, such as a rebuild, may concern anyone and is sent to all). A reconnecting
browser sends Last-Event-ID; anything that moved past it is announced at once.
"""

from collections import Counter
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from crm.broadcaster import Broadcaster
from crm.web.params import a_position
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import LoginRequired, current_account

routes = Routes()

# The projections pages show; the accounts projection is read only at log-in.
LIVE = ("contacts", "interactions", "meeting_notes_emails")
# Open streams per account: a person has a few tabs and devices; one account opening thousands
# would hold memory (~30 KB each) and slow every other account's news.
MAX_STREAMS_PER_ACCOUNT = 20
_open: Counter[str] = Counter()


def _message(projection: str, position: int) -> ServerSentEvent:
    return ServerSentEvent(str(position), event=projection, id=str(position))


def _last_seen(request: Request) -> int | None:
    """The position a page last heard (a browser's Last-Event-ID, else ?since=); else None.

    A malformed value counts as absent: the page then hears only news from now on.
    """
    header = a_position(request.headers.get("Last-Event-ID"))
    return header if header is not None else a_position(request.query_params.get("since"))


@routes.get("/stream")
async def stream(request: Request) -> Response:
    try:
        account = await current_account(request)
    except LoginRequired:
        return Response("log in first", status_code=401)
    if _open[account] >= MAX_STREAMS_PER_ACCOUNT:
        return Response(
            f"at most {MAX_STREAMS_PER_ACCOUNT} open pages per account; close some",
            status_code=429,
        )
    broadcaster = services_of(request).broadcaster
    since = _last_seen(request)

    async def messages() -> AsyncIterator[ServerSentEvent]:
        # counted while the stream runs: a stream that never started holds nothing
        _open[account] += 1
        try:
            async for message in _news(broadcaster, account, since):
                yield message
        finally:
            _open[account] -= 1
            if not _open[account]:
                del _open[account]

    return EventSourceResponse(messages(), ping=15, headers={"X-Accel-Buffering": "no"})


async def _news(
    broadcaster: Broadcaster, account: str, since: int | None
) -> AsyncIterator[ServerSentEvent]:
    """What moved past `since`, then every advance that concerns the account, as it happens."""
    async with broadcaster.subscribe() as news:
        if since is not None:
            for name in LIVE:
                if broadcaster.positions.get(name, 0) > since:
                    yield _message(name, broadcaster.positions[name])
        while True:
            advanced = await news.get()
            if advanced.projection in LIVE and advanced.concerns(account):
                yield _message(advanced.projection, advanced.position)
