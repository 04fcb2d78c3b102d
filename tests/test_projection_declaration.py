"""A projection's table is derived from its declaration, and its definition says when to rebuild."""

from datetime import datetime
from typing import Annotated, Any, NamedTuple

import pytest
from psycopg import AsyncConnection

from crm.projections import positions, tables
from crm.projections.base import Column, Day, HtmlOf, Index, Projection, Uuid
from crm.projections.contacts import CONTACTS
from crm.store.event_types import EventTypes
from tests.support import sign_up


class Note(NamedTuple):
    contact_id: Uuid
    day: Day | None
    text: str
    html: Annotated[str | None, HtmlOf("text")]
    labels: list[str]
    at: datetime


NOTES: Projection[Note] = Projection("notes", "test_notes", Note, handlers={})


def test_the_columns_types_and_nullability_come_from_the_annotations() -> None:
    assert NOTES.table_columns == (
        Column("contact_id", "uuid", False, None),
        Column("day", "date", True, None),
        Column("text", "text", False, None),
        Column("html", "text", True, "text"),
        Column("labels", "text[]", False, None),
        Column("at", "timestamptz", False, None),
    )
    assert NOTES.markdown_columns == {"html": "text"}
    assert NOTES.primary_key == ("contact_id",)


def test_a_column_without_an_sql_type_is_named() -> None:
    class Odd(NamedTuple):
        contact_id: Uuid
        price: complex

    with pytest.raises(TypeError, match="column price"):
        Projection("odd", "odd", Odd, handlers={})


def test_a_row_key_or_markdown_source_that_is_no_column_fails_at_once() -> None:
    with pytest.raises(ValueError, match="no column named"):
        Projection("notes", "test_notes", Note, handlers={}, row_key="dya")

    class Dangling(NamedTuple):
        contact_id: Uuid
        html: Annotated[str | None, HtmlOf("missing")]

    with pytest.raises(ValueError, match="missing"):
        Projection("d", "d", Dangling, handlers={})


def test_the_definition_changes_with_a_column_an_index_or_the_version_only() -> None:
    same = Projection("notes", "test_notes", Note, handlers={"x": lambda s, e: s})
    assert same.definition == NOTES.definition  # folds are code: bump the version for them
    indexed = Projection("notes", "test_notes", Note, handlers={}, indexes=(Index("d", ("day",)),))
    bumped = Projection("notes", "test_notes", Note, handlers={}, version=2)
    assert len({NOTES.definition, indexed.definition, bumped.definition}) == 3
    assert bumped.definition.startswith("v2 ")


async def definition_of(conn: AsyncConnection[Any], name: str) -> str | None:
    return await positions.stored_definition(conn, name)


async def test_a_new_projection_over_an_empty_stream_is_built_as_declared(conn) -> None:
    await tables.install(conn, NOTES, stream_empty=True)
    assert await definition_of(conn, "notes") == NOTES.definition


async def test_a_new_projection_over_existing_events_is_left_to_be_rebuilt(
    conn, types: EventTypes
) -> None:
    await sign_up(conn, types)
    await tables.install(conn, NOTES, stream_empty=False)
    assert await definition_of(conn, "notes") is None  # the projector rebuilds it from the stream


async def test_a_dropped_table_is_rebuilt_not_resumed_at_its_old_position(conn) -> None:
    assert await definition_of(conn, "contacts") == CONTACTS.definition
    await conn.execute("DROP TABLE projected_contacts")
    await tables.install(conn, CONTACTS, stream_empty=False)
    assert await definition_of(conn, "contacts") is None
