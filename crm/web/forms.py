"""Reading and checking form fields; every problem is reported against the field it concerns."""

import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import date
from functools import cache

from starlette.datastructures import FormData

from crm.store.validation import InvalidPayload

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


@dataclass
class Form:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, form: FormData, names: tuple[str, ...]) -> "Form":
        read = cls({name: str(form.get(name) or "").strip() for name in names})
        for name, value in read.values.items():
            if "\x00" in value:  # PostgreSQL text cannot hold it: refuse it here, not with a 500
                read.values[name] = value.replace("\x00", "")
                read.fail(name, "must not contain NUL characters")
        return read

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

    def at_most(self, name: str, length: int) -> None:
        if len(self.values[name]) > length:
            self.fail(name, f"must be at most {length:,} characters")

    def a_date(self, name: str) -> None:
        value = self.values[name]
        if not value:
            return
        try:
            if _DATE.match(value):
                date.fromisoformat(value)
                return
        except ValueError:
            pass
        self.fail(name, "must be a date written YYYY-MM-DD")

    def an_email(self, name: str) -> None:
        if self.values[name] and not _EMAIL.match(self.values[name]):
            self.fail(name, "must be an e-mail address like you@example.com")

    def a_time_zone(self, name: str) -> None:
        if self.values[name] and self.values[name] not in time_zones():
            self.fail(name, "must be a time zone from the list, like Europe/Paris")

    def payload_errors(self, error: InvalidPayload, fields: dict[str, str]) -> None:
        """Errors the event schema found, mapped from payload fields to form fields."""
        for payload_field, problem in error.errors.items():
            self.fail(fields.get(payload_field, payload_field), problem)
