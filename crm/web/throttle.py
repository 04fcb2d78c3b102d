"""Throttling of log-in and sign-up: a wait that doubles with each failure past an allowance.

Counted per key in PostgreSQL (sql/019_throttles.sql), so every app process on the database
shares the counts and a restart forgets nothing. A request is checked before any password is
hashed: a throttled attempt costs a query, never argon2's 64 MiB.

Why not a rate-limit library: `limits` (slowapi's) counts hits in fixed or moving windows, in
memory (one process's view) or in Redis/Memcached/MongoDB, none of which crm runs. What is wanted
here is a back-off on failures, shared through the database crm already has.
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request

# the longest wait, and how long a quiet key is remembered
MAX_WAIT = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)
# stale rows deleted by each failure: the table stays as small as the last hour's failures
PURGE_BATCH = 100


@dataclass(frozen=True)
class Key:
    """What is counted ("log-in:account:ada@example.com"), and the failures it may have
    before it must wait."""

    name: str
    free: int


class Throttled(Exception):
    """Too many recent failures for one of the keys: try again in `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"try again in {seconds} s")
        self.seconds = seconds


def wait_after(failures: int, free: int) -> timedelta:
    """How long to wait after the last failure: nothing within the allowance, then 1 s, 2 s,
    4 s... up to MAX_WAIT."""
    beyond = failures - free
    if beyond < 0:
        return timedelta(0)
    if beyond >= 10:  # 2**10 s is past MAX_WAIT; no huge powers for a key failed a million times
        return MAX_WAIT
    return min(timedelta(seconds=2**beyond), MAX_WAIT)


def client_address(request: Request) -> str:
    """The client's address as counted: an IPv6 client by its /64, which one host holds whole."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def check(conn: AsyncConnection[Any], keys: Sequence[Key]) -> None:
    """Throttled if any key must still wait."""
    cursor = await conn.execute(
        "SELECT key, failures, last_failure_at, now() FROM throttles WHERE key = ANY(%s)",
        ([key.name for key in keys],),
    )
    free = {key.name: key.free for key in keys}
    left = timedelta(0)
    for name, failures, last_failure_at, now in await cursor.fetchall():
        left = max(left, _left(failures, free[name], last_failure_at, now))
    if left > timedelta(0):
        raise Throttled(max(1, round(left.total_seconds())))


def _left(failures: int, free: int, last_failure_at: datetime, now: datetime) -> timedelta:
    if now - last_failure_at >= FORGET_AFTER:
        return timedelta(0)
    return last_failure_at + wait_after(failures, free) - now


async def failed(conn: AsyncConnection[Any], keys: Sequence[Key]) -> None:
    """Count a failure against every key; a key quiet for FORGET_AFTER starts again at one."""
    async with conn.transaction():
        for key in sorted(keys, key=lambda k: k.name):  # one order: two failures never deadlock
            await conn.execute(
                "INSERT INTO throttles (key, failures, last_failure_at) VALUES (%s, 1, now())"
                " ON CONFLICT (key) DO UPDATE SET last_failure_at = now(), failures ="
                " CASE WHEN throttles.last_failure_at < now() - %s THEN 1"
                " ELSE least(throttles.failures + 1, 1000000) END",
                (key.name, FORGET_AFTER),
            )
        await conn.execute(
            "DELETE FROM throttles WHERE key IN (SELECT key FROM throttles"
            " WHERE last_failure_at < now() - %s LIMIT %s)",
            (FORGET_AFTER, PURGE_BATCH),
        )


async def forget(conn: AsyncConnection[Any], key: Key) -> None:
    """A success: the key's failures no longer count."""
    await conn.execute("DELETE FROM throttles WHERE key = %s", (key.name,))
