"""Projection tests that read as sentences: given these events, when this one, then these rows.

    story = given(
        event("contact-created", name="Ada"),
    ).when(
        event("contact-edited", name="Ada L."),
    ).then(CONTACTS, {"name": "Ada L."})

An event is its schema's first example with the story's contact and account, and the fields
given. `verify()` checks the pure fold (no database): the projection's rows, in primary-key
order, each holding the columns given. `agree_in(db_url, types)` runs the same story through the
live driver (the projector's batches) and through replay on the real PostgreSQL, and checks that
both give the fold's rows (rendered HTML columns aside: only the drivers render).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from crm.database import use_text_for_ids_and_dates
from crm.projections.base import Projection, Row
from crm.projections.projector import catch_up
from crm.projections.rebuild import rebuild
from crm.store.event_types import EventTypes, load_event_types
from crm.store.events import Event, store_as
from tests.support import renderer

ACCOUNT = "0b6a3f0e-5d1c-4e8a-9c2b-7f4e1a2d3c5b"
CONTACT = "5e1d2c3b-4a59-4687-b6c5-d4e3f2a1b0c9"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_TYPES = load_event_types()


def event(event_type: str, **fields: Any) -> Event:
    """The event type's first schema example, about the story's contact and account."""
    example = dict(_TYPES.get(event_type).schema["examples"][0])
    ours = {"account_id": ACCOUNT, "contact_id": CONTACT}
    payload = {**example, **{k: v for k, v in ours.items() if k in example}, **fields}
    version = _TYPES.latest_version(event_type)
    return Event(0, event_type, version, payload, payload["account_id"], START)


@dataclass(frozen=True)
class Story:
    events: tuple[Event, ...]
    expected: tuple[Mapping[str, Any], ...] = ()
    projection: Projection[Any] | None = field(default=None)

    def when(self, *events: Event) -> "Story":
        return replace(self, events=(*self.events, *events))

    def then(self, projection: Projection[Any], *rows: Mapping[str, Any]) -> "Story":
        """The projection's rows, in primary-key order, each given by the columns that matter."""
        return replace(self, projection=projection, expected=rows)

    def verify(self) -> None:
        """The pure fold gives the rows expected: no database, no driver."""
        self.check(self.folded())

    def numbered(self) -> list[Event]:
        """The events with the positions and times they get: one a minute, from START."""
        return [
            e._replace(position=n, created_at=START + timedelta(minutes=n))
            for n, e in enumerate(self.events, start=1)
        ]

    def folded(self) -> list[dict[str, Any]]:
        """The projection's rows after a pure fold of the events, in primary-key order."""
        projection = self._projection()
        states: dict[str, Any] = {}
        for e in self.numbered():
            if projection.handles(e):
                key = projection.key_of(e)
                states[key] = projection.fold(states.get(key), e)
        rows: list[Row] = [
            row
            for state in states.values()
            if state is not None
            for row in projection.to_rows(state)
        ]
        return sorted(
            (dict(zip(projection.columns, row, strict=True)) for row in rows), key=self._order
        )

    def check(self, rows: list[dict[str, Any]]) -> None:
        assert len(rows) == len(self.expected), f"expected {len(self.expected)} rows: {rows}"
        pairs = zip(rows, self.expected, strict=True)
        assert [{name: row.get(name) for name in want} for row, want in pairs] == [
            dict(want) for want in self.expected
        ]

    async def agree_in(self, db_url: str, types: EventTypes) -> None:
        """The live driver and replay, on the real database, give the pure fold's rows."""
        projection = self._projection()
        folded = self._without_html(self.folded())
        async with await AsyncConnection.connect(db_url, autocommit=True) as conn:
            use_text_for_ids_and_dates(conn)
            await _append(conn, types, self.numbered())
            await catch_up(db_url, types, [projection], renderer)
            live = await self._rows_in(conn)
            await rebuild(db_url, types, [projection], renderer=renderer)
            replayed = await self._rows_in(conn)
        assert self._without_html(live) == folded, "the live driver differs from the fold"
        assert self._without_html(replayed) == folded, "replay differs from the fold"
        self.check(live)
        for html, source in self._projection().markdown_columns.items():
            assert all(bool(row[html]) == bool(row[source]) for row in live), f"{html} not rendered"

    async def _rows_in(self, conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
        projection = self._projection()
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(projection.table)))
        return sorted(await cursor.fetchall(), key=self._order)

    def _without_html(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        html = self._projection().markdown_columns
        return [{k: v for k, v in row.items() if k not in html} for row in rows]

    def _order(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(str(row[name]) for name in self._projection().primary_key)

    def _projection(self) -> Projection[Any]:
        assert self.projection is not None, "say then(projection, ...) first"
        return self.projection


def given(*events: Event) -> Story:
    return Story(events)


def story_tests(stories: Mapping[str, Story]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two tests of a module of stories: the pure fold, and the drivers agreeing with it.

    test_the_fold, test_the_drivers_agree_with_the_fold = story_tests(STORIES)
    """

    @pytest.mark.parametrize("story", stories.values(), ids=stories.keys())
    def test_the_fold(story: Story) -> None:
        story.verify()

    @pytest.mark.parametrize("story", stories.values(), ids=stories.keys())
    async def test_the_drivers_agree_with_the_fold(
        story: Story, db_url: str, types: EventTypes
    ) -> None:
        await story.agree_in(db_url, types)

    return test_the_fold, test_the_drivers_agree_with_the_fold


async def _append(conn: AsyncConnection[Any], types: EventTypes, events: list[Event]) -> None:
    """Store the events with their times, each caused by its account."""
    for e in events:
        await conn.execute(
            "INSERT INTO entities (id, kind, name) VALUES (%s, 'account', %s)"
            " ON CONFLICT DO NOTHING",
            (e.entity_id, f"{e.entity_id}@example.com"),
        )
        appended = await store_as(conn, types, types.get(e.type, e.version), e.payload, e.entity_id)
        await conn.execute(
            "UPDATE events SET created_at = %s WHERE id = %s", (e.created_at, appended.position)
        )
