"""Event types: one JSON Schema file per type and version in schemas/, mirrored into event_types.

The schema file is the single source of truth for a payload. Fields several types share are
defined once, in schemas/shared/, and referenced with "$ref". A stored version is history: once
a version is in the database its meaning may never change, only gain a successor version; so the
database keeps each version resolved (every "$ref" replaced by what it references), which no
later edit of a shared file can change, and schemas/meanings.lock (crm.store.meanings) keeps
each version's meaning in every checkout.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator, FormatChecker
from psycopg import AsyncConnection
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from crm import ROOT

if TYPE_CHECKING:
    from referencing._core import Resolver  # what Registry.resolver() returns

SCHEMA_DIR = ROOT / "schemas"
SHARED_DIR_NAME = "shared"  # schemas/shared/*.json: definitions, referenced as "crm:shared/<file>"
_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[1-9][0-9]*)\.json$")
Key = tuple[str, int]


class SchemaChanged(RuntimeError):
    """A schema file differs from the version already stored in the database."""


class UnknownEventType(LookupError):
    """An event type or version that no schema file defines."""


class NotSynced(RuntimeError):
    """Database ids were asked of event types that were never synced with the database."""


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    # Resolved and self-contained: no "$ref" left. What the database stores and what field
    # rules, docs and payload generators read.
    schema: dict[str, Any]
    # Checks the schema file as written, its references looked up in the shared definitions.
    validator: Draft202012Validator = field(compare=False, repr=False)


def shared_definitions(directory: Path = SCHEMA_DIR) -> Registry[Any]:
    """schemas/shared/*.json, each under its own "$id" (crm:shared/<file name>)."""
    resources = []
    for path in sorted((directory / SHARED_DIR_NAME).glob("*.json")):
        resource = Resource.from_contents(json.loads(path.read_text()), DRAFT202012)
        expected = f"crm:{SHARED_DIR_NAME}/{path.name}"
        if resource.id() != expected:
            raise ValueError(f'{path}: its "$id" must be {expected!r}, not {resource.id()!r}')
        resources.append((expected, resource))
    return Registry().with_resources(resources)


def _load_file(path: Path, shared: Registry[Any]) -> EventType:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path}: schema files are named <event-type>.v<version>.json")
    source = json.loads(path.read_text())
    Draft202012Validator.check_schema(source)
    resource = Resource.from_contents(source, DRAFT202012)
    uri = resource.id() or path.as_uri()
    registry = shared.with_resource(uri, resource)
    try:
        schema = resolved(source, registry.resolver(base_uri=uri))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    validator = Draft202012Validator(source, registry=registry, format_checker=FormatChecker())
    return EventType(match["name"], int(match["version"]), schema, validator)


@dataclass(frozen=True)
class EventTypes:
    """Every event type and version known to this code; with database ids once synced.

    Load them with load_event_types(); sync_event_types() returns a copy that has the ids.
    """

    by_key: Mapping[Key, EventType]
    _ids: Mapping[Key, int] | None = field(default=None, repr=False)

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

    @property
    def ids(self) -> Mapping[Key, int]:
        """Each version's id in the event_types table."""
        if self._ids is None:
            raise NotSynced(
                "these event types have no database ids: use the EventTypes that "
                "sync_event_types(conn, types) returns (crm.bootstrap.prepare_database does it)"
            )
        return self._ids

    def id_of(self, event_type: EventType) -> int:
        try:
            return self.ids[(event_type.name, event_type.version)]
        except KeyError:
            raise UnknownEventType(
                f"{event_type.name} v{event_type.version} is not among the synced event types"
            ) from None


def load_event_types(directory: Path = SCHEMA_DIR) -> EventTypes:
    shared = shared_definitions(directory)
    types = (_load_file(path, shared) for path in sorted(directory.glob("*.json")))
    return EventTypes(MappingProxyType({(t.name, t.version): t for t in types}))


# Keywords that document a schema without changing what it accepts: a stored version may gain
# or reword them (an example, a clearer description) and still be the same version. So may any
# keyword starting with "x-": crm's own annotations, such as "x-one-line" (crm.store.fields).
_ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
# Keywords whose value maps names (of fields, of definitions) to schemas: a field may be called
# "description" or "x-y", and that is not an annotation.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
# Keywords whose value is data, not a schema: it is kept as it is, whatever its keys.
_DATA = frozenset({"const", "enum", "default", "examples"})
# What makes a resource of a file; a definition inlined elsewhere leaves it behind.
_RESOURCE = frozenset({"$id", "$schema", "$anchor", "$dynamicAnchor"})


def _is_annotation(keyword: str) -> bool:
    return keyword in _ANNOTATIONS or keyword.startswith("x-")


def meaning(schema: Any) -> Any:
    """The schema without its annotations: what decides which payloads it accepts.

    Give it a resolved schema (EventType.schema): a "$ref" is compared as written, not as what
    it references.
    """
    if isinstance(schema, list):
        return [meaning(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept = {}
    for keyword, value in schema.items():
        if _is_annotation(keyword):
            continue
        if keyword in _SCHEMA_MAPS and isinstance(value, dict):
            kept[keyword] = {name: meaning(sub) for name, sub in value.items()}
        elif keyword in _DATA:
            kept[keyword] = value
        else:
            kept[keyword] = meaning(value)
    return kept


def resolved(schema: Any, resolver: "Resolver[Any]", seen: tuple[int, ...] = ()) -> Any:
    """The schema with every "$ref" replaced by what it references, and no "$defs" left.

    Keywords beside a "$ref" are kept and win over the referenced definition's annotations (a
    field may describe itself better than the shared definition does); a keyword that would
    contradict the definition is refused, as are definitions that reference themselves.
    """
    if isinstance(schema, list):
        return [resolved(item, resolver, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    own: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword in ("$ref", "$defs"):
            continue
        if keyword in _SCHEMA_MAPS and isinstance(value, dict):
            own[keyword] = {name: resolved(sub, resolver, seen) for name, sub in value.items()}
        elif keyword in _DATA:
            own[keyword] = value
        else:
            own[keyword] = resolved(value, resolver, seen)
    if "$ref" not in schema:
        return own
    try:
        target = resolver.lookup(schema["$ref"])
    except Unresolvable:
        raise ValueError(
            f"{schema['$ref']} leads nowhere: no such file in schemas/{SHARED_DIR_NAME}/ "
            '(each is known by its "$id"), or no such definition in it'
        ) from None
    if id(target.contents) in seen:
        raise ValueError(f"{schema['$ref']} references itself: payload schemas are not recursive")
    inlined = resolved(target.contents, target.resolver, (*seen, id(target.contents)))
    inlined = {k: v for k, v in inlined.items() if k not in _RESOURCE}
    for keyword, value in own.items():
        if keyword in inlined and inlined[keyword] != value and not _is_annotation(keyword):
            raise ValueError(
                f"beside {schema['$ref']}, {keyword!r} is {value!r} but the definition says "
                f"{inlined[keyword]!r}: reference another definition instead"
            )
    return {**inlined, **own}


async def sync_event_types(conn: AsyncConnection[Any], types: EventTypes) -> EventTypes:
    """Store new schema versions, refuse changed ones; the same types with their database ids.

    A stored version may change its annotations (the stored copy is updated), never its meaning.
    The stored copy is the resolved schema: history does not depend on a shared file.
    """
    ids = {}
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
                f"stored for {event_type.name} v{event_type.version} (the file, or a shared "
                "definition it references). Stored versions are history: restore it and add "
                f"{event_type.name}.v{event_type.version + 1}.json instead."
            )
        if json.loads(stored) != event_type.schema:
            await conn.execute(
                "UPDATE event_types SET schema = %s::jsonb WHERE id = %s", (text, type_id)
            )
        ids[(event_type.name, event_type.version)] = type_id
    return replace(types, _ids=MappingProxyType(ids))
