"""Reading and writing a projection's rows, shared by the live projector and replay."""

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from crm.projections import positions
from crm.projections.base import Projection, Row
from crm.rendering import Renderer


async def install(
    conn: AsyncConnection[Any], projection: Projection[Any], stream_empty: bool
) -> None:
    """Create the projection's table if it has none, and register it.

    A new projection over an empty stream is built as it stands; over existing events, or over a
    table an older declaration built, the stored definition differs from the projection's and the
    projector rebuilds the table from the stream (blue/green) before anything else.
    """
    exists = await (await conn.execute("SELECT to_regclass(%s)", (projection.table,))).fetchone()
    created = exists is None or exists[0] is None
    if created:
        await conn.execute(projection.create_table())
        for statement in projection.create_indexes():
            await conn.execute(statement)
    else:  # before anything is served: pages may read a column the rebuild is about to fill
        await widen(conn, projection)
    built = projection.definition if created and stream_empty else None
    if not await positions.register(conn, projection.name, built) and created:
        # registered before, its table gone: its position says nothing about this empty table
        await positions.record_definition(conn, projection.name, None)


async def widen(conn: AsyncConnection[Any], projection: Projection[Any]) -> None:
    """Add to the live table each declared column it lacks, empty and nullable (at once, without
    rewriting the table): while the table is rebuilt, pages that read a new column find it there,
    empty, until the rebuilt table is swapped in. A column whose type changed keeps its old type
    until then."""
    cursor = await conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attnum > 0 AND NOT attisdropped",
        (projection.table,),
    )
    existing = {name for (name,) in await cursor.fetchall()}
    if not existing:
        return  # no table yet: nothing reads it
    for column in projection.table_columns:
        if column.name not in existing:
            await conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    sql.Identifier(projection.table),
                    sql.Identifier(column.name),
                    sql.SQL(column.sql_type),
                )
            )


def _columns(projection: Projection[Any]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, projection.columns))


@dataclass(frozen=True)
class Loaded:
    """Keys' states read back from their rows, and the HTML those rows hold by Markdown source:
    a note that did not change is never rendered again (an LRU cache alone can be cycled)."""

    states: dict[str, Any]
    html: dict[str, str]


async def load_states(
    conn: AsyncConnection[Any], projection: Projection[Any], table: str, keys: list[str]
) -> Loaded:
    query = sql.SQL("SELECT {cols} FROM {table} WHERE {key} = ANY(%s::uuid[])").format(
        cols=_columns(projection),
        table=sql.Identifier(table),
        key=sql.Identifier(projection.key_column),
    )
    rows = await (await conn.execute(query, (keys,))).fetchall()
    html = {
        row[source]: row[html]
        for row in rows
        for html, source in projection.markdown_sources()
        if row[html] is not None
    }
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row[0]].append(row)
    states = {key: projection.from_rows(rows) for key, rows in grouped.items()}
    return Loaded(states, html)


async def delete_keys(
    conn: AsyncConnection[Any], projection: Projection[Any], table: str, keys: list[str]
) -> None:
    query = sql.SQL("DELETE FROM {table} WHERE {key} = ANY(%s::uuid[])").format(
        table=sql.Identifier(table), key=sql.Identifier(projection.key_column)
    )
    await conn.execute(query, (keys,))


def rows_of(projection: Projection[Any], states: Mapping[str, Any]) -> Iterator[Row]:
    """The rows of these states, their HTML columns not rendered yet."""
    for state in states.values():
        if state is not None:
            yield from projection.to_rows(state)


def markdown_texts(projection: Projection[Any], rows: Iterable[Row]) -> Iterator[str]:
    """The Markdown sources in these rows that need rendering."""
    sources = [source for _html, source in projection.markdown_sources()]
    for row in rows:
        for index in sources:
            if row[index] is not None:
                yield row[index]


def with_html(projection: Projection[Any], rows: list[Row], html: Mapping[str, str]) -> list[Row]:
    """The rows with each HTML column filled from its Markdown source column."""
    pairs = projection.markdown_sources()
    rendered = []
    for row in rows:
        values = list(row)
        for html_index, source_index in pairs:
            source = values[source_index]
            values[html_index] = None if source is None else html[source]
        rendered.append(tuple(values))
    return rendered


async def render_rows(
    projection: Projection[Any],
    rows: list[Row],
    renderer: Renderer,
    known: Mapping[str, str] | None = None,
) -> list[Row]:
    """The rows, rendered (reusing `known` HTML); RenderFailed if a note in them cannot be."""
    if not projection.markdown_columns:
        return rows
    known = known or {}
    missing = [text for text in markdown_texts(projection, rows) if text not in known]
    html = {**known, **await renderer.render(missing)}
    return with_html(projection, rows, html)


async def copy_rows(
    conn: AsyncConnection[Any], projection: Projection[Any], table: str, rows: Iterable[Row]
) -> int:
    """Write these rows with COPY; return how many rows were written."""
    query = sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
        table=sql.Identifier(table), cols=_columns(projection)
    )
    written = 0
    async with conn.cursor() as cursor, cursor.copy(query) as copy:
        for row in rows:
            await copy.write_row(row)
            written += 1
    return written
