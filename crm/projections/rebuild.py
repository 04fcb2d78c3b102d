"""The replay driver: rebuild projections from the whole stream while the app keeps serving.

Fold every event in memory through the projections' own functions, COPY the result into fresh
shadow tables, then, in one transaction that holds each projection's position lock: apply the
events that arrived meanwhile to the shadows, swap them in for the live tables, and record the
new positions. Readers see the old table until that commit and the new one after it; a failure
anywhere before the commit leaves the live tables untouched.

Replay applies the poison-event policy too (crm/projections/poison.py): an event a projection
cannot fold, or whose notes cannot be rendered, is parked for that projection and reported, and
the replay goes on. What a replay parks replaces what was parked for the projections it rebuilt.
"""

import asyncio
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from crm.database import use_text_for_ids_and_dates
from crm.ids import canonical_key
from crm.names import REBUILD_LOCK
from crm.projections import poison, positions, tables
from crm.projections.apply import apply_events
from crm.projections.base import Handler, Projection, Row
from crm.projections.poison import ParkedEvent
from crm.projections.tables import copy_rows, markdown_texts, render_rows, rows_of, with_html
from crm.rendering import Renderer
from crm.store.event_types import EventTypes
from crm.store.events import Event, head_position, read_batch, stream_from_thread

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Rebuilt:
    projections: tuple[str, ...]
    events: int
    rows: dict[str, int]
    position: int
    seconds: float
    phases: dict[str, float]  # seconds spent folding, writing the shadows, catching up + swapping
    parked: list[ParkedEvent]


