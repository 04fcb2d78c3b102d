"""Schema evolution: every stored version reaches the latest through its upcasters, before any
handler sees it; a version without its step is named, not skipped."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection

import crm.store.events as events_module
from crm import ROOT
from crm.store.event_types import EventTypes, load_event_types, sync_event_types
from crm.store.events import read_batch
from crm.store.upcasters import UPCASTERS
from crm.store.upcasting import UpcasterMissing, missing, to_latest
from crm.store.validation import validate_payload

TYPES = load_event_types()


def test_every_stored_version_has_a_way_to_the_latest() -> None:
    assert missing(TYPES, UPCASTERS) == []


@pytest.mark.parametrize("key", sorted(TYPES.by_key), ids=lambda key: f"{key[0]}.v{key[1]}")
def test_every_example_of_every_version_becomes_a_valid_payload_of_the_latest(
    key: tuple[str, int],
) -> None:
    name, version = key
    event_type = TYPES.get(name, version)
    lift = to_latest(TYPES, name, version, UPCASTERS)
    examples = event_type.schema.get("examples", [])
    assert examples, f"{name}.v{version} has no examples"
    for example in examples:
        validate_payload(event_type, example)  # as it was stored
        validate_payload(TYPES.get(name), example if lift is None else lift(dict(example)))


def with_a_second_version(directory: Path) -> EventTypes:
    """schemas/ copied, with a contact-created v2 that adds a `source` the v1 payloads lack."""
    shutil.copytree(ROOT / "schemas", directory, dirs_exist_ok=True)
    schema = json.loads((directory / "contact-created.v1.json").read_text())
    schema["$id"] = "crm:contact-created.v2"
    schema["title"] = "contact-created v2"
    schema["properties"]["source"] = {"type": "string", "enum": ["form", "import"]}
    schema["required"] = [*schema["required"], "source"]
    schema["examples"] = [{**example, "source": "form"} for example in schema["examples"]]
    (directory / "contact-created.v2.json").write_text(json.dumps(schema))
    return load_event_types(directory)


def from_a_form(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "source": "form"}


def test_a_new_version_without_its_upcaster_is_named_with_what_to_add(tmp_path: Path) -> None:
    types = with_a_second_version(tmp_path)
    (problem,) = missing(types, UPCASTERS)
    assert problem.startswith("contact-created v1 -> v2 has no upcaster: add one to")
    with pytest.raises(UpcasterMissing, match="contact-created v1 -> v2 has no upcaster"):
        to_latest(types, "contact-created", 1, UPCASTERS)
    upcasters = {**UPCASTERS, ("contact-created", 1): from_a_form}
    assert missing(types, upcasters) == []
    lift = to_latest(types, "contact-created", 1, upcasters)
    assert lift is not None
    example = types.get("contact-created", 1).schema["examples"][0]
    validate_payload(types.get("contact-created"), lift(dict(example)))


async def test_an_event_stored_as_an_older_version_is_read_as_the_latest(
    conn: AsyncConnection[Any], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    types = await sync_event_types(conn, with_a_second_version(tmp_path))
    monkeypatch.setattr(
        events_module, "UPCASTERS", {**UPCASTERS, ("contact-created", 1): from_a_form}
    )
    stored = types.get("contact-created", 1).schema["examples"][0]
    await conn.execute(
        "INSERT INTO entities (id, kind, name) VALUES (%s, 'account', 'ada@example.com')",
        (stored["account_id"],),
    )
    await conn.execute(  # as an older crm stored it, before v2 existed
        "INSERT INTO events (event_type_id, entity_id, payload) VALUES (%s, %s, %s::jsonb)",
        (types.id_of(types.get("contact-created", 1)), stored["account_id"], json.dumps(stored)),
    )
    (event,) = await read_batch(conn, types, 0, 10)
    assert (event.type, event.version) == ("contact-created", 2)
    assert event.payload == {**stored, "source": "form"}
