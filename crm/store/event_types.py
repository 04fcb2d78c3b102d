"""Event types: one JSON Schema file per type and version in schemas/, mirrored into event_types.

The schema file is the single source of truth for a payload. A stored version is history: once a
version is in the database its schema may never change, only gain a successor version.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from psycopg import AsyncConnection

from crm import ROOT

SCHEMA_DIR = ROOT / "schemas"
_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[1-9][0-9]*)\.json$")


class SchemaChanged(RuntimeError):
    """A schema file differs from the version already stored in the database."""


class UnknownEventType(LookupError):
    """An event type or version that no schema file defines."""


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    schema: dict[str, Any]
    validator: Draft202012Validator = field(compare=False, repr=False)


def _load_file(path: Path) -> EventType:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path}: schema files are named <event-type>.v<version>.json")
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return EventType(match["name"], int(match["version"]), schema, validator)


@dataclass(frozen=True)
class EventTypes:
    """Every event type and version known to this code, with its database id once synced."""

    by_key: dict[tuple[str, int], EventType]
    ids: dict[tuple[str, int], int] = field(default_factory=dict)

    def get(self, name: str, version: int | None = None) -> EventType:
        if version is None:
            version = self.latest_version(name)
        try:
            return self.by_key[(name, version)]
        except KeyError:
            raise UnknownEventType(f"no schema for event type {name!r} version {version}") from None

    def latest_version(self, name: str) -> int:
        versions = [v for (n, v) in self.by_key if n == name]
        if not versions:
            raise UnknownEventType(f"no schema for event type {name!r}")
        return max(versions)

    def id_of(self, event_type: EventType) -> int:
        return self.ids[(event_type.name, event_type.version)]


def load_event_types(directory: Path = SCHEMA_DIR) -> EventTypes:
    types = (_load_file(path) for path in sorted(directory.glob("*.json")))
    return EventTypes({(t.name, t.version): t for t in types})


# Keywords that document a schema without changing what it accepts: a stored version may gain
# or reword them (an example, a clearer description) and still be the same version.
_ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
# Keywords whose value maps names (of fields, of definitions) to schemas: a field may be called
# "description", and that is not an annotation.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})


def meaning(schema: Any) -> Any:
    """The schema without its annotations: what decides which payloads it accepts."""
    if isinstance(schema, list):
        return [meaning(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept = {}
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword in _SCHEMA_MAPS and isinstance(value, dict):
            kept[keyword] = {name: meaning(sub) for name, sub in value.items()}
        else:
            kept[keyword] = meaning(value)
    return kept


async def sync_event_types(conn: AsyncConnection[Any], types: EventTypes) -> None:
    """Store new schema versions, refuse changed ones, and record each version's database id.

    A stored version may change its annotations (the stored copy is updated), never its meaning.
    """
    for event_type in types.by_key.values():
        text = json.dumps(event_type.schema)
        row = await (
            await conn.execute(
                "INSERT INTO event_types (name, version, schema) VALUES (%s, %s, %s::jsonb)"
                " ON CONFLICT (name, version) DO UPDATE SET name = excluded.name"
                " RETURNING id, schema::text",
                (event_type.name, event_type.version, text),
            )
        ).fetchone()
        assert row is not None
        type_id, stored = row
        if meaning(json.loads(stored)) != meaning(event_type.schema):
            raise SchemaChanged(
                f"schemas/{event_type.name}.v{event_type.version}.json differs from the schema "
                f"stored for {event_type.name} v{event_type.version}. Stored versions are "
                f"history: restore the file and add {event_type.name}.v{event_type.version + 1}"
                ".json instead."
            )
        if json.loads(stored) != event_type.schema:
            await conn.execute(
                "UPDATE event_types SET schema = %s::jsonb WHERE id = %s", (text, type_id)
            )
        types.ids[(event_type.name, event_type.version)] = type_id
