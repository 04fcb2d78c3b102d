"""Server-side sessions: who is logged in, kept in PostgreSQL so that ending one really ends it.

The browser's cookie (signed by Starlette's SessionMiddleware) carries a random token, the CSRF
token and flash messages. Only the token's SHA-256 is stored (sql/018_sessions.sql), so a copy
of the table logs nobody in. A session ends at log-out, when the account logs out its other
sessions or changes its password, after IDLE without use, or LIFETIME after log-in.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from crm.web.secret_tokens import digest, mint

IDLE = timedelta(days=14)
LIFETIME = timedelta(days=30)
# last_seen_at is written at most this often: a write per page view would cost more than it says
TOUCH_EVERY = timedelta(minutes=5)
# log-ins kept per account: a script logging in forever replaces its own oldest sessions
MAX_PER_ACCOUNT = 50
USER_AGENT_KEPT = 200


# What to wake in this process when some of an account's sessions end: its open live streams,
# which then check their own session at once (a stream in another process finds out within
# crm.web.stream.SESSION_CHECK_SECONDS)
_watchers: defaultdict[str, set[Callable[[], None]]] = defaultdict(set)


def watch(account_id: str, wake: Callable[[], None]) -> None:
    _watchers[account_id].add(wake)


def unwatch(account_id: str, wake: Callable[[], None]) -> None:
    _watchers[account_id].discard(wake)
    if not _watchers[account_id]:
        del _watchers[account_id]


def ended(account_id: str) -> None:
    """Some of the account's sessions ended: wake what watches them."""
    for wake in list(_watchers.get(account_id, ())):
        wake()


@dataclass(frozen=True)
class Session:
    """A logged-in browser: whose it is, and the hash that names it."""

    account_id: str
    email: str
    id_hash: bytes


@dataclass(frozen=True)
class Listed:
    """A session as the account page lists it."""

    id_hash: bytes
    user_agent: str
    created_at: datetime
    last_seen_at: datetime


# (what a user agent contains, what to call it), first match wins: Edge and Opera say "Chrome"
# too, and Chrome says "Safari"
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def agent_in_words(user_agent: str) -> str:
    """ "Firefox on Windows": enough to tell one's sessions apart; the whole string is shown on
    hover."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "An unknown browser"


async def start(conn: AsyncConnection[Any], account_id: str, email: str, user_agent: str) -> str:
    """A new session for the account; the token for the cookie."""
    token, token_digest = mint()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO sessions (id_hash, account_id, email, user_agent, expires_at)"
            " VALUES (%s, %s, %s, %s, now() + %s)",
            (token_digest, account_id, email, user_agent[:USER_AGENT_KEPT], IDLE),
        )
        await conn.execute(
            "DELETE FROM sessions WHERE account_id = %s AND (expires_at <= now() OR id_hash IN"
            " (SELECT id_hash FROM sessions WHERE account_id = %s"
            "  ORDER BY last_seen_at DESC OFFSET %s))",
            (account_id, account_id, MAX_PER_ACCOUNT),
        )
    return token


async def find(conn: AsyncConnection[Any], token: str) -> Session | None:
    """The live session the token names, or None; its expiry slides with use."""
    id_hash = digest(token)
    cursor = await conn.execute(
        "SELECT account_id::text, email, last_seen_at < now() - %s FROM sessions"
        " WHERE id_hash = %s AND expires_at > now()",
        (TOUCH_EVERY, id_hash),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    account_id, email, stale = row
    if stale:
        await conn.execute(
            "UPDATE sessions SET last_seen_at = now(),"
            " expires_at = least(created_at + %s, now() + %s) WHERE id_hash = %s",
            (LIFETIME, IDLE, id_hash),
        )
    return Session(account_id, email, id_hash)


async def alive(conn: AsyncConnection[Any], session: Session) -> bool:
    """Whether the session has not ended since it was found."""
    cursor = await conn.execute(
        "SELECT 1 FROM sessions WHERE id_hash = %s AND expires_at > now()", (session.id_hash,)
    )
    return await cursor.fetchone() is not None


async def end(conn: AsyncConnection[Any], token: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE id_hash = %s", (digest(token),))


async def end_others(conn: AsyncConnection[Any], session: Session) -> int:
    """End every session of the account but this one; how many ended."""
    cursor = await conn.execute(
        "DELETE FROM sessions WHERE account_id = %s AND id_hash <> %s",
        (session.account_id, session.id_hash),
    )
    return cursor.rowcount


async def listed(conn: AsyncConnection[Any], account_id: str) -> list[Listed]:
    """The account's live sessions, the most recently used first."""
    cursor = await conn.execute(
        "SELECT id_hash, user_agent, created_at, last_seen_at FROM sessions"
        " WHERE account_id = %s AND expires_at > now() ORDER BY last_seen_at DESC",
        (account_id,),
    )
    return [Listed(*row) for row in await cursor.fetchall()]
