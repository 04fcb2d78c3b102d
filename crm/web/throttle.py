"""Throttling of log-in and sign-up: a wait that doubles with each failure past an allowance.

Counted per key in PostgreSQL (sql/019_throttles.sql), so every app process on the database
shares the counts and a restart forgets nothing. An attempt is claimed (checked and counted)
before any password is hashed: a throttled attempt costs a query, never argon2's 64 MiB.

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
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)  # an IPv4 client of a dual-stack listener
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def claim(conn: AsyncConnection[Any], keys: Sequence[Key]) -> None:
    """Count an attempt against every key before it is made, or raise Throttled (nothing
    counted) if one of them must still wait.

    Checked and counted under the keys' row locks: attempts sent at once take turns, so a burst
    gets no more tries than attempts one after the other would. What turns out not to be a
    failure is given back (refund) or forgotten.
    """
    names = sorted(key.name for key in keys)  # one order: two claims never deadlock
    free = {key.name: key.free for key in keys}
    async with conn.transaction():
        for name in names:
            await conn.execute(
                "INSERT INTO throttles (key, failures, last_failure_at)"
                " VALUES (%s, 0, clock_timestamp())"
                " ON CONFLICT (key) DO NOTHING",
                (name,),
            )
        cursor = await conn.execute(
            # the clock, not now(): that is when this transaction began, maybe before the
            # attempt whose row lock it waited for
            "SELECT key, failures, last_failure_at, clock_timestamp() FROM throttles"
            " WHERE key = ANY(%s) ORDER BY key FOR UPDATE",
            (names,),
        )
        left = max(
            (
                _left(failures, free[key], at, now)
                for key, failures, at, now in await cursor.fetchall()
            ),
            default=timedelta(0),
        )
        if left > timedelta(0):
            raise Throttled(max(1, round(left.total_seconds())))
        await conn.execute(
            "UPDATE throttles SET last_failure_at = clock_timestamp(), failures = CASE"
            " WHEN last_failure_at < clock_timestamp() - %s THEN 1"
            " ELSE least(failures + 1, 1000000) END"
            " WHERE key = ANY(%s)",
            (FORGET_AFTER, names),
        )
        await conn.execute(
            "DELETE FROM throttles WHERE key IN (SELECT key FROM throttles"
            " WHERE last_failure_at < now() - %s LIMIT %s)",
            (FORGET_AFTER, PURGE_BATCH),
        )


def _left(failures: int, free: int, last_failure_at: datetime, now: datetime) -> timedelta:
    wait = wait_after(failures, free)
    if not wait or now - last_failure_at >= FORGET_AFTER:
        return timedelta(0)
    return last_failure_at + wait - now


async def refund(conn: AsyncConnection[Any], keys: Sequence[Key]) -> None:
    """Give back what claim() counted against keys the attempt turned out not to fail."""
    await conn.execute(
        "UPDATE throttles SET failures = greatest(failures - 1, 0) WHERE key = ANY(%s)",
        ([key.name for key in keys],),
    )


async def forget(conn: AsyncConnection[Any], key: Key) -> None:
    """A success: the key's failures no longer count."""
    await conn.execute("DELETE FROM throttles WHERE key = %s", (key.name,))
