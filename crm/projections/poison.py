"""The poison-event policy: one event that a projection cannot apply never stops it for everyone.

A failure that is not a lost database or renderer (those are retried until they come back) is
retried a few times with backoff; if the same event still fails, it is *parked* for that
projection: recorded in parked_events with its error and traceback, and the projection moves
past it in the same transaction. Other projections are not affected. A parked event stays listed
(/health, the contact's page, `python -m crm.parked`) until a replay of that projection applies
it, which is how a fix is rolled out: `python -m crm.parked --retry`.
"""

import traceback
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection

from crm.ids import canonical_key
from crm.projections import positions
from crm.projections.base import Projection
from crm.rendering import RendererUnavailable
from crm.store.event_types import EventTypes
from crm.store.events import Event, read_batch

_LIST_ERROR = 500  # characters of an error shown in listings


@dataclass(frozen=True)
class ParkedEvent:
    projection: str
    event: Event
    subject_key: str
    error: str
    traceback: str
    attempts: int

    @classmethod
    def of(
        cls, projection: Projection[Any], event: Event, error: BaseException, attempts: int
    ) -> "ParkedEvent":
        return cls(
            projection.name,
            event,
            canonical_key(event.payload.get(projection.key_column, "")),
            f"{type(error).__name__}: {error}",
            "".join(traceback.format_exception(error)),
            attempts,
        )


# SQLSTATE classes and codes that say the database, not the event, failed: connection lost (08),
# server shutting down or starting (57P0x), query cancelled (57014), out of resources (53),
# serialization failure or deadlock (40). ProgramLimitExceeded (54, e.g. an index row too big)
# is an OperationalError in psycopg but is the event's: retrying cannot help.
_TRANSIENT_CLASSES = ("08", "53", "40")
_TRANSIENT_CODES = ("57P01", "57P02", "57P03", "57014", "55P03")


def is_transient(error: BaseException) -> bool:
    """Failures of the surroundings (retried forever), not of the event (retried, then parked)."""
    if isinstance(error, RendererUnavailable | TimeoutError | psycopg.InterfaceError):
        return True
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        if state is None:  # raised by the client: the connection is gone, or a pool timed out
            return isinstance(error, psycopg.OperationalError)
        return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_CODES
    return False


async def record(conn: AsyncConnection[Any], items: list[ParkedEvent]) -> None:
    """Insert parked events (in the caller's transaction); parking one again updates it."""
    for item in items:
        await conn.execute(
            "INSERT INTO parked_events"
            " (projection, position, subject_key, error, traceback, attempts)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (projection, position) DO UPDATE SET error = excluded.error,"
            " traceback = excluded.traceback, attempts = excluded.attempts,"
            " parked_at = now()",
            (
                item.projection,
                item.event.position,
                item.subject_key,
                item.error,
                item.traceback,
                item.attempts,
            ),
        )


async def park_next(conn: AsyncConnection[Any], types: EventTypes, item: ParkedEvent) -> bool:
    """Park the projection's next event and move its position past it, in one transaction.

    False if the projection is no longer just before that event (another process moved it).
    """
    async with conn.transaction():
        position = await positions.lock_position(conn, item.projection)
        upcoming = await read_batch(conn, types, position, 1)
        if not upcoming or upcoming[0].position != item.event.position:
            return False
        await record(conn, [item])
        account = item.event.payload.get("account_id")
        await positions.record_position(
            conn, item.projection, item.event.position, {account} if account else set()
        )
    return True


async def replace_parked_for(
    conn: AsyncConnection[Any], projection_names: list[str], items: list[ParkedEvent]
) -> None:
    """After a replay of these projections: what it parked is all that stays parked for them."""
    await conn.execute("DELETE FROM parked_events WHERE projection = ANY(%s)", (projection_names,))
    await record(conn, items)


def distinct(items: list[ParkedEvent]) -> list[ParkedEvent]:
    """One entry per projection and event: replay may meet a failing event twice (in the fold,
    then again when it folds that key event by event)."""
    return list({(item.projection, item.event.position): item for item in items}.values())


async def listing(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Every parked event, oldest first, without payloads (they may hold personal data)."""
    cursor = await conn.execute(
        "SELECT p.projection, p.position, t.name, p.subject_key, p.attempts, p.parked_at,"
        " left(p.error, %s)"
        " FROM parked_events p JOIN events e ON e.id = p.position"
        " JOIN event_types t ON t.id = e.event_type_id ORDER BY p.position, p.projection",
        (_LIST_ERROR,),
    )
    names = ("projection", "position", "event_type", "key", "attempts", "parked_at", "error")
    return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


async def parts_parked_for(conn: AsyncConnection[Any], subject_key: str) -> list[str]:
    """The projections that could not apply some event about this contact or account."""
    cursor = await conn.execute(
        "SELECT DISTINCT projection FROM parked_events WHERE subject_key = %s ORDER BY 1",
        (subject_key,),
    )
    return [row[0] for row in await cursor.fetchall()]
