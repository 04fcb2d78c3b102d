"""Reading and checking form fields; every problem is reported against the field it concerns."""

import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from crm.store.event_types import EventTypes
from crm.store.fields import NOT_AN_EMAIL, FieldRule, Kind, field_rules
from crm.store.validation import InvalidPayload
from crm.text import (
    breaks_multi_line,
    breaks_one_line,
    is_direction_control,
    is_invisible_format,
    is_line_break,
    is_visible,
)

# One mailbox, written plainly: no list separators, display names, comments, quoting or route
# syntax ("a,b@c.d" or "x<root>@y.z" would address someone else than the account holder).
_EMAIL = re.compile(r"^[^@\s,;:<>()\[\]\\\"]+@[^@\s,;:<>()\[\]\\\"]+\.[^@\s,;:<>()\[\]\\\"]+$")


URLENCODED = "application/x-www-form-urlencoded"


async def posted_form(request: Request) -> FormData:
    """The posted form, if it came URL-encoded (as every form of crm's is sent); else 400.

    Checked before the body is read: Starlette parses multipart/form-data by spooling its file
    parts to memory or disk, and no form here takes a file. A post without a body type is an
    empty form (a CSRF check then refuses it).
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not media_type:
        return FormData()
    if media_type != URLENCODED:
        raise HTTPException(
            400,
            f"crm takes forms sent as {URLENCODED} only (no files), not {media_type[:80]}."
            " Send the form from crm's own page.",
        )
    return await request.form()


# in the tz database but no one's zone: "localtime" is whatever the server's is, "Factory" a
# placeholder for machines set up without one
_NOT_A_PLACE = frozenset({"localtime", "Factory", "posixrules"})


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones() - _NOT_A_PLACE)


@dataclass
class Form:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    # form field -> its payload field's rule: templates take maxlength and required from it
    rules: dict[str, FieldRule] = field(default_factory=dict)
    # form fields the request did not send (an API client's PATCH): not checked, not written
    absent: set[str] = field(default_factory=set)
    # form field -> the value saved elsewhere since the form was opened, shown beside the
    # user's own (a refused stale write)
    conflicts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, form: FormData, names: tuple[str, ...]) -> "Form":
        read = cls({})
        for name in names:
            if name not in form:
                read.absent.add(name)
            # a plain form post sends a textarea's line breaks as CRLF, htmx as LF: one text,
            # one length, whichever sent it
            read.values[name] = read._text(form, name).replace("\r\n", "\n").strip()
            if "\x00" in read.values[name]:  # PostgreSQL text cannot hold it: refuse, not a 500
                read.values[name] = read.values[name].replace("\x00", "")
                read.fail(name, "must not contain NUL characters")
        return read

    def secret(self, form: FormData, name: str) -> str:
        """A field taken as sent (a password): not trimmed, and never kept to be echoed back."""
        self.values[name] = ""
        return self._text(form, name)

    def _text(self, form: FormData, name: str) -> str:
        value = form.get(name)
        if value is None or isinstance(value, str):
            return value or ""
        # a multipart body may send any field as a file part: str() of it is nobody's text
        self.fail(name, "must be text, not a file")
        return ""

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, name: str, problem: str) -> None:
        self.errors.setdefault(name, problem)

    def required(self, *names: str) -> None:
        for name in names:
            if not self.values[name]:
                self.fail(name, "is required")

    def single_line(self, *names: str) -> None:
        """Refuse line breaks, control and invisible format characters (a name, an e-mail),
        and a value with nothing visible in it: joiners, fillers or combining marks alone."""
        for name in names:
            self._refuse(name, breaks_one_line, "must be on one line, without control characters")
            if self.values[name] and not any(map(is_visible, self.values[name])):
                self.fail(
                    name,
                    "must contain a visible character: a letter, digit, symbol or punctuation",
                )

    def multi_line(self, *names: str) -> None:
        """Refuse control characters other than tabs, CR and LF, and text direction controls
        (notes, a description)."""
        for name in names:
            self._refuse(name, breaks_multi_line, "must not contain control characters")

    def _refuse(self, name: str, refused: Callable[[str], bool], problem: str) -> None:
        found = next((char for char in self.values[name] if refused(char)), None)
        if found is not None:
            self.fail(name, f"{problem} (found {_describe(found)})")

    def an_email(self, name: str) -> None:
        value = self.values[name]
        # "=?" starts an RFC 2047 encoded word, which the email package decodes in a To header
        # (crm/jobs/mail.py, header_text); no one's mailbox needs it
        if value and (not _EMAIL.match(value) or "=?" in value):
            self.fail(name, NOT_AN_EMAIL)

    def a_time_zone(self, name: str) -> None:
        if self.values[name] and self.values[name] not in time_zones():
            self.fail(name, "must be a time zone from the list, like Europe/Paris")

    def payload_errors(self, error: InvalidPayload, fields: Mapping[str, str]) -> None:
        """Errors the event schema found, mapped from payload fields to form fields."""
        for payload_field, problem in error.errors.items():
            self.fail(fields.get(payload_field, payload_field), problem)

    def follow(self, name: str, rule: FieldRule) -> None:
        """Check a field against its payload field's rule, read from the event's schema."""
        self.rules[name] = rule
        if rule.one_line:
            self.single_line(name)
        else:
            self.multi_line(name)
        problem = rule.problem(self.values[name])
        if problem is not None:
            self.fail(name, problem)
        if rule.kind is Kind.EMAIL:
            self.an_email(name)


@dataclass(frozen=True)
class FormSpec:
    """A form that appends one event type: which form field fills which payload field.

    Every limit comes from the event's schema (crm/store/fields.py); `extra` names form fields
    that are not payload fields (a "replace" checkbox), read but not checked here.
    """

    event_type: str
    fields: Mapping[str, str]  # form field -> payload field
    extra: tuple[str, ...] = ()
    # form fields this form will not take blank though the schema would (notes with no text)
    required: tuple[str, ...] = ()
    # the contact's column holding the revision the form is drawn from: sent back as `based_on`
    # (REVISION), so a write based on an older version is noticed (crm/store/revisions.py)
    revision: str = ""

    @classmethod
    def of(
        cls,
        event_type: str,
        *payload_fields: str,
        extra: tuple[str, ...] = (),
        required: tuple[str, ...] = (),
        revision: str = "",
        **renamed: str,
    ) -> "FormSpec":
        """The form for these payload fields, each under its own name or as `form_name=field`."""
        fields = {name: name for name in payload_fields}
        extra = (*extra, REVISION) if revision else extra
        return cls(event_type, {**fields, **renamed}, extra, required, revision)

    def blank(self, types: EventTypes, **values: Any) -> Form:
        """The form empty, or filled from `values` (by payload field; the revision it is based
        on by its column, or as `based_on`)."""
        rules = self._rules(types)
        if self.revision and values.get(self.revision) is not None:
            values = {REVISION: values[self.revision], **values}
        return Form(
            {name: str(values.get(payload) or "") for name, payload in self.fields.items()}
            | {name: _text(values.get(name)) for name in self.extra},
            rules=rules,
        )

    def read(self, data: FormData, types: EventTypes, partial: bool = False) -> Form:
        """The form as posted. `partial`: a field not sent at all is left out (it keeps its
        current value) rather than read as blank; a blank field sent is blank."""
        form = Form.read(data, (*self.fields, *self.extra))
        if not partial:
            form.absent.clear()
        form.required(*(name for name in self.required if name not in form.absent))
        for name, rule in self._rules(types).items():
            if name not in form.absent:
                form.follow(name, rule)
        return form

    @property
    def form_fields(self) -> dict[str, str]:
        """payload field -> form field: where a problem with a payload field is shown."""
        return {payload: name for name, payload in self.fields.items()}

    def payload(self, form: Form) -> dict[str, str]:
        """The payload fields the form sent (all of them, unless it was read `partial`)."""
        return {
            payload: form[name] for name, payload in self.fields.items() if name not in form.absent
        }

    def _rules(self, types: EventTypes) -> dict[str, FieldRule]:
        event_type = types.get(self.event_type)
        key = (event_type.name, event_type.version)
        if key not in _RULES:  # a schema version never changes: its rules are made once
            _RULES[key] = field_rules(event_type)
        return {name: _RULES[key][payload] for name, payload in self.fields.items()}


_RULES: dict[tuple[str, int], dict[str, FieldRule]] = {}
REVISION = "based_on"  # the form field that carries the revision a form was drawn from


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _describe(char: str) -> str:
    """'a line break, U+2028 LINE SEPARATOR': what was found, in words and as a code point."""
    name = unicodedata.name(char, "")  # control characters have none
    return f"{_kind(char)}, U+{ord(char):04X}{' ' + name if name else ''}"


def _kind(char: str) -> str:
    if is_line_break(char):
        return "a line break"
    if is_direction_control(char):
        return "a text direction control"
    if is_invisible_format(char):
        return "an invisible format character"
    return "a control character"
