"""Sign-ups waiting for their e-mail address to be confirmed (sql/025_sign_up_requests.sql).

Only the SHA-256 of a link's token is stored, and a link is taken once: following it twice, or
after EXPIRES, finds nothing.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection

from crm.web.secret_tokens import digest, mint

EXPIRES = timedelta(hours=24)


@dataclass(frozen=True)
class Waiting:
    email: str
    password_hash: str
    time_zone: str


async def store(conn: AsyncConnection[Any], waiting: Waiting) -> str:
    """Keep a sign-up until its link is followed; the link's token."""
    token, token_digest = mint()
    async with conn.transaction():
        await conn.execute("DELETE FROM sign_up_requests WHERE expires_at <= now()")
        await conn.execute(
            "INSERT INTO sign_up_requests (token_hash, email, password_hash, time_zone,"
            " expires_at) VALUES (%s, %s, %s, %s, now() + %s)",
            (token_digest, waiting.email, waiting.password_hash, waiting.time_zone, EXPIRES),
        )
    return token


async def peek(conn: AsyncConnection[Any], token: str) -> Waiting | None:
    """The sign-up a link names, if it is still waiting; it stays."""
    cursor = await conn.execute(
        "SELECT email, password_hash, time_zone FROM sign_up_requests"
        " WHERE token_hash = %s AND expires_at > now()",
        (digest(token),),
    )
    row = await cursor.fetchone()
    return None if row is None else Waiting(*row)


async def take(conn: AsyncConnection[Any], token: str) -> Waiting | None:
    """The sign-up a link names, removed: in the caller's transaction, so that it comes back if
    the account is not made."""
    cursor = await conn.execute(
        "DELETE FROM sign_up_requests WHERE token_hash = %s AND expires_at > now()"
        " RETURNING email, password_hash, time_zone",
        (digest(token),),
    )
    row = await cursor.fetchone()
    return None if row is None else Waiting(*row)
