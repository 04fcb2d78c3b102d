"""Field rules come from the schemas: a form reads a field's limits instead of restating them."""

import pytest

from crm.store.event_types import load_event_types
from crm.store.fields import FieldRule, Kind, field_rules

TYPES = load_event_types()


def rules(name: str) -> dict[str, FieldRule]:
    return field_rules(TYPES.get(name))


def test_a_contact_name_is_required_one_line_and_at_most_200_characters() -> None:
    name = rules("contact-created")["name"]
    assert (name.kind, name.max_length, name.required, name.one_line) == (
        Kind.TEXT,
        200,
        True,
        True,
    )
    assert name.description == "The contact's name; unique within the account."


def test_a_description_may_be_empty_and_span_lines() -> None:
    description = rules("contact-edited")["description"]
    assert (description.max_length, description.required, description.one_line) == (
        2000,
        False,
        False,
    )
    assert rules("contact-edited")["contact_method"].one_line


def test_kinds_come_from_formats() -> None:
    assert rules("interaction-recorded")["interacted_on"].kind is Kind.DATE
    assert rules("account-created")["email"].kind is Kind.EMAIL
    assert rules("contact-deleted")["contact_id"].kind is Kind.UUID
    assert rules("next-meeting-notes-written")["notes"].kind is Kind.TEXT


def test_a_date_is_required_because_its_format_refuses_a_blank() -> None:
    meeting_on = rules("next-meeting-notes-written")["meeting_on"]
    assert meeting_on.required and meeting_on.max_length is None


def test_a_field_describes_itself_better_than_its_shared_definition() -> None:
    assert rules("interaction-recorded")["notes"].description == "What happened, as plain text."
    assert rules("next-meeting-notes-written")["notes"].description == "The notes, in Markdown."


def test_every_field_of_every_type_has_a_rule_with_a_description() -> None:
    for event_type in TYPES.by_key.values():
        found = field_rules(event_type)
        assert list(found) == list(event_type.schema["properties"])
        assert all(rule.description for rule in found.values()), event_type.name


@pytest.mark.parametrize(
    ("event_type", "field", "value", "problem"),
    [
        ("contact-created", "name", "", "is required"),
        ("contact-created", "name", "x" * 201, "must be at most 200 characters"),
        ("interaction-recorded", "notes", "x" * 20_001, "must be at most 20,000 characters"),
        ("interaction-recorded", "interacted_on", "", "is required"),
        (
            "interaction-recorded",
            "interacted_on",
            "26/11/2026",
            "must be a date written YYYY-MM-DD",
        ),
        (
            "next-meeting-notes-written",
            "meeting_on",
            "2026-02-30",
            "must be a date written YYYY-MM-DD",
        ),
        ("account-created", "email", "nobody", "must be an e-mail address like you@example.com"),
        ("account-created", "time_zone", "", "is required"),
    ],
)
def test_problems_are_worded_as_forms_word_them(event_type, field, value, problem) -> None:
    assert rules(event_type)[field].problem(value) == problem


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("contact-created", "name", "x" * 200),
        ("contact-created", "description", ""),
        ("interaction-recorded", "notes", "x" * 20_000),
        ("interaction-recorded", "interacted_on", "2024-02-29"),
    ],
)
def test_a_value_the_schema_accepts_has_no_problem(event_type, field, value) -> None:
    assert rules(event_type)[field].problem(value) is None


def test_a_field_that_is_not_text_has_no_rule_yet() -> None:
    event_type = TYPES.get("contact-deleted")
    schema = {**event_type.schema, "properties": {"count": {"type": "integer"}}}
    odd = type(event_type)(event_type.name, 9, schema, event_type.validator)
    with pytest.raises(ValueError, match=r"contact-deleted v9, field 'count': .*text fields"):
        field_rules(odd)