async def fold_stream(
    url: str,
    types: EventTypes,
    projections: Sequence[Projection[Any]],
    upto: int,
    progress: Progress | None = None,
    parked: list[ParkedEvent] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Every projection's state per key after events (0, upto]; and how many events were read.

    An event a fold function fails on is skipped for that projection and added to `parked`.
    """
    states: dict[str, dict[str, Any]] = {p.name: {} for p in projections}
    # event type -> (projection, fold function, key field, that projection's states): one dict
    # lookup per event and projection in the hot loop, the projection's own functions doing
    # the work
    routes: dict[str, list[tuple[Projection[Any], Handler[Any], str, dict[str, Any]]]] = {}
    for projection in projections:
        for event_type, handler in projection.handlers.items():
            routes.setdefault(event_type, []).append(
                (projection, handler, projection.key_column, states[projection.name])
            )
    parked = parked if parked is not None else []
    count = 0
    async for chunk in stream_from_thread(url, types, upto):
        for event in chunk:
            for projection, handler, key_field, by_key in routes.get(event.type, ()):
                try:  # free in Python 3.11 unless it raises
                    key = event.payload[key_field]
                    if len(key) != 36 or not key.islower():  # canonical_key's fast path, inline
                        key = canonical_key(key)
                    folded = handler(by_key.get(key), event)
                except Exception as error:
                    parked.append(ParkedEvent.of(projection, event, error, 1))
                    continue
                if folded is None:
                    by_key.pop(key, None)
                else:
                    by_key[key] = folded
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return states, count


async def _events_of_key(
    url: str, types: EventTypes, projection: Projection[Any], key: str, upto: int
) -> list[Event]:
    events: list[Event] = []
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        use_text_for_ids_and_dates(conn)
        position = 0
        # rare (a key whose rows failed): a scan of the stream is fine
        while batch := await read_batch(conn, types, position, 10_000):
            position = batch[-1].position
            events += [
                e
                for e in batch
                if e.position <= upto
                and projection.handles(e)
                and canonical_key(e.payload.get(projection.key_column)) == key
            ]
            if position >= upto:
                break
    return events


async def _refold_key(
    url: str,
    types: EventTypes,
    projection: Projection[Any],
    key: str,
    upto: int,
    renderer: Renderer,
    parked: list[ParkedEvent],
) -> list[Row]:
    """One key's rows, folding its events one at a time as the live projector does after a
    failure: an event whose fold, rows or rendering fails is parked and skipped."""
    state: Any = None
    rows: list[Row] = []
    for event in await _events_of_key(url, types, projection, key, upto):
        try:
            folded = projection.fold(state, event)
            new_rows = list(rows_of(projection, {key: folded}))
            new_rows = await render_rows(projection, new_rows, renderer)
        except Exception as error:
            if poison.is_transient(error):
                raise
            parked.append(ParkedEvent.of(projection, event, error, 1))
            continue
        state, rows = folded, new_rows
    return rows


async def _rendered_rows(
    url: str,
    types: EventTypes,
    projection: Projection[Any],
    states: dict[str, Any],
    upto: int,
    renderer: Renderer,
    parked: list[ParkedEvent],
) -> list[Row]:
    """The rows of every state, rendered; keys that fail are folded again event by event."""
    rows: list[Row] = []
    failing: list[str] = []
    for key, state in states.items():
        try:
            rows += rows_of(projection, {key: state})
        except Exception:
            failing.append(key)
    if projection.markdown_columns:
        html, failed = await renderer.render_some(markdown_texts(projection, rows))
        if failed:
            # which keys hold a note that cannot be rendered? their events decide which is parked
            unrenderable = {
                row[0]
                for row in rows
                if not failed.keys().isdisjoint(markdown_texts(projection, [row]))
            }
            failing += unrenderable
            rows = [row for row in rows if row[0] not in unrenderable]
        rows = with_html(projection, rows, html)
    for key in dict.fromkeys(failing):
        rows += await _refold_key(url, types, projection, key, upto, renderer, parked)
    return rows


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Folding and writing allocate millions of small acyclic objects; the cyclic GC would
    rescan the growing states again and again (a third of the run time) for nothing."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def shadow_name(table: str) -> str:
    return f"{table}__rebuild"


async def write_table(
    conn: AsyncConnection[Any], projection: Projection[Any], into: str, rows: list[Row]
) -> int:
    """Write rows into a new table `into` declared like the projection's; return the number of
    rows. The indexes are built after the COPY, which is faster."""
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(into)))
    await conn.execute(projection.create_table(into))
    count = await copy_rows(conn, projection, into, rows)
    for statement in projection.create_indexes(into):
        await conn.execute(statement)
    # a new table has no statistics: until autovacuum comes by, the planner would take an
    # account's 10,000 rows for a few and sort them all for a page of 50
    await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(into)))
    return count


async def swap_in(conn: AsyncConnection[Any], projection: Projection[Any], shadow: str) -> None:
    """Replace the projection's table by its shadow, giving the shadow's indexes their names.

    The live table may have been built by an older declaration, or not exist yet.
    """
    table = projection.table
    # whoever runs the replay (a superuser too), the table stays the runtime role's, which owns
    # `projections` (crm/roles.py): the app must go on writing to it
    cursor = await conn.execute(
        "SELECT tableowner FROM pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'projections'"
    )
    owner = await cursor.fetchone()
    if owner is not None:
        await conn.execute(
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(shadow), sql.Identifier(owner[0])
            )
        )
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    await conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(shadow), sql.Identifier(table))
    )
    renames = zip(projection.index_names(shadow), projection.index_names(table), strict=True)
    for shadow_index, index in renames:
        await conn.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(shadow_index), sql.Identifier(index)
            )
        )


async def build_table(
    url: str,
    types: EventTypes,
    projection: Projection[Any],
    into: str,
    upto: int,
    renderer: Renderer,
) -> list[ParkedEvent]:
    """Build a from-scratch copy of a projection into a new table; return what it parked."""
    parked: list[ParkedEvent] = []
    with cyclic_gc_paused():
        states, _ = await fold_stream(url, types, [projection], upto, parked=parked)
        rows = await _rendered_rows(
            url, types, projection, states[projection.name], upto, renderer, parked
        )
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await write_table(conn, projection, into, rows)
    return poison.distinct(parked)


async def _apply_or_park(
    conn: AsyncConnection[Any],
    projection: Projection[Any],
    events: list[Event],
    table: str,
    renderer: Renderer,
    parked: list[ParkedEvent],
) -> None:
    """Apply a batch to a shadow in a savepoint; if it fails, event by event, parking failures."""
    try:
        async with conn.transaction():
            await apply_events(conn, projection, events, renderer, table)
        return
    except Exception as error:
        if poison.is_transient(error):
            raise
        if len(events) == 1:
            parked.append(ParkedEvent.of(projection, events[0], error, 1))
            return
    for event in events:  # which one failed?
        await _apply_or_park(conn, projection, [event], table, renderer, parked)


async def _catch_up_and_swap(
    conn: AsyncConnection[Any],
    types: EventTypes,
    projections: Sequence[Projection[Any]],
    built_upto: int,
    renderer: Renderer,
    parked: list[ParkedEvent],
) -> int:
    async with conn.transaction():
        for projection in sorted(projections, key=lambda p: p.name):
            await positions.lock_position(conn, projection.name)
        # up to the head as it is now, not as it grows: under steady writes a loop that chased
        # the head would keep this transaction, and the projections' locks, open for ever. What
        # commits later the live projector applies after the swap, from the position recorded.
        head = await head_position(conn)
        position = built_upto
        while position < head and (events := await read_batch(conn, types, position, 10_000)):
            events = [event for event in events if event.position <= head]
            for projection in projections:
                shadow = shadow_name(projection.table)
                await _apply_or_park(conn, projection, events, shadow, renderer, parked)
            position = events[-1].position
        for projection in projections:
            await swap_in(conn, projection, shadow_name(projection.table))
            await positions.record_position(conn, projection.name, position, None)
            await positions.record_definition(conn, projection.name, projection.definition)
        await poison.replace_parked_for(conn, [p.name for p in projections], parked)
    return position


async def _write_shadow(url: str, projection: Projection[Any], rows: list[Row]) -> int:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await write_table(conn, projection, shadow_name(projection.table), rows)


async def _fold_and_write_shadows(
    url: str,
    types: EventTypes,
    projections: Sequence[Projection[Any]],
    upto: int,
    progress: Progress | None,
    phases: dict[str, float],
    renderer: Renderer,
    parked: list[ParkedEvent],
) -> tuple[int, dict[str, int]]:
    clock = time.perf_counter()
    with cyclic_gc_paused():
        states, count = await fold_stream(url, types, projections, upto, progress, parked)
        phases["fold"] = time.perf_counter() - clock

        async def render_and_write(projection: Projection[Any]) -> int:
            rows = await _rendered_rows(
                url, types, projection, states.pop(projection.name), upto, renderer, parked
            )
            return await _write_shadow(url, projection, rows)

        # one connection per table: while the worker renders one table's notes and Python
        # streams another's rows, the server copies and indexes the others on the other core
        counts = await asyncio.gather(*(render_and_write(p) for p in projections))
    phases["render+write"] = time.perf_counter() - clock - phases["fold"]
    return count, {p.table: n for p, n in zip(projections, counts, strict=True)}


async def rebuild(
    url: str,
    types: EventTypes,
    projections: Sequence[Projection[Any]],
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    renderer: Renderer | None = None,
) -> Rebuilt:
    started = time.perf_counter()
    phases: dict[str, float] = {}
    parked: list[ParkedEvent] = []
    own_renderer = renderer is None
    renderer = renderer or Renderer()
    try:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            use_text_for_ids_and_dates(conn)
            for projection in sorted(projections, key=lambda p: p.name):
                # held until this connection closes; a second rebuild waits its turn
                await conn.execute(
                    "SELECT pg_advisory_lock(%s, hashtext(%s))", (REBUILD_LOCK, projection.name)
                )
                await tables.widen(conn, projection)
            upto = await head_position(conn)
            if on_total is not None:
                cursor = await conn.execute("SELECT count(*) FROM events WHERE id <= %s", (upto,))
                total = await cursor.fetchone()
                on_total(int(total[0]) if total else 0)
            try:
                count, rows = await _fold_and_write_shadows(
                    url, types, projections, upto, progress, phases, renderer, parked
                )
                clock = time.perf_counter()
                position = await _catch_up_and_swap(
                    conn, types, projections, upto, renderer, parked
                )
                phases["swap"] = time.perf_counter() - clock
            finally:
                for projection in projections:
                    await conn.execute(
                        sql.SQL("DROP TABLE IF EXISTS {}").format(
                            sql.Identifier(shadow_name(projection.table))
                        )
                    )
    finally:
        if own_renderer:
            renderer.close()
    return Rebuilt(
        tuple(p.name for p in projections),
        count,
        rows,
        position,
        time.perf_counter() - started,
        phases,
        poison.distinct(parked),
    )
