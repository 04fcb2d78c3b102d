"""What a projection is: one declaration of a table, and pure functions over a per-key state.

A projection declares its row as a NamedTuple: the fields are the table's columns in order (the
partition key first), their annotations give the SQL types (`Uuid` and `Day` below, `str`,
`datetime`, `list[str]`, `X | None`). Everything else is derived from that declaration:
the CREATE TABLE and its indexes, the column list, the COPY order and the conversions between a
state and its rows. Nothing about a projection's table lives in sql/.

For each key it folds events into a state with plain functions `(state | None, event) -> state |
None`. A state is one row (`row_key=None`: one row per key, like a contact) or a dict of rows by
`row_key` (several rows per key, like a contact's interactions by day). The live projector and
replay drive the same functions.

A column annotated `HtmlOf(source)` holds the HTML rendered from the Markdown in `source`: folds
leave it None and the drivers fill it (crm/rendering.py: in a worker process, never in a fold).

`definition` is the projection's identity: its version and a digest of its declaration. When it
differs from the one stored with the projection's position, the projector rebuilds the table from
the stream (blue/green) before applying anything else. Bump `version` when a handler changes the
rows it produces; a changed column or index is noticed by itself.
"""

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Generic, NamedTuple, TypeVar, get_args, get_origin

from psycopg import sql

from crm.ids import canonical_key
from crm.rendering import HTML_VERSION
from crm.store.events import Event


@dataclass(frozen=True)
class SqlType:
    name: str


@dataclass(frozen=True)
class HtmlOf:
    """The column holds the HTML rendered from the Markdown in column `source`."""

    source: str


Uuid = Annotated[str, SqlType("uuid")]  # ids stay the strings events carry
Day = Annotated[str, SqlType("date")]  # an ISO date, as events carry it (ISO dates sort as text)


_SQL_TYPES: dict[Any, str] = {str: "text", datetime: "timestamptz", int: "bigint", bool: "boolean"}

S = TypeVar("S")
Row = tuple[Any, ...]
Handler = Callable[[S | None, Event], S | None]


@dataclass(frozen=True)
class Index:
    """An index on the projection's table, named `<table>_<name>`; `on`: columns or SQL
    expressions, `where`: a partial index's condition."""

    name: str
    on: tuple[str, ...]
    where: str = ""


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    nullable: bool
    html_of: str | None  # the Markdown source column, for a column of rendered HTML


def _column(name: str, annotation: Any) -> Column:
    nullable, html_of, sql_type = False, None, None
    while True:  # `Day | None` and `Annotated[str | None, ...]` alike
        if get_origin(annotation) is Annotated:
            annotation, *extras = get_args(annotation)
            for extra in extras:
                if isinstance(extra, SqlType):
                    sql_type = extra.name
                elif isinstance(extra, HtmlOf):
                    html_of = extra.source
        elif get_origin(annotation) in (types.UnionType, typing.Union):
            members = [a for a in get_args(annotation) if a is not type(None)]
            nullable = nullable or len(members) < len(get_args(annotation))
            annotation = members[0]
        else:
            break
    if sql_type is None:
        if get_origin(annotation) is list and get_args(annotation) == (str,):
            sql_type = "text[]"
        elif annotation in _SQL_TYPES:
            sql_type = _SQL_TYPES[annotation]
        else:
            raise TypeError(f"column {name}: no SQL type for {annotation!r}; annotate it")
    return Column(name, sql_type, nullable, html_of)


