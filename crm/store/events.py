"""Appending events and reading them back in position order."""

import asyncio
import queue
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg import AsyncConnection

from crm.database import use_text_for_ids_and_dates
from crm.store.event_types import EventType, EventTypes
from crm.store.upcasters import UPCASTERS
from crm.store.upcasting import Upcaster, to_latest
from crm.store.validation import validate_payload


class Event(NamedTuple):
    position: int
    type: str
    version: int
    payload: dict[str, Any]
    entity_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Appended:
    position: int
    created_at: datetime


async def append(
    conn: AsyncConnection[Any],
    types: EventTypes,
    event_type: str,
    payload: dict[str, Any],
    entity_id: uuid.UUID | str,
) -> Appended:
    """Validate the payload against its type's latest schema version, then store it: an
    append always writes the latest (older versions are only ever read, and upcast).

    Raises InvalidPayload (naming each failing field) before anything is written. Runs in the
    caller's transaction if one is open, so other writes can commit atomically with the event.
    """
    return await store_as(conn, types, types.get(event_type), payload, entity_id)


async def store_as(
    conn: AsyncConnection[Any],
    types: EventTypes,
    version: EventType,
    payload: dict[str, Any],
    entity_id: uuid.UUID | str,
) -> Appended:
    """Store a payload as exactly this version of its type, validated against it: append()'s
    work, and how a test writes what an older crm stored."""
    validate_payload(version, payload)
    cursor = await conn.execute(
        "INSERT INTO events (event_type_id, entity_id, payload) VALUES (%s, %s, %s::jsonb)"
        " RETURNING id, created_at",
        (types.id_of(version), entity_id, orjson.dumps(payload).decode()),
    )
    row = await cursor.fetchone()
    assert row is not None
    return Appended(row[0], row[1])


_COLUMNS = "SELECT id, event_type_id, payload::text, entity_id::text, created_at FROM events"
_SELECT = _COLUMNS + " WHERE id > %s AND id <= %s ORDER BY id"
_SELECT_AFTER = _COLUMNS + " WHERE id > %s ORDER BY id LIMIT %s"


# per stored event type id: its name, the version handlers see (the latest), and the function
# lifting its payload there (None when it is stored as the latest)
_Reading = tuple[str, int, Upcaster | None]


def _readings(types: EventTypes) -> dict[int, _Reading]:
    return {
        type_id: (name, types.latest_version(name), to_latest(types, name, version, UPCASTERS))
        for (name, version), type_id in types.ids.items()
    }


async def read_batch(
    conn: AsyncConnection[Any], types: EventTypes, after: int, limit: int
) -> list[Event]:
    """The next committed events after a position. Appends are serialized (sql/004), so every
    event below the highest visible position is already visible: nothing can appear behind it."""
    readings = _readings(types)
    cursor = await conn.execute(_SELECT_AFTER, (after, limit))
    return [_event(row, readings) for row in await cursor.fetchall()]


async def stream_from_thread(
    url: str, types: EventTypes, upto: int, chunk: int = 20_000
) -> AsyncIterator[list[Event]]:
    """Every event in (0, upto], in chunks, through a server-side cursor (bounded memory).

    A thread reads and decodes the next chunks while the caller folds this one: the server
    producing rows and the socket reads overlap with the caller's work (the reader waits in
    recv() without the GIL), which matters on a machine with two cores.
    """
    readings = _readings(types)
    chunks: queue.Queue[list[Event] | BaseException | None] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def hand_over(item: list[Event] | BaseException | None) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            with psycopg.connect(url) as conn:
                use_text_for_ids_and_dates(conn)
                with conn.cursor(name="crm_event_stream") as cursor:
                    cursor.execute(_SELECT, (0, upto))
                    while not stop.is_set() and (rows := cursor.fetchmany(chunk)):
                        hand_over([_event(row, readings) for row in rows])
            hand_over(None)
        except BaseException as error:  # handed to the caller, raised there
            hand_over(error)

    def take() -> list[Event] | BaseException | None:
        # in short waits: a caller cancelled mid-stream (a shutdown during a rebuild) sets stop,
        # and a thread blocked in get() for ever would hold the loop's executor, and its
        # shutdown, for ever
        while not stop.is_set():
            try:
                return chunks.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    reader = threading.Thread(target=read, name="crm-event-reader", daemon=True)
    reader.start()
    try:
        while (item := await asyncio.to_thread(take)) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        await asyncio.to_thread(reader.join)


async def about_contact(
    conn: AsyncConnection[Any],
    types: EventTypes,
    account_id: str,
    contact_id: str,
    newest: int,
    until: datetime | None = None,
) -> list[Event]:
    """The newest events about one of the account's contacts (up to `until`, if given), at most
    `newest` of them, oldest first, as handlers see them (the latest version). Found by the
    contact's id in the payload (sql/017's index), and the account's id there too: no event of
    another account's, whatever a contact id says. Bounded: a contact written a million times
    must not make a page read a million rows."""
    readings = _readings(types)
    cursor = await conn.execute(
        _COLUMNS + " WHERE payload->>'contact_id' = %s AND payload->>'account_id' = %s"
        " AND (%s::timestamptz IS NULL OR created_at <= %s) ORDER BY id DESC LIMIT %s",
        (contact_id, account_id, until, until, newest),
    )
    return [_event(row, readings) for row in reversed(await cursor.fetchall())]


@dataclass(frozen=True)
class AccountFilter:
    """Which of an account's events: before a position (the page before), of some types, in a
    span of time; None: any."""

    before: int | None = None
    types: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None


async def of_account(
    conn: AsyncConnection[Any],
    types: EventTypes,
    account_id: str,
    chosen: AccountFilter,
    limit: int,
) -> list[Event]:
    """The account's events, newest first, as handlers see them (sql/021's index): those whose
    payload names the account, whoever caused them."""
    type_ids = None
    if chosen.types is not None:
        type_ids = [i for (name, _), i in types.ids.items() if name in chosen.types]
    cursor = await conn.execute(
        _COLUMNS + " WHERE payload->>'account_id' = %(account)s"
        " AND (%(before)s::bigint IS NULL OR id < %(before)s)"
        " AND (%(types)s::int[] IS NULL OR event_type_id = ANY(%(types)s))"
        " AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)"
        " ORDER BY id DESC LIMIT %(limit)s",
        {
            "account": account_id,
            "before": chosen.before,
            "types": type_ids,
            "since": chosen.since,
            "until": chosen.until,
            "limit": limit,
        },
    )
    readings = _readings(types)
    return [_event(row, readings) for row in await cursor.fetchall()]


async def of_account_after(
    conn: AsyncConnection[Any], types: EventTypes, account_id: str, after: int, limit: int
) -> list[Event]:
    """The account's events after a position, oldest first (an export's next chunk)."""
    cursor = await conn.execute(
        _COLUMNS + " WHERE payload->>'account_id' = %s AND id > %s ORDER BY id LIMIT %s",
        (account_id, after, limit),
    )
    readings = _readings(types)
    return [_event(row, readings) for row in await cursor.fetchall()]


async def head_position(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT coalesce(max(id), 0) FROM events")).fetchone()
    assert row is not None
    return int(row[0])


def _event(row: tuple[Any, ...], readings: dict[int, _Reading]) -> Event:
    """An event as handlers see it: of its type's latest version, whatever version it was
    stored as."""
    name, version, lift = readings[row[1]]
    payload = orjson.loads(row[2])
    return Event(row[0], name, version, payload if lift is None else lift(payload), row[3], row[4])
