"""Checking a payload against its event type's schema, with errors that name each field."""

from typing import Any

from jsonschema import ValidationError

from crm.store.event_types import EventType
from crm.store.fields import problem_of


class InvalidPayload(ValueError):
    """A payload does not match its event type's schema. `errors` maps field -> problem."""

    def __init__(self, event_type: EventType, errors: dict[str, str]) -> None:
        self.errors = errors
        listed = "; ".join(f"{name}: {problem}" for name, problem in errors.items())
        super().__init__(f"invalid {event_type.name} v{event_type.version} payload: {listed}")


def _field_of(error: ValidationError) -> str:
    if error.validator == "required":
        # the missing property is named in the message: "'name' is a required property"
        return str(error.message).split("'")[1]
    if error.validator == "additionalProperties":
        return ",".join(sorted(set(error.instance) - set(error.schema.get("properties", {}))))
    return ".".join(str(part) for part in error.absolute_path) or "(payload)"


def validate_payload(event_type: EventType, payload: dict[str, Any]) -> None:
    errors: dict[str, str] = {}
    for error in event_type.validator.iter_errors(payload):
        errors.setdefault(_field_of(error), problem_of(error))
    if errors:
        raise InvalidPayload(event_type, errors)
