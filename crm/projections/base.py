"""What a projection is: a table, a partition key and pure functions over a per-key state.

A projection partitions its table by one key column (a contact's id, an account's id). For each
key it folds events into a state with plain functions `(state | None, event) -> state | None`, and
turns a state into that key's table rows (without the key column) and back. That one logic has two
drivers: the live projector loads the states a batch touches from the table, folds, and writes
them back; replay folds the whole stream in memory and bulk-writes the result.

`markdown_columns` maps an HTML column to the column holding its Markdown source: to_rows leaves
the HTML column None and the drivers fill it (crm/rendering.py: in a worker process, never in a
fold).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from crm.ids import canonical_key
from crm.store.events import Event

S = TypeVar("S")
Row = tuple[Any, ...]
Handler = Callable[[S | None, Event], S | None]


@dataclass(frozen=True)
class Projection(Generic[S]):
    name: str
    table: str
    key_column: str
    columns: tuple[str, ...]  # the other columns, in the order to_rows gives them
    handlers: Mapping[str, Handler[S]]
    to_rows: Callable[[S], list[Row]]
    from_rows: Callable[[str, list[Row]], S]
    # HTML column -> the column holding its Markdown source
    markdown_columns: Mapping[str, str] = field(default_factory=dict)
    # what of a contact or account it shows, for pages that say a part is not up to date
    describes: str = ""

    def key_of(self, event: Event) -> str:
        return canonical_key(event.payload[self.key_column])

    def handles(self, event: Event) -> bool:
        return event.type in self.handlers

    def fold(self, state: S | None, event: Event) -> S | None:
        return self.handlers[event.type](state, event)

    def markdown_sources(self) -> tuple[tuple[int, int], ...]:
        """(HTML, source) positions in a full row (the key column first)."""
        return tuple(
            (1 + self.columns.index(html), 1 + self.columns.index(source))
            for html, source in self.markdown_columns.items()
        )
