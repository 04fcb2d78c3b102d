"""Reading and writing a projection's rows, shared by the live projector and replay."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import AsyncConnection, sql

from crm.projections.base import Projection, Row


def _columns(projection: Projection[Any]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, (projection.key_column, *projection.columns)))


async def load_states(
    conn: AsyncConnection[Any], projection: Projection[Any], table: str, keys: list[str]
) -> dict[str, Any]:
    query = sql.SQL("SELECT {cols} FROM {table} WHERE {key} = ANY(%s::uuid[])").format(
        cols=_columns(projection),
        table=sql.Identifier(table),
        key=sql.Identifier(projection.key_column),
    )
    grouped: dict[str, list[Row]] = defaultdict(list)
    for key, *rest in await (await conn.execute(query, (keys,))).fetchall():
        grouped[key].append(tuple(rest))
    return {key: projection.from_rows(key, rows) for key, rows in grouped.items()}


async def delete_keys(
    conn: AsyncConnection[Any], projection: Projection[Any], table: str, keys: list[str]
) -> None:
    query = sql.SQL("DELETE FROM {table} WHERE {key} = ANY(%s::uuid[])").format(
        table=sql.Identifier(table), key=sql.Identifier(projection.key_column)
    )
    await conn.execute(query, (keys,))


def _rows(projection: Projection[Any], states: Mapping[str, Any]) -> Iterable[Row]:
    for key, state in states.items():
        if state is not None:
            for row in projection.to_rows(state):
                yield (key, *row)


async def copy_states(
    conn: AsyncConnection[Any], projection: Projection[Any], table: str, states: Mapping[str, Any]
) -> int:
    """Write the rows of these states with COPY; return how many rows were written."""
    query = sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
        table=sql.Identifier(table), cols=_columns(projection)
    )
    written = 0
    async with conn.cursor() as cursor, cursor.copy(query) as copy:
        for row in _rows(projection, states):
            await copy.write_row(row)
            written += 1
    return written
