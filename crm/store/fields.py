"""Field rules, read from an event type's schema: what a form checks before it appends an event.

A payload field's limits are written once, in its schema; a form asks `field_rules` instead of
writing them again. The words for each problem are here too, shared by forms and by payload
validation (crm.store.validation), so a field says the same thing whichever refuses it.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from crm.store.event_types import EventType

REQUIRED = "is required"
NOT_A_FIELD = "is not a field of this event type"


def too_long(limit: int) -> str:
    return f"must be at most {limit:,} characters"


class Kind(StrEnum):
    """What a field holds, from its schema's "format"."""

    TEXT = "text"
    DATE = "date"
    EMAIL = "email"
    UUID = "uuid"


_KIND_OF_FORMAT = {None: Kind.TEXT, "date": Kind.DATE, "email": Kind.EMAIL, "uuid": Kind.UUID}
NOT_AN_EMAIL = "must be an e-mail address like you@example.com"
_WRONG_FORMAT = {"date": "must be a date written YYYY-MM-DD", "email": NOT_AN_EMAIL}


def problem_of(error: ValidationError) -> str:
    """A schema's complaint about a value, in words a person can act on."""
    keyword, expected = str(error.validator), error.validator_value
    if keyword == "required":
        return REQUIRED
    if keyword == "additionalProperties":
        return NOT_A_FIELD
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else "is too short"
    if keyword == "maxLength":
        return too_long(expected)
    if keyword == "pattern":
        return "must not be blank" if expected == "\\S" else "has the wrong form"
    if keyword == "format":
        return _WRONG_FORMAT.get(expected, f"must be a valid {expected}")
    if keyword == "type":
        return f"must be of type {expected}"
    return str(error.message)


@dataclass(frozen=True)
class FieldRule:
    """What one payload field accepts, as a form needs to know it."""

    name: str
    description: str
    kind: Kind
    max_length: int | None  # in characters; None: no limit of its own (an id, a date)
    # The schema refuses an empty value: minLength >= 1, a pattern such as "\S", or a format
    # such as a date. (Every field is present in a payload; this is about a blank one.)
    required: bool
    # "x-one-line": no line breaks or control characters (crm.text.breaks_one_line); without
    # it the field is multi-line text (crm.text.breaks_multi_line).
    one_line: bool
    validator: Draft202012Validator = field(compare=False, repr=False)

    def problem(self, value: str) -> str | None:
        """What a form says about this (trimmed) value, or None if the schema accepts it.

        Which characters a line may hold is the form's own check (crm.text): the schemas of
        stored versions allow any, and a form refuses more.
        """
        if not value:
            return REQUIRED if self.required else None
        error = next(self.validator.iter_errors(value), None)
        return None if error is None else problem_of(error)


def field_rules(event_type: EventType) -> dict[str, FieldRule]:
    """Each payload field's rule, in the order its schema lists them."""
    properties = event_type.schema["properties"]
    return {name: _rule(event_type, name, schema) for name, schema in properties.items()}


def _rule(event_type: EventType, name: str, schema: dict[str, Any]) -> FieldRule:
    where = f"{event_type.name} v{event_type.version}, field {name!r}"
    if schema.get("type") != "string":
        raise ValueError(f"{where}: field rules know text fields, not {schema.get('type')!r}")
    if schema.get("format") not in _KIND_OF_FORMAT:
        raise ValueError(f"{where}: field rules do not know the format {schema['format']!r}")
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return FieldRule(
        name=name,
        description=schema.get("description", ""),
        kind=_KIND_OF_FORMAT[schema.get("format")],
        max_length=schema.get("maxLength"),
        required=not validator.is_valid(""),
        one_line=schema.get("x-one-line") is True,
        validator=validator,
    )


def secret_fields(event_type: EventType) -> frozenset[str]:
    """The payload fields marked "x-secret": stored, never shown (a password's hash)."""
    properties = event_type.schema["properties"]
    return frozenset(name for name, schema in properties.items() if schema.get("x-secret"))
