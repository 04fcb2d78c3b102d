"""GET /stream: server-sent events telling a page which projections moved for its account.

One connection per page. Each message is named after a projection; its data and id are a
token of the projection's new position (crm/web/tokens.py), never the position: positions are
global, and would let an account watch the others' activity grow. Only news that concerns the
signed-in account is sent (news that names no accounts, such as a rebuild, may concern anyone
and is sent to all). A reconnecting browser sends Last-Event-ID (or a page ?since=): when it
is a token of ours, every live projection is announced at once, whether it moved or not, so
that the page catches up on what it missed and learns nothing of what others did meanwhile.
"""

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from crm.broadcaster import Advanced, Broadcaster
from crm.web import sessions
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import signed_in
from crm.web.tokens import Tokens, tokens_of

routes = Routes()
log = logging.getLogger(__name__)

# The projections pages show; the accounts projection is read only at log-in.
LIVE = ("contacts", "interactions", "meeting_notes_emails")
# Open streams per account: a person has a few tabs and devices; one account opening thousands
# would hold memory (~30 KB each) and slow every other account's news.
MAX_STREAMS_PER_ACCOUNT = 20
_open: defaultdict[str, set["asyncio.Queue[Advanced]"]] = defaultdict(set)
# put on a stream's queue to make it check its session now; it concerns no one
_RECHECK = Advanced("", 0, frozenset())
# How soon an open stream notices that its session ended (a log-out elsewhere, a password
# change): it then closes, and the browser's reconnection is answered 401.
SESSION_CHECK_SECONDS = 30.0


def _message(tokens: Tokens, projection: str, position: int) -> ServerSentEvent:
    token = tokens.seal(position)
    return ServerSentEvent(token, event=projection, id=token)


def _last_seen(request: Request, tokens: Tokens) -> int | None:
    """The position a page last heard (a browser's Last-Event-ID, else ?since=); else None.

    A malformed or forged token counts as absent: the page then hears only news from now on.
    """
    header = tokens.opened(request.headers.get("Last-Event-ID"))
    return header if header is not None else tokens.opened(request.query_params.get("since"))


@routes.get("/stream")
async def stream(request: Request) -> Response:
    session = await signed_in(request)
    if session is None:
        return Response("log in first", status_code=401)
    account = session.account_id
    if len(_open[account]) >= MAX_STREAMS_PER_ACCOUNT:
        return Response(
            f"at most {MAX_STREAMS_PER_ACCOUNT} open pages per account; close some",
            status_code=429,
        )
    broadcaster = services_of(request).broadcaster
    tokens = tokens_of(request)
    reconnected = _last_seen(request, tokens) is not None

    async def still_signed_in() -> bool:
        try:
            async with services_of(request).pool.connection() as conn:
                return await sessions.alive(conn, session)
        except psycopg.Error as error:  # a database restarting ends no one's session
            log.info("a stream's session could not be checked: %s", error)
            return True

    async def messages() -> AsyncIterator[ServerSentEvent]:
        async for message in _news(broadcaster, tokens, account, reconnected, still_signed_in):
            yield message

    return EventSourceResponse(messages(), ping=15, headers={"X-Accel-Buffering": "no"})


async def _news(
    broadcaster: Broadcaster,
    tokens: Tokens,
    account: str,
    reconnected: bool,
    still_signed_in: Callable[[], Awaitable[bool]],
) -> AsyncIterator[ServerSentEvent]:
    """Every live projection when reconnected, then every advance that concerns the account.

    A reconnecting page is not told only what moved past its token: whether anything moved
    would tell it that some account wrote meanwhile. Announcing all costs it one refresh of its
    live sections per reconnect.
    """
    async with broadcaster.subscribe() as news, _counted(account, news):
        if reconnected:
            for name in LIVE:
                yield _message(tokens, name, broadcaster.positions.get(name, 0))
        check_at = time.monotonic() + SESSION_CHECK_SECONDS
        while True:
            # every stream hears every account's news before filtering it: the session is checked
            # on a deadline, not only when news stops coming, and at once when woken
            wait = max(0.0, check_at - time.monotonic())
            try:
                advanced = await asyncio.wait_for(news.get(), wait)
            except TimeoutError:
                advanced = None
            if advanced is _RECHECK or time.monotonic() >= check_at:
                if not await still_signed_in():
                    return
                check_at = time.monotonic() + SESSION_CHECK_SECONDS
            elif advanced and advanced.projection in LIVE and advanced.concerns(account):
                yield _message(tokens, advanced.projection, advanced.position)


@asynccontextmanager
async def _counted(account: str, news: "asyncio.Queue[Advanced]") -> AsyncIterator[None]:
    """The stream counts against its account while it runs (a stream that never started holds
    nothing), and is woken when one of the account's sessions ends in this process."""

    def wake() -> None:
        if not news.full():
            news.put_nowait(_RECHECK)

    _open[account].add(news)
    sessions.watch(account, wake)
    try:
        yield
    finally:
        sessions.unwatch(account, wake)
        _open[account].discard(news)
        if not _open[account]:
            del _open[account]
