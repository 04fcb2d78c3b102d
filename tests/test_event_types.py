"""Event types: every payload is checked against exactly its schema version before it is stored."""

import json
import shutil
import uuid
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
from crm.store.events import append
from crm.store.validation import InvalidPayload, validate_payload
from tests.support import FAKE_HASH, sign_up

CONTACT = str(uuid.uuid4())
ACCOUNT = str(uuid.uuid4())
VALID: dict[str, dict[str, Any]] = {
    "account-created": {
        "account_id": ACCOUNT,
        "email": "a@example.com",
        "password_hash": FAKE_HASH,
        "time_zone": "Europe/Paris",
    },
    "contact-created": {
        "contact_id": CONTACT,
        "account_id": ACCOUNT,
        "name": "Ada",
        "description": "",
        "contact_method": "ada@example.com",
    },
    "contact-edited": {
        "contact_id": CONTACT,
        "account_id": ACCOUNT,
        "name": "Ada L.",
        "description": "poet",
        "contact_method": "ada@example.com",
    },
    "contact-deleted": {"contact_id": CONTACT, "account_id": ACCOUNT},
    "interaction-recorded": {
        "contact_id": CONTACT,
        "account_id": ACCOUNT,
        "interacted_on": "2026-11-26",
        "notes": "coffee",
    },
    "next-meeting-notes-written": {
        "contact_id": CONTACT,
        "account_id": ACCOUNT,
        "meeting_on": "2026-12-01",
        "notes": "*ask*",
    },
    "meeting-notes-email-sent": {
        "contact_id": CONTACT,
        "account_id": ACCOUNT,
        "meeting_on": "2026-12-01",
        "message_id": "<x@crm>",
    },
}
# For each type, a broken payload and the field the error must name.
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "account-created": ({**VALID["account-created"], "email": "not-an-email"}, "email"),
    "contact-created": ({**VALID["contact-created"], "name": "   "}, "name"),
    "contact-edited": ({**VALID["contact-edited"], "contact_method": 7}, "contact_method"),
    "contact-deleted": ({"account_id": ACCOUNT}, "contact_id"),
    "interaction-recorded": (
        {**VALID["interaction-recorded"], "interacted_on": "26/11/2026"},
        "interacted_on",
    ),
    "next-meeting-notes-written": (
        {**VALID["next-meeting-notes-written"], "notes": "x" * 20001},
        "notes",
    ),
    "meeting-notes-email-sent": (
        {**VALID["meeting-notes-email-sent"], "surprise": True},
        "surprise",
    ),
}


async def event_count(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT count(*) FROM events")).fetchone()
    assert row is not None
    return int(row[0])


def test_every_event_type_has_a_valid_and_an_invalid_example() -> None:
    names = {name for name, _ in load_event_types().by_key}
    assert names == set(VALID) == set(INVALID)


def test_every_schema_forbids_unknown_fields_and_describes_every_field() -> None:
    for event_type in load_event_types().by_key.values():
        assert event_type.schema["additionalProperties"] is False
        for name, field in event_type.schema["properties"].items():
            assert field.get("description"), f"{event_type.name}.{name} has no description"


@pytest.mark.parametrize("event_type", sorted(VALID))
async def test_a_valid_payload_is_stored(conn, types, event_type) -> None:
    account = await sign_up(conn, types)
    before = await event_count(conn)
    appended = await append(conn, types, event_type, VALID[event_type], account)
    assert appended.position > 0
    assert await event_count(conn) == before + 1


@pytest.mark.parametrize("event_type", sorted(INVALID))
async def test_an_invalid_payload_is_rejected_naming_the_field(conn, types, event_type) -> None:
    account = await sign_up(conn, types)
    payload, field = INVALID[event_type]
    before = await event_count(conn)
    with pytest.raises(InvalidPayload) as raised:
        await append(conn, types, event_type, payload, account)
    assert field in raised.value.errors
    assert field in str(raised.value)
    assert await event_count(conn) == before


async def test_a_missing_field_is_named_as_required(conn, types) -> None:
    account = await sign_up(conn, types)
    payload = {k: v for k, v in VALID["contact-created"].items() if k != "name"}
    with pytest.raises(InvalidPayload) as raised:
        await append(conn, types, "contact-created", payload, account)
    assert raised.value.errors == {"name": "is required"}


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
    for event_type in load_event_types().by_key.values():
        examples = event_type.schema.get("examples", [])
        assert examples, f"schemas/{event_type.name}.v{event_type.version}.json has no examples"
        for example in examples:
            validate_payload(event_type, example)


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
