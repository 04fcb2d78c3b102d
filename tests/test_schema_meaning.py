"""A stored version's meaning never changes: schemas/meanings.lock holds each version's hash.

Meaning is the resolved schema (every "$ref" replaced by what it references) without its
annotations, so where a definition is written does not matter, and what it says does.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from crm.store.event_types import SCHEMA_DIR, load_event_types
from crm.store.meanings import LOCK_COMMAND, lock_problems, main, meaning_hash, read_lock

Schema = dict[str, Any]
SHARED = "shared/fields.json"


def copied_schemas(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    return copy


def edit(path: Path, change: Callable[[Schema], None]) -> None:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def hashes(directory: Path) -> dict[str, str]:
    return {
        f"{n}.v{v}": meaning_hash(t.schema)
        for (n, v), t in load_event_types(directory).by_key.items()
    }


def test_every_schema_version_means_what_its_lock_entry_says() -> None:
    problems = lock_problems(load_event_types(), read_lock())
    assert not problems, "\n".join(problems)


def test_a_changed_shared_definition_fails_every_old_version_that_uses_it(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    edit(copy / SHARED, lambda s: s["$defs"]["contact_name"].update(maxLength=100))
    problems = lock_problems(load_event_types(copy), read_lock(copy))
    assert len(problems) == 2, problems
    created, edited = sorted(problems)
    assert created.startswith("contact-created.v1 no longer means what it meant")
    assert "add contact-created.v2.json instead" in created
    assert edited.startswith("contact-edited.v1 no longer means")


def test_a_new_version_not_in_the_lock_fails_saying_how_to_add_it(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    edit(
        copy / "contact-deleted.v1.json",
        lambda s: s["properties"].update(reason={"type": "string"}),
    )
    (copy / "contact-deleted.v1.json").rename(copy / "contact-deleted.v2.json")
    shutil.copy(SCHEMA_DIR / "contact-deleted.v1.json", copy)
    (problem,) = lock_problems(load_event_types(copy), read_lock(copy))
    assert problem.startswith("contact-deleted.v2 is not in schemas/meanings.lock")
    assert f"run `{LOCK_COMMAND}`" in problem
    assert main(["--lock", "--schemas", str(copy)]) == 0
    assert not lock_problems(load_event_types(copy), read_lock(copy))
    assert read_lock(copy) == {
        **read_lock(),
        "contact-deleted.v2": hashes(copy)["contact-deleted.v2"],
    }


def test_locking_refuses_while_an_old_version_changed(tmp_path: Path, capsys) -> None:
    copy = copied_schemas(tmp_path)
    edit(copy / SHARED, lambda s: s["$defs"]["notes"].update(maxLength=10))
    assert main(["--lock", "--schemas", str(copy)]) == 1
    assert "interaction-recorded.v1 no longer means" in capsys.readouterr().err
    assert read_lock(copy) == read_lock()


def test_a_removed_version_fails_the_lock(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    (copy / "contact-deleted.v1.json").unlink()
    (problem,) = lock_problems(load_event_types(copy), read_lock(copy))
    assert problem.startswith("schemas/contact-deleted.v1.json is gone")


def test_where_a_definition_is_written_does_not_change_the_meaning(tmp_path: Path) -> None:
    before = hashes(SCHEMA_DIR)
    copy = copied_schemas(tmp_path)
    resolved = load_event_types().get("contact-created", 1).schema

    def local_defs(schema: Schema) -> None:  # the shared name, moved into the file's own $defs
        schema["$defs"] = {"name": {**resolved["properties"]["name"], "x-one-line": False}}
        schema["properties"]["name"] = {"$ref": "#/$defs/name"}

    edit(copy / "contact-created.v1.json", local_defs)
    # and another version written out in full, as it was before the shared definitions
    (copy / "contact-edited.v1.json").write_text(
        json.dumps(load_event_types().get("contact-edited", 1).schema)
    )
    assert hashes(copy) == before


def test_descriptions_examples_and_x_annotations_do_not_change_the_meaning(tmp_path) -> None:
    before = hashes(SCHEMA_DIR)
    copy = copied_schemas(tmp_path)

    def annotate(schema: Schema) -> None:
        schema["properties"]["name"]["description"] = "Reworded beside the reference."
        schema["properties"]["name"]["x-shown-as"] = "a heading"
        schema["examples"].append({**schema["examples"][0], "name": "Another"})

    edit(copy / "contact-created.v1.json", annotate)
    edit(copy / SHARED, lambda s: s["$defs"]["notes"].update(description="Reworded."))
    edit(copy / SHARED, lambda s: s["$defs"]["contact_method"].pop("x-one-line"))
    assert hashes(copy) == before
    assert load_event_types(copy).get("contact-created").schema["properties"]["name"][
        "description"
    ] == ("Reworded beside the reference.")


def test_a_changed_max_length_in_a_shared_definition_changes_the_meaning(tmp_path) -> None:
    before = hashes(SCHEMA_DIR)
    copy = copied_schemas(tmp_path)
    edit(copy / SHARED, lambda s: s["$defs"]["notes"].update(maxLength=10_000))
    changed = {name for name, digest in hashes(copy).items() if digest != before[name]}
    assert changed == {"interaction-recorded.v1", "next-meeting-notes-written.v1"}


def test_a_field_named_like_an_annotation_is_part_of_the_meaning(tmp_path: Path) -> None:
    before = hashes(SCHEMA_DIR)
    copy = copied_schemas(tmp_path)
    edit(
        copy / "contact-deleted.v1.json",
        lambda s: s["properties"].update({"x-reason": {"type": "string"}}),
    )
    assert hashes(copy)["contact-deleted.v1"] != before["contact-deleted.v1"]


def test_a_keyword_beside_a_reference_may_not_contradict_it(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    edit(copy / "contact-created.v1.json", lambda s: s["properties"]["name"].update(maxLength=10))
    with pytest.raises(ValueError, match=r"contact-created\.v1\.json: beside .*contact_name"):
        load_event_types(copy)


def test_a_reference_to_nothing_names_the_file_and_the_reference(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    wrong = {"$ref": "crm:shared/fields.json#/$defs/contact"}
    edit(copy / "contact-deleted.v1.json", lambda s: s["properties"].update(contact_id=wrong))
    with pytest.raises(
        ValueError, match=r"contact-deleted\.v1\.json: .*#/\$defs/contact leads nowhere"
    ):
        load_event_types(copy)


def test_a_definition_that_references_itself_is_refused(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    edit(copy / SHARED, lambda s: s["$defs"]["notes"].update({"$ref": "#/$defs/notes"}))
    with pytest.raises(ValueError, match=r"interaction-recorded\.v1\.json: .*references itself"):
        load_event_types(copy)


def test_a_shared_file_is_found_by_its_own_name(tmp_path: Path) -> None:
    copy = copied_schemas(tmp_path)
    edit(copy / SHARED, lambda s: s.update({"$id": "crm:shared/other.json"}))
    with pytest.raises(ValueError, match=r'"\$id" must be .crm:shared/fields\.json.'):
        load_event_types(copy)


def test_the_file_and_its_resolved_schema_accept_the_same_payloads() -> None:
    for event_type in load_event_types().by_key.values():
        resolved = Draft202012Validator(event_type.schema, format_checker=FormatChecker())
        assert "$ref" not in json.dumps(event_type.schema)
        for example in event_type.schema["examples"]:
            broken = [{**example, field: "x" * 20_001} for field in example]
            for payload in (example, *broken, {**example, "surprise": 1}):
                assert resolved.is_valid(payload) == event_type.validator.is_valid(payload)
