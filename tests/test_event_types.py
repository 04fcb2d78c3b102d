"""Event types: every payload is checked against exactly its schema version before it is stored."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection

from crm.store.event_types import (
    SCHEMA_DIR,
    NotSynced,
    SchemaChanged,
    load_event_types,
    sync_event_types,
)
from crm.store.events import store_as
from crm.store.fields import NOT_A_FIELD
from crm.store.validation import InvalidPayload, validate_payload
from tests.support import sign_up

TYPES = load_event_types()
KEYS = sorted(TYPES.by_key)
KEY_IDS = [f"{name}.v{version}" for name, version in KEYS]
# Values a field's schema refuses, by what the schema says of it.
_WRONG_FORMAT = {"date": "26/11/2026", "email": "not-an-email", "uuid": "not-a-uuid"}


def example(key: tuple[str, int]) -> dict[str, Any]:
    """The payload each schema gives as its first example: the tests' valid payload."""
    return dict(TYPES.by_key[key].schema["examples"][0])


def refused_values(field: dict[str, Any]) -> list[Any]:
    values: list[Any] = [7]  # every field is text
    if "format" in field:
        values.append(_WRONG_FORMAT[field["format"]])
    if field.get("minLength", 0) >= 1:
        values.append("")
    if field.get("pattern") == "\\S":
        values.append("   ")
    if "maxLength" in field:
        values.append("x" * (field["maxLength"] + 1))
    return values


def broken_payloads(key: tuple[str, int]) -> list[tuple[dict[str, Any], str]]:
    """Each way to break the example, with the field the error must name."""
    valid = example(key)
    broken = [({**valid, "surprise": True}, "surprise")]
    for name, field in TYPES.by_key[key].schema["properties"].items():
        broken.append(({k: v for k, v in valid.items() if k != name}, name))
        broken.extend(({**valid, name: value}, name) for value in refused_values(field))
    return broken


async def event_count(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT count(*) FROM events")).fetchone()
    assert row is not None
    return int(row[0])


def test_every_schema_forbids_unknown_fields_and_describes_every_field() -> None:
    for event_type in TYPES.by_key.values():
        assert event_type.schema["additionalProperties"] is False
        for name, field in event_type.schema["properties"].items():
            assert field.get("description"), f"{event_type.name}.{name} has no description"


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
async def test_a_valid_payload_is_stored(conn, types, key) -> None:
    account = await sign_up(conn, types)
    before = await event_count(conn)
    name, version = key
    appended = await store_as(conn, types, types.get(name, version), example(key), account)
    assert appended.position > 0
    assert await event_count(conn) == before + 1


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
async def test_an_invalid_payload_is_rejected_naming_the_field(conn, types, key) -> None:
    account = await sign_up(conn, types)
    before = await event_count(conn)
    name, version = key
    for payload, field in broken_payloads(key):
        with pytest.raises(InvalidPayload) as raised:
            await store_as(conn, types, types.get(name, version), payload, account)
        assert field in raised.value.errors, payload
        assert field in str(raised.value)
    assert await event_count(conn) == before


def test_a_missing_field_is_named_as_required_and_an_unknown_one_as_unknown() -> None:
    contact = example(("contact-created", 1))
    del contact["name"]
    with pytest.raises(InvalidPayload) as raised:
        validate_payload(TYPES.get("contact-created", 1), {**contact, "nickname": "Amazing"})
    assert raised.value.errors == {"name": "is required", "nickname": NOT_A_FIELD}


async def test_changing_a_stored_schema_version_is_refused(conn, types, tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    shared = copy / "shared" / "fields.json"
    schema = json.loads(shared.read_text())
    schema["$defs"]["contact_name"]["maxLength"] = 10
    shared.write_text(json.dumps(schema))
    with pytest.raises(SchemaChanged, match=r"contact-created\.v1\.json differs.*shared.*v2"):
        await sync_event_types(conn, load_event_types(copy))


async def test_a_new_schema_version_is_added_beside_the_old_one(conn, types, tmp_path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    schema = json.loads((copy / "contact-deleted.v1.json").read_text())
    schema["properties"]["reason"] = {"type": "string", "description": "why"}
    (copy / "contact-deleted.v2.json").write_text(json.dumps(schema))
    newer = await sync_event_types(conn, load_event_types(copy))
    assert newer.latest_version("contact-deleted") == 2
    row = await (
        await conn.execute("SELECT count(*) FROM event_types WHERE name = 'contact-deleted'")
    ).fetchone()
    assert row == (2,)


def test_every_schema_has_an_example_its_own_version_accepts() -> None:
    for event_type in TYPES.by_key.values():
        examples = event_type.schema.get("examples", [])
        assert examples, f"schemas/{event_type.name}.v{event_type.version}.json has no examples"
        for payload in examples:
            validate_payload(event_type, payload)


async def test_a_stored_version_may_change_its_annotations_but_not_its_meaning(
    conn, types, tmp_path: Path
) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    edited = copy / "contact-created.v1.json"
    schema = json.loads(edited.read_text())
    schema["examples"].append({**schema["examples"][0], "name": "Another"})
    schema["properties"]["name"]["description"] = "Reworded."
    edited.write_text(json.dumps(schema))
    await sync_event_types(conn, load_event_types(copy))
    row = await (
        await conn.execute(
            "SELECT schema->'properties'->'name'->>'description' FROM event_types"
            " WHERE name = 'contact-created' AND version = 1"
        )
    ).fetchone()
    assert row == ("Reworded.",)  # the stored copy follows the file's annotations
    # a field that happens to be called "description" is part of the meaning
    del schema["properties"]["description"]
    schema["required"].remove("description")
    edited.write_text(json.dumps(schema))
    with pytest.raises(SchemaChanged, match=r"contact-created\.v1\.json differs"):
        await sync_event_types(conn, load_event_types(copy))


def test_database_ids_are_asked_of_synced_event_types_only() -> None:
    loaded = load_event_types()
    with pytest.raises(NotSynced, match=r"use the EventTypes that sync_event_types"):
        loaded.id_of(loaded.get("contact-created"))


async def test_syncing_returns_the_types_with_their_database_ids(conn, types) -> None:
    loaded = load_event_types()
    synced = await sync_event_types(conn, loaded)
    rows = await (await conn.execute("SELECT name, version, id FROM event_types")).fetchall()
    assert dict(synced.ids) == {(name, version): type_id for name, version, type_id in rows}
    assert synced.id_of(synced.get("contact-created")) == types.id_of(types.get("contact-created"))
    with pytest.raises(NotSynced):
        loaded.ids  # noqa: B018 - what was loaded stays without ids: nothing fills it in later


async def test_the_database_keeps_each_version_self_contained(conn, types) -> None:
    rows = await (
        await conn.execute("SELECT name, version, schema::text FROM event_types")
    ).fetchall()
    for name, version, stored in rows:
        assert "$ref" not in stored, f"{name} v{version} depends on a file that may change"
        assert json.loads(stored) == types.get(name, version).schema