@dataclass(frozen=True)
class Projection(Generic[S]):
    name: str
    table: str
    row: type[NamedTuple]  # the table's columns, in order; the first is the partition key
    handlers: Mapping[str, Handler[S]]
    row_key: str | None = None  # with several rows per key: the column telling them apart
    indexes: tuple[Index, ...] = ()
    version: int = 1
    # what of a contact or account it shows, for pages that say a part is not up to date
    describes: str = ""
    _columns: tuple[Column, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(self.row, include_extras=True)
        columns = tuple(_column(name, hints[name]) for name in self.row._fields)
        object.__setattr__(self, "_columns", columns)
        # a typo here would only show later, as every event of the projection parked
        named = {self.row_key, *(c.html_of for c in columns)} - {None}
        if unknown := named - set(self.row._fields):
            raise ValueError(f"projection {self.name}: no column named {sorted(unknown)}")
        if not_nullable := [c.name for c in columns if c.html_of and not c.nullable]:
            raise ValueError(f"projection {self.name}: HTML columns {not_nullable} must allow None")

    @property
    def key_column(self) -> str:
        return self.columns[0]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.row._fields

    @property
    def table_columns(self) -> tuple[Column, ...]:
        """Each column as the table declares it: name, SQL type, nullability, Markdown source."""
        return self._columns

    @property
    def primary_key(self) -> tuple[str, ...]:
        return (self.key_column,) if self.row_key is None else (self.key_column, self.row_key)

    @property
    def markdown_columns(self) -> dict[str, str]:
        """HTML column -> the column holding its Markdown source."""
        return {c.name: c.html_of for c in self._columns if c.html_of is not None}

    def key_of(self, event: Event) -> str:
        return canonical_key(event.payload[self.key_column])

    def handles(self, event: Event) -> bool:
        return event.type in self.handlers

    def fold(self, state: S | None, event: Event) -> S | None:
        return self.handlers[event.type](state, event)

    def to_rows(self, state: S) -> list[Row]:
        if self.row_key is None:
            return [tuple(state)]  # type: ignore[arg-type]
        return [tuple(row) for row in state.values()]  # type: ignore[attr-defined]

    def from_rows(self, rows: list[Row]) -> S:
        """A key's state from its full rows (as to_rows gives them)."""
        made = [self.row._make(row) for row in rows]
        if self.row_key is None:
            return made[0]  # type: ignore[return-value]
        index = self.columns.index(self.row_key)
        return {row[index]: row for row in made}  # type: ignore[return-value]

    def markdown_sources(self) -> tuple[tuple[int, int], ...]:
        """(HTML, source) positions in a row."""
        return tuple(
            (self.columns.index(html), self.columns.index(source))
            for html, source in self.markdown_columns.items()
        )

    def create_table(self, table: str | None = None) -> sql.Composed:
        """CREATE TABLE for this projection (under another name for a shadow), without its keys
        and indexes: create_indexes() adds them, after a replay's COPY, which is faster."""
        columns = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(c.name),
                sql.SQL(c.sql_type),
                sql.SQL("" if c.nullable else " NOT NULL"),
            )
            for c in self._columns
        ]
        return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            sql.Identifier(table or self.table), sql.SQL(", ").join(columns)
        )

    def create_indexes(self, table: str | None = None) -> list[sql.Composed]:
        """The primary key (named, so that a shadow's can be renamed) and the indexes."""
        table = table or self.table
        key_name, *index_names = self.index_names(table)
        key = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            sql.Identifier(table),
            sql.Identifier(key_name),
            sql.SQL(", ").join(map(sql.Identifier, self.primary_key)),
        )
        return [
            key,
            *(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}){}").format(
                    sql.Identifier(name),
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.SQL, index.on)),
                    sql.SQL(f" WHERE {index.where}" if index.where else ""),
                )
                for name, index in zip(index_names, self.indexes, strict=True)
            ),
        ]

    def index_names(self, table: str | None = None) -> list[str]:
        """Every index of the table, the primary key's first, by the name it is created with."""
        table = table or self.table
        return [f"{table}_pkey", *(f"{table}_{index.name}" for index in self.indexes)]

    @cached_property
    def definition(self) -> str:
        """What the stored table must have been built by: the version and a digest of the
        declaration (columns, keys, indexes) and, for rendered Markdown, of the renderer's."""
        declared = {
            "table": self.table,
            "columns": [dataclasses.astuple(column) for column in self._columns],
            "primary_key": self.primary_key,
            "indexes": [dataclasses.astuple(index) for index in self.indexes],
            "html": HTML_VERSION if self.markdown_columns else None,
        }
        digest = hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()
        return f"v{self.version} {digest[:16]}"
